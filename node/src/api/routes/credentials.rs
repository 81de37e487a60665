//! Passport credentials: issue, read, revoke.

use axum::extract::State;
use axum::http::StatusCode;
use staffpass_api::credentials::{CredentialView, RevokeRequest};
use staffpass_protocol::{CredentialId, StaffRef};

use super::{ApiResult, Id, actor, committing};
use crate::api::auth::Caller;
use crate::api::error::Json;
use crate::flows::records::CredentialRecord;
use crate::node::Node;

/// A credential as the API shows it.
fn view(r: &CredentialRecord) -> CredentialView {
    CredentialView {
        id: r.signed.body.id,
        staff_ref: r.staff_ref.clone(),
        issued_at: r.signed.body.issued_at,
        expires_at: r.signed.body.expires_at,
        claims: r.disclosures.iter().map(|d| d.claim.kind().to_string()).collect(),
        revoked: r.revoked.map(|(r, _)| r),
    }
}

pub(super) async fn issue(
    State(node): State<Node>,
    caller: Caller,
    Id(r): Id<StaffRef>,
) -> ApiResult<(StatusCode, Json<CredentialView>)> {
    let actor = actor(&caller);
    let rec = committing(&node, move |n| n.issue_credential(&r, &actor)).await?;
    Ok((StatusCode::CREATED, Json(view(&rec))))
}

pub(super) async fn one(State(node): State<Node>, Id(id): Id<CredentialId>) -> ApiResult<Json<CredentialView>> {
    Ok(Json(view(&node.credential(&id)?)))
}

pub(super) async fn revoke(
    State(node): State<Node>,
    caller: Caller,
    Id(id): Id<CredentialId>,
    Json(b): Json<RevokeRequest>,
) -> ApiResult<Json<CredentialView>> {
    let actor = actor(&caller);
    let rec = committing(&node, move |n| n.revoke_credential(&id, b.reason, &actor)).await?;
    Ok(Json(view(&rec)))
}
