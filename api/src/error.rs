//! The one error shape of the local API.
//!
//! Every error the API returns, whether from a handler, an extractor
//! rejection, a missing route or a too-large body, has this JSON body:
//!
//! ```json
//! {"error": {"code": "forbidden", "message": "…", "details": {…}}}
//! ```
//!
//! `code` is a stable kebab-case word for scripts; `message` is for people;
//! `details` is optional and code-specific.

use http::StatusCode;
use serde::{Deserialize, Serialize};

/// Error codes used by the API infrastructure. Routes add their own.
pub mod code {
    /// 400: the request is not acceptable as sent.
    pub const BAD_REQUEST: &str = "bad-request";
    /// 400: the body is not valid JSON.
    pub const MALFORMED_JSON: &str = "malformed-json";
    /// 422: the body is JSON but not of the expected form.
    pub const INVALID_BODY: &str = "invalid-body";
    /// 415: wrong or missing `Content-Type`.
    pub const UNSUPPORTED_MEDIA_TYPE: &str = "unsupported-media-type";
    /// 401: no authenticated caller.
    pub const UNAUTHENTICATED: &str = "unauthenticated";
    /// 403: the caller's role does not allow this.
    pub const FORBIDDEN: &str = "forbidden";
    /// 404: no such route or resource.
    pub const NOT_FOUND: &str = "not-found";
    /// 405: the route exists but not for this method.
    pub const METHOD_NOT_ALLOWED: &str = "method-not-allowed";
    /// 409: conflicts with the current state.
    pub const CONFLICT: &str = "conflict";
    /// 413: the body is larger than this route accepts.
    pub const PAYLOAD_TOO_LARGE: &str = "payload-too-large";
    /// 500: a fault in the node.
    pub const INTERNAL: &str = "internal";
    /// 503: the node is not ready.
    pub const UNAVAILABLE: &str = "unavailable";
    /// 422: an import refused rows, so nothing was imported (details: the report).
    pub const ROWS_REJECTED: &str = "rows-rejected";
    /// 422: an import file is unusable as a whole.
    pub const BAD_FILE: &str = "bad-file";
    /// 422: a roster entry is not for the agreement in the path.
    pub const WRONG_AGREEMENT: &str = "wrong-agreement";
}

/// The JSON body of every API error; also what the client parses.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct ErrorBody {
    /// The error.
    pub error: ErrorInfo,
}

/// The inside of [`ErrorBody`].
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct ErrorInfo {
    /// A stable kebab-case code, for scripts (see [`code`]).
    pub code: String,
    /// What was wrong and what to do, for people.
    pub message: String,
    /// Code-specific details, e.g. the import report of `rows-rejected`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<Object>)]
    pub details: Option<serde_json::Value>,
}

/// The default code for a status.
pub fn default_code(status: StatusCode) -> &'static str {
    match status {
        StatusCode::BAD_REQUEST => code::BAD_REQUEST,
        StatusCode::UNAUTHORIZED => code::UNAUTHENTICATED,
        StatusCode::FORBIDDEN => code::FORBIDDEN,
        StatusCode::NOT_FOUND => code::NOT_FOUND,
        StatusCode::METHOD_NOT_ALLOWED => code::METHOD_NOT_ALLOWED,
        StatusCode::CONFLICT => code::CONFLICT,
        StatusCode::PAYLOAD_TOO_LARGE => code::PAYLOAD_TOO_LARGE,
        StatusCode::UNSUPPORTED_MEDIA_TYPE => code::UNSUPPORTED_MEDIA_TYPE,
        StatusCode::UNPROCESSABLE_ENTITY => code::INVALID_BODY,
        StatusCode::SERVICE_UNAVAILABLE => code::UNAVAILABLE,
        s if s.is_server_error() => code::INTERNAL,
        _ => code::BAD_REQUEST,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shape() {
        let body = ErrorBody {
            error: ErrorInfo {
                code: code::FORBIDDEN.into(),
                message: "needs admin".into(),
                details: Some(serde_json::json!({"required": "admin"})),
            },
        };
        assert_eq!(
            serde_json::to_value(&body).unwrap(),
            serde_json::json!({"error": {"code": "forbidden", "message": "needs admin", "details": {"required": "admin"}}})
        );
        let plain = ErrorBody { error: ErrorInfo { code: code::NOT_FOUND.into(), message: "x".into(), details: None } };
        assert_eq!(
            serde_json::to_value(&plain).unwrap(),
            serde_json::json!({"error": {"code": "not-found", "message": "x"}})
        );
    }
}
