//! The audit log: pages of it, its verification, a staff member's activity.

use axum::extract::{Query, State};
use axum::http::StatusCode;
use staffpass_api::audit::{AuditQuery, Entry, Verification};
use staffpass_protocol::StaffRef;

use super::AppState;
use super::{ApiResult, Id};
use crate::api::error::Json;

/// Most entries of a staff member's activity shown.
const MAX_ACTIVITY: usize = 1000;

fn views(entries: &[crate::audit::Entry]) -> Vec<Entry> {
    entries.iter().map(Entry::from).collect()
}

pub(super) async fn log(State(app): State<AppState>, Query(q): Query<AuditQuery>) -> ApiResult<Json<Vec<Entry>>> {
    Ok(Json(views(&app.audit.since(q.since, q.limit.clamp(1, crate::audit::MAX_PAGE))?)))
}

pub(super) async fn verify(State(app): State<AppState>) -> (StatusCode, Json<Verification>) {
    match app.audit.verify() {
        Ok(report) => (StatusCode::OK, Json(Verification::Intact { ok: true, report })),
        Err(broken) => (
            StatusCode::CONFLICT,
            Json(Verification::Broken {
                ok: false,
                broken_at: broken.seq,
                fault: broken.fault.code(),
                why: broken.fault.to_string(),
            }),
        ),
    }
}

pub(super) async fn activity(State(app): State<AppState>, Id(r): Id<StaffRef>) -> ApiResult<Json<Vec<Entry>>> {
    Ok(Json(views(&app.audit.for_staff(&r, MAX_ACTIVITY)?)))
}
