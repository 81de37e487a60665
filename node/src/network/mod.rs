//! The peer-to-peer network: one task owns the libp2p `Swarm` and
//! `select!`s over commands from a cloneable [`Network`] handle (each with
//! a oneshot for its answer) and swarm events; domain [`Event`]s come out
//! on a bounded channel. Nothing here decides what is valid: the node
//! does, with the protocol crate's rules.
//!
//! Transports: TCP with TLS or Noise (negotiated) and yamux, and QUIC.
//! Only signatories connect: the node hands in the member set whenever a
//! roster changes, and the gate and the dial list are updated by the
//! difference from the set held (peers added, removed or changed); anyone
//! else is denied right after the handshake, and peers removed from the
//! set are disconnected.
//!
//! Connections: the node keeps standing connections (dialled, redialled
//! with backoff) only to the members marked [`Member::dial`] — in each
//! agreement at most `network.standing_peers` of them ([`standing`]) —
//! and dials any other member when it has a request for it. A connection
//! this node dialled to a peer it does not keep standing is closed once no
//! request has gone either way on it for `network.idle_timeout_secs`
//! (libp2p's own idle timeout never fires between two staffpass nodes:
//! gossipsub holds a stream open on every connection). A connection the
//! peer dialled is the peer's to close: it may be one of its standing
//! connections.
//!
//! Limits: handshakes in progress, connections per peer and in total, and
//! the process's memory bound who may connect at all (libp2p's
//! `connection_limits` and `memory_connection_limits`); each member peer
//! has a token bucket per protocol for its requests and gossip, checked
//! here before anything reaches the node. Every refusal is counted, and
//! its log line is rate-limited per reason.

pub mod behaviour;
pub mod codec;
pub mod per_ip;
pub mod standing;
pub mod topics;

use std::collections::HashMap;
use std::str::FromStr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::StreamExt;
use libp2p::swarm::dial_opts::{DialOpts, PeerCondition};
use libp2p::swarm::{ConnectionDenied, ConnectionId, DialError, ListenError, SwarmEvent};
use libp2p::{
    Multiaddr, PeerId, Swarm, allow_block_list, connection_limits, gossipsub, gossipsub::TopicHash, identify, identity,
    mdns, memory_connection_limits, noise, request_response, tcp, yamux,
};
use staffpass_protocol::NodeId;
use staffpass_protocol::wire::{exchange, roster};
use tokio::sync::{Mutex, mpsc, oneshot};
use tracing::{debug, info, warn};

use crate::config;
use crate::limits::{LogLimiter, MAX_TRACKED_PEERS, PeerRates, Rate};
use crate::metrics::{Metrics, RequestLabels};
use crate::misbehaviour::Misbehaviour;
use behaviour::{Behaviour, BehaviourEvent};
pub use topics::Topic;
use topics::{Judgement, TopicRules};

/// Capacity of the command and event channels.
const CHANNEL: usize = 256;

/// At most one log line per reason for denied connections in this period.
const DENIAL_LOG_EVERY: Duration = Duration::from_secs(60);

/// Misbehaviour reason: roster requests over the peer's rate.
pub const ROSTER_RATE_LIMIT: &str = "roster-rate-limit";
/// Misbehaviour reason: roster gossip over the forwarding peer's rate.
pub const GOSSIP_RATE_LIMIT: &str = "gossip-rate-limit";
/// Misbehaviour reason: exchange requests over the peer's rate.
pub const EXCHANGE_RATE_LIMIT: &str = "exchange-rate-limit";

/// One token bucket per peer for each kind of inbound message.
struct Rates {
    roster: PeerRates,
    gossip: PeerRates,
    exchange: PeerRates,
}

impl Rates {
    fn new(cfg: &config::Network) -> Self {
        let roster = Rate { per_sec: cfg.roster_requests_per_sec, burst: cfg.roster_request_burst };
        let exchange = Rate { per_sec: cfg.exchange_requests_per_sec, burst: cfg.exchange_request_burst };
        Rates {
            roster: PeerRates::new(roster, MAX_TRACKED_PEERS),
            gossip: PeerRates::new(roster, MAX_TRACKED_PEERS),
            exchange: PeerRates::new(exchange, MAX_TRACKED_PEERS),
        }
    }
}

/// The stable reason code of a denied connection, for the metric and log.
fn denial_reason(cause: &ConnectionDenied) -> &'static str {
    if cause.downcast_ref::<allow_block_list::NotAllowed>().is_some() {
        "not-signatory"
    } else if let Some(e) = cause.downcast_ref::<connection_limits::Exceeded>() {
        // The kind of limit is only in the error's text.
        let text = e.to_string();
        if text.contains("pending incoming") {
            "pending-incoming"
        } else if text.contains("per peer") {
            "per-peer"
        } else {
            "total"
        }
    } else if cause.downcast_ref::<per_ip::Exceeded>().is_some() {
        "pending-per-ip"
    } else if cause.downcast_ref::<memory_connection_limits::MemoryUsageLimitExceeded>().is_some() {
        "memory"
    } else {
        "other"
    }
}

/// A network operation that failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Error {
    /// The network task has stopped.
    #[error("the network task has stopped")]
    Stopped,
    /// A request to a peer failed.
    #[error("request to {peer} failed: {reason}")]
    Request {
        /// The peer.
        peer: PeerId,
        /// Why (dial failure, timeout, connection closed, unsupported, I/O).
        reason: String,
    },
    /// The swarm could not be built or could not listen.
    #[error("cannot start the network: {0}")]
    Start(String),
    /// Publishing failed.
    #[error("cannot publish: {0}")]
    Publish(String),
    /// A node id that is no libp2p PeerId.
    #[error("node {0} has no libp2p peer id")]
    NotAPeer(NodeId),
}

/// A member node allowed to connect.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Member {
    /// Its PeerId.
    pub peer: PeerId,
    /// Address hints from the roster.
    pub addresses: Vec<Multiaddr>,
    /// Whether this node dials it (and keeps the connection up): a
    /// standing peer ([`standing`]) or a node owed an erasure or
    /// revocation. Otherwise it may connect, and is dialled only for a
    /// request: another member beyond the standing peers, or, at a
    /// suspended or removed member's node, the active members that may
    /// still send it an erasure or revocation.
    pub dial: bool,
}

/// What the network tells the node.
#[derive(Debug)]
pub enum Event {
    /// First connection to a peer is up.
    Connected {
        /// The peer.
        peer: PeerId,
    },
    /// Last connection to a peer closed.
    Disconnected {
        /// The peer.
        peer: PeerId,
    },
    /// An exchange request arrived; answer with [`Network::respond_exchange`].
    ExchangeRequest {
        /// The sender.
        peer: PeerId,
        /// The request.
        request: exchange::Request,
        /// Where to answer.
        channel: request_response::ResponseChannel<exchange::Response>,
    },
    /// A roster sync request arrived; answer with [`Network::respond_roster`].
    RosterRequest {
        /// The sender.
        peer: PeerId,
        /// The request.
        request: roster::Request,
        /// Where to answer.
        channel: request_response::ResponseChannel<roster::Response>,
    },
    /// A gossip message arrived; report its validity with [`Network::report_gossip`].
    Gossip {
        /// Who forwarded it.
        source: PeerId,
        /// Its id.
        id: gossipsub::MessageId,
        /// The topic.
        topic: String,
        /// The payload.
        data: Vec<u8>,
    },
}

/// A snapshot of the network.
#[derive(Debug, Clone, Default)]
pub struct Info {
    /// This node's PeerId.
    pub peer_id: Option<PeerId>,
    /// Addresses it listens on.
    pub listen_addrs: Vec<Multiaddr>,
    /// Connected peers with one of their addresses.
    pub connected: Vec<(PeerId, Option<Multiaddr>)>,
    /// Peers allowed to connect.
    pub allowed: usize,
    /// Peers this node dials and keeps connected (see [`Member::dial`]).
    pub standing: Vec<PeerId>,
}

/// Result of a gossip validation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// Valid: forward it.
    Accept,
    /// Already known or not decidable here: drop without penalty.
    Ignore,
    /// Invalid: drop and penalise the source.
    Reject,
}

enum Command {
    /// The change to the roster member set: new or changed members, and
    /// peers no longer in it.
    UpdateMembers {
        upsert: Vec<Member>,
        removed: Vec<PeerId>,
    },
    SetOwed(Vec<Member>),
    Exchange {
        peer: PeerId,
        request: exchange::Request,
        reply: oneshot::Sender<Result<exchange::Response, Error>>,
    },
    Roster {
        peer: PeerId,
        request: roster::Request,
        reply: oneshot::Sender<Result<roster::Response, Error>>,
    },
    RespondExchange {
        channel: request_response::ResponseChannel<exchange::Response>,
        response: exchange::Response,
    },
    RespondRoster {
        channel: request_response::ResponseChannel<roster::Response>,
        response: roster::Response,
    },
    SetTopics(Vec<Topic>),
    Publish {
        topic: String,
        data: Vec<u8>,
        reply: oneshot::Sender<Result<(), Error>>,
    },
    ReportGossip {
        id: gossipsub::MessageId,
        source: PeerId,
        verdict: Verdict,
    },
    Info(oneshot::Sender<Info>),
    Disconnect(PeerId),
    Shutdown(oneshot::Sender<()>),
}

/// A cloneable handle to the network task.
#[derive(Clone)]
pub struct Network {
    tx: mpsc::Sender<Command>,
    peer_id: PeerId,
    standing_peers: usize,
    /// The roster member set last handed to the task, so that a new one
    /// is sent as its difference (held across the send: two updates
    /// reach the task in the order their differences were taken).
    members: Arc<Mutex<HashMap<PeerId, Member>>>,
}

/// The outbox's transport: a node id becomes a PeerId here, so no libp2p
/// type reaches the exchange service.
impl crate::exchange::Transport for Network {
    type Error = Error;

    async fn exchange(&self, to: &NodeId, request: exchange::Request) -> Result<exchange::Response, Error> {
        let peer = peer_of(to).ok_or_else(|| Error::NotAPeer(to.clone()))?;
        Network::exchange(self, peer, request).await
    }

    async fn owe(&self, nodes: Vec<(NodeId, Vec<String>)>) {
        let owed = nodes
            .into_iter()
            .filter_map(|(n, hints)| {
                let addresses = hints.iter().filter_map(|a| a.parse::<Multiaddr>().ok()).collect();
                peer_of(&n).map(|peer| Member { peer, addresses, dial: true })
            })
            .collect();
        if let Err(e) = self.set_owed(owed).await {
            warn!(error = %e, "cannot update the owed receivers");
        }
    }
}

/// Converts a protocol node id to a libp2p PeerId.
pub fn peer_of(node: &NodeId) -> Option<PeerId> {
    PeerId::from_bytes(node.to_peer_id_bytes()).ok()
}

/// Converts a libp2p PeerId to a protocol node id (ed25519 PeerIds only).
pub fn node_of(peer: &PeerId) -> Option<NodeId> {
    NodeId::from_peer_id_bytes(&peer.to_bytes()).ok()
}

impl Network {
    /// Builds the swarm, starts listening and spawns the event loop.
    pub async fn start(
        key: identity::Keypair,
        cfg: &config::Network,
        metrics: Arc<Metrics>,
        misbehaviour: Arc<Misbehaviour>,
    ) -> Result<(Network, mpsc::Receiver<Event>), Error> {
        let start = |e: &dyn std::fmt::Display| Error::Start(e.to_string());
        let behaviour_cfg = cfg.clone();
        let mut swarm = libp2p::SwarmBuilder::with_existing_identity(key)
            .with_tokio()
            .with_tcp(
                tcp::Config::default().nodelay(true),
                (libp2p::tls::Config::new, noise::Config::new),
                yamux::Config::default,
            )
            .map_err(|e| start(&e))?
            .with_quic()
            .with_behaviour(|key| {
                Behaviour::new(key, &behaviour_cfg).map_err(|e| Box::new(e) as Box<dyn std::error::Error + Send + Sync>)
            })
            .map_err(|e| start(&e))?
            .with_swarm_config(|c| c.with_idle_connection_timeout(Duration::from_secs(cfg.idle_timeout_secs)))
            .build();
        for a in &cfg.listen {
            let addr = Multiaddr::from_str(a).map_err(|e| start(&e))?;
            swarm.listen_on(addr.clone()).map_err(|e| Error::Start(format!("cannot listen on {addr}: {e}")))?;
        }
        for a in &cfg.external_addresses {
            if let Ok(addr) = Multiaddr::from_str(a) {
                swarm.add_external_address(addr);
            }
        }
        // Wait until every listener is bound, so callers can read real
        // ports (listening on port 0 in tests) from `info()`.
        let mut pending = cfg.listen.len();
        let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
        while pending > 0 {
            match tokio::time::timeout_at(deadline, swarm.select_next_some()).await {
                Ok(SwarmEvent::NewListenAddr { address, .. }) => {
                    info!(%address, "listening");
                    pending -= 1;
                }
                Ok(SwarmEvent::ListenerError { error, .. }) => return Err(start(&error)),
                Ok(SwarmEvent::ListenerClosed { reason: Err(error), .. }) => return Err(start(&error)),
                Ok(_) => {}
                Err(_) => return Err(Error::Start("timed out waiting for listeners to bind".into())),
            }
        }

        let peer_id = *swarm.local_peer_id();
        let (tx, rx) = mpsc::channel(CHANNEL);
        let (events_tx, events_rx) = mpsc::channel(CHANNEL);
        let driver = Driver {
            swarm,
            events: events_tx,
            metrics,
            misbehaviour,
            rates: Rates::new(cfg),
            denials: LogLimiter::new(DENIAL_LOG_EVERY),
            members: HashMap::new(),
            standing: 0,
            roster_members: HashMap::new(),
            owed: Vec::new(),
            topics: TopicRules::default(),
            pending_exchange: HashMap::new(),
            pending_roster: HashMap::new(),
            redial_max: Duration::from_secs(cfg.redial_max_secs),
            outbound: HashMap::new(),
            last_request: HashMap::new(),
            idle_timeout: Duration::from_secs(cfg.idle_timeout_secs),
        };
        tokio::spawn(driver.run(rx));
        let members = Arc::new(Mutex::new(HashMap::new()));
        Ok((Network { tx, peer_id, standing_peers: cfg.standing_peers, members }, events_rx))
    }

    /// This node's PeerId.
    pub fn peer_id(&self) -> PeerId {
        self.peer_id
    }

    /// How many member nodes of each agreement this node dials and keeps
    /// connected (`network.standing_peers`; see [`standing`]).
    pub fn standing_peers(&self) -> usize {
        self.standing_peers
    }

    async fn send(&self, c: Command) -> Result<(), Error> {
        self.tx.send(c).await.map_err(|_| Error::Stopped)
    }

    /// Replaces the set of member nodes allowed to connect; connections to
    /// peers no longer in it are closed, members to dial are dialled. Only
    /// the difference from the set last given reaches the network task
    /// (entries of one peer are merged: dialled if any says so, with every
    /// address), and only the peers in it are touched there.
    pub async fn set_members(&self, members: Vec<Member>) -> Result<(), Error> {
        let mut next: HashMap<PeerId, Member> = HashMap::with_capacity(members.len());
        for m in members {
            match next.get_mut(&m.peer) {
                Some(held) => merge(held, &m),
                None => {
                    next.insert(m.peer, m);
                }
            }
        }
        let mut held = self.members.lock().await;
        let removed: Vec<PeerId> = held.keys().filter(|p| !next.contains_key(p)).copied().collect();
        let upsert: Vec<Member> = next.values().filter(|m| held.get(&m.peer) != Some(*m)).cloned().collect();
        if !removed.is_empty() || !upsert.is_empty() {
            self.send(Command::UpdateMembers { upsert, removed }).await?;
        }
        *held = next;
        Ok(())
    }

    /// Replaces the set of nodes this node still owes an erasure or a
    /// revocation but that the roster no longer lets connect (a suspended
    /// or removed receiver): they are allowed and dialled until the set
    /// no longer names them. The exchange sends them nothing else (an
    /// offer to a receiver not active is refused before it is sent).
    pub async fn set_owed(&self, owed: Vec<Member>) -> Result<(), Error> {
        self.send(Command::SetOwed(owed)).await
    }

    /// Sends an exchange request and waits for the response.
    pub async fn exchange(&self, peer: PeerId, request: exchange::Request) -> Result<exchange::Response, Error> {
        let (reply, rx) = oneshot::channel();
        self.send(Command::Exchange { peer, request, reply }).await?;
        rx.await.map_err(|_| Error::Stopped)?
    }

    /// Sends a roster request and waits for the response.
    pub async fn roster(&self, peer: PeerId, request: roster::Request) -> Result<roster::Response, Error> {
        let (reply, rx) = oneshot::channel();
        self.send(Command::Roster { peer, request, reply }).await?;
        rx.await.map_err(|_| Error::Stopped)?
    }

    /// Answers an exchange request.
    pub async fn respond_exchange(
        &self,
        channel: request_response::ResponseChannel<exchange::Response>,
        response: exchange::Response,
    ) -> Result<(), Error> {
        self.send(Command::RespondExchange { channel, response }).await
    }

    /// Answers a roster request.
    pub async fn respond_roster(
        &self,
        channel: request_response::ResponseChannel<roster::Response>,
        response: roster::Response,
    ) -> Result<(), Error> {
        self.send(Command::RespondRoster { channel, response }).await
    }

    /// Replaces the roster topics: subscribes to those marked so, leaves
    /// the others, and judges every peer's subscriptions against them (see
    /// [`topics`]).
    pub async fn set_topics(&self, topics: Vec<Topic>) -> Result<(), Error> {
        self.send(Command::SetTopics(topics)).await
    }

    /// Publishes a roster entry on its agreement's topic.
    pub async fn publish(&self, topic: String, data: Vec<u8>) -> Result<(), Error> {
        let (reply, rx) = oneshot::channel();
        self.send(Command::Publish { topic, data, reply }).await?;
        rx.await.map_err(|_| Error::Stopped)?
    }

    /// Reports whether a gossip message is valid (it is forwarded only if accepted).
    pub async fn report_gossip(&self, id: gossipsub::MessageId, source: PeerId, verdict: Verdict) -> Result<(), Error> {
        self.send(Command::ReportGossip { id, source, verdict }).await
    }

    /// A snapshot of listen addresses and connections.
    pub async fn info(&self) -> Result<Info, Error> {
        let (reply, rx) = oneshot::channel();
        self.send(Command::Info(reply)).await?;
        rx.await.map_err(|_| Error::Stopped)
    }

    /// Closes every connection to `peer` (a member that misbehaved). It
    /// stays allowed: an honest node that was wrongly suspected reconnects.
    pub async fn disconnect(&self, peer: PeerId) -> Result<(), Error> {
        self.send(Command::Disconnect(peer)).await
    }

    /// Stops the network task, closing every connection.
    pub async fn shutdown(&self) {
        let (reply, rx) = oneshot::channel();
        if self.send(Command::Shutdown(reply)).await.is_ok() {
            let _ = rx.await;
        }
    }
}

struct MemberState {
    /// Address hints from the roster.
    addresses: Vec<Multiaddr>,
    /// Addresses found by mDNS (LAN testnets only).
    discovered: Vec<Multiaddr>,
    next_dial: Instant,
    backoff: Duration,
    /// Whether it is dialled (see [`Member::dial`]).
    dial: bool,
}

struct Driver {
    swarm: Swarm<Behaviour>,
    events: mpsc::Sender<Event>,
    metrics: Arc<Metrics>,
    misbehaviour: Arc<Misbehaviour>,
    rates: Rates,
    /// Rate-limits log lines a peer can cause at will (denied
    /// connections, failed inbound requests), per reason.
    denials: LogLimiter,
    /// Every peer allowed to connect (exactly the gate's allow-list).
    members: HashMap<PeerId, MemberState>,
    /// How many of `members` are dialled.
    standing: usize,
    /// The member set from the rosters, and the nodes still owed an
    /// erasure or revocation ([`Network::set_owed`]); `members` is their union.
    roster_members: HashMap<PeerId, Member>,
    owed: Vec<Member>,
    /// Who may subscribe to each roster topic.
    topics: TopicRules,
    pending_exchange: HashMap<request_response::OutboundRequestId, Pending<exchange::Response>>,
    pending_roster: HashMap<request_response::OutboundRequestId, Pending<roster::Response>>,
    redial_max: Duration,
    /// The connections this node dialled, by peer.
    outbound: HashMap<PeerId, Vec<ConnectionId>>,
    /// When a request last went either way with each connected peer.
    last_request: HashMap<PeerId, Instant>,
    /// A connection this node dialled to a peer it does not keep standing
    /// is closed after this long without a request.
    idle_timeout: Duration,
}

struct Pending<T> {
    peer: PeerId,
    started: Instant,
    reply: oneshot::Sender<Result<T, Error>>,
}

/// Folds `other` into `into` (entries for one peer): dialled if either
/// is, with the addresses of both.
fn merge(into: &mut Member, other: &Member) {
    into.dial |= other.dial;
    for a in &other.addresses {
        if !into.addresses.contains(a) {
            into.addresses.push(a.clone());
        }
    }
}

/// A count as a gauge value.
fn gauge(n: usize) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

async fn emit(events: &mpsc::Sender<Event>, e: Event) {
    if events.send(e).await.is_err() {
        debug!("node event receiver gone");
    }
}

const INITIAL_BACKOFF: Duration = Duration::from_millis(250);

impl Driver {
    async fn run(mut self, mut commands: mpsc::Receiver<Command>) {
        let mut redial = tokio::time::interval(Duration::from_millis(250));
        redial.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                cmd = commands.recv() => match cmd {
                    Some(Command::Shutdown(done)) => {
                        let peers: Vec<PeerId> = self.swarm.connected_peers().copied().collect();
                        for p in peers {
                            let _ = self.swarm.disconnect_peer_id(p);
                        }
                        let _ = done.send(());
                        return;
                    }
                    Some(cmd) => self.command(cmd),
                    None => return,
                },
                event = self.swarm.select_next_some() => self.swarm_event(event).await,
                _ = redial.tick() => self.redial(),
            }
        }
    }

    fn command(&mut self, cmd: Command) {
        let b = self.swarm.behaviour_mut();
        match cmd {
            Command::UpdateMembers { upsert, removed } => {
                let mut touched = removed;
                for p in &touched {
                    self.roster_members.remove(p);
                }
                for m in upsert {
                    touched.push(m.peer);
                    self.roster_members.insert(m.peer, m);
                }
                self.apply_members(touched);
            }
            Command::SetOwed(owed) => {
                if owed.iter().any(|o| !self.members.contains_key(&o.peer)) {
                    info!(
                        peers = owed.len(),
                        "admitting receivers no longer active that are owed an erasure or revocation"
                    );
                }
                let mut touched: Vec<PeerId> = self.owed.iter().chain(&owed).map(|m| m.peer).collect();
                touched.sort_unstable();
                touched.dedup();
                self.owed = owed;
                self.apply_members(touched);
            }
            // A member not connected (not a standing peer, or between
            // redials) is dialled for the request, at its known addresses.
            Command::Exchange { peer, request, reply } => {
                self.used(peer);
                let addresses = self.addresses_of(&peer);
                let b = self.swarm.behaviour_mut();
                let id = b.exchange.send_request_with_addresses(&peer, request, addresses);
                self.pending_exchange.insert(id, Pending { peer, started: Instant::now(), reply });
            }
            Command::Roster { peer, request, reply } => {
                self.used(peer);
                let addresses = self.addresses_of(&peer);
                let b = self.swarm.behaviour_mut();
                let id = b.roster.send_request_with_addresses(&peer, request, addresses);
                self.pending_roster.insert(id, Pending { peer, started: Instant::now(), reply });
            }
            Command::RespondExchange { channel, response } => {
                if b.exchange.send_response(channel, response).is_err() {
                    debug!("exchange response not sent: the connection closed");
                }
            }
            Command::RespondRoster { channel, response } => {
                if b.roster.send_response(channel, response).is_err() {
                    debug!("roster response not sent: the connection closed");
                }
            }
            Command::SetTopics(topics) => self.set_topics(topics),
            Command::Publish { topic, data, reply } => {
                let topic = gossipsub::IdentTopic::new(topic);
                let r = match b.gossipsub.publish(topic, data) {
                    Ok(_) => Ok(()),
                    // Nobody to send to yet: anti-entropy carries it later.
                    Err(gossipsub::PublishError::NoPeersSubscribedToTopic) => Ok(()),
                    Err(gossipsub::PublishError::Duplicate) => Ok(()),
                    Err(e) => Err(Error::Publish(e.to_string())),
                };
                let _ = reply.send(r);
            }
            Command::ReportGossip { id, source, verdict } => {
                let acceptance = match verdict {
                    Verdict::Accept => gossipsub::MessageAcceptance::Accept,
                    Verdict::Ignore => gossipsub::MessageAcceptance::Ignore,
                    Verdict::Reject => gossipsub::MessageAcceptance::Reject,
                };
                b.gossipsub.report_message_validation_result(&id, &source, acceptance);
            }
            Command::Info(reply) => {
                let connected = self
                    .swarm
                    .connected_peers()
                    .map(|p| (*p, self.members.get(p).and_then(|m| m.addresses.first().cloned())))
                    .collect();
                let _ = reply.send(Info {
                    peer_id: Some(*self.swarm.local_peer_id()),
                    listen_addrs: self.swarm.listeners().cloned().collect(),
                    connected,
                    allowed: self.swarm.behaviour().gate.allowed_peers().len(),
                    standing: self.members.iter().filter(|(_, m)| m.dial).map(|(p, _)| *p).collect(),
                });
            }
            Command::Disconnect(peer) => {
                let _ = self.swarm.disconnect_peer_id(peer);
            }
            Command::Shutdown(_) => {}
        }
    }

    fn set_topics(&mut self, topics: Vec<Topic>) {
        let gossip = &mut self.swarm.behaviour_mut().gossipsub;
        for t in &topics {
            let topic = gossipsub::IdentTopic::new(t.name.clone());
            if t.subscribe {
                if let Err(e) = gossip.subscribe(&topic) {
                    warn!(error = %e, "cannot subscribe to a roster topic");
                }
            } else {
                gossip.unsubscribe(&topic);
            }
        }
        for gone in self.topics.set(&topics) {
            gossip.unsubscribe(&gossipsub::IdentTopic::new(gone.into_string()));
        }
        // Standing subscriptions are judged again under the new rosters.
        let standing: Vec<(PeerId, Vec<TopicHash>)> =
            gossip.all_peers().map(|(p, ts)| (*p, ts.into_iter().cloned().collect())).collect();
        for (peer, topics) in standing {
            for topic in topics {
                if !self.judge_subscription(peer, &topic) {
                    break;
                }
            }
        }
    }

    /// Judges one subscription; a foreign one disconnects the peer at once
    /// (returns false then).
    fn judge_subscription(&mut self, peer: PeerId, topic: &TopicHash) -> bool {
        match self.topics.judge(peer, topic, Instant::now()) {
            Judgement::Allowed => true,
            Judgement::Stale => {
                debug!(%peer, "a removed member's node is still subscribed to the roster topic; grace period");
                true
            }
            Judgement::Foreign => {
                self.misbehaviour.record(
                    &self.metrics,
                    &peer,
                    "foreign-subscription",
                    &"roster topic of another agreement",
                );
                let _ = self.swarm.disconnect_peer_id(peer);
                false
            }
        }
    }

    /// Brings the gate and the dial list of the `touched` peers (those
    /// whose roster or owed entry changed) to the union of the roster's
    /// member set and the owed nodes (an owed node is always dialled);
    /// nothing else is touched, so a roster change costs what it changed,
    /// not the size of the agreement.
    fn apply_members(&mut self, touched: Vec<PeerId>) {
        let me = *self.swarm.local_peer_id();
        let now = Instant::now();
        let (mut added, mut removed, mut changed) = (0usize, 0usize, 0usize);
        for peer in touched.into_iter().filter(|p| *p != me) {
            let mut wanted = self.roster_members.get(&peer).cloned();
            for o in self.owed.iter().filter(|o| o.peer == peer) {
                match &mut wanted {
                    Some(w) => merge(w, o),
                    None => wanted = Some(o.clone()),
                }
            }
            match (wanted, self.members.get_mut(&peer)) {
                (None, None) => {}
                (None, Some(st)) => {
                    self.standing -= usize::from(st.dial);
                    // Closes any live connection to it.
                    self.swarm.behaviour_mut().gate.disallow_peer(peer);
                    self.members.remove(&peer);
                    removed += 1;
                    info!(%peer, "peer is no longer an active signatory; disconnecting");
                }
                (Some(m), None) => {
                    self.standing += usize::from(m.dial);
                    self.swarm.behaviour_mut().gate.allow_peer(peer);
                    let st = MemberState {
                        addresses: m.addresses,
                        discovered: Vec::new(),
                        next_dial: now,
                        backoff: INITIAL_BACKOFF,
                        dial: m.dial,
                    };
                    self.members.insert(peer, st);
                    added += 1;
                }
                (Some(m), Some(st)) => {
                    if st.addresses != m.addresses || st.dial != m.dial {
                        self.standing = self.standing + usize::from(m.dial) - usize::from(st.dial);
                        st.addresses = m.addresses;
                        st.dial = m.dial;
                        st.next_dial = now;
                        st.backoff = INITIAL_BACKOFF;
                        changed += 1;
                    }
                }
            }
        }
        self.metrics.allowed_peers.set(gauge(self.members.len()));
        self.metrics.standing_peers.set(gauge(self.standing));
        if added + removed + changed > 0 {
            let standing = self.standing;
            debug!(added, removed, changed, allowed = self.members.len(), standing, "member set updated");
        }
    }

    /// Where to dial `peer` for a request: its roster hints and the
    /// addresses found for it.
    fn addresses_of(&self, peer: &PeerId) -> Vec<Multiaddr> {
        self.members.get(peer).map(|m| m.addresses.iter().chain(&m.discovered).cloned().collect()).unwrap_or_default()
    }

    /// Notes a request to or from `peer` (if connected: a connection not
    /// yet up gets its full idle period when it is).
    fn used(&mut self, peer: PeerId) {
        if self.swarm.is_connected(&peer) {
            self.last_request.insert(peer, Instant::now());
        }
    }

    /// Closes the connections this node dialled to peers it does not
    /// keep standing (dialled for a request, or standing before a roster
    /// change) once no request has gone either way for `idle_timeout`
    /// and none is in flight. Those the peer dialled are left to it.
    fn close_idle(&mut self, now: Instant) {
        let idle = |p: &PeerId| {
            !self.members.get(p).is_some_and(|m| m.dial)
                && self.last_request.get(p).is_none_or(|t| now.duration_since(*t) >= self.idle_timeout)
        };
        let candidates: Vec<PeerId> = self.outbound.keys().filter(|p| idle(p)).copied().collect();
        if candidates.is_empty() {
            return;
        }
        let busy: std::collections::HashSet<PeerId> = self
            .pending_exchange
            .values()
            .map(|p| p.peer)
            .chain(self.pending_roster.values().map(|p| p.peer))
            .collect();
        for peer in candidates.into_iter().filter(|p| !busy.contains(p)) {
            for id in self.outbound.get(&peer).cloned().unwrap_or_default() {
                if self.swarm.close_connection(id) {
                    debug!(%peer, "closing an idle connection to a peer that is not standing");
                }
            }
        }
    }

    /// Dials members that are not connected, with exponential backoff.
    fn redial(&mut self) {
        let now = Instant::now();
        self.close_idle(now);
        for peer in self.topics.overdue(now) {
            self.misbehaviour.record(&self.metrics, &peer, "stale-subscription", &"removed member still subscribed");
            let _ = self.swarm.disconnect_peer_id(peer);
        }
        let due: Vec<(PeerId, Vec<Multiaddr>)> = self
            .members
            .iter()
            .filter(|(p, m)| m.dial && m.next_dial <= now && !self.swarm.is_connected(p))
            .map(|(p, m)| (*p, m.addresses.iter().chain(&m.discovered).cloned().collect()))
            .collect();
        for (peer, addresses) in due {
            let opts = DialOpts::peer_id(peer)
                .addresses(addresses)
                .condition(PeerCondition::DisconnectedAndNotDialing)
                .build();
            if let Err(e) = self.swarm.dial(opts) {
                debug!(%peer, error = %e, "dial not started");
            }
            if let Some(m) = self.members.get_mut(&peer) {
                m.next_dial = now + m.backoff;
                m.backoff = (m.backoff * 2).min(self.redial_max);
            }
        }
    }

    async fn swarm_event(&mut self, event: SwarmEvent<BehaviourEvent>) {
        match event {
            SwarmEvent::ConnectionEstablished { peer_id, connection_id, num_established, endpoint, .. } => {
                if endpoint.is_dialer() {
                    self.outbound.entry(peer_id).or_default().push(connection_id);
                }
                // A new connection gets a full idle period before it may be closed.
                self.last_request.insert(peer_id, Instant::now());
                if num_established.get() > 1 {
                    return;
                }
                self.metrics.connected_peers.inc();
                if let Some(m) = self.members.get_mut(&peer_id) {
                    m.backoff = INITIAL_BACKOFF;
                }
                info!(peer = %peer_id, addr = %endpoint.get_remote_address(), "connected");
                emit(&self.events, Event::Connected { peer: peer_id }).await;
            }
            SwarmEvent::ConnectionClosed { peer_id, connection_id, num_established, .. } => {
                if let Some(ids) = self.outbound.get_mut(&peer_id) {
                    ids.retain(|id| *id != connection_id);
                    if ids.is_empty() {
                        self.outbound.remove(&peer_id);
                    }
                }
                if num_established > 0 {
                    return;
                }
                self.last_request.remove(&peer_id);
                self.metrics.connected_peers.dec();
                self.topics.forget(peer_id, None);
                info!(peer = %peer_id, "disconnected");
                if let Some(m) = self.members.get_mut(&peer_id) {
                    m.next_dial = Instant::now() + m.backoff;
                }
                emit(&self.events, Event::Disconnected { peer: peer_id }).await;
            }
            SwarmEvent::IncomingConnectionError {
                error: ListenError::Denied { cause },
                peer_id,
                send_back_addr,
                ..
            } => {
                let reason = self.denied(&cause);
                if let Some(suppressed) = self.denials.should_log(reason) {
                    warn!(peer = ?peer_id, addr = %send_back_addr, reason, %cause, suppressed, "inbound connection denied");
                } else {
                    debug!(peer = ?peer_id, reason, "inbound connection denied");
                }
            }
            SwarmEvent::OutgoingConnectionError { error: DialError::Denied { cause }, peer_id, .. } => {
                let reason = self.denied(&cause);
                debug!(peer = ?peer_id, reason, %cause, "outbound connection denied");
            }
            SwarmEvent::OutgoingConnectionError { peer_id, error, .. } => {
                debug!(peer = ?peer_id, error = %error, "dial failed");
            }
            SwarmEvent::NewListenAddr { address, .. } => info!(%address, "listening"),
            SwarmEvent::Behaviour(b) => self.behaviour_event(b).await,
            _ => {}
        }
    }

    /// Counts a denied connection; returns its reason code.
    fn denied(&self, cause: &ConnectionDenied) -> &'static str {
        let reason = denial_reason(cause);
        self.metrics.denied_connections.inc();
        Metrics::count_reason(&self.metrics.connections_denied, reason);
        reason
    }

    async fn behaviour_event(&mut self, event: BehaviourEvent) {
        use request_response::{Event as Rr, Message as M};
        match event {
            // Over a peer's rate: refused here, before anything reaches the
            // node (a flood must not fill the node's event channel).
            BehaviourEvent::Gossipsub(gossipsub::Event::Message { propagation_source, message_id, .. })
                if !self.rates.gossip.allow(&propagation_source) =>
            {
                self.misbehaviour.over_limit(&self.metrics, &propagation_source, GOSSIP_RATE_LIMIT);
                Metrics::count(&self.metrics.gossip_messages, "ignored");
                self.swarm.behaviour_mut().gossipsub.report_message_validation_result(
                    &message_id,
                    &propagation_source,
                    gossipsub::MessageAcceptance::Ignore,
                );
            }
            BehaviourEvent::Roster(Rr::Message { peer, message: M::Request { channel, .. }, .. })
                if !self.rates.roster.allow(&peer) =>
            {
                self.misbehaviour.over_limit(&self.metrics, &peer, ROSTER_RATE_LIMIT);
                if self.swarm.behaviour_mut().roster.send_response(channel, roster::Response::Unknown).is_err() {
                    debug!(%peer, "roster refusal not sent: the connection closed");
                }
            }
            BehaviourEvent::Exchange(Rr::Message { peer, message: M::Request { channel, .. }, .. })
                if !self.rates.exchange.allow(&peer) =>
            {
                // Not answered: the sender's outbox retries later.
                self.misbehaviour.over_limit(&self.metrics, &peer, EXCHANGE_RATE_LIMIT);
                drop(channel);
            }
            // Where members are is the roster's word (address hints), not
            // a peer's: identify's self-reported addresses are not used to
            // dial, so no member can point this node at arbitrary hosts.
            BehaviourEvent::Identify(identify::Event::Received { peer_id, info, .. }) => {
                debug!(peer = %peer_id, addresses = info.listen_addrs.len(), "identify received");
            }
            BehaviourEvent::Mdns(mdns::Event::Discovered(found)) => {
                for (peer, addr) in found {
                    // Only members are dialled; discovery never widens who may connect.
                    if let Some(m) = self.members.get_mut(&peer)
                        && !m.discovered.contains(&addr)
                        && m.discovered.len() < 16
                    {
                        m.discovered.push(addr);
                        m.next_dial = Instant::now();
                    }
                }
            }
            BehaviourEvent::Gossipsub(gossipsub::Event::Subscribed { peer_id, topic }) => {
                self.judge_subscription(peer_id, &topic);
            }
            BehaviourEvent::Gossipsub(gossipsub::Event::Unsubscribed { peer_id, topic }) => {
                self.topics.forget(peer_id, Some(&topic));
            }
            BehaviourEvent::Gossipsub(gossipsub::Event::Message { propagation_source, message_id, message }) => {
                emit(
                    &self.events,
                    Event::Gossip {
                        source: propagation_source,
                        id: message_id,
                        topic: message.topic.into_string(),
                        data: message.data,
                    },
                )
                .await;
            }
            BehaviourEvent::Exchange(e) => {
                self.used(rr_peer(&e));
                let to_event = |peer, request, channel| Event::ExchangeRequest { peer, request, channel };
                let pending = &mut self.pending_exchange;
                let ctx = Context { events: &self.events, metrics: &self.metrics, log: &self.denials };
                request_response_event(ctx, pending, exchange::PROTOCOL, e, to_event).await
            }
            BehaviourEvent::Roster(e) => {
                self.used(rr_peer(&e));
                let to_event = |peer, request, channel| Event::RosterRequest { peer, request, channel };
                let pending = &mut self.pending_roster;
                let ctx = Context { events: &self.events, metrics: &self.metrics, log: &self.denials };
                request_response_event(ctx, pending, roster::PROTOCOL, e, to_event).await
            }
            _ => {}
        }
    }
}

/// The peer of a request-response event.
fn rr_peer<Req, Resp>(e: &request_response::Event<Req, Resp>) -> PeerId {
    use request_response::Event as E;
    match e {
        E::Message { peer, .. }
        | E::OutboundFailure { peer, .. }
        | E::InboundFailure { peer, .. }
        | E::ResponseSent { peer, .. } => *peer,
    }
}

/// What [`request_response_event`] reports to.
struct Context<'a> {
    events: &'a mpsc::Sender<Event>,
    metrics: &'a Metrics,
    /// Rate-limits its log lines.
    log: &'a LogLimiter,
}

/// Handles one request-response event of either protocol: inbound
/// requests become domain events (`to_event`), responses and failures
/// answer the pending request with its latency recorded.
async fn request_response_event<Req, Resp>(
    Context { events, metrics, log }: Context<'_>,
    pending: &mut HashMap<request_response::OutboundRequestId, Pending<Resp>>,
    protocol: &str,
    e: request_response::Event<Req, Resp>,
    to_event: impl FnOnce(PeerId, Req, request_response::ResponseChannel<Resp>) -> Event,
) {
    use request_response::{Event as E, Message as M};
    match e {
        E::Message { peer, message: M::Request { request, channel, .. }, .. } => {
            emit(events, to_event(peer, request, channel)).await;
        }
        E::Message { message: M::Response { request_id, response }, .. } => {
            if let Some(p) = pending.remove(&request_id) {
                finish(metrics, protocol, p, Ok(response));
            }
        }
        E::OutboundFailure { request_id, error, .. } => {
            if let Some(p) = pending.remove(&request_id) {
                let peer = p.peer;
                finish(metrics, protocol, p, Err(Error::Request { peer, reason: error.to_string() }));
            }
        }
        // Not answered on purpose (over the peer's rate, or the handler
        // chose to let the sender retry): nothing to report.
        E::InboundFailure { error: request_response::InboundFailure::ResponseOmission, .. } => {}
        // A peer can cause these at will (bad bytes, resets): rate-limited.
        E::InboundFailure { peer, error, .. } => match log.should_log("inbound-request-failed") {
            Some(suppressed) => {
                warn!(%peer, %protocol, error = %error, suppressed, "inbound request failed; stream reset")
            }
            None => debug!(%peer, %protocol, error = %error, "inbound request failed; stream reset"),
        },
        E::ResponseSent { .. } => {}
    }
}

fn finish<T>(metrics: &Metrics, protocol: &str, p: Pending<T>, r: Result<T, Error>) {
    let outcome = if r.is_ok() { "ok" } else { "error" };
    metrics
        .request_seconds
        .get_or_create(&RequestLabels { protocol: protocol.into(), outcome: outcome.into() })
        .observe(p.started.elapsed().as_secs_f64());
    let _ = p.reply.send(r);
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The reason codes depend on libp2p's error texts: each limit, hit
    /// for real on the behaviours the node uses, gets its own code.
    #[test]
    fn each_denial_has_its_reason() {
        use connection_limits::{Behaviour as Limits, ConnectionLimits};
        use libp2p::swarm::{ConnectionId, NetworkBehaviour};
        let addr: Multiaddr = "/ip4/10.0.0.1/tcp/7400".parse().unwrap();
        let id = ConnectionId::new_unchecked(1);
        let peer = PeerId::random();
        let limits = |l: ConnectionLimits| Limits::new(l);

        let mut pending = limits(ConnectionLimits::default().with_max_pending_incoming(Some(0)));
        let e = pending.handle_pending_inbound_connection(id, &addr, &addr).unwrap_err();
        assert_eq!(denial_reason(&e), "pending-incoming");
        let mut per_peer = limits(ConnectionLimits::default().with_max_established_per_peer(Some(0)));
        let e = per_peer.handle_established_inbound_connection(id, peer, &addr, &addr).err().unwrap();
        assert_eq!(denial_reason(&e), "per-peer");
        let mut total = limits(ConnectionLimits::default().with_max_established(Some(0)));
        let e = total.handle_established_inbound_connection(id, peer, &addr, &addr).err().unwrap();
        assert_eq!(denial_reason(&e), "total");
        let mut per_ip = per_ip::Behaviour::new(0);
        let e = per_ip.handle_pending_inbound_connection(id, &addr, &addr).unwrap_err();
        assert_eq!(denial_reason(&e), "pending-per-ip");
        let mut gate = allow_block_list::Behaviour::<allow_block_list::AllowedPeers>::default();
        let e = gate.handle_established_inbound_connection(id, peer, &addr, &addr).err().unwrap();
        assert_eq!(denial_reason(&e), "not-signatory");
    }

    fn member(peer: PeerId, dial: bool, port: u16) -> Member {
        Member { peer, addresses: vec![format!("/ip4/127.0.0.1/tcp/{port}").parse().unwrap()], dial }
    }

    /// The member set reaches the task as its difference, and the gate,
    /// the dial list and the gauges follow it; owed nodes are dialled
    /// whatever the roster says.
    #[tokio::test]
    async fn the_member_set_is_applied_by_difference() {
        let cfg = config::Network { listen: vec!["/ip4/127.0.0.1/tcp/0".into()], ..Default::default() };
        let metrics = Arc::new(Metrics::new());
        let key = identity::Keypair::generate_ed25519();
        let (net, _events) = Network::start(key, &cfg, metrics.clone(), Arc::default()).await.unwrap();
        let peers: Vec<PeerId> = (0..5).map(|_| PeerId::random()).collect();
        let standing = |info: &Info| {
            let mut s = info.standing.clone();
            s.sort();
            s
        };
        let sorted = |mut v: Vec<PeerId>| {
            v.sort();
            v
        };

        let mut set: Vec<Member> = peers.iter().enumerate().map(|(i, p)| member(*p, i < 2, 9000)).collect();
        set.push(member(net.peer_id(), true, 9000)); // itself: never allowed or dialled
        net.set_members(set.clone()).await.unwrap();
        let info = net.info().await.unwrap();
        assert_eq!(info.allowed, 5);
        assert_eq!(standing(&info), sorted(peers[..2].to_vec()));
        assert_eq!((metrics.allowed_peers.get(), metrics.standing_peers.get()), (5, 2));
        assert_eq!(net.members.lock().await.len(), 6);

        // One removed, one no longer dialled, one newly dialled, one moved.
        let mut next = set.clone();
        next.retain(|m| m.peer != peers[4]);
        next[0].dial = false;
        next[2].dial = true;
        next[3] = member(peers[3], false, 9001);
        net.set_members(next.clone()).await.unwrap();
        let info = net.info().await.unwrap();
        assert_eq!(info.allowed, 4);
        assert_eq!(standing(&info), sorted(vec![peers[1], peers[2]]));
        assert_eq!((metrics.allowed_peers.get(), metrics.standing_peers.get()), (4, 2));

        // An owed node is dialled while owed, and allowed while owed even
        // when the roster drops it.
        net.set_owed(vec![member(peers[3], true, 9002), member(peers[4], true, 9003)]).await.unwrap();
        let info = net.info().await.unwrap();
        assert_eq!(info.allowed, 5);
        assert_eq!(standing(&info), sorted(vec![peers[1], peers[2], peers[3], peers[4]]));
        assert_eq!((metrics.allowed_peers.get(), metrics.standing_peers.get()), (5, 4));
        net.set_owed(Vec::new()).await.unwrap();
        let info = net.info().await.unwrap();
        assert_eq!(info.allowed, 4);
        assert_eq!(standing(&info), sorted(vec![peers[1], peers[2]]));
        assert_eq!((metrics.allowed_peers.get(), metrics.standing_peers.get()), (4, 2));
        net.shutdown().await;
    }

    #[test]
    fn node_ids_and_peer_ids_agree() {
        let key = identity::Keypair::generate_ed25519();
        let peer = key.public().to_peer_id();
        let node = node_of(&peer).unwrap();
        assert_eq!(node.to_string(), peer.to_string());
        assert_eq!(peer_of(&node), Some(peer));
        let ed = key.try_into_ed25519().unwrap();
        assert_eq!(NodeId::from_ed25519_public(&ed.public().to_bytes()), node);
    }
}
