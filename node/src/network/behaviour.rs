//! The composed libp2p behaviour: who may connect, how peers are found,
//! and the staffpass protocols.

use std::time::Duration;

use libp2p::swarm::NetworkBehaviour;
use libp2p::swarm::behaviour::toggle::Toggle;
use libp2p::{
    StreamProtocol, allow_block_list, connection_limits, gossipsub, identify, identity, mdns, memory_connection_limits,
    ping, request_response,
};
use staffpass_protocol::signing::Hash;
use staffpass_protocol::wire;

use super::codec::{ExchangeCodec, RosterCodec};
use crate::config;

/// The identify protocol version string.
pub const IDENTIFY_PROTOCOL: &str = "/staffpass/id/1";

/// Every behaviour of a staffpass node.
#[derive(NetworkBehaviour)]
pub struct Behaviour {
    /// Only signatories connect: peers not in this set are denied right
    /// after the handshake authenticates their PeerId.
    pub gate: allow_block_list::Behaviour<allow_block_list::AllowedPeers>,
    /// Connection limits: handshakes in progress (before the PeerId is
    /// known), established connections per peer and in total.
    pub limits: connection_limits::Behaviour,
    /// Handshakes in progress per IP address.
    pub per_ip: super::per_ip::Behaviour,
    /// No new connections while the process uses too much memory.
    pub memory: memory_connection_limits::Behaviour,
    /// Exchange of listen addresses and protocols.
    pub identify: identify::Behaviour,
    /// Liveness.
    pub ping: ping::Behaviour,
    /// Roster entries, one topic per agreement.
    pub gossipsub: gossipsub::Behaviour,
    /// LAN discovery (testnets), off by default.
    pub mdns: Toggle<mdns::tokio::Behaviour>,
    /// `/staffpass/roster/1`: anti-entropy.
    pub roster: request_response::Behaviour<RosterCodec>,
    /// `/staffpass/exchange/1`: passports, withdrawals, revocations.
    pub exchange: request_response::Behaviour<ExchangeCodec>,
}

/// Why the behaviour could not be built.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// Gossipsub configuration refused.
    #[error("gossipsub: {0}")]
    Gossipsub(String),
    /// mDNS could not start.
    #[error("mdns: {0}")]
    Mdns(#[from] std::io::Error),
}

impl Behaviour {
    /// Builds the behaviour for `key` with `cfg`.
    pub fn new(key: &identity::Keypair, cfg: &config::Network) -> Result<Self, Error> {
        let peer_id = key.public().to_peer_id();

        let gossip_cfg = gossipsub::ConfigBuilder::default()
            .validation_mode(gossipsub::ValidationMode::Strict)
            .validate_messages()
            .max_transmit_size(wire::roster::MAX_ENTRY)
            .heartbeat_interval(Duration::from_millis(500))
            .message_id_fn(|m: &gossipsub::Message| gossipsub::MessageId::from(Hash::of(&m.data).0.to_vec()))
            .build()
            .map_err(|e| Error::Gossipsub(e.to_string()))?;
        let gossipsub = gossipsub::Behaviour::new(gossipsub::MessageAuthenticity::Signed(key.clone()), gossip_cfg)
            .map_err(|e| Error::Gossipsub(e.to_string()))?;

        let mdns = if cfg.mdns { Some(mdns::tokio::Behaviour::new(mdns::Config::default(), peer_id)?) } else { None };

        let rr_cfg = |timeout| {
            request_response::Config::default()
                .with_request_timeout(Duration::from_secs(timeout))
                .with_max_concurrent_streams(cfg.max_concurrent_streams)
        };
        let full = request_response::ProtocolSupport::Full;
        Ok(Behaviour {
            gate: allow_block_list::Behaviour::default(),
            limits: connection_limits::Behaviour::new(
                connection_limits::ConnectionLimits::default()
                    .with_max_pending_incoming(Some(cfg.max_pending_incoming))
                    .with_max_established_per_peer(Some(cfg.max_connections_per_peer))
                    .with_max_established(Some(cfg.max_connections)),
            ),
            per_ip: super::per_ip::Behaviour::new(cfg.max_pending_incoming_per_ip as usize),
            memory: memory_connection_limits::Behaviour::with_max_percentage(f64::from(cfg.max_memory_percent) / 100.0),
            identify: identify::Behaviour::new(
                identify::Config::new(IDENTIFY_PROTOCOL.into(), key.public())
                    .with_agent_version(format!("staffpass-node/{}", env!("CARGO_PKG_VERSION"))),
            ),
            ping: ping::Behaviour::default(),
            gossipsub,
            mdns: mdns.into(),
            roster: request_response::Behaviour::new(
                [(StreamProtocol::new(wire::roster::PROTOCOL), full.clone())],
                rr_cfg(cfg.request_timeout_secs),
            ),
            exchange: request_response::Behaviour::new(
                [(StreamProtocol::new(wire::exchange::PROTOCOL), full)],
                rr_cfg(cfg.request_timeout_secs),
            ),
        })
    }
}
