//! The node's routes, declared once: each resource's handlers live in its
//! own module, and [`router`] puts every route in the group of the least
//! role that may call it (`read-only` ⊆ `hr` ⊆ `admin`), each group behind
//! one [`auth::require`] layer, so no handler checks a role itself. Paths
//! come from [`staffpass_api::route`], request and response types from
//! `staffpass_api`; ids in paths are typed by the [`Id`] extractor; every
//! flow and roster error maps to its HTTP status in one exhaustive `match`
//! ([`flow_status`], [`roster_status`]).

mod agreements;
mod audit;
mod backup;
mod consents;
mod credentials;
mod outbox;
mod received;
mod staff;
mod status;

use std::sync::Arc;
use std::sync::atomic::AtomicBool;

use axum::Router;
use axum::extract::rejection::PathRejection;
use axum::extract::{DefaultBodyLimit, FromRequestParts, State};
use axum::http::StatusCode;
use axum::routing::{get, post};
use libp2p::PeerId;
use staffpass_api::route;
use staffpass_protocol::bundle::Rejection;

use super::auth::{self, Caller, Role};
use super::error::ApiError;
use crate::audit::Audit;
use crate::exchange::{self, Exchange};
use crate::metrics::Metrics;
use crate::network::Network;
use crate::rosters::{self, Rosters};
use crate::sync::RosterSync;

type ApiResult<T> = Result<T, ApiError>;

/// What the routes reach: the services, handed over by the composition
/// root. Every call that commits goes through [`committing`].
#[derive(Clone)]
pub struct AppState {
    /// The exchange service.
    pub exchange: Exchange,
    /// Roster sync (for entries submitted by the admin).
    pub sync: RosterSync,
    /// The agreements held.
    pub rosters: Arc<Rosters>,
    /// The network (status and peers).
    pub network: Network,
    /// The audit log.
    pub audit: Arc<Audit>,
    /// Metrics.
    pub metrics: Arc<Metrics>,
    /// This node's transport identity.
    pub peer_id: PeerId,
    /// Set once start-up has finished.
    pub ready: Arc<AtomicBool>,
    /// Largest staff import body, in bytes.
    pub import_limit: usize,
    /// What `GET /v1/backup` snapshots (`None`: the node runs on an
    /// injected store, which has no files to back up).
    pub backup: Option<Arc<crate::backup::Source>>,
}

/// Builds the router over the services in `state`.
pub fn router(state: AppState) -> Router {
    let import_limit = state.import_limit;
    // No role: liveness and readiness probes.
    let probes = Router::new().route(route::HEALTHZ, get(status::healthz)).route(route::READYZ, get(status::readyz));
    let read_only = Router::new()
        .route(route::METRICS, get(status::metrics))
        .route(route::OPENAPI, get(status::openapi))
        .route(route::STATUS, get(status::status))
        .route(route::PEERS, get(status::peers))
        .route(route::ISSUER_METADATA, get(credentials::issuer_metadata))
        .route(route::STATUS_LIST, get(credentials::status_list))
        .route(route::AGREEMENTS, get(agreements::list))
        .route(route::AGREEMENT, get(agreements::one))
        .route(route::AGREEMENT_ENTRIES, get(agreements::entries))
        .route_layer(auth::require(Role::ReadOnly));
    let hr = Router::new()
        .route(route::STAFF, get(staff::list))
        .route(route::STAFF_IMPORT, post(staff::import).layer(DefaultBodyLimit::max(import_limit)))
        .route(route::STAFF_MEMBER, get(staff::one).put(staff::put).delete(staff::delete))
        .route(route::STAFF_CLAIMS, post(staff::record_claim))
        .route(route::STAFF_CREDENTIALS, post(credentials::issue))
        .route(route::STAFF_REVOKE, post(credentials::revoke_staff))
        .route(route::STAFF_EXPORT, post(credentials::export))
        .route(route::STAFF_KEY_CHANGE, post(staff::change_key))
        .route(route::STAFF_ACTIVITY, get(audit::activity))
        .route(route::CREDENTIAL, get(credentials::one))
        .route(route::CREDENTIAL_REVOKE, post(credentials::revoke))
        .route(route::CONSENTS, get(consents::list).post(consents::grant))
        .route(route::CONSENT, get(consents::one).delete(consents::withdraw))
        .route(route::CONSENT_STAFF_SIGNATURE, post(consents::sign))
        .route(route::RECEIVED, get(received::list))
        .route(route::RECEIVED_ONE, get(received::one))
        .route(route::RECEIVED_EXPORT, post(received::export))
        .route_layer(auth::require(Role::Hr));
    let admin = Router::new()
        .route(route::AGREEMENTS, post(agreements::submit_chain))
        .route(route::AGREEMENT_ENTRIES, post(agreements::submit_entries))
        .route(route::AGREEMENT_OVERRIDE, post(agreements::override_halt))
        .route(route::OUTBOX, get(outbox::list))
        .route(route::AUDIT, get(audit::log))
        .route(route::AUDIT_VERIFY, get(audit::verify))
        .route(route::BACKUP, get(backup::backup))
        .route(route::STAFF_KEY, post(staff::set_key))
        .route_layer(auth::require(Role::Admin));
    let metrics = state.metrics.clone();
    probes
        .merge(read_only)
        .merge(hr)
        .merge(admin)
        .layer(axum::middleware::from_fn_with_state(metrics, count_request))
        .with_state(state)
}

/// Counts and times every request (`staffpass_api_requests_total`,
/// `staffpass_api_request_seconds`), by status class.
async fn count_request(
    State(metrics): State<Arc<Metrics>>,
    request: axum::extract::Request,
    next: axum::middleware::Next,
) -> axum::response::Response {
    let started = std::time::Instant::now();
    let response = next.run(request).await;
    metrics.api_request(response.status().as_u16(), started.elapsed());
    response
}

/// The audit actor of a request.
fn actor(c: &Caller) -> String {
    format!("cert:{}", c.name)
}

/// A typed id from the path (agreement id, staff reference, consent or
/// credential id); one that does not parse is a 400 in the API's shape.
#[derive(Debug, FromRequestParts)]
#[from_request(via(axum::extract::Path), rejection(ApiError))]
pub struct Id<T>(pub T);

impl From<PathRejection> for ApiError {
    fn from(rejection: PathRejection) -> Self {
        ApiError::bad_request(format!("bad id in the path: {}", rejection.body_text()))
    }
}

/// Runs an exchange operation that commits to the store on the blocking
/// pool ([`crate::task::blocking`]): a commit waits for its fsync, which
/// must not hold up the runtime's workers.
async fn committing<T, F>(exchange: &Exchange, f: F) -> ApiResult<T>
where
    T: Send + 'static,
    F: FnOnce(&Exchange) -> Result<T, exchange::Error> + Send + 'static,
{
    Ok(crate::task::blocking(exchange, f).await.map_err(|e| ApiError::internal(e.to_string()))??)
}

/// The HTTP status of a exchange error. No wildcard: a new variant must be
/// given its status here.
pub fn flow_status(e: &exchange::Error) -> StatusCode {
    use exchange::Error as E;
    match e {
        E::NoStaff(_) | E::NoCredential(_) | E::NoConsent(_) | E::NoReceived(_) => StatusCode::NOT_FOUND,
        E::Terms { reason, .. } => terms_status(*reason),
        E::Conflict(_) => StatusCode::CONFLICT,
        E::ClaimNotHeld(_) | E::Invalid(_) | E::BadStaffSignature => StatusCode::UNPROCESSABLE_ENTITY,
        E::Store(_) | E::Audit(_) | E::Corrupt { .. } | E::Interrupted(_) => StatusCode::INTERNAL_SERVER_ERROR,
    }
}

/// The HTTP status of a refusal by the agreement's terms
/// (`protocol::bundle::check_terms`): an agreement this node does not hold
/// is not found, one that cannot be used now (halted, stale) a conflict,
/// the rest a request the terms do not allow.
fn terms_status(reason: Rejection) -> StatusCode {
    match reason {
        Rejection::UnknownAgreement => StatusCode::NOT_FOUND,
        Rejection::RosterHalted | Rejection::RosterStale => StatusCode::CONFLICT,
        _ => StatusCode::UNPROCESSABLE_ENTITY,
    }
}

/// The HTTP status of a roster error. No wildcard: a new variant, here or
/// in the protocol's roster rules, must be given its status here.
pub fn roster_status(e: &rosters::Error) -> StatusCode {
    use staffpass_protocol::roster::Error as P;
    match e {
        rosters::Error::UnknownAgreement { .. } => StatusCode::NOT_FOUND,
        rosters::Error::Refused(refusal) => match refusal {
            P::WrongSeq { .. }
            | P::Gap { .. }
            | P::BadPrev { .. }
            | P::Equivocation { .. }
            | P::GenesisMismatch { .. }
            | P::FormerStewards { .. }
            | P::Resolved { .. }
            | P::Halted { .. } => StatusCode::CONFLICT,
            P::FromTheFuture { .. } => StatusCode::UNPROCESSABLE_ENTITY,
            P::UnsupportedVersion { .. }
            | P::NotGenesis
            | P::WrongAgreement { .. }
            | P::IssuedBeforePrevious { .. }
            | P::UnknownSigner { .. }
            | P::DuplicateSigner { .. }
            | P::BadSignature { .. }
            | P::BelowThreshold { .. }
            | P::Invalid(_) => StatusCode::UNPROCESSABLE_ENTITY,
        },
        rosters::Error::Corrupt { .. }
        | rosters::Error::Undecodable { .. }
        | rosters::Error::Store(_)
        | rosters::Error::Audit(_)
        | rosters::Error::Interrupted(_) => StatusCode::INTERNAL_SERVER_ERROR,
    }
}

impl From<exchange::Error> for ApiError {
    fn from(e: exchange::Error) -> Self {
        ApiError::new(flow_status(&e), e.code(), e.to_string())
    }
}

impl From<rosters::Error> for ApiError {
    fn from(e: rosters::Error) -> Self {
        ApiError::new(roster_status(&e), e.code(), e.to_string())
    }
}

impl From<crate::audit::Error> for ApiError {
    fn from(e: crate::audit::Error) -> Self {
        ApiError::internal(e.to_string())
    }
}
