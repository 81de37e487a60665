//! Prometheus metrics (prometheus-client), served as text at `/metrics`.
//! Labels carry agreement ids, protocol names and outcome codes only —
//! never personal data.

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

/// Label: an agreement.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct AgreementLabel {
    /// Agreement id.
    pub agreement: String,
}

/// Label: an outcome.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct OutcomeLabel {
    /// Outcome code.
    pub outcome: String,
}

/// Label: why a peer's message was refused as misbehaviour.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ReasonLabel {
    /// A stable reason code.
    pub reason: String,
}

/// Labels: a protocol and an outcome.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RequestLabels {
    /// Protocol name.
    pub protocol: String,
    /// `ok` or an error code.
    pub outcome: String,
}

/// Labels of exchange messages.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ExchangeLabels {
    /// `in` or `out`.
    pub direction: String,
    /// `offer`, `withdraw`, `revoke`.
    pub kind: String,
    /// `received`, `rejected:<reason>`, `erased`, ...
    pub outcome: String,
}

fn latency_histogram() -> Histogram {
    Histogram::new(exponential_buckets(0.0005, 2.0, 16))
}

/// The node's metrics.
pub struct Metrics {
    registry: Registry,
    /// Peers with at least one connection.
    pub connected_peers: Gauge,
    /// Member peers this node dials and keeps connected: its standing
    /// peers in each agreement (`network.standing_peers`) and the nodes it
    /// owes an erasure or revocation.
    pub standing_peers: Gauge,
    /// Member peers allowed to connect (the gate's allow-list).
    pub allowed_peers: Gauge,
    /// Peer-to-peer connections refused, for any reason (not a
    /// signatory, or over a connection limit).
    pub denied_connections: Counter,
    /// The same, by reason: `not-signatory`, `pending-incoming`,
    /// `pending-per-ip`, `per-peer`, `total`, `memory`.
    pub connections_denied: Family<ReasonLabel, Counter>,
    /// Local API connections refused or closed early, by reason:
    /// `per-ip`, `evicted`, `handshake-timeout`, `idle`.
    pub api_connections_refused: Family<ReasonLabel, Counter>,
    /// Head seq of each roster chain.
    pub roster_seq: Family<AgreementLabel, Gauge>,
    /// 1 while a chain is halted by an equivocation.
    pub roster_equivocation: Family<AgreementLabel, Gauge>,
    /// 1 while a roster is past its valid_until.
    pub roster_stale: Family<AgreementLabel, Gauge>,
    /// Roster entries by outcome (applied, duplicate, refused, equivocation).
    pub roster_entries: Family<OutcomeLabel, Counter>,
    /// Gossip messages by validation result.
    pub gossip_messages: Family<OutcomeLabel, Counter>,
    /// Outbound request latency by protocol and outcome.
    pub request_seconds: Family<RequestLabels, Histogram, fn() -> Histogram>,
    /// Exchange messages by direction, kind and outcome.
    pub exchange_messages: Family<ExchangeLabels, Counter>,
    /// Messages waiting in the outbox.
    pub outbox_pending: Gauge,
    /// API requests by status class (`2xx`, `4xx`, `5xx`, ...).
    pub api_requests: Family<OutcomeLabel, Counter>,
    /// API request latency (from routing to the response's head), by status class.
    pub api_request_seconds: Family<OutcomeLabel, Histogram, fn() -> Histogram>,
    /// Messages from member peers refused as hostile, by reason.
    pub peer_misbehaviour: Family<ReasonLabel, Counter>,
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    /// Registers every metric.
    pub fn new() -> Self {
        let mut registry = Registry::with_prefix("staffpass");
        let m = Metrics {
            registry: Registry::default(),
            connected_peers: Gauge::default(),
            standing_peers: Gauge::default(),
            allowed_peers: Gauge::default(),
            denied_connections: Counter::default(),
            connections_denied: Family::default(),
            api_connections_refused: Family::default(),
            roster_seq: Family::default(),
            roster_equivocation: Family::default(),
            roster_stale: Family::default(),
            roster_entries: Family::default(),
            gossip_messages: Family::default(),
            request_seconds: Family::new_with_constructor(latency_histogram),
            exchange_messages: Family::default(),
            outbox_pending: Gauge::default(),
            api_requests: Family::default(),
            api_request_seconds: Family::new_with_constructor(latency_histogram),
            peer_misbehaviour: Family::default(),
        };
        registry.register("connected_peers", "Peers with at least one open connection", m.connected_peers.clone());
        registry.register(
            "standing_peers",
            "Member peers dialled and kept connected (network.standing_peers per agreement, and nodes owed an erasure or revocation)",
            m.standing_peers.clone(),
        );
        registry.register(
            "allowed_peers",
            "Member peers allowed to connect; those not standing are dialled only when there is a request for them",
            m.allowed_peers.clone(),
        );
        registry.register(
            "denied_connections",
            "Peer-to-peer connections refused: not an active signatory, or over a connection limit",
            m.denied_connections.clone(),
        );
        registry.register(
            "connections_denied",
            "Peer-to-peer connections refused, by reason (not-signatory, pending-incoming, pending-per-ip, per-peer, total, memory)",
            m.connections_denied.clone(),
        );
        registry.register(
            "api_connections_refused",
            "Local API connections refused or closed before serving, by reason (per-ip, evicted, handshake-timeout, idle)",
            m.api_connections_refused.clone(),
        );
        registry.register("roster_seq", "Head seq of each agreement's roster chain", m.roster_seq.clone());
        registry.register(
            "roster_equivocation",
            "1 while an agreement's roster is halted by an equivocation",
            m.roster_equivocation.clone(),
        );
        registry.register("roster_stale", "1 while an agreement's roster is past valid_until", m.roster_stale.clone());
        registry.register("roster_entries", "Roster entries seen, by outcome", m.roster_entries.clone());
        registry.register("gossip_messages", "Gossip messages, by validation result", m.gossip_messages.clone());
        registry.register("request_seconds", "Outbound peer request latency", m.request_seconds.clone());
        registry.register(
            "exchange_messages",
            "Exchange messages, by direction, kind and outcome",
            m.exchange_messages.clone(),
        );
        registry.register("outbox_pending", "Messages waiting in the outbox", m.outbox_pending.clone());
        registry.register("api_requests", "Local API requests, by status class", m.api_requests.clone());
        registry.register(
            "api_request_seconds",
            "Local API request latency, by status class",
            m.api_request_seconds.clone(),
        );
        registry.register(
            "peer_misbehaviour",
            "Messages from member peers refused as hostile (the peer is disconnected), by reason",
            m.peer_misbehaviour.clone(),
        );
        Metrics { registry, ..m }
    }

    /// The Prometheus text exposition.
    pub fn render(&self) -> String {
        let mut out = String::new();
        if prometheus_client::encoding::text::encode(&mut out, &self.registry).is_err() {
            out.clear();
        }
        out
    }

    /// Counts an outcome in a family.
    pub fn count(family: &Family<OutcomeLabel, Counter>, outcome: &str) {
        family.get_or_create(&OutcomeLabel { outcome: outcome.to_string() }).inc();
    }

    /// Counts one API request answered with `status` after `elapsed`.
    pub fn api_request(&self, status: u16, elapsed: std::time::Duration) {
        let class = match status {
            100..=199 => "1xx",
            200..=299 => "2xx",
            300..=399 => "3xx",
            400..=499 => "4xx",
            _ => "5xx",
        };
        let label = OutcomeLabel { outcome: class.to_string() };
        self.api_requests.get_or_create(&label).inc();
        self.api_request_seconds.get_or_create(&label).observe(elapsed.as_secs_f64());
    }

    /// Counts a reason in a family.
    pub fn count_reason(family: &Family<ReasonLabel, Counter>, reason: &str) {
        family.get_or_create(&ReasonLabel { reason: reason.to_string() }).inc();
    }

    /// Sets a gauge of an agreement.
    pub fn set_agreement(family: &Family<AgreementLabel, Gauge>, agreement: &str, v: i64) {
        family.get_or_create(&AgreementLabel { agreement: agreement.to_string() }).set(v);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_registered_metrics() {
        let m = Metrics::new();
        m.denied_connections.inc();
        Metrics::set_agreement(&m.roster_seq, "london-mou", 7);
        let text = m.render();
        assert!(text.contains("staffpass_denied_connections_total 1"), "{text}");
        assert!(text.contains("staffpass_roster_seq{agreement=\"london-mou\"} 7"), "{text}");
    }
}
