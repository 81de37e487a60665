//! `GET /v1/backup`: a data backup of the running node ([`crate::backup`]).
//!
//! The snapshot is written to an unnamed spool file in the data directory
//! while commits wait (a local copy, fast), then streamed from it, so a
//! slow client never holds up the node's commits.

use std::io::{Read, Seek};

use axum::body::{Body, Bytes};
use axum::extract::State;
use axum::http::header;
use axum::response::{IntoResponse, Response};

use super::{ApiResult, AppState, actor};
use crate::api::auth::Caller;
use crate::api::error::ApiError;
use crate::audit::{Action, Event};

/// Size of the chunks streamed.
const CHUNK: usize = 64 << 10;
/// Chunks read ahead of the client.
const READ_AHEAD: usize = 4;

pub(super) async fn backup(State(app): State<AppState>, caller: Caller) -> ApiResult<Response> {
    let Some(source) = app.backup.clone() else {
        return Err(ApiError::conflict("this node runs on an injected store: there is nothing on disk to back up"));
    };
    let audit = app.audit.clone();
    let now = app.exchange.now();
    let who = actor(&caller);
    let spooled = crate::task::run(move || -> Result<(std::fs::File, u64, u64), String> {
        // Recorded first, so the backup holds the record of its own taking.
        audit.record(vec![Event::new(who, Action::Admin).reason("backup")], now).map_err(|e| e.to_string())?;
        let mut spool =
            tempfile::tempfile_in(&source.data_dir).map_err(|e| format!("cannot make a spool file: {e}"))?;
        let summary = source.write(&mut spool, now).map_err(|e| e.to_string())?;
        let len = spool.stream_position().map_err(|e| e.to_string())?;
        spool.rewind().map_err(|e| e.to_string())?;
        Ok((spool, len, summary.entries))
    })
    .await
    .map_err(|e| ApiError::internal(e.to_string()))?;
    let (spool, len, entries) = spooled.map_err(ApiError::internal)?;
    tracing::info!(entries, bytes = len, "data backup taken");

    let (tx, rx) = tokio::sync::mpsc::channel::<std::io::Result<Bytes>>(READ_AHEAD);
    tokio::task::spawn_blocking(move || {
        let mut spool = spool;
        loop {
            let mut buf = vec![0u8; CHUNK];
            let chunk = match spool.read(&mut buf) {
                Ok(0) => return,
                Ok(n) => {
                    buf.truncate(n);
                    Ok(Bytes::from(buf))
                }
                Err(e) => Err(e),
            };
            let failed = chunk.is_err();
            // The client went away: stop reading.
            if tx.blocking_send(chunk).is_err() || failed {
                return;
            }
        }
    });
    let stream = futures::stream::unfold(rx, |mut rx| async move { rx.recv().await.map(|c| (c, rx)) });
    let name = format!("attachment; filename=\"staffpass-{}-{}.backup\"", source_org(&app), now.unix());
    Ok((
        [
            (header::CONTENT_TYPE, "application/octet-stream".to_owned()),
            (header::CONTENT_LENGTH, len.to_string()),
            (header::CONTENT_DISPOSITION, name),
        ],
        Body::from_stream(stream),
    )
        .into_response())
}

fn source_org(app: &AppState) -> String {
    app.exchange.org().to_string()
}
