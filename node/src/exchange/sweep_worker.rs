//! The expiry sweep worker: every `period`, erases the received passports
//! whose consent window has ended or that were kept as long as this node
//! keeps any ([`Exchange::sweep_expired`]), and forgets old receipts of
//! handled messages ([`Exchange::prune_inbox`]), on the blocking pool.

use std::time::Duration;

use tokio::sync::watch;
use tracing::warn;

use super::Exchange;
use crate::task::{blocking, every};

/// Sweeps every `period` (the first at once) until `stop`.
pub async fn run(ex: Exchange, period: Duration, stop: watch::Receiver<bool>) {
    every(period, stop, || async {
        match blocking(&ex, |ex| ex.sweep_expired().and_then(|_| ex.prune_inbox())).await {
            Ok(Ok(_)) => {}
            Ok(Err(e)) => warn!(error = %e, "expiry sweep failed"),
            Err(e) => warn!(error = %e, "expiry sweep failed"),
        }
        true
    })
    .await
}
