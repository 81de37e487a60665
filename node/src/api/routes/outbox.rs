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
            kind: out_kind(i.kind),
            consent: i.consent,
            to: i.to,
            agreement: i.agreement,
            attempts: i.attempts,
            last_error: i.last_error,
        })
        .collect();
    Ok(Json(items))
}

/// The API's name for an outbox message's kind.
fn out_kind(k: staffpass_protocol::wire::exchange::Kind) -> staffpass_api::outbox::Kind {
    use staffpass_api::outbox::Kind as Api;
    use staffpass_protocol::wire::exchange::Kind;
    match k {
        Kind::Offer => Api::Offer,
        Kind::Withdraw => Api::Withdraw,
        Kind::Revoke => Api::Revoke,
    }
}
