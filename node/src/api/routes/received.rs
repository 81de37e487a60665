//! Passports received at this (host) trust.

use axum::extract::State;
use axum::http::StatusCode;
use staffpass_api::credentials::{ExportFormat, ExportRequest, ExportView};
use staffpass_api::received::ReceivedView;
use staffpass_protocol::ConsentId;

use super::AppState;
use super::{ApiResult, Id, actor, committing};
use crate::api::ApiError;
use crate::api::auth::Caller;
use crate::api::error::Json;

/// A received passport in a standard form: a FHIR Bundle of what was
/// consented (no claim subset), audited.
pub(super) async fn export(
    State(app): State<AppState>,
    caller: Caller,
    Id(id): Id<ConsentId>,
    Json(b): Json<ExportRequest>,
) -> ApiResult<Json<ExportView>> {
    let invalid = |m: &str| ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, "invalid", m);
    if b.format != ExportFormat::Fhir {
        return Err(invalid(
            "a received passport is exported as fhir: its SD-JWT VC presentation is not carried in bundles yet",
        ));
    }
    if b.claims.is_some() {
        return Err(invalid("a received passport is exported with the claims it was shared with: leave out claims"));
    }
    let actor = actor(&caller);
    let out = committing(&app.exchange, move |ex| ex.export_received_fhir(&id, &actor)).await?;
    Ok(Json(ExportView {
        format: b.format,
        credential: out.credential,
        claims: out.claims.iter().map(ToString::to_string).collect(),
        issuer: String::new(),
        token: out.token,
    }))
}

pub(super) async fn list(State(app): State<AppState>) -> ApiResult<Json<Vec<ReceivedView>>> {
    Ok(Json(app.exchange.received()?))
}

pub(super) async fn one(State(app): State<AppState>, Id(id): Id<ConsentId>) -> ApiResult<Json<ReceivedView>> {
    Ok(Json(app.exchange.received_one(&id)?))
}
