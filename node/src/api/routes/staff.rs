//! Staff records and their import.

use axum::body::Bytes;
use axum::extract::{Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use staffpass_api::error::code;
use staffpass_api::staff::{ImportQuery, ImportReport, PageQuery, StaffInput, StaffRecord, StaffSummary};
use staffpass_protocol::StaffRef;
use staffpass_protocol::claims::Claim;

use super::AppState;
use super::{ApiResult, Id, actor, committing};
use crate::api::auth::Caller;
use crate::api::error::{ApiError, Json};
use crate::exchange::staff;

/// Most records in one page of `GET /v1/staff`.
const MAX_PAGE: usize = 1000;

pub(super) async fn import(
    State(app): State<AppState>,
    caller: Caller,
    Query(q): Query<ImportQuery>,
    headers: HeaderMap,
    body: Bytes,
) -> ApiResult<Json<ImportReport>> {
    let ct = headers.get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok()).unwrap_or("text/csv");
    let today = app.exchange.now().date();
    let parsed = if ct.starts_with("application/json") {
        crate::task::run(move || staff::parse_json(&body, today)).await
    } else if ct.starts_with("text/csv") || ct.starts_with("application/csv") {
        crate::task::run(move || staff::parse_csv(&body, today)).await
    } else {
        return Err(ApiError::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            code::UNSUPPORTED_MEDIA_TYPE,
            "send text/csv (an ESR-style export) or application/json",
        ));
    };
    let (rows, errors) = parsed
        .map_err(|e| ApiError::internal(e.to_string()))?
        .map_err(|e| ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, code::BAD_FILE, e.to_string()))?;
    let (actor, partial) = (actor(&caller), q.partial);
    let report = committing(&app.exchange, move |ex| ex.import_staff(rows, errors, partial, &actor)).await?;
    if report.aborted {
        let details = serde_json::to_value(&report).unwrap_or_default();
        return Err(ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            code::ROWS_REJECTED,
            format!(
                "{} of {} rows were refused, so nothing was imported; fix them, or import the good rows with ?partial=true",
                report.rejected, report.rows
            ),
        )
        .with_details(details));
    }
    Ok(Json(report))
}

pub(super) async fn list(
    State(app): State<AppState>,
    Query(q): Query<PageQuery>,
) -> ApiResult<Json<Vec<StaffSummary>>> {
    let list = app.exchange.staff_list(q.after.as_ref(), q.limit.clamp(1, MAX_PAGE))?;
    Ok(Json(list.iter().map(StaffSummary::from).collect()))
}

pub(super) async fn one(State(app): State<AppState>, Id(r): Id<StaffRef>) -> ApiResult<Json<StaffRecord>> {
    Ok(Json(app.exchange.staff(&r)?))
}

pub(super) async fn put(
    State(app): State<AppState>,
    caller: Caller,
    Id(r): Id<StaffRef>,
    Json(input): Json<StaffInput>,
) -> ApiResult<Json<StaffRecord>> {
    let actor = actor(&caller);
    Ok(Json(committing(&app.exchange, move |ex| ex.put_staff(&r, input, &actor)).await?))
}

pub(super) async fn delete(State(app): State<AppState>, caller: Caller, Id(r): Id<StaffRef>) -> ApiResult<StatusCode> {
    let actor = actor(&caller);
    committing(&app.exchange, move |ex| ex.erase_staff(&r, &actor)).await?;
    Ok(StatusCode::NO_CONTENT)
}

pub(super) async fn set_key(
    State(app): State<AppState>,
    caller: Caller,
    Id(r): Id<StaffRef>,
    Json(b): Json<staffpass_api::staff::StaffKeyRequest>,
) -> ApiResult<Json<StaffRecord>> {
    let actor = actor(&caller);
    Ok(Json(committing(&app.exchange, move |ex| ex.replace_staff_key(&r, b.staff_key, &actor)).await?))
}

pub(super) async fn change_key(
    State(app): State<AppState>,
    caller: Caller,
    Id(r): Id<StaffRef>,
    Json(b): Json<staffpass_api::staff::StaffKeyChangeRequest>,
) -> ApiResult<Json<StaffRecord>> {
    let actor = actor(&caller);
    Ok(Json(
        committing(&app.exchange, move |ex| ex.change_staff_key(&r, b.new_key, b.signed_at, &b.signature, &actor))
            .await?,
    ))
}

pub(super) async fn record_claim(
    State(app): State<AppState>,
    caller: Caller,
    Id(r): Id<StaffRef>,
    Json(claim): Json<Claim>,
) -> ApiResult<Json<StaffRecord>> {
    let actor = actor(&caller);
    Ok(Json(committing(&app.exchange, move |ex| ex.record_claim(&r, claim, &actor)).await?))
}
