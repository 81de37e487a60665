//! Roster sync: roster entries to and from peers, over the network (the
//! chains themselves are [`crate::rosters`]). Gossip in
//! ([`RosterSync::on_gossip`]), anti-entropy on every connection and on a timer
//! ([`RosterSync::sync_with`], [`RosterSync::fetch`], [`run`]), answers to peers'
//! roster requests ([`RosterSync::answer`]), and entries submitted by the local
//! admin ([`RosterSync::submit`]), spread by gossip. Every apply is durable before
//! it is acted on and runs through [`crate::task::blocking`].
//!
//! Hostile members are expected: an answer counts only for the agreement
//! and range asked (`wire::roster::check_fetched`), a peer can extend but
//! never create a chain ([`Origin`]), a peer learns heads only of the
//! agreements it is a member of, and a peer caught sending what no honest
//! node sends is counted and disconnected ([`RosterSync::misbehaved`]).

use std::collections::{BTreeMap, HashSet};
use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use libp2p::{Multiaddr, PeerId};
use staffpass_protocol::roster::{self as proto, Appended};
use staffpass_protocol::wire::roster::{self as wire_roster, Head, MAX_ENTRIES};
use staffpass_protocol::{AgreementId, NodeId};
use tokio::sync::watch;
use tracing::{debug, warn};

use crate::clock::Clock;
use crate::metrics::Metrics;
use crate::misbehaviour::Misbehaviour;
use crate::network::{self, Network, Verdict};
use crate::rosters::{Error, Origin, Rosters};
use crate::task::{blocking, every};

/// Roster sync: a cheap, cloneable handle.
#[derive(Clone)]
pub struct RosterSync(Arc<Inner>);

struct Inner {
    rosters: Arc<Rosters>,
    network: Network,
    metrics: Arc<Metrics>,
    clock: Arc<dyn Clock>,
    /// Member peers caught misbehaving.
    misbehaviour: Arc<Misbehaviour>,
}

impl RosterSync {
    /// Roster sync for `rosters` over `network`.
    /// `misbehaviour` is shared with the network task, which counts the
    /// requests it refuses over the per-peer rate limits.
    pub fn new(
        rosters: Arc<Rosters>,
        network: Network,
        metrics: Arc<Metrics>,
        clock: Arc<dyn Clock>,
        misbehaviour: Arc<Misbehaviour>,
    ) -> Self {
        RosterSync(Arc::new(Inner { rosters, network, metrics, clock, misbehaviour }))
    }

    /// The chains it keeps in sync.
    pub fn rosters(&self) -> &Arc<Rosters> {
        &self.0.rosters
    }

    /// The member nodes that may connect: every node of every active member
    /// of each agreement in which this node's organisation is active, with
    /// the address hints that parse, of which the standing peers of each
    /// agreement (at most `network.standing_peers`, chosen by
    /// [`network::standing::choose`]) are dialled and the others dialled
    /// only for a request; and, where this node's organisation is
    /// suspended or removed, the active members' nodes, admitted but not
    /// dialled, so that a home can still tell it to erase or mark a
    /// revocation (nothing else it sends is accepted: an offer to a member
    /// not active is refused). Never this node itself.
    pub fn members(&self) -> Vec<network::Member> {
        let me = self.0.network.peer_id();
        let k = self.0.network.standing_peers();
        let mut out: BTreeMap<PeerId, network::Member> = BTreeMap::new();
        for nodes in self.0.rosters.member_nodes_by_agreement().into_values() {
            let peers: Vec<(PeerId, Vec<String>)> = nodes
                .into_iter()
                .filter_map(|(n, hints)| network::peer_of(&n).map(|p| (p, hints)))
                .filter(|(p, _)| *p != me)
                .collect();
            let standing: HashSet<PeerId> =
                network::standing::choose(&me, peers.iter().map(|(p, _)| *p), k).into_iter().collect();
            for (peer, hints) in peers {
                let m = out.entry(peer).or_insert_with(|| network::Member { peer, addresses: Vec::new(), dial: false });
                m.dial |= standing.contains(&peer);
                for a in hints.iter().filter_map(|a| Multiaddr::from_str(a).ok()) {
                    if !m.addresses.contains(&a) {
                        m.addresses.push(a);
                    }
                }
            }
        }
        for n in self.0.rosters.answer_only_nodes() {
            if let Some(peer) = network::peer_of(&n).filter(|p| *p != me) {
                out.entry(peer).or_insert_with(|| network::Member { peer, addresses: Vec::new(), dial: false });
            }
        }
        out.into_values().collect()
    }

    /// The roster gossip topics, with the peers allowed on each.
    pub fn topics(&self) -> Vec<network::Topic> {
        let peers = |nodes: Vec<NodeId>| nodes.iter().filter_map(network::peer_of).collect();
        self.0
            .rosters
            .topics()
            .into_iter()
            .map(|t| network::Topic {
                name: t.topic,
                subscribe: t.subscribed,
                readers: peers(t.readers),
                former: peers(t.former),
            })
            .collect()
    }

    /// Tells the network who may connect and who may follow which roster
    /// topic, after a roster change.
    pub async fn refresh_members(&self) {
        if let Err(e) = self.0.network.set_members(self.members()).await {
            warn!(error = %e, "cannot update the member set");
        }
        if let Err(e) = self.0.network.set_topics(self.topics()).await {
            warn!(error = %e, "cannot update the roster topics");
        }
    }

    /// Gossips an entry on its agreement's topic.
    async fn publish(&self, agreement: &AgreementId, bytes: Vec<u8>) -> Result<(), network::Error> {
        let Some(topic) = self.0.rosters.topic_of(agreement) else { return Ok(()) };
        self.0.network.publish(topic, bytes).await
    }

    /// Submits a roster entry from the API: applies it durably, then
    /// spreads it by gossip and updates who may connect.
    pub async fn submit(&self, entry: proto::Entry, actor: &str) -> Result<Appended, Error> {
        let (r, changed) = self.submit_one(entry, actor, true).await;
        if changed {
            self.refresh_members().await;
        }
        r
    }

    /// Submits roster entries from the API in order, each as
    /// [`RosterSync::submit`] does, up to the first refused; who may
    /// connect is updated once, at the end (installing a chain that adds n
    /// members is one member-set update, not n, and no member is dialled
    /// for a roster state that the next entry already changes). Returns
    /// the outcome of each entry applied, and the error that stopped it.
    ///
    /// Only the last entry applied is gossiped: a peer that lacks earlier
    /// ones sees a gap and fetches them by anti-entropy. Gossiping every
    /// entry made each node whose admin installs the whole chain send the
    /// agreement's history to every member again, each of whom judged every
    /// entry (100 real nodes each given a 101-entry chain: about 10,000
    /// judgements per node, and the benchmark never got through it).
    pub async fn submit_all(&self, entries: Vec<proto::Entry>, actor: &str) -> (Vec<Appended>, Result<(), Error>) {
        let (mut outcomes, mut changed, mut result) = (Vec::with_capacity(entries.len()), false, Ok(()));
        let mut last = None;
        for entry in entries {
            let head = (entry.body.agreement.clone(), staffpass_protocol::encoding::to_bytes(&entry));
            let (r, c) = self.submit_one(entry, actor, false).await;
            changed |= c;
            match r {
                Ok(a) => {
                    if a == Appended::Applied {
                        last = Some(head);
                    }
                    outcomes.push(a);
                }
                Err(e) => {
                    result = Err(e);
                    break;
                }
            }
        }
        if let Some((agreement, bytes)) = last
            && let Err(e) = self.publish(&agreement, bytes).await
        {
            warn!(error = %e, "roster entries applied but not gossiped; anti-entropy will carry them");
        }
        if changed {
            self.refresh_members().await;
        }
        (outcomes, result)
    }

    /// Applies one entry from the API and gossips it (if `gossip`; an
    /// equivocation is always gossiped); true if the member set may have
    /// changed.
    async fn submit_one(&self, entry: proto::Entry, actor: &str, gossip: bool) -> (Result<Appended, Error>, bool) {
        let agreement = entry.body.agreement.clone();
        let bytes = staffpass_protocol::encoding::to_bytes(&entry);
        let r = self.apply(entry, Origin::Admin(actor.to_string())).await;
        let changed = match &r {
            Ok(Appended::Applied) => {
                if gossip && let Err(e) = self.publish(&agreement, bytes).await {
                    warn!(error = %e, "roster entry applied but not gossiped; anti-entropy will carry it");
                }
                true
            }
            Err(Error::Refused(proto::Error::Equivocation { .. })) => {
                // Spread the conflicting entry: every node holding the
                // other one then sees the equivocation too.
                if let Err(e) = self.publish(&agreement, bytes).await {
                    warn!(error = %e, "equivocation evidence not gossiped; anti-entropy will carry it");
                }
                true
            }
            _ => false,
        };
        (r, changed)
    }

    /// Applies one roster entry durably, on the blocking pool.
    async fn apply(&self, entry: proto::Entry, origin: Origin) -> Result<Appended, Error> {
        blocking(self, move |s| s.0.rosters.submit(entry, &origin, s.0.clock.now()))
            .await
            .unwrap_or_else(|e| Err(Error::Interrupted(e.to_string())))
    }

    /// Answers a peer's roster request: heads and entries only of the
    /// agreements the peer is a member of.
    ///
    /// Heads that show the peer ahead on a chain this node holds start
    /// anti-entropy with it from this side too: the timer runs only
    /// towards standing peers, so over a standing connection that only
    /// the peer dials, its heads requests are how this node learns it is
    /// behind. (Only "ahead" starts it, never "different": the peer's
    /// answer to this node's request, in turn, starts nothing, so two
    /// nodes cannot set each other off.)
    pub fn answer(&self, peer: &PeerId, request: wire_roster::Request) -> wire_roster::Response {
        let Some(node) = network::node_of(peer) else { return wire_roster::Response::Unknown };
        match request {
            wire_roster::Request::Heads(theirs) => {
                let held = self.0.rosters.heads();
                if theirs.iter().any(|t| held.iter().any(|h| h.agreement == t.agreement && t.seq > h.seq)) {
                    tokio::spawn(self.clone().sync_with(*peer));
                }
                let mine: Vec<Head> = self
                    .0
                    .rosters
                    .heads_for(&node)
                    .into_iter()
                    .filter(|h| theirs.iter().any(|t| t.agreement == h.agreement))
                    .collect();
                wire_roster::Response::Heads(mine)
            }
            wire_roster::Request::Fetch { agreement, from, limit } => {
                let limit = usize::from(limit.min(MAX_ENTRIES));
                // Room for the frame and the enum tag within the response bound.
                let budget = wire_roster::MAX_RESPONSE - 1024;
                match self.0.rosters.entries_for(&agreement, from, limit, budget, &node) {
                    Some(entries) => wire_roster::Response::Entries(entries),
                    None => wire_roster::Response::Unknown,
                }
            }
        }
    }

    /// Judges a gossiped roster entry, applying it if it is valid.
    pub async fn on_gossip(&self, source: PeerId, topic: &str, data: &[u8]) -> Verdict {
        // gossipsub delivers only topics this node subscribes to, all of
        // which it holds; a topic it no longer holds is nobody's fault.
        let Some(agreement) = self.0.rosters.agreement_of_topic(topic) else { return Verdict::Ignore };
        let entry = match wire_roster::decode_entry(data) {
            Ok(e) if e.body.agreement == agreement => e,
            _ => return Verdict::Reject,
        };
        match self.apply(entry, Origin::Peer(source)).await {
            Ok(Appended::Applied) => {
                self.refresh_members().await;
                Verdict::Accept
            }
            Ok(Appended::AlreadyHave) => Verdict::Ignore,
            Err(Error::Refused(proto::Error::Gap { .. })) => {
                tokio::spawn(self.clone().sync_with(source));
                Verdict::Ignore
            }
            Err(Error::Refused(proto::Error::Equivocation { .. })) => {
                // Validly signed evidence: forward it so every node sees
                // both entries; the relaying peer did nothing wrong.
                self.refresh_members().await;
                Verdict::Accept
            }
            Err(Error::Refused(e @ proto::Error::GenesisMismatch { .. })) => {
                self.misbehaved(source, "foreign-genesis", &e).await;
                Verdict::Reject
            }
            Err(Error::Refused(proto::Error::Halted { .. }))
            | Err(Error::UnknownAgreement { .. })
            | Err(Error::Store(_))
            | Err(Error::Audit(_))
            | Err(Error::Interrupted(_)) => Verdict::Ignore,
            Err(_) => Verdict::Reject,
        }
    }

    /// Anti-entropy with one peer: compare heads, fetch what is missing,
    /// and fetch any entry whose hash differs (so equivocation is seen).
    pub async fn sync_with(self, peer: PeerId) {
        // Only the heads of chains the peer belongs to: it learns nothing
        // of this node's other agreements.
        let Some(node) = network::node_of(&peer) else { return };
        let request = wire_roster::Request::Heads(self.0.rosters.heads_for(&node));
        let theirs = match self.0.network.roster(peer, request).await {
            Ok(wire_roster::Response::Heads(h)) => h,
            Ok(_) => return,
            Err(e) => {
                debug!(%peer, error = %e, "anti-entropy: heads request failed");
                return;
            }
        };
        let mut changed = false;
        for head in theirs {
            let mine = self.0.rosters.heads().into_iter().find(|h| h.agreement == head.agreement);
            let Some(mine) = mine else { continue };
            // Ahead: fetch from our own head, so a different entry at it
            // (a fork we have not seen: the peer resolved it the other way)
            // shows up as an equivocation, and its resolution then applies.
            let from = if head.seq > mine.seq {
                mine.seq
            } else if self.0.rosters.hash_at(&head.agreement, head.seq) != Some(head.hash) {
                head.seq
            } else {
                continue;
            };
            changed |= self.fetch(peer, &head.agreement, from, head.seq).await;
        }
        if changed {
            self.refresh_members().await;
        }
    }

    /// Fetches entries `from ..= until` of `agreement` from `peer` and
    /// applies them. An answer counts only for the agreement and seq range
    /// asked for: one that holds anything else is refused whole, and so is a
    /// different genesis; the peer is then counted as misbehaving and
    /// disconnected.
    async fn fetch(&self, peer: PeerId, agreement: &AgreementId, mut from: u64, until: u64) -> bool {
        let origin = Origin::Peer(peer);
        let mut changed = false;
        while from <= until {
            let req = wire_roster::Request::Fetch { agreement: agreement.clone(), from, limit: MAX_ENTRIES };
            let entries = match self.0.network.roster(peer, req).await {
                Ok(wire_roster::Response::Entries(e)) if !e.is_empty() => e,
                _ => return changed,
            };
            if let Err(e) = wire_roster::check_fetched(agreement, from, MAX_ENTRIES, &entries) {
                self.misbehaved(peer, "unasked-roster-entries", &e).await;
                return changed;
            }
            let last = entries.last().map_or(from, |e| e.body.seq);
            for e in entries {
                match self.apply(e, origin.clone()).await {
                    Ok(Appended::Applied) => changed = true,
                    Ok(Appended::AlreadyHave) => {}
                    Err(Error::Refused(proto::Error::Equivocation { .. })) => return true,
                    Err(Error::Refused(e @ proto::Error::GenesisMismatch { .. })) => {
                        self.misbehaved(peer, "foreign-genesis", &e).await;
                        return changed;
                    }
                    Err(_) => return changed,
                }
            }
            from = last + 1;
        }
        changed
    }

    /// A member peer sent something no honest node sends: count it, log it
    /// (rate-limited) and hang up on it.
    async fn misbehaved(&self, peer: PeerId, reason: &'static str, detail: &(dyn std::fmt::Display + Sync)) {
        self.0.misbehaviour.record(&self.0.metrics, &peer, reason, detail);
        let _ = self.0.network.disconnect(peer).await;
    }
}

/// Anti-entropy on a timer: every `period`, sync with every connected
/// standing peer (see [`network::standing`]), until `stop`.
///
/// Only standing peers: a connection dialled for one request then carries
/// nothing on a timer, so it closes after `network.idle_timeout_secs`
/// (a timer towards every connected peer would keep every such connection
/// open for good). A peer that keeps a standing connection to this node
/// that this node did not choose still syncs over it: its heads requests
/// start a sync from this side when it is ahead ([`RosterSync::answer`]).
pub async fn run(sync: RosterSync, period: Duration, stop: watch::Receiver<bool>) {
    every(period, stop, || async {
        sync.0.rosters.update_metrics(sync.0.clock.now());
        // A stopped network ends the loop.
        let Ok(info) = sync.0.network.info().await else { return false };
        let standing: HashSet<PeerId> = info.standing.into_iter().collect();
        for (peer, _) in info.connected.into_iter().filter(|(p, _)| standing.contains(p)) {
            tokio::spawn(sync.clone().sync_with(peer));
        }
        true
    })
    .await
}
