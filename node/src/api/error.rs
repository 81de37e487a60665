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

use axum::body::Bytes;
use axum::extract::rejection::{BytesRejection, JsonRejection};
use axum::extract::{FromRequest, Request};
use axum::http::{HeaderValue, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use serde::de::{DeserializeOwned, IgnoredAny};

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
/// Use it instead of `axum::Json` in handlers. A body that is not JSON is
/// `malformed-json` (400); a body that is JSON but not of the route's type
/// is `invalid-body` (422), even where serde_json files the mismatch as a
/// syntax error (an externally tagged enum given `{}`, as a claim can be).
#[derive(Clone, Copy, Debug, Default)]
pub struct Json<T>(pub T);

impl<T, S> FromRequest<S> for Json<T>
where
    T: DeserializeOwned,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request(request: Request, state: &S) -> Result<Self, ApiError> {
        if !json_content_type(request.headers()) {
            return Err(ApiError::new(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                code::UNSUPPORTED_MEDIA_TYPE,
                "send the body with `Content-Type: application/json`",
            ));
        }
        let bytes = Bytes::from_request(request, state).await?;
        match axum::Json::<T>::from_bytes(&bytes) {
            Ok(axum::Json(value)) => Ok(Json(value)),
            Err(JsonRejection::JsonSyntaxError(e)) if serde_json::from_slice::<IgnoredAny>(&bytes).is_ok() => {
                Err(ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, code::INVALID_BODY, e.body_text()))
            }
            Err(rejection) => Err(rejection.into()),
        }
    }
}

/// `application/json` or `application/<anything>+json`, parameters aside
/// (what `axum::Json` accepts).
fn json_content_type(headers: &axum::http::HeaderMap) -> bool {
    let Some(ct) = headers.get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok()) else {
        return false;
    };
    let essence = ct.split(';').next().unwrap_or_default().trim().to_ascii_lowercase();
    essence == "application/json" || (essence.starts_with("application/") && essence.ends_with("+json"))
}

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
    use axum::Router;
    use axum::body::Body;
    use axum::routing::post;
    use tower::ServiceExt;

    use super::*;

    /// Posts `body` as `content_type` to a route taking `Json<T>`; the status and error code.
    async fn post_json<T: DeserializeOwned + Send + 'static>(content_type: &str, body: &str) -> (u16, String) {
        let app = Router::new().route("/", post(|Json(_): Json<T>| async { StatusCode::NO_CONTENT }));
        let request = Request::post("/").header(header::CONTENT_TYPE, content_type).body(Body::from(body.to_owned()));
        let response = app.oneshot(request.unwrap()).await.unwrap();
        let status = response.status().as_u16();
        let bytes = axum::body::to_bytes(response.into_body(), 1 << 16).await.unwrap();
        let code = serde_json::from_slice::<ErrorBody>(&bytes).map(|b| b.error.code).unwrap_or_default();
        (status, code)
    }

    /// Shaped like a claim: an externally tagged enum.
    #[derive(serde::Deserialize)]
    #[serde(rename_all = "kebab-case")]
    #[allow(dead_code)]
    enum Tagged {
        Identity { verified: bool },
        Dbs(u8),
    }

    /// Found by schemathesis: `{}` for a claim was answered 400
    /// `malformed-json`, though it is valid JSON (serde_json files an
    /// enum's missing tag as a syntax error).
    #[tokio::test]
    async fn json_of_the_wrong_shape_is_invalid_body_not_malformed() {
        assert_eq!(post_json::<Tagged>("application/json", "{}").await, (422, code::INVALID_BODY.to_owned()));
        assert_eq!(post_json::<Vec<Tagged>>("application/json", "[{}]").await, (422, code::INVALID_BODY.to_owned()));
        assert_eq!(
            post_json::<Tagged>("application/json", r#"{"dbs": "x"}"#).await,
            (422, code::INVALID_BODY.to_owned())
        );
        assert_eq!(post_json::<Tagged>("application/json", r#"{"dbs": 1}"#).await.0, 204);
        // Not JSON at all: still malformed.
        assert_eq!(post_json::<Tagged>("application/json", "{").await, (400, code::MALFORMED_JSON.to_owned()));
        assert_eq!(post_json::<Tagged>("application/json", "{} x").await, (400, code::MALFORMED_JSON.to_owned()));
        // The content type is checked as axum::Json does.
        assert_eq!(post_json::<Tagged>("application/merge-patch+json; charset=utf-8", r#"{"dbs": 1}"#).await.0, 204);
        assert_eq!(
            post_json::<Tagged>("text/plain", r#"{"dbs": 1}"#).await,
            (415, code::UNSUPPORTED_MEDIA_TYPE.to_owned())
        );
    }

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
