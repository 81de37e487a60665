//! Agreements and their roster chains.

use axum::extract::{Query, State};
use axum::http::StatusCode;
use staffpass_api::agreements::{AgreementView, EntriesQuery, OverrideRequest, Submission, Submitted};
use staffpass_api::error::code;
use staffpass_api::status::AgreementSummary;
use staffpass_protocol::AgreementId;
use staffpass_protocol::roster::{Appended, Entry};

use super::AppState;
use super::{ApiResult, Id, actor, status::summaries};
use crate::api::auth::Caller;
use crate::api::error::{ApiError, Json};

pub(super) async fn list(State(app): State<AppState>) -> Json<Vec<AgreementSummary>> {
    Json(summaries(&app))
}

fn no_roster(id: &AgreementId) -> ApiError {
    ApiError::not_found(format!("this node holds no roster for {id}"))
}

pub(super) async fn one(State(app): State<AppState>, Id(id): Id<AgreementId>) -> ApiResult<Json<AgreementView>> {
    view(&app, id)
}

fn view(app: &AppState, id: AgreementId) -> ApiResult<Json<AgreementView>> {
    let chains = app.rosters.read();
    let chain = chains.get(&id).ok_or_else(|| no_roster(&id))?;
    Ok(Json(AgreementView {
        seq: chain.seq(),
        head: chain.head().to_string(),
        fresh: chain.state().is_fresh(app.exchange.now()),
        halted: chain.halted().cloned(),
        state: chain.state().clone(),
        id,
    }))
}

pub(super) async fn entries(
    State(app): State<AppState>,
    Id(id): Id<AgreementId>,
    Query(q): Query<EntriesQuery>,
) -> ApiResult<Json<Vec<Entry>>> {
    let chains = app.rosters.read();
    let chain = chains.get(&id).ok_or_else(|| no_roster(&id))?;
    Ok(Json(chain.entries_from(q.from).to_vec()))
}

/// Applies `list`, all for one agreement, in order.
async fn submit(app: &AppState, caller: &Caller, list: Vec<Entry>) -> ApiResult<(StatusCode, Json<Submitted>)> {
    let Some(first) = list.first() else { return Err(ApiError::bad_request("no roster entries in the body")) };
    let agreement = first.body.agreement.clone();
    // Checked before any is applied: a refused submission applies nothing.
    if list.iter().any(|e| e.body.agreement != agreement) {
        return Err(ApiError::bad_request("all entries must be for one agreement"));
    }
    let mut out = Submitted { agreement: agreement.clone(), applied: 0, already_held: 0, seq: 0 };
    // Who may connect is updated once, after the last entry.
    let (outcomes, result) = app.sync.submit_all(list, &actor(caller)).await;
    result?;
    for o in outcomes {
        match o {
            Appended::Applied => out.applied += 1,
            Appended::AlreadyHave => out.already_held += 1,
        }
    }
    out.seq = app.rosters.read().get(&agreement).map(|c| c.seq()).unwrap_or_default();
    Ok((if out.applied > 0 { StatusCode::CREATED } else { StatusCode::OK }, Json(out)))
}

pub(super) async fn submit_chain(
    State(app): State<AppState>,
    caller: Caller,
    Json(body): Json<Submission>,
) -> ApiResult<(StatusCode, Json<Submitted>)> {
    submit(&app, &caller, body.into_vec()).await
}

pub(super) async fn submit_entries(
    State(app): State<AppState>,
    caller: Caller,
    Id(id): Id<AgreementId>,
    Json(body): Json<Submission>,
) -> ApiResult<(StatusCode, Json<Submitted>)> {
    let list = body.into_vec();
    if list.iter().any(|e| e.body.agreement != id) {
        return Err(ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            code::WRONG_AGREEMENT,
            format!("the entry is not for agreement {id}"),
        ));
    }
    submit(&app, &caller, list).await
}

/// Ends an equivocation halt on this node (audited as `override`).
pub(super) async fn override_halt(
    State(app): State<AppState>,
    caller: Caller,
    Id(id): Id<AgreementId>,
    Json(body): Json<OverrideRequest>,
) -> ApiResult<Json<AgreementView>> {
    let who = actor(&caller);
    let agreement = id.clone();
    let now = app.exchange.now();
    crate::task::blocking(&app.rosters, move |r| r.override_halt(&agreement, &body.chosen, &who, now))
        .await
        .map_err(|e| ApiError::internal(e.to_string()))??;
    app.sync.refresh_members().await;
    view(&app, id)
}
