//! The public HTTPS listener (`public.listen`, off by default): what a
//! verifier outside staffpass needs to check this trust's SD-JWT VCs, to
//! anyone, with no client certificate, and nothing else:
//!
//! - `GET /.well-known/jwt-vc-issuer<issuer path>`: the JWT VC issuer
//!   metadata (`application/json`), where the draft puts it for the issuer
//!   URL `https://host<issuer path>`;
//! - `GET <issuer path>/statuslists/1`: the Token Status List
//!   (`application/statuslist+jwt`), the `uri` every exported credential
//!   names.
//!
//! Neither says anything about a person: keys, and one bit per credential.
//! Every other path is 404. It runs on the local API's accept loop
//! ([`super::server`]) with its connection caps and timeouts, with
//! [`super::server::Options::public`] set.

use axum::Router;
use axum::extract::State;
use axum::http::header::{CACHE_CONTROL, CONTENT_TYPE};
use axum::response::{IntoResponse, Response};
use axum::routing::get;

use super::error::ApiError;
use crate::exchange::Exchange;
use crate::exchange::status::TTL_SECS;

/// The path part of an issuer URL (`https://host/a/b` → `/a/b`; none → ``).
pub fn issuer_path(issuer_url: &str) -> &str {
    let rest = issuer_url.strip_prefix("https://").unwrap_or(issuer_url);
    rest.find('/').map_or("", |i| &rest[i..])
}

/// Where the metadata is served.
pub fn metadata_path(issuer_url: &str) -> String {
    format!("/.well-known/jwt-vc-issuer{}", issuer_path(issuer_url))
}

/// Where the status list is served.
pub fn status_list_path(issuer_url: &str) -> String {
    format!("{}/statuslists/1", issuer_path(issuer_url))
}

/// The public router.
pub fn router(exchange: Exchange) -> Router {
    let issuer = exchange.issuer_url();
    Router::new()
        .route(&metadata_path(&issuer), get(metadata))
        .route(&status_list_path(&issuer), get(status_list))
        .fallback(not_found)
        .with_state(exchange)
}

async fn metadata(State(ex): State<Exchange>) -> Response {
    let cache = format!("public, max-age={TTL_SECS}");
    ([(CACHE_CONTROL, cache)], axum::Json(ex.issuer_metadata())).into_response()
}

async fn status_list(State(ex): State<Exchange>) -> Response {
    match crate::task::blocking(&ex, |ex| ex.status_list_token()).await {
        Ok(Ok(token)) => {
            let cache = format!("public, max-age={TTL_SECS}");
            ([(CONTENT_TYPE, "application/statuslist+jwt".to_owned()), (CACHE_CONTROL, cache)], token).into_response()
        }
        Ok(Err(e)) => {
            tracing::warn!(error = %e, "the status list could not be made");
            ApiError::internal("the status list could not be made").into_response()
        }
        Err(e) => ApiError::internal(e.to_string()).into_response(),
    }
}

async fn not_found() -> Response {
    ApiError::not_found("this listener serves only the issuer metadata and the status list").into_response()
}
