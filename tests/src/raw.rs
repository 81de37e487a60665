//! A bare libp2p peer for tests that must misbehave on the wire: it speaks
//! `/staffpass/exchange/1` with the node's own codec (to send forged or
//! tampered bundles from a chosen identity) or writes arbitrary bytes on it,
//! and answers `/staffpass/roster/1` with whatever a test tells it to (a
//! hostile member's roster answers).

use std::io;
use std::time::Duration;

use futures::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, StreamExt};
use libp2p::request_response::{self, ProtocolSupport};
use libp2p::swarm::{NetworkBehaviour, SwarmEvent};
use libp2p::{Multiaddr, PeerId, StreamProtocol, Swarm, gossipsub, identity, kad, noise, tcp, yamux};
use staffpass_node::network::codec::{ExchangeCodec, RosterCodec};
use staffpass_protocol::wire::{exchange, roster};
use tokio::sync::mpsc;

/// Writes the request bytes as they are; reads the response to the end.
#[derive(Clone, Default)]
pub struct RawCodec;

impl request_response::Codec for RawCodec {
    type Protocol = StreamProtocol;
    type Request = Vec<u8>;
    type Response = Vec<u8>;

    async fn read_request<T: AsyncRead + Unpin + Send>(
        &mut self,
        _: &StreamProtocol,
        io: &mut T,
    ) -> io::Result<Vec<u8>> {
        let mut v = Vec::new();
        io.take(1 << 20).read_to_end(&mut v).await?;
        Ok(v)
    }
    async fn read_response<T: AsyncRead + Unpin + Send>(
        &mut self,
        _: &StreamProtocol,
        io: &mut T,
    ) -> io::Result<Vec<u8>> {
        let mut v = Vec::new();
        io.take(1 << 20).read_to_end(&mut v).await?;
        if v.is_empty() {
            return Err(io::Error::new(io::ErrorKind::UnexpectedEof, "stream closed without a response"));
        }
        Ok(v)
    }
    async fn write_request<T: AsyncWrite + Unpin + Send>(
        &mut self,
        _: &StreamProtocol,
        io: &mut T,
        req: Vec<u8>,
    ) -> io::Result<()> {
        io.write_all(&req).await?;
        io.close().await
    }
    async fn write_response<T: AsyncWrite + Unpin + Send>(
        &mut self,
        _: &StreamProtocol,
        io: &mut T,
        res: Vec<u8>,
    ) -> io::Result<()> {
        io.write_all(&res).await
    }
}

/// The raw peer's behaviour.
#[derive(NetworkBehaviour)]
pub struct RawBehaviour {
    exchange: request_response::Behaviour<ExchangeCodec>,
    raw: request_response::Behaviour<RawCodec>,
    roster: request_response::Behaviour<RosterCodec>,
    /// A Kademlia client on the node's former private DHT protocol.
    kad: kad::Behaviour<kad::store::MemoryStore>,
    /// Roster gossip, configured as the node's.
    gossipsub: gossipsub::Behaviour,
}

/// What a raw peer saw of a node's roster gossip.
#[derive(Debug, Default)]
pub struct GossipSeen {
    /// Topics the node said it subscribes to.
    pub topics: Vec<String>,
    /// Messages received, with their topic.
    pub messages: Vec<(String, Vec<u8>)>,
    /// Whether the node hung up.
    pub closed: bool,
}

/// What a raw peer serving roster requests saw.
#[derive(Debug)]
pub enum Seen {
    /// A roster request arrived (and was answered).
    Request(roster::Request),
    /// The connection to `peer` was closed (by either side).
    Closed(PeerId),
}

/// A bare peer.
pub struct RawPeer {
    swarm: Swarm<RawBehaviour>,
    /// Topics peers announced while [`RawPeer::connect`] drove the swarm.
    announced: Vec<(PeerId, String)>,
}

impl RawPeer {
    /// A peer with `key`.
    pub fn new(key: identity::Keypair) -> anyhow::Result<Self> {
        let proto = || [(StreamProtocol::new(exchange::PROTOCOL), ProtocolSupport::Outbound)];
        let cfg = || request_response::Config::default().with_request_timeout(Duration::from_secs(10));
        let swarm = libp2p::SwarmBuilder::with_existing_identity(key)
            .with_tokio()
            .with_tcp(tcp::Config::default(), noise::Config::new, yamux::Config::default)?
            .with_behaviour(|k| RawBehaviour {
                gossipsub: {
                    let cfg = gossipsub::ConfigBuilder::default()
                        .validation_mode(gossipsub::ValidationMode::Strict)
                        .heartbeat_interval(Duration::from_millis(500))
                        .message_id_fn(|m: &gossipsub::Message| {
                            gossipsub::MessageId::from(staffpass_protocol::signing::Hash::of(&m.data).0.to_vec())
                        })
                        .build()
                        .expect("gossipsub config");
                    gossipsub::Behaviour::new(gossipsub::MessageAuthenticity::Signed(k.clone()), cfg)
                        .expect("gossipsub behaviour")
                },
                kad: {
                    let id = k.public().to_peer_id();
                    let mut c = kad::Config::new(StreamProtocol::new("/staffpass/kad/1"));
                    c.set_query_timeout(Duration::from_secs(5));
                    kad::Behaviour::with_config(id, kad::store::MemoryStore::new(id), c)
                },
                exchange: request_response::Behaviour::new(proto(), cfg()),
                raw: request_response::Behaviour::new(proto(), cfg()),
                roster: request_response::Behaviour::new(
                    [(StreamProtocol::new(roster::PROTOCOL), ProtocolSupport::Full)],
                    cfg(),
                ),
            })?
            .with_swarm_config(|c| c.with_idle_connection_timeout(Duration::from_secs(60)))
            .build();
        Ok(RawPeer { swarm, announced: Vec::new() })
    }

    /// Its PeerId.
    pub fn peer_id(&self) -> PeerId {
        *self.swarm.local_peer_id()
    }

    /// Dials `addr` and waits until the connection is up and has stayed up
    /// through the remote's admission check (`Ok`), or is refused (`Err`).
    pub async fn connect(&mut self, addr: &Multiaddr) -> Result<PeerId, String> {
        self.swarm.dial(addr.clone()).map_err(|e| e.to_string())?;
        let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
        let mut established: Option<PeerId> = None;
        loop {
            let settle = tokio::time::sleep(Duration::from_millis(500));
            tokio::pin!(settle);
            tokio::select! {
                ev = self.swarm.select_next_some() => match ev {
                    SwarmEvent::ConnectionEstablished { peer_id, .. } => established = Some(peer_id),
                    SwarmEvent::ConnectionClosed { peer_id, .. } => return Err(format!("connection to {peer_id} closed by the remote")),
                    SwarmEvent::OutgoingConnectionError { error, .. } => return Err(error.to_string()),
                    SwarmEvent::Behaviour(RawBehaviourEvent::Gossipsub(gossipsub::Event::Subscribed { peer_id, topic })) => {
                        self.announced.push((peer_id, topic.into_string()));
                    }
                    _ => {}
                },
                // Established and not closed within the settle time: admitted.
                _ = &mut settle, if established.is_some() => return established.ok_or_else(|| "no connection".into()),
                _ = tokio::time::sleep_until(deadline) => return Err("timed out".into()),
            }
        }
    }

    /// Sends an exchange request with the node's codec.
    pub async fn exchange(&mut self, peer: PeerId, req: exchange::Request) -> Result<exchange::Response, String> {
        let id = self.swarm.behaviour_mut().exchange.send_request(&peer, req);
        loop {
            match self.swarm.select_next_some().await {
                SwarmEvent::Behaviour(RawBehaviourEvent::Exchange(request_response::Event::Message {
                    message: request_response::Message::Response { request_id, response },
                    ..
                })) if request_id == id => return Ok(response),
                SwarmEvent::Behaviour(RawBehaviourEvent::Exchange(request_response::Event::OutboundFailure {
                    request_id,
                    error,
                    ..
                })) if request_id == id => return Err(error.to_string()),
                _ => {}
            }
        }
    }

    /// Sends a roster request and waits for the answer.
    pub async fn roster(&mut self, peer: PeerId, req: roster::Request) -> Result<roster::Response, String> {
        let id = self.swarm.behaviour_mut().roster.send_request(&peer, req);
        loop {
            match self.swarm.select_next_some().await {
                SwarmEvent::Behaviour(RawBehaviourEvent::Roster(request_response::Event::Message {
                    message: request_response::Message::Response { request_id, response },
                    ..
                })) if request_id == id => return Ok(response),
                SwarmEvent::Behaviour(RawBehaviourEvent::Roster(request_response::Event::OutboundFailure {
                    request_id,
                    error,
                    ..
                })) if request_id == id => return Err(error.to_string()),
                _ => {}
            }
        }
    }

    /// Asks `peer` (reached at `addr`) over Kademlia for the peers closest
    /// to a random key; returns the PeerIds it names.
    pub async fn closest_peers(&mut self, peer: PeerId, addr: Multiaddr) -> Vec<PeerId> {
        self.swarm.behaviour_mut().kad.add_address(&peer, addr);
        let id = self.swarm.behaviour_mut().kad.get_closest_peers(PeerId::random());
        loop {
            if let SwarmEvent::Behaviour(RawBehaviourEvent::Kad(kad::Event::OutboundQueryProgressed {
                id: qid,
                result: kad::QueryResult::GetClosestPeers(r),
                step,
                ..
            })) = self.swarm.select_next_some().await
                && qid == id
                && step.last
            {
                return match r {
                    Ok(ok) => ok.peers.into_iter().map(|p| p.peer_id).collect(),
                    Err(kad::GetClosestPeersError::Timeout { peers, .. }) => {
                        peers.into_iter().map(|p| p.peer_id).collect()
                    }
                };
            }
        }
    }

    /// Writes `bytes` raw on the exchange protocol and returns what comes back.
    pub async fn raw(&mut self, peer: PeerId, bytes: Vec<u8>) -> Result<Vec<u8>, String> {
        let id = self.swarm.behaviour_mut().raw.send_request(&peer, bytes);
        loop {
            match self.swarm.select_next_some().await {
                SwarmEvent::Behaviour(RawBehaviourEvent::Raw(request_response::Event::Message {
                    message: request_response::Message::Response { request_id, response },
                    ..
                })) if request_id == id => return Ok(response),
                SwarmEvent::Behaviour(RawBehaviourEvent::Raw(request_response::Event::OutboundFailure {
                    request_id,
                    error,
                    ..
                })) if request_id == id => return Err(error.to_string()),
                _ => {}
            }
        }
    }

    /// Subscribes to a gossip topic (sent to connected peers at once).
    pub fn subscribe(&mut self, topic: &str) {
        let _ = self.swarm.behaviour_mut().gossipsub.subscribe(&gossipsub::IdentTopic::new(topic));
    }

    /// Drives the peer, collecting what it sees of `peer`'s roster gossip
    /// into `seen`, until `done(seen)` holds (returns true), `peer` hangs
    /// up, or `limit` passes (returns false).
    pub async fn watch_gossip(
        &mut self,
        peer: PeerId,
        seen: &mut GossipSeen,
        limit: Duration,
        mut done: impl FnMut(&GossipSeen) -> bool,
    ) -> bool {
        let deadline = tokio::time::Instant::now() + limit;
        let (early, rest): (Vec<_>, Vec<_>) =
            std::mem::take(&mut self.announced).into_iter().partition(|(p, _)| *p == peer);
        self.announced = rest;
        seen.topics.extend(early.into_iter().map(|(_, t)| t));
        loop {
            if done(seen) {
                return true;
            }
            if seen.closed {
                return false;
            }
            tokio::select! {
                ev = self.swarm.select_next_some() => match ev {
                    SwarmEvent::Behaviour(RawBehaviourEvent::Gossipsub(gossipsub::Event::Subscribed { peer_id, topic }))
                        if peer_id == peer => seen.topics.push(topic.into_string()),
                    SwarmEvent::Behaviour(RawBehaviourEvent::Gossipsub(gossipsub::Event::Message { message, .. })) => {
                        seen.messages.push((message.topic.into_string(), message.data));
                    }
                    SwarmEvent::ConnectionClosed { peer_id, num_established: 0, .. } if peer_id == peer => seen.closed = true,
                    _ => {}
                },
                _ = tokio::time::sleep_until(deadline) => return false,
            }
        }
    }

    /// Publishes distinct junk messages on `topic` as fast as the swarm
    /// takes them until `stop` is set and at least `min` were published;
    /// returns how many were.
    pub async fn flood_gossip(&mut self, topic: &str, stop: &std::sync::atomic::AtomicBool, min: u64) -> u64 {
        let topic = gossipsub::IdentTopic::new(topic);
        let mut sent = 0u64;
        while !stop.load(std::sync::atomic::Ordering::SeqCst) || sent < min {
            let junk = format!("not a roster entry {sent}").into_bytes();
            if self.swarm.behaviour_mut().gossipsub.publish(topic.clone(), junk).is_ok() {
                sent += 1;
            }
            // Let the swarm send them (and read what comes back).
            let _ = tokio::time::timeout(Duration::from_millis(2), self.swarm.select_next_some()).await;
        }
        sent
    }

    /// Hands the peer to a task that answers every roster request with
    /// `answer` and reports what it sees; the task ends when the receiver
    /// is dropped.
    pub fn serve_roster<F>(mut self, mut answer: F) -> mpsc::Receiver<Seen>
    where
        F: FnMut(&roster::Request) -> roster::Response + Send + 'static,
    {
        let (tx, rx) = mpsc::channel(64);
        tokio::spawn(async move {
            loop {
                let seen = match self.swarm.select_next_some().await {
                    SwarmEvent::Behaviour(RawBehaviourEvent::Roster(request_response::Event::Message {
                        message: request_response::Message::Request { request, channel, .. },
                        ..
                    })) => {
                        let response = answer(&request);
                        let _ = self.swarm.behaviour_mut().roster.send_response(channel, response);
                        Seen::Request(request)
                    }
                    SwarmEvent::ConnectionClosed { peer_id, num_established: 0, .. } => Seen::Closed(peer_id),
                    _ => continue,
                };
                if tx.send(seen).await.is_err() {
                    return;
                }
            }
        });
        rx
    }
}
