//! The outbox: messages that must arrive, waiting for their receipt.

use axum::extract::State;
use staffpass_api::outbox::OutboxItemView;

use super::{ApiResult, AppState};
use crate::api::error::Json;

pub(super) async fn list(State(app): State<AppState>) -> ApiResult<Json<Vec<OutboxItemView>>> {
    let items = app
        .exchange
        .outbox()?
        .into_iter()
        .map(|i| OutboxItemView {
            id: i.id,
            kind: i.kind,
            consent: i.consent,
            to: i.to,
            agreement: i.agreement,
            attempts: i.attempts,
            last_error: i.last_error,
        })
        .collect();
    Ok(Json(items))
}
