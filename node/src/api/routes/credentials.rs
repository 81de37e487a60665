//! Passport credentials: issue, read, revoke.

use axum::extract::State;
use axum::http::StatusCode;
use staffpass_api::credentials::{
    CredentialView, ExportFormat, ExportRequest, ExportView, RevokeRequest, StatusListView,
};
use staffpass_protocol::{CredentialId, StaffRef};

use super::AppState;
use super::{ApiResult, Id, actor, committing};
use crate::api::auth::Caller;
use crate::api::error::Json;
use crate::exchange::records::CredentialRecord;

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
    State(app): State<AppState>,
    caller: Caller,
    Id(r): Id<StaffRef>,
) -> ApiResult<(StatusCode, Json<CredentialView>)> {
    let actor = actor(&caller);
    let rec = committing(&app.exchange, move |ex| ex.issue_credential(&r, &actor)).await?;
    Ok((StatusCode::CREATED, Json(view(&rec))))
}

pub(super) async fn one(State(app): State<AppState>, Id(id): Id<CredentialId>) -> ApiResult<Json<CredentialView>> {
    Ok(Json(view(&app.exchange.credential(&id)?)))
}

pub(super) async fn revoke_staff(
    State(app): State<AppState>,
    caller: Caller,
    Id(r): Id<StaffRef>,
    Json(b): Json<RevokeRequest>,
) -> ApiResult<Json<Vec<CredentialView>>> {
    let actor = actor(&caller);
    let revoked = committing(&app.exchange, move |ex| ex.revoke_staff(&r, b.reason, &actor)).await?;
    Ok(Json(revoked.iter().map(view).collect()))
}

pub(super) async fn revoke(
    State(app): State<AppState>,
    caller: Caller,
    Id(id): Id<CredentialId>,
    Json(b): Json<RevokeRequest>,
) -> ApiResult<Json<CredentialView>> {
    let actor = actor(&caller);
    let rec = committing(&app.exchange, move |ex| ex.revoke_credential(&id, b.reason, &actor)).await?;
    Ok(Json(view(&rec)))
}

pub(super) async fn export(
    State(app): State<AppState>,
    caller: Caller,
    Id(r): Id<StaffRef>,
    Json(b): Json<ExportRequest>,
) -> ApiResult<Json<ExportView>> {
    let actor = actor(&caller);
    let format = b.format;
    let out = committing(&app.exchange, move |ex| match format {
        ExportFormat::SdJwtVc => ex.export_sd_jwt_vc(&r, b.claims.as_ref(), &actor),
        ExportFormat::Fhir => ex.export_fhir(&r, b.claims.as_ref(), &actor),
    })
    .await?;
    Ok(Json(ExportView {
        format,
        credential: out.credential,
        claims: out.claims.iter().map(ToString::to_string).collect(),
        issuer: app.exchange.issuer_url(),
        token: out.token,
    }))
}

pub(super) async fn issuer_metadata(State(app): State<AppState>) -> Json<serde_json::Value> {
    Json(app.exchange.issuer_metadata())
}

pub(super) async fn status_list(State(app): State<AppState>) -> ApiResult<Json<StatusListView>> {
    // Reads the store: on the blocking pool like a commit.
    let token = committing(&app.exchange, |ex| ex.status_list_token()).await?;
    Ok(Json(StatusListView { uri: app.exchange.status_list_uri(), token }))
}
