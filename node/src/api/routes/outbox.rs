//! The outbox: messages that must arrive, waiting for their receipt.

use axum::extract::State;
use staffpass_api::outbox::OutboxItemView;

use super::ApiResult;
use crate::api::error::{ApiError, Json};
use crate::flows::records::OutboxItem;
use crate::node::Node;
use crate::store::Tree;

pub(super) async fn list(State(node): State<Node>) -> ApiResult<Json<Vec<OutboxItemView>>> {
    let items = node
        .store
        .scan_prefix(Tree::Outbox, b"")
        .map_err(|e| ApiError::internal(e.to_string()))?
        .into_iter()
        .filter_map(|(_, v)| staffpass_protocol::encoding::from_bytes::<OutboxItem>(&v, usize::MAX, "outbox").ok())
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
