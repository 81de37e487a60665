//! Who is calling the API, and what they may do.
//!
//! Every API connection is mutually authenticated: rustls has already
//! verified the client certificate against the node CA before any of this
//! runs. The caller's [`Role`] and name come from that certificate (subject
//! `OU` and `CN`, written by [`crate::tls::Pki`]) and nowhere else: the
//! server puts a [`Caller`] into every request's extensions, handlers take it
//! as an extractor, and [`require`] guards routes by minimum role.

use std::task::{Context, Poll};

use axum::extract::{FromRequestParts, Request};
use axum::http::request::Parts;
use axum::response::{IntoResponse, Response};
use futures::future::{BoxFuture, FutureExt};
use serde::{Deserialize, Serialize};
use tower::{Layer, Service};

use super::error::ApiError;

pub use staffpass_api::{Role, UnknownRole};

/// The authenticated caller of a request, from its verified client
/// certificate.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Caller {
    /// The certificate's CN (an operator account name, e.g. `admin`, `hr-desk-1`).
    pub name: String,
    /// The certificate's role (OU).
    pub role: Role,
}

impl Caller {
    /// `Ok` if the caller's role includes `required`, else a 403 [`ApiError`].
    pub fn require(&self, required: Role) -> Result<(), ApiError> {
        if self.role.allows(required) {
            Ok(())
        } else {
            Err(ApiError::forbidden(format!(
                "this needs the {required} role; the certificate of {:?} has the {} role",
                self.name, self.role
            ))
            .with_details(serde_json::json!({ "required": required, "role": self.role })))
        }
    }
}

/// Why a verified client certificate does not identify a caller.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum Error {
    /// The TLS session has no client certificate.
    #[error("no client certificate")]
    NoCertificate,
    /// The certificate does not parse as X.509.
    #[error("client certificate does not parse: {0}")]
    Parse(String),
    /// The subject has no OU naming a role.
    #[error("client certificate has no role (subject OU); issue it with `staffpass-admin` / `Pki::issue_client`")]
    MissingRole,
    /// The subject has more than one OU.
    #[error("client certificate has more than one subject OU; it must name exactly one role")]
    AmbiguousRole,
    /// The OU is not a known role.
    #[error("client certificate role: {0}")]
    UnknownRole(#[from] UnknownRole),
    /// The subject has no usable CN.
    #[error("client certificate has no usable name (exactly one subject CN)")]
    MissingName,
}

/// Reads the caller from a DER client certificate that rustls has already
/// verified against the node CA.
pub fn caller_from_cert(der: &[u8]) -> Result<Caller, Error> {
    let (_, cert) = x509_parser::parse_x509_certificate(der).map_err(|e| Error::Parse(e.to_string()))?;
    let subject = cert.subject();

    let mut units = subject.iter_organizational_unit();
    let unit = units.next().ok_or(Error::MissingRole)?;
    if units.next().is_some() {
        return Err(Error::AmbiguousRole);
    }
    let role: Role = unit.as_str().map_err(|_| Error::MissingRole)?.parse()?;

    let mut names = subject.iter_common_name();
    let name = names.next().and_then(|cn| cn.as_str().ok()).ok_or(Error::MissingName)?;
    if names.next().is_some() || name.trim().is_empty() {
        return Err(Error::MissingName);
    }
    Ok(Caller { name: name.to_owned(), role })
}

/// Reads the caller from a TLS session's peer certificates (end entity first).
pub fn caller_from_certs(certs: Option<&[rustls_pki_types::CertificateDer<'_>]>) -> Result<Caller, Error> {
    let leaf = certs.and_then(|c| c.first()).ok_or(Error::NoCertificate)?;
    caller_from_cert(leaf.as_ref())
}

impl<S: Send + Sync> FromRequestParts<S> for Caller {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        parts.extensions.get::<Caller>().cloned().ok_or_else(|| {
            ApiError::unauthenticated(
                "no authenticated caller: connect over the node's HTTPS API with a client certificate",
            )
        })
    }
}

/// A layer that refuses (403 JSON) callers whose role does not include
/// `role`, and callers it cannot identify (401). Use with
/// `Router::route_layer` so unknown routes still give 404.
///
/// ```ignore
/// Router::new()
///     .route("/admin/stop", post(stop))
///     .route_layer(auth::require(Role::Admin))
/// ```
pub fn require(role: Role) -> RequireRole {
    RequireRole { role }
}

/// The layer returned by [`require`].
#[derive(Clone, Copy, Debug)]
pub struct RequireRole {
    role: Role,
}

impl<S> Layer<S> for RequireRole {
    type Service = RequireRoleService<S>;

    fn layer(&self, inner: S) -> Self::Service {
        RequireRoleService { inner, role: self.role }
    }
}

/// The service made by [`RequireRole`].
#[derive(Clone, Debug)]
pub struct RequireRoleService<S> {
    inner: S,
    role: Role,
}

impl<S> Service<Request> for RequireRoleService<S>
where
    S: Service<Request, Response = Response> + Clone + Send + 'static,
    S::Error: Send + 'static,
    S::Future: Send + 'static,
{
    type Response = Response;
    type Error = S::Error;
    type Future = BoxFuture<'static, Result<Response, S::Error>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: Request) -> Self::Future {
        let verdict = match request.extensions().get::<Caller>() {
            None => Err(ApiError::unauthenticated("no authenticated caller")),
            Some(caller) => caller.require(self.role),
        };
        match verdict {
            Ok(()) => {
                // Call the instance that poll_ready readied; leave a clone behind.
                let clone = self.inner.clone();
                let mut inner = std::mem::replace(&mut self.inner, clone);
                inner.call(request).boxed()
            }
            Err(refusal) => {
                tracing::debug!(required = %self.role, "caller's role does not allow this route");
                futures::future::ready(Ok(refusal.into_response())).boxed()
            }
        }
    }
}
