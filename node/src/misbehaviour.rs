//! Member peers that misbehave on purpose: every refusal is counted in
//! `staffpass_peer_misbehaviour_total{reason}`; a peer that lies is
//! disconnected, one over its request rate only refused. The log line is
//! rate-limited per reason (a flood from one member must not flood the
//! log), saying how many were not logged.

use std::time::Duration;

use libp2p::PeerId;
use tracing::warn;

use crate::limits::LogLimiter;
use crate::metrics::{Metrics, ReasonLabel};

/// At most one log line per reason in this period.
const LOG_EVERY: Duration = Duration::from_secs(60);

/// Counts misbehaviour and rate-limits its log lines.
pub struct Misbehaviour {
    log: LogLimiter,
}

impl Default for Misbehaviour {
    fn default() -> Self {
        Misbehaviour { log: LogLimiter::new(LOG_EVERY) }
    }
}

impl Misbehaviour {
    fn count(metrics: &Metrics, reason: &'static str) {
        metrics.peer_misbehaviour.get_or_create(&ReasonLabel { reason: reason.to_string() }).inc();
    }

    /// Records that `peer` misbehaved for `reason` (a stable code) and is
    /// disconnected: counts it, and logs it unless a line for this reason
    /// was logged within the last minute. `detail` holds no personal data
    /// (ids and seqs only).
    pub fn record(&self, metrics: &Metrics, peer: &PeerId, reason: &'static str, detail: &dyn std::fmt::Display) {
        Self::count(metrics, reason);
        if let Some(suppressed) = self.log.should_log(reason) {
            warn!(%peer, reason, %detail, suppressed, "member peer misbehaved; disconnected");
        }
    }

    /// Records that a message from `peer` was refused because the peer is
    /// over its rate for `reason` (e.g. `roster-rate-limit`): counted and
    /// logged (rate-limited) like [`Misbehaviour::record`], but the peer
    /// stays connected: an honest node that is briefly too eager is only
    /// slowed down.
    pub fn over_limit(&self, metrics: &Metrics, peer: &PeerId, reason: &'static str) {
        Self::count(metrics, reason);
        if let Some(suppressed) = self.log.should_log(reason) {
            warn!(%peer, reason, suppressed, "member peer over its request rate; refused");
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
        assert_eq!(mb.log.suppressed(&"unasked-roster-entries"), 4, "four lines suppressed");
        assert_eq!(mb.log.suppressed(&"foreign-genesis"), 0);
        for _ in 0..3 {
            mb.over_limit(&m, &peer, "roster-rate-limit");
        }
        assert!(m.render().contains("staffpass_peer_misbehaviour_total{reason=\"roster-rate-limit\"} 3"));
        assert_eq!(mb.log.suppressed(&"roster-rate-limit"), 2);
    }
}
