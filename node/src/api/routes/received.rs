//! Passports received at this (host) trust.

use axum::extract::State;
use staffpass_api::received::ReceivedView;
use staffpass_protocol::ConsentId;

use super::{ApiResult, Id};
use crate::api::error::Json;
use crate::node::Node;

pub(super) async fn list(State(node): State<Node>) -> ApiResult<Json<Vec<ReceivedView>>> {
    Ok(Json(node.received()?))
}

pub(super) async fn one(State(node): State<Node>, Id(id): Id<ConsentId>) -> ApiResult<Json<ReceivedView>> {
    Ok(Json(node.received_one(&id)?))
}
