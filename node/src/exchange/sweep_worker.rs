//! The expiry sweep worker: every `period`, erases the received passports
//! whose consent window has ended ([`Exchange::sweep_expired`], on the
//! blocking pool).

use std::time::Duration;

use tokio::sync::watch;
use tracing::warn;

use super::Exchange;
use crate::task::blocking;

/// Sweeps every `period` (the first at once) until `stop`.
pub async fn run(ex: Exchange, period: Duration, mut stop: watch::Receiver<bool>) {
    let mut tick = tokio::time::interval(period);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            _ = stop.wait_for(|s| *s) => return,
        }
        match blocking(&ex, |ex| ex.sweep_expired()).await {
            Ok(Ok(_)) => {}
            Ok(Err(e)) => warn!(error = %e, "expiry sweep failed"),
            Err(e) => warn!(error = %e, "expiry sweep failed"),
        }
    }
}
