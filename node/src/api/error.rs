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
//! `details` is optional and code-specific. The shape and the codes are
//! defined once, in `staffpass_api::error`, for server and client. Handlers
//! return [`ApiError`];
//! they read JSON bodies through [`Json`], whose rejections map to it.
//! [`json_errors`] (installed by `api::server::serve`) rewrites any other
//! error response (axum's own rejections, 404 of the fallback, 405, 413)
//! into the same shape.

use std::borrow::Cow;

use axum::extract::rejection::{BytesRejection, JsonRejection};
use axum::extract::{FromRequest, Request};
use axum::http::{HeaderValue, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use serde::Serialize;

pub use staffpass_api::error::{ErrorBody, ErrorInfo, code, default_code};

/// Largest error body [`json_errors`] reads from a response it rewrites.
const MAX_REWRITTEN_BODY: usize = 4 * 1024;

/// An API error: an HTTP status and the JSON error body.
#[derive(Clone, Debug, PartialEq)]
pub struct ApiError {
    pub status: StatusCode,
    pub code: Cow<'static, str>,
    pub message: String,
    pub details: Option<serde_json::Value>,
}

impl ApiError {
    /// An error with `status`, a stable `code` and a message for people.
    pub fn new(status: StatusCode, code: impl Into<Cow<'static, str>>, message: impl Into<String>) -> Self {
        ApiError { status, code: code.into(), message: message.into(), details: None }
    }

    /// Adds machine-readable details.
    #[must_use]
    pub fn with_details(mut self, details: serde_json::Value) -> Self {
        self.details = Some(details);
        self
    }

    /// 400 `bad-request`.
    pub fn bad_request(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, code::BAD_REQUEST, message)
    }

    /// 401 `unauthenticated`.
    pub fn unauthenticated(message: impl Into<String>) -> Self {
        Self::new(StatusCode::UNAUTHORIZED, code::UNAUTHENTICATED, message)
    }

    /// 403 `forbidden`.
    pub fn forbidden(message: impl Into<String>) -> Self {
        Self::new(StatusCode::FORBIDDEN, code::FORBIDDEN, message)
    }

    /// 404 `not-found`.
    pub fn not_found(message: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_FOUND, code::NOT_FOUND, message)
    }

    /// 409 `conflict`.
    pub fn conflict(message: impl Into<String>) -> Self {
        Self::new(StatusCode::CONFLICT, code::CONFLICT, message)
    }

    /// 413 `payload-too-large`.
    pub fn payload_too_large(message: impl Into<String>) -> Self {
        Self::new(StatusCode::PAYLOAD_TOO_LARGE, code::PAYLOAD_TOO_LARGE, message)
    }

    /// 500 `internal`. Log the cause where it happens; do not put it in
    /// `message` if it could hold personal data.
    pub fn internal(message: impl Into<String>) -> Self {
        Self::new(StatusCode::INTERNAL_SERVER_ERROR, code::INTERNAL, message)
    }

    /// 503 `unavailable`.
    pub fn unavailable(message: impl Into<String>) -> Self {
        Self::new(StatusCode::SERVICE_UNAVAILABLE, code::UNAVAILABLE, message)
    }

    /// An error for a bare `status`, with the default code for it.
    pub fn from_status(status: StatusCode, message: impl Into<String>) -> Self {
        Self::new(status, default_code(status), message)
    }

    /// The JSON body of this error.
    pub fn body(&self) -> ErrorBody {
        ErrorBody {
            error: ErrorInfo {
                code: self.code.to_string(),
                message: self.message.clone(),
                details: self.details.clone(),
            },
        }
    }
}

impl std::fmt::Display for ApiError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} {}: {}", self.status.as_u16(), self.code, self.message)
    }
}

impl std::error::Error for ApiError {}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        if self.status.is_server_error() {
            tracing::warn!(status = self.status.as_u16(), code = %self.code, "API request failed");
        } else {
            tracing::debug!(status = self.status.as_u16(), code = %self.code, "API request refused");
        }
        (self.status, axum::Json(self.body())).into_response()
    }
}

impl From<JsonRejection> for ApiError {
    fn from(rejection: JsonRejection) -> Self {
        let status = rejection.status();
        let code = match &rejection {
            JsonRejection::JsonSyntaxError(_) => code::MALFORMED_JSON,
            JsonRejection::JsonDataError(_) => code::INVALID_BODY,
            JsonRejection::MissingJsonContentType(_) => code::UNSUPPORTED_MEDIA_TYPE,
            _ => default_code(status),
        };
        let message = match code {
            code::PAYLOAD_TOO_LARGE => "the request body is larger than this route accepts".to_owned(),
            code::UNSUPPORTED_MEDIA_TYPE => "send the body with `Content-Type: application/json`".to_owned(),
            _ => rejection.body_text(),
        };
        ApiError::new(status, code, message)
    }
}

impl From<BytesRejection> for ApiError {
    fn from(rejection: BytesRejection) -> Self {
        let status = rejection.status();
        let message = if status == StatusCode::PAYLOAD_TOO_LARGE {
            "the request body is larger than this route accepts".to_owned()
        } else {
            rejection.body_text()
        };
        ApiError::from_status(status, message)
    }
}

/// JSON request extractor and response, with rejections as [`ApiError`].
///
/// Use it instead of `axum::Json` in handlers.
#[derive(Clone, Copy, Debug, Default, FromRequest)]
#[from_request(via(axum::Json), rejection(ApiError))]
pub struct Json<T>(pub T);

impl<T: Serialize> IntoResponse for Json<T> {
    fn into_response(self) -> Response {
        axum::Json(self.0).into_response()
    }
}

/// Middleware that gives every error response the API's JSON shape.
///
/// A 4xx/5xx response that is not already JSON (axum's own rejections, the
/// default 404 fallback, 405, 413 from a body limit) is rewritten to
/// [`ErrorBody`] with the status's default code; its plain-text message is
/// kept. Also logs one line per request (method, path, status), never bodies
/// or query strings.
pub async fn json_errors(request: Request, next: Next) -> Response {
    let method = request.method().clone();
    let path = request.uri().path().to_owned();
    let response = next.run(request).await;
    let status = response.status();
    tracing::debug!(%method, %path, status = status.as_u16(), "API request");
    if !(status.is_client_error() || status.is_server_error()) || is_json(&response) {
        return response;
    }
    let (parts, body) = response.into_parts();
    let text = axum::body::to_bytes(body, MAX_REWRITTEN_BODY)
        .await
        .map(|b| String::from_utf8_lossy(&b).trim().to_owned())
        .unwrap_or_default();
    let message = match status {
        StatusCode::NOT_FOUND => format!("no route for {method} {path}"),
        StatusCode::METHOD_NOT_ALLOWED => format!("{path} does not accept {method}"),
        StatusCode::PAYLOAD_TOO_LARGE => "the request body is larger than this route accepts".to_owned(),
        _ if !text.is_empty() => text,
        _ => status.canonical_reason().unwrap_or("request failed").to_owned(),
    };
    let mut rewritten = ApiError::from_status(status, message).into_response();
    for name in [header::ALLOW, header::RETRY_AFTER, header::WWW_AUTHENTICATE] {
        if let Some(value) = parts.headers.get(&name) {
            rewritten.headers_mut().insert(name, value.clone());
        }
    }
    rewritten
}

fn is_json(response: &Response) -> bool {
    response
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v: &HeaderValue| v.to_str().ok())
        .is_some_and(|ct| ct.starts_with("application/json"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shape() {
        let err = ApiError::forbidden("needs admin").with_details(serde_json::json!({"required": "admin"}));
        let json = serde_json::to_value(err.body()).unwrap();
        assert_eq!(
            json,
            serde_json::json!({"error": {"code": "forbidden", "message": "needs admin", "details": {"required": "admin"}}})
        );
        let plain = serde_json::to_value(ApiError::not_found("x").body()).unwrap();
        assert_eq!(plain, serde_json::json!({"error": {"code": "not-found", "message": "x"}}));
    }
}
