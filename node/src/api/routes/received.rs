//! Passports received at this (host) trust.

use axum::extract::State;
use staffpass_api::credentials::{ExportFormat, ExportView, ReceivedExportFormat, ReceivedExportRequest};
use staffpass_api::received::ReceivedView;
use staffpass_protocol::ConsentId;

use super::AppState;
use super::{ApiResult, Id, actor, committing};
use crate::api::auth::Caller;
use crate::api::error::Json;

/// A received passport in a standard form: a FHIR Bundle of what was
/// consented, or the home's SD-JWT VC presentation of it; audited.
pub(super) async fn export(
    State(app): State<AppState>,
    caller: Caller,
    Id(id): Id<ConsentId>,
    Json(b): Json<ReceivedExportRequest>,
) -> ApiResult<Json<ExportView>> {
    let actor = actor(&caller);
    let (format, out) = match b.format {
        ReceivedExportFormat::Fhir => {
            (ExportFormat::Fhir, committing(&app.exchange, move |ex| ex.export_received_fhir(&id, &actor)).await?)
        }
        ReceivedExportFormat::SdJwtVc => (
            ExportFormat::SdJwtVc,
            committing(&app.exchange, move |ex| ex.export_received_sd_jwt_vc(&id, &actor)).await?,
        ),
    };
    Ok(Json(ExportView {
        format,
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
