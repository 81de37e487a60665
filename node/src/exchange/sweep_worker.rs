//! The expiry sweep worker: every `period`, erases the received passports
//! whose consent window has ended or that were kept as long as this node
//! keeps any ([`Exchange::sweep_expired`]), and forgets old receipts of
//! handled messages ([`Exchange::prune_inbox`]), on the blocking pool.

use std::time::Duration;

use tokio::sync::watch;
use tracing::{info, warn};

use super::Exchange;
use crate::task::{blocking, every};

/// How often the home's retention pass runs ([`Exchange::apply_retention`]).
const RETENTION_EVERY: Duration = Duration::from_secs(3600);

/// Sweeps every `period` (the first at once) until `stop`; applies the
/// home's retention at the first sweep and then about hourly.
pub async fn run(ex: Exchange, period: Duration, stop: watch::Receiver<bool>) {
    let mut last_retention: Option<std::time::Instant> = None;
    every(period, stop, || {
        let retention_due = last_retention.is_none_or(|t| t.elapsed() >= RETENTION_EVERY);
        if retention_due {
            last_retention = Some(std::time::Instant::now());
        }
        let ex = ex.clone();
        async move {
            match blocking(&ex, |ex| ex.sweep_expired().and_then(|_| ex.prune_inbox())).await {
                Ok(Ok(_)) => {}
                Ok(Err(e)) => warn!(error = %e, "expiry sweep failed"),
                Err(e) => warn!(error = %e, "expiry sweep failed"),
            }
            if retention_due {
                match blocking(&ex, |ex| ex.apply_retention()).await {
                    Ok(Ok(n)) if n.credentials + n.consents > 0 => {
                        info!(credentials = n.credentials, consents = n.consents, "retention: ended records deleted");
                    }
                    Ok(Ok(_)) => {}
                    Ok(Err(e)) => warn!(error = %e, "retention pass failed"),
                    Err(e) => warn!(error = %e, "retention pass failed"),
                }
            }
            true
        }
    })
    .await
}
