//! Passports received at this (host) trust.

use axum::extract::State;
use staffpass_api::received::ReceivedView;
use staffpass_protocol::ConsentId;

use super::AppState;
use super::{ApiResult, Id};
use crate::api::error::Json;

pub(super) async fn list(State(app): State<AppState>) -> ApiResult<Json<Vec<ReceivedView>>> {
    Ok(Json(app.exchange.received()?))
}

pub(super) async fn one(State(app): State<AppState>, Id(id): Id<ConsentId>) -> ApiResult<Json<ReceivedView>> {
    Ok(Json(app.exchange.received_one(&id)?))
}
