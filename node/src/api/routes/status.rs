//! Probes, metrics, the OpenAPI document, the node's status and its peers.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::Ordering;

use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use staffpass_api::status::{AgreementSummary, Peer, Status};
use staffpass_protocol::roster::MemberStatus;

use super::ApiResult;
use super::AppState;
use crate::api::error::{ApiError, Json};

pub(super) async fn healthz() -> &'static str {
    "ok"
}

pub(super) async fn readyz(State(app): State<AppState>) -> Response {
    if app.ready.load(Ordering::SeqCst) {
        (StatusCode::OK, "ready").into_response()
    } else {
        ApiError::unavailable("starting").into_response()
    }
}

pub(super) async fn metrics(State(app): State<AppState>) -> Response {
    ([(header::CONTENT_TYPE, "application/openmetrics-text; version=1.0.0; charset=utf-8")], app.metrics.render())
        .into_response()
}

pub(super) async fn openapi() -> Response {
    ([(header::CONTENT_TYPE, "application/json")], staffpass_api::openapi::json()).into_response()
}

/// The agreements this node holds, as `/v1/status` and `/v1/agreements` show them.
pub(super) fn summaries(app: &AppState) -> Vec<AgreementSummary> {
    let t = app.exchange.now();
    app.rosters
        .read()
        .values()
        .map(|c| {
            let st = c.state();
            AgreementSummary {
                id: c.agreement().clone(),
                title: st.title.clone(),
                seq: c.seq(),
                head: c.head().to_string(),
                valid_until: st.valid_until,
                fresh: st.is_fresh(t),
                halted: c.halted().is_some(),
                member_status: st.status(app.exchange.org()),
                active_members: st.members.values().filter(|m| m.status == MemberStatus::Active).count(),
            }
        })
        .collect()
}

pub(super) async fn status(State(app): State<AppState>) -> ApiResult<Json<Status>> {
    let info = app.network.info().await.map_err(|e| ApiError::unavailable(e.to_string()))?;
    Ok(Json(Status {
        org: app.exchange.org().to_string(),
        peer_id: app.peer_id.to_string(),
        issuer_key: app.exchange.issuer_key().to_string(),
        listen_addrs: info.listen_addrs.iter().map(ToString::to_string).collect(),
        connected_peers: info.connected.len(),
        agreements: summaries(&app),
        alarms: app.rosters.alarms(),
        outbox_pending: app.metrics.outbox_pending.get(),
        version: env!("CARGO_PKG_VERSION").into(),
    }))
}

pub(super) async fn peers(State(app): State<AppState>) -> ApiResult<Json<Vec<Peer>>> {
    let info = app.network.info().await.map_err(|e| ApiError::unavailable(e.to_string()))?;
    let connected: BTreeSet<String> = info.connected.iter().map(|(p, _)| p.to_string()).collect();
    let standing: BTreeSet<String> = info.standing.iter().map(ToString::to_string).collect();
    let peer = |id: String| Peer {
        connected: connected.contains(&id),
        standing: standing.contains(&id),
        org: None,
        peer_id: id,
    };
    let mut out: BTreeMap<String, Peer> = BTreeMap::new();
    // The rosters list this node too; it is not its own peer.
    for m in app.sync.members().into_iter().filter(|m| m.peer != app.peer_id) {
        let id = m.peer.to_string();
        out.insert(id.clone(), peer(id));
    }
    for id in connected.iter().chain(&standing) {
        out.entry(id.clone()).or_insert_with(|| peer(id.clone()));
    }
    let chains = app.rosters.read();
    for p in out.values_mut() {
        if let Ok(n) = p.peer_id.parse::<staffpass_protocol::NodeId>() {
            p.org = chains.values().find_map(|c| c.state().org_of_node(&n).map(|m| m.org.to_string()));
        }
    }
    Ok(Json(out.into_values().collect()))
}
