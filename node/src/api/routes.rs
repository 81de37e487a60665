//! The node's routes: status, peers, agreements and rosters, staff records
//! and import, credentials, consents, received passports, audit, metrics,
//! health and readiness. Roles: `read-only` reads status, peers,
//! agreements and metrics; `hr` also works with staff, consents and
//! received passports; `admin` also submits roster entries and reads the
//! audit log.

use std::collections::BTreeMap;

use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, Path, Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Extension, Router};
use serde::{Deserialize, Serialize};
use staffpass_protocol::claims::Claim;
use staffpass_protocol::revocation::RevocationReason;
use staffpass_protocol::roster::{Appended, Entry, MemberStatus};
use staffpass_protocol::{AgreementId, ConsentId, CredentialId, Signature, StaffRef};

use super::auth::{Caller, Role};
use super::error::{ApiError, Json};
use crate::flows::{self, ConsentRequest, StaffInput, staff};
use crate::node::{Node, now};
use crate::rosters;

type ApiResult<T> = Result<T, ApiError>;

/// Builds the router for `node`.
pub fn router(node: Node) -> Router {
    let import_limit = node.config.api.import_limit_bytes;
    Router::new()
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics))
        .route("/v1/status", get(status))
        .route("/v1/peers", get(peers))
        .route("/v1/agreements", get(agreements).post(submit_chain))
        .route("/v1/agreements/{id}", get(agreement))
        .route("/v1/agreements/{id}/entries", get(entries).post(submit_entry))
        .route("/v1/staff", get(staff_list))
        .route("/v1/staff/import", post(import).layer(DefaultBodyLimit::max(import_limit)))
        .route("/v1/staff/{ref}", get(staff_get).put(staff_put).delete(staff_delete))
        .route("/v1/staff/{ref}/claims", post(staff_claim))
        .route("/v1/staff/{ref}/credentials", post(issue))
        .route("/v1/staff/{ref}/activity", get(activity))
        .route("/v1/credentials/{id}", get(credential))
        .route("/v1/credentials/{id}/revoke", post(revoke))
        .route("/v1/consents", get(consents).post(grant))
        .route("/v1/consents/{id}", get(consent).delete(withdraw))
        .route("/v1/consents/{id}/staff-signature", post(staff_sign))
        .route("/v1/received", get(received))
        .route("/v1/received/{id}", get(received_one))
        .route("/v1/outbox", get(outbox))
        .route("/v1/audit", get(audit))
        .route("/v1/audit/verify", get(audit_verify))
        .with_state(node)
}

fn actor(c: &Caller) -> String {
    format!("cert:{}", c.name)
}

fn parse<T: std::str::FromStr>(s: &str, what: &str) -> ApiResult<T>
where
    T::Err: std::fmt::Display,
{
    s.parse().map_err(|e| ApiError::bad_request(format!("bad {what}: {e}")))
}

/// Runs a flow that commits to the store on the blocking pool: a commit
/// waits for its fsync, which must not hold up the runtime's workers.
async fn committing<T, F>(node: &Node, f: F) -> ApiResult<T>
where
    T: Send + 'static,
    F: FnOnce(&Node) -> Result<T, flows::Error> + Send + 'static,
{
    Ok(node.blocking(f).await.map_err(|e| ApiError::internal(e.to_string()))??)
}

impl From<rosters::Error> for ApiError {
    fn from(e: rosters::Error) -> Self {
        use staffpass_protocol::roster::Error as P;
        let status = match &e {
            rosters::Error::UnknownAgreement { .. } => StatusCode::NOT_FOUND,
            rosters::Error::Refused(
                P::WrongSeq { .. }
                | P::Gap { .. }
                | P::BadPrev { .. }
                | P::Equivocation { .. }
                | P::GenesisMismatch { .. }
                | P::Halted { .. },
            ) => StatusCode::CONFLICT,
            rosters::Error::Refused(_) => StatusCode::UNPROCESSABLE_ENTITY,
            _ => StatusCode::INTERNAL_SERVER_ERROR,
        };
        ApiError::new(status, e.code(), e.to_string())
    }
}

impl From<flows::Error> for ApiError {
    fn from(e: flows::Error) -> Self {
        let status = match e.code() {
            "not-found" | "unknown-agreement" => StatusCode::NOT_FOUND,
            "roster-stale" | "roster-halted" | "conflict" => StatusCode::CONFLICT,
            "storage" | "interrupted" => StatusCode::INTERNAL_SERVER_ERROR,
            _ => StatusCode::UNPROCESSABLE_ENTITY,
        };
        ApiError::new(status, e.code(), e.to_string())
    }
}

impl From<crate::audit::Error> for ApiError {
    fn from(e: crate::audit::Error) -> Self {
        ApiError::internal(e.to_string())
    }
}

async fn healthz() -> &'static str {
    "ok"
}

async fn readyz(State(node): State<Node>) -> Response {
    if node.is_ready() {
        (StatusCode::OK, "ready").into_response()
    } else {
        ApiError::unavailable("starting").into_response()
    }
}

async fn metrics(State(node): State<Node>, Extension(c): Extension<Caller>) -> ApiResult<Response> {
    c.require(Role::ReadOnly)?;
    Ok(([(header::CONTENT_TYPE, "application/openmetrics-text; version=1.0.0; charset=utf-8")], node.metrics.render())
        .into_response())
}

/// One agreement in `/v1/status` and `/v1/agreements`.
#[derive(Debug, Serialize, Deserialize)]
pub struct AgreementSummary {
    /// Its id.
    pub id: AgreementId,
    /// Its title.
    pub title: String,
    /// Head seq.
    pub seq: u64,
    /// Head hash.
    pub head: String,
    /// The roster fails closed after this.
    pub valid_until: staffpass_protocol::Timestamp,
    /// Not past valid_until.
    pub fresh: bool,
    /// Halted by an equivocation.
    pub halted: bool,
    /// This node's organisation's standing in it.
    pub member_status: Option<MemberStatus>,
    /// Active members.
    pub active_members: usize,
}

fn summaries(node: &Node) -> Vec<AgreementSummary> {
    let t = now();
    node.rosters
        .read()
        .values()
        .map(|c| {
            let st = c.state();
            AgreementSummary {
                id: c.agreement().clone(),
                title: st.title.clone(),
                seq: c.seq(),
                head: c.head().to_string(),
                valid_until: st.valid_until,
                fresh: st.is_fresh(t),
                halted: c.halted().is_some(),
                member_status: st.status(&node.org),
                active_members: st.members.values().filter(|m| m.status == MemberStatus::Active).count(),
            }
        })
        .collect()
}

/// `/v1/status`.
#[derive(Debug, Serialize, Deserialize)]
pub struct Status {
    /// Organisation.
    pub org: String,
    /// PeerId.
    pub peer_id: String,
    /// Current issuer public key.
    pub issuer_key: String,
    /// Listen addresses.
    pub listen_addrs: Vec<String>,
    /// Connected peers.
    pub connected_peers: usize,
    /// Agreements.
    pub agreements: Vec<AgreementSummary>,
    /// Alarms (equivocations).
    pub alarms: Vec<serde_json::Value>,
    /// Messages waiting in the outbox.
    pub outbox_pending: i64,
    /// Version.
    pub version: String,
}

async fn status(State(node): State<Node>, Extension(c): Extension<Caller>) -> ApiResult<Json<Status>> {
    c.require(Role::ReadOnly)?;
    let info = node.network.info().await.map_err(|e| ApiError::unavailable(e.to_string()))?;
    Ok(Json(Status {
        org: node.org.to_string(),
        peer_id: node.peer_id.to_string(),
        issuer_key: node.issuer.public().to_string(),
        listen_addrs: info.listen_addrs.iter().map(ToString::to_string).collect(),
        connected_peers: info.connected.len(),
        agreements: summaries(&node),
        alarms: node.rosters.alarms().iter().filter_map(|a| serde_json::to_value(a).ok()).collect(),
        outbox_pending: node.metrics.outbox_pending.get(),
        version: env!("CARGO_PKG_VERSION").into(),
    }))
}

/// One peer in `/v1/peers`.
#[derive(Debug, Serialize, Deserialize)]
pub struct Peer {
    /// PeerId.
    pub peer_id: String,
    /// The organisation it belongs to, by the rosters held.
    pub org: Option<String>,
    /// Connected now.
    pub connected: bool,
}

async fn peers(State(node): State<Node>, Extension(c): Extension<Caller>) -> ApiResult<Json<Vec<Peer>>> {
    c.require(Role::ReadOnly)?;
    let info = node.network.info().await.map_err(|e| ApiError::unavailable(e.to_string()))?;
    let connected: std::collections::BTreeSet<String> = info.connected.iter().map(|(p, _)| p.to_string()).collect();
    let mut out: BTreeMap<String, Peer> = BTreeMap::new();
    // The rosters list this node too; it is not its own peer.
    for m in node.rosters.members().into_iter().filter(|m| m.peer != node.peer_id) {
        let id = m.peer.to_string();
        out.insert(id.clone(), Peer { connected: connected.contains(&id), org: None, peer_id: id });
    }
    for id in &connected {
        out.entry(id.clone()).or_insert(Peer { peer_id: id.clone(), org: None, connected: true });
    }
    let chains = node.rosters.read();
    for p in out.values_mut() {
        if let Ok(n) = p.peer_id.parse::<staffpass_protocol::NodeId>() {
            p.org = chains.values().find_map(|c| c.state().org_of_node(&n).map(|m| m.org.to_string()));
        }
    }
    Ok(Json(out.into_values().collect()))
}

async fn agreements(
    State(node): State<Node>,
    Extension(c): Extension<Caller>,
) -> ApiResult<Json<Vec<AgreementSummary>>> {
    c.require(Role::ReadOnly)?;
    Ok(Json(summaries(&node)))
}

async fn agreement(
    State(node): State<Node>,
    Extension(c): Extension<Caller>,
    Path(id): Path<String>,
) -> ApiResult<Json<serde_json::Value>> {
    c.require(Role::ReadOnly)?;
    let id: AgreementId = parse(&id, "agreement id")?;
    let chains = node.rosters.read();
    let chain = chains.get(&id).ok_or_else(|| ApiError::not_found(format!("this node holds no roster for {id}")))?;
    Ok(Json(serde_json::json!({
        "id": id,
        "seq": chain.seq(),
        "head": chain.head().to_string(),
        "fresh": chain.state().is_fresh(now()),
        "halted": chain.halted(),
        "state": chain.state(),
    })))
}

#[derive(Deserialize)]
struct FromQuery {
    #[serde(default)]
    from: u64,
}

async fn entries(
    State(node): State<Node>,
    Extension(c): Extension<Caller>,
    Path(id): Path<String>,
    Query(q): Query<FromQuery>,
) -> ApiResult<Json<Vec<Entry>>> {
    c.require(Role::ReadOnly)?;
    let id: AgreementId = parse(&id, "agreement id")?;
    let chains = node.rosters.read();
    let chain = chains.get(&id).ok_or_else(|| ApiError::not_found(format!("this node holds no roster for {id}")))?;
    Ok(Json(chain.entries_from(q.from).to_vec()))
}

/// The outcome of a roster submission.
#[derive(Debug, Serialize, Deserialize)]
pub struct Submitted {
    /// The agreement.
    pub agreement: AgreementId,
    /// Entries newly applied.
    pub applied: u64,
    /// Entries already held.
    pub already_held: u64,
    /// The head seq after.
    pub seq: u64,
}

async fn submit(node: &Node, caller: &Caller, list: Vec<Entry>) -> ApiResult<Submitted> {
    let Some(first) = list.first() else { return Err(ApiError::bad_request("no roster entries in the body")) };
    let agreement = first.body.agreement.clone();
    let mut out = Submitted { agreement: agreement.clone(), applied: 0, already_held: 0, seq: 0 };
    for e in list {
        if e.body.agreement != agreement {
            return Err(ApiError::bad_request("all entries must be for one agreement"));
        }
        match node.submit_roster_entry(e, &actor(caller)).await? {
            Appended::Applied => out.applied += 1,
            Appended::AlreadyHave => out.already_held += 1,
        }
    }
    out.seq = node.rosters.read().get(&agreement).map(|c| c.seq()).unwrap_or_default();
    Ok(out)
}

/// A body of one entry or a list of them.
#[derive(Deserialize)]
#[serde(untagged)]
enum OneOrMany {
    Many(Vec<Entry>),
    One(Box<Entry>),
}

impl OneOrMany {
    fn into_vec(self) -> Vec<Entry> {
        match self {
            OneOrMany::Many(v) => v,
            OneOrMany::One(e) => vec![*e],
        }
    }
}

async fn submit_chain(
    State(node): State<Node>,
    Extension(c): Extension<Caller>,
    Json(body): Json<OneOrMany>,
) -> ApiResult<(StatusCode, Json<Submitted>)> {
    c.require(Role::Admin)?;
    let s = submit(&node, &c, body.into_vec()).await?;
    Ok((if s.applied > 0 { StatusCode::CREATED } else { StatusCode::OK }, Json(s)))
}

async fn submit_entry(
    State(node): State<Node>,
    Extension(c): Extension<Caller>,
    Path(id): Path<String>,
    Json(body): Json<OneOrMany>,
) -> ApiResult<(StatusCode, Json<Submitted>)> {
    c.require(Role::Admin)?;
    let id: AgreementId = parse(&id, "agreement id")?;
    let list = body.into_vec();
    if list.iter().any(|e| e.body.agreement != id) {
        return Err(ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "wrong-agreement",
            format!("the entry is not for agreement {id}"),
        ));
    }
    let s = submit(&node, &c, list).await?;
    Ok((if s.applied > 0 { StatusCode::CREATED } else { StatusCode::OK }, Json(s)))
}

// ------------------------------------------------------------------ staff

#[derive(Deserialize)]
struct ImportQuery {
    #[serde(default)]
    partial: bool,
}

async fn import(
    State(node): State<Node>,
    Extension(c): Extension<Caller>,
    Query(q): Query<ImportQuery>,
    headers: HeaderMap,
    body: Bytes,
) -> ApiResult<Response> {
    c.require(Role::Hr)?;
    let ct = headers.get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok()).unwrap_or("text/csv");
    let today = now().date();
    let parsed = if ct.starts_with("application/json") {
        tokio::task::spawn_blocking(move || staff::parse_json(&body, today)).await
    } else if ct.starts_with("text/csv") || ct.starts_with("application/csv") {
        tokio::task::spawn_blocking(move || staff::parse_csv(&body, today)).await
    } else {
        return Err(ApiError::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported-media-type",
            "send text/csv (an ESR-style export) or application/json",
        ));
    };
    let (rows, errors) = parsed
        .map_err(|e| ApiError::internal(e.to_string()))?
        .map_err(|e| ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, "bad-file", e.to_string()))?;
    let report = node.import_staff(rows, errors, q.partial, &actor(&c)).await?;
    if report.aborted {
        let details = serde_json::to_value(&report).unwrap_or_default();
        return Err(ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "rows-rejected",
            format!(
                "{} of {} rows were refused, so nothing was imported; fix them, or import the good rows with ?partial=true",
                report.rejected, report.rows
            ),
        )
        .with_details(details));
    }
    Ok(Json(report).into_response())
}

#[derive(Deserialize)]
struct PageQuery {
    after: Option<String>,
    #[serde(default = "default_limit")]
    limit: usize,
}

fn default_limit() -> usize {
    100
}

async fn staff_list(
    State(node): State<Node>,
    Extension(c): Extension<Caller>,
    Query(q): Query<PageQuery>,
) -> ApiResult<Json<Vec<StaffSummary>>> {
    c.require(Role::Hr)?;
    let after: Option<StaffRef> = q.after.as_deref().map(|a| parse(a, "staff reference")).transpose()?;
    let list = node.staff_list(after.as_ref(), q.limit.clamp(1, 1000))?;
    Ok(Json(list.into_iter().map(|r| StaffSummary::of(&r)).collect()))
}

/// A staff record without claim values.
#[derive(Debug, Serialize, Deserialize)]
pub struct StaffSummary {
    /// Reference.
    pub staff_ref: StaffRef,
    /// Assignment number.
    pub assignment_number: String,
    /// Claims held.
    pub claims: Vec<String>,
    /// Last change.
    pub updated_at: staffpass_protocol::Timestamp,
}

impl StaffSummary {
    fn of(r: &flows::StaffRecord) -> Self {
        StaffSummary {
            staff_ref: r.staff_ref.clone(),
            assignment_number: r.assignment_number.clone(),
            claims: r.claims.keys().map(ToString::to_string).collect(),
            updated_at: r.updated_at,
        }
    }
}

async fn staff_get(
    State(node): State<Node>,
    Extension(c): Extension<Caller>,
    Path(r): Path<String>,
) -> ApiResult<Json<flows::StaffRecord>> {
    c.require(Role::Hr)?;
    Ok(Json(node.staff(&parse(&r, "staff reference")?)?))
}

async fn staff_put(
    State(node): State<Node>,
    Extension(c): Extension<Caller>,
    Path(r): Path<String>,
    Json(input): Json<StaffInput>,
) -> ApiResult<Json<flows::StaffRecord>> {
    c.require(Role::Hr)?;
    Ok(Json(node.put_staff(&parse(&r, "staff reference")?, input, &actor(&c)).await?))
}

async fn staff_delete(
    State(node): State<Node>,
    Extension(c): Extension<Caller>,
    Path(r): Path<String>,
) -> ApiResult<StatusCode> {
    c.require(Role::Hr)?;
    let (r, actor) = (parse(&r, "staff reference")?, actor(&c));
    committing(&node, move |n| n.delete_staff(&r, &actor)).await?;
    Ok(StatusCode::NO_CONTENT)
}

async fn staff_claim(
    State(node): State<Node>,
    Extension(c): Extension<Caller>,
    Path(r): Path<String>,
    Json(claim): Json<Claim>,
) -> ApiResult<Json<flows::StaffRecord>> {
    c.require(Role::Hr)?;
    Ok(Json(node.record_claim(&parse(&r, "staff reference")?, claim, &actor(&c)).await?))
}

async fn activity(
    State(node): State<Node>,
    Extension(c): Extension<Caller>,
    Path(r): Path<String>,
) -> ApiResult<Json<Vec<crate::audit::Entry>>> {
    c.require(Role::Hr)?;
    let r: StaffRef = parse(&r, "staff reference")?;
    Ok(Json(node.audit.for_staff(&r, 1000)?))
}

// ----------------------------------------------------------- credentials

/// A credential as shown at the home trust.
#[derive(Debug, Serialize, Deserialize)]
pub struct CredentialView {
    /// Id.
    pub id: CredentialId,
    /// Staff member.
    pub staff_ref: StaffRef,
    /// Issued.
    pub issued_at: staffpass_protocol::Timestamp,
    /// Expires.
    pub expires_at: staffpass_protocol::Timestamp,
    /// Claims in it.
    pub claims: Vec<String>,
    /// Revoked: reason.
    pub revoked: Option<RevocationReason>,
}

impl CredentialView {
    fn of(r: &flows::records::CredentialRecord) -> Self {
        CredentialView {
            id: r.signed.body.id,
            staff_ref: r.staff_ref.clone(),
            issued_at: r.signed.body.issued_at,
            expires_at: r.signed.body.expires_at,
            claims: r.disclosures.iter().map(|d| d.claim.kind().to_string()).collect(),
            revoked: r.revoked.map(|(r, _)| r),
        }
    }
}

async fn issue(
    State(node): State<Node>,
    Extension(c): Extension<Caller>,
    Path(r): Path<String>,
) -> ApiResult<(StatusCode, Json<CredentialView>)> {
    c.require(Role::Hr)?;
    let (r, actor) = (parse(&r, "staff reference")?, actor(&c));
    let rec = committing(&node, move |n| n.issue_credential(&r, &actor)).await?;
    Ok((StatusCode::CREATED, Json(CredentialView::of(&rec))))
}

async fn credential(
    State(node): State<Node>,
    Extension(c): Extension<Caller>,
    Path(id): Path<String>,
) -> ApiResult<Json<CredentialView>> {
    c.require(Role::Hr)?;
    Ok(Json(CredentialView::of(&node.credential(&parse(&id, "credential id")?)?)))
}

#[derive(Deserialize)]
struct RevokeBody {
    reason: RevocationReason,
}

async fn revoke(
    State(node): State<Node>,
    Extension(c): Extension<Caller>,
    Path(id): Path<String>,
    Json(b): Json<RevokeBody>,
) -> ApiResult<Json<CredentialView>> {
    c.require(Role::Hr)?;
    let (id, actor) = (parse(&id, "credential id")?, actor(&c));
    let rec = committing(&node, move |n| n.revoke_credential(&id, b.reason, &actor)).await?;
    Ok(Json(CredentialView::of(&rec)))
}

// -------------------------------------------------------------- consents

/// A consent as shown at the home trust.
#[derive(Debug, Serialize, Deserialize)]
pub struct ConsentView {
    /// The signed consent.
    pub consent: staffpass_protocol::consent::Consent,
    /// Where it stands.
    pub state: serde_json::Value,
    /// The credential last sent.
    pub credential: CredentialId,
    /// Signed receipts from the receiver.
    pub receipts: Vec<staffpass_protocol::Signed<staffpass_protocol::receipt::Receipt>>,
    /// Hex of the bytes the staff member signs, while a staff signature is awaited.
    pub staff_signing_bytes: Option<String>,
}

impl ConsentView {
    fn of(r: &flows::records::ConsentRecord) -> Self {
        use staffpass_protocol::Signable;
        let awaiting = matches!(r.state, flows::records::ConsentState::AwaitingStaffSignature);
        ConsentView {
            consent: r.signed.consent().clone(),
            state: r.state.view(),
            credential: r.credential,
            receipts: r.receipts.clone(),
            staff_signing_bytes: awaiting.then(|| hex::encode(r.signed.consent().signing_bytes())),
        }
    }
}

async fn grant(
    State(node): State<Node>,
    Extension(c): Extension<Caller>,
    Json(req): Json<ConsentRequest>,
) -> ApiResult<(StatusCode, Json<ConsentView>)> {
    c.require(Role::Hr)?;
    let actor = actor(&c);
    let rec = committing(&node, move |n| n.grant_consent(req, &actor)).await?;
    Ok((StatusCode::CREATED, Json(ConsentView::of(&rec))))
}

async fn consents(State(node): State<Node>, Extension(c): Extension<Caller>) -> ApiResult<Json<Vec<ConsentView>>> {
    c.require(Role::Hr)?;
    Ok(Json(node.consents()?.iter().map(ConsentView::of).collect()))
}

async fn consent(
    State(node): State<Node>,
    Extension(c): Extension<Caller>,
    Path(id): Path<String>,
) -> ApiResult<Json<ConsentView>> {
    c.require(Role::Hr)?;
    let id: ConsentId = parse(&id, "consent id")?;
    Ok(Json(ConsentView::of(&node.consent(&id)?)))
}

async fn withdraw(
    State(node): State<Node>,
    Extension(c): Extension<Caller>,
    Path(id): Path<String>,
) -> ApiResult<Json<ConsentView>> {
    c.require(Role::Hr)?;
    let id: ConsentId = parse(&id, "consent id")?;
    let actor = actor(&c);
    Ok(Json(ConsentView::of(&committing(&node, move |n| n.withdraw_consent(&id, &actor)).await?)))
}

#[derive(Deserialize)]
struct SignBody {
    signature: Signature,
}

async fn staff_sign(
    State(node): State<Node>,
    Extension(c): Extension<Caller>,
    Path(id): Path<String>,
    Json(b): Json<SignBody>,
) -> ApiResult<Json<ConsentView>> {
    c.require(Role::Hr)?;
    let id: ConsentId = parse(&id, "consent id")?;
    let actor = actor(&c);
    Ok(Json(ConsentView::of(&committing(&node, move |n| n.sign_consent(&id, b.signature, &actor)).await?)))
}

// -------------------------------------------------------------- received

async fn received(
    State(node): State<Node>,
    Extension(c): Extension<Caller>,
) -> ApiResult<Json<Vec<flows::receive::ReceivedView>>> {
    c.require(Role::Hr)?;
    Ok(Json(node.received()?))
}

async fn received_one(
    State(node): State<Node>,
    Extension(c): Extension<Caller>,
    Path(id): Path<String>,
) -> ApiResult<Json<flows::receive::ReceivedView>> {
    c.require(Role::Hr)?;
    Ok(Json(node.received_one(&parse(&id, "consent id")?)?))
}

async fn outbox(State(node): State<Node>, Extension(c): Extension<Caller>) -> ApiResult<Json<Vec<serde_json::Value>>> {
    c.require(Role::Admin)?;
    let items = node
        .store
        .scan_prefix(crate::store::Tree::Outbox, b"")
        .map_err(|e| ApiError::internal(e.to_string()))?
        .into_iter()
        .filter_map(|(_, v)| {
            staffpass_protocol::encoding::from_bytes::<flows::records::OutboxItem>(&v, usize::MAX, "outbox").ok()
        })
        .map(|i| {
            serde_json::json!({
                "id": i.id, "kind": i.kind, "consent": i.consent, "to": i.to, "agreement": i.agreement,
                "attempts": i.attempts, "last_error": i.last_error,
            })
        })
        .collect();
    Ok(Json(items))
}

// ----------------------------------------------------------------- audit

#[derive(Deserialize)]
struct AuditQuery {
    #[serde(default)]
    since: u64,
    #[serde(default = "default_limit")]
    limit: usize,
}

async fn audit(
    State(node): State<Node>,
    Extension(c): Extension<Caller>,
    Query(q): Query<AuditQuery>,
) -> ApiResult<Json<Vec<crate::audit::Entry>>> {
    c.require(Role::Admin)?;
    Ok(Json(node.audit.since(q.since, q.limit.clamp(1, 10_000))?))
}

async fn audit_verify(State(node): State<Node>, Extension(c): Extension<Caller>) -> ApiResult<Response> {
    c.require(Role::Admin)?;
    match node.audit.verify() {
        Ok(report) => Ok(Json(serde_json::json!({ "ok": true, "report": report })).into_response()),
        Err(broken) => Ok((
            StatusCode::CONFLICT,
            Json(serde_json::json!({ "ok": false, "broken_at": broken.seq, "why": broken.fault.to_string() })),
        )
            .into_response()),
    }
}
