//! Sharing consents: grant, read, withdraw, the staff member's signature.

use axum::extract::State;
use axum::http::StatusCode;
use staffpass_api::consents::{ConsentRequest, ConsentView, StaffSignature};
use staffpass_protocol::{ConsentId, Signable};

use super::AppState;
use super::{ApiResult, Id, actor, committing};
use crate::api::auth::Caller;
use crate::api::error::Json;
use crate::exchange::records::{ConsentRecord, ConsentState};

/// A consent as the API shows it.
fn view(r: &ConsentRecord) -> ConsentView {
    let awaiting = matches!(r.state, ConsentState::AwaitingStaffSignature);
    ConsentView {
        consent: r.signed.consent().clone(),
        state: (&r.state).into(),
        credential: r.credential,
        receipts: r.receipts.clone(),
        staff_signing_bytes: awaiting.then(|| hex::encode(r.signed.consent().signing_bytes())),
    }
}

pub(super) async fn grant(
    State(app): State<AppState>,
    caller: Caller,
    Json(req): Json<ConsentRequest>,
) -> ApiResult<(StatusCode, Json<ConsentView>)> {
    let actor = actor(&caller);
    let rec = committing(&app.exchange, move |ex| ex.grant_consent(req, &actor)).await?;
    Ok((StatusCode::CREATED, Json(view(&rec))))
}

pub(super) async fn list(State(app): State<AppState>) -> ApiResult<Json<Vec<ConsentView>>> {
    Ok(Json(app.exchange.consents()?.iter().map(view).collect()))
}

pub(super) async fn one(State(app): State<AppState>, Id(id): Id<ConsentId>) -> ApiResult<Json<ConsentView>> {
    Ok(Json(view(&app.exchange.consent(&id)?)))
}

pub(super) async fn withdraw(
    State(app): State<AppState>,
    caller: Caller,
    Id(id): Id<ConsentId>,
) -> ApiResult<Json<ConsentView>> {
    let actor = actor(&caller);
    Ok(Json(view(&committing(&app.exchange, move |ex| ex.withdraw_consent(&id, &actor)).await?)))
}

pub(super) async fn sign(
    State(app): State<AppState>,
    caller: Caller,
    Id(id): Id<ConsentId>,
    Json(b): Json<StaffSignature>,
) -> ApiResult<Json<ConsentView>> {
    let actor = actor(&caller);
    Ok(Json(view(&committing(&app.exchange, move |ex| ex.sign_consent(&id, b.signature, &actor)).await?)))
}
