//! Member peers that misbehave on purpose: every refusal is counted in
//! `staffpass_peer_misbehaviour_total{reason}` and the peer is
//! disconnected; the log line is rate-limited per reason (a flood from one
//! member must not flood the log), saying how many were not logged.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use libp2p::PeerId;
use tracing::warn;

use crate::metrics::{Metrics, ReasonLabel};

/// At most one log line per reason in this period.
const LOG_EVERY: Duration = Duration::from_secs(60);

/// Counts misbehaviour and rate-limits its log lines.
#[derive(Default)]
pub struct Misbehaviour {
    last_logged: Mutex<HashMap<&'static str, (Instant, u64)>>,
}

impl Misbehaviour {
    /// Records that `peer` misbehaved for `reason` (a stable code): counts
    /// it, and logs it unless a line for this reason was logged within the
    /// last minute. `detail` holds no personal data (ids and seqs only).
    pub fn record(&self, metrics: &Metrics, peer: &PeerId, reason: &'static str, detail: &dyn std::fmt::Display) {
        metrics.peer_misbehaviour.get_or_create(&ReasonLabel { reason: reason.to_string() }).inc();
        let mut last = self.last_logged.lock().unwrap_or_else(|p| p.into_inner());
        let now = Instant::now();
        match last.get_mut(reason) {
            Some((at, suppressed)) if now.duration_since(*at) < LOG_EVERY => *suppressed += 1,
            slot => {
                let suppressed = slot.map(|(_, s)| *s).unwrap_or(0);
                warn!(%peer, reason, %detail, suppressed, "member peer misbehaved; disconnected");
                last.insert(reason, (now, 0));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_event_is_counted_and_the_log_is_limited() {
        let m = Metrics::new();
        let mb = Misbehaviour::default();
        let peer = PeerId::random();
        for _ in 0..5 {
            mb.record(&m, &peer, "unasked-roster-entries", &"seq 9");
        }
        mb.record(&m, &peer, "foreign-genesis", &"seq 0");
        let text = m.render();
        assert!(text.contains("staffpass_peer_misbehaviour_total{reason=\"unasked-roster-entries\"} 5"), "{text}");
        assert!(text.contains("staffpass_peer_misbehaviour_total{reason=\"foreign-genesis\"} 1"), "{text}");
        let last = mb.last_logged.lock().unwrap_or_else(|p| p.into_inner());
        assert_eq!(last.get("unasked-roster-entries").map(|(_, s)| *s), Some(4), "four lines suppressed");
        assert_eq!(last.get("foreign-genesis").map(|(_, s)| *s), Some(0));
    }
}
