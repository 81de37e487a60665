//! A cap on the incoming connections still in their handshake from one IP
//! address. libp2p's `connection_limits` caps them only in total, so one
//! host holding that many half-open connections would keep every member
//! from connecting in until they time out; with this cap it holds only its
//! own share.

use std::collections::HashMap;
use std::convert::Infallible;
use std::net::IpAddr;
use std::task::{Context, Poll};

use libp2p::PeerId;
use libp2p::core::transport::PortUse;
use libp2p::core::{Endpoint, Multiaddr};
use libp2p::multiaddr::Protocol;
use libp2p::swarm::{
    ConnectionDenied, ConnectionId, FromSwarm, NetworkBehaviour, THandler, THandlerInEvent, THandlerOutEvent, ToSwarm,
    dummy,
};

/// Denies an incoming connection whose IP address already has `max`
/// connections in their handshake.
pub struct Behaviour {
    max: usize,
    pending: HashMap<ConnectionId, IpAddr>,
    per_ip: HashMap<IpAddr, usize>,
}

/// The per-IP cap on handshakes in progress was reached.
#[derive(Debug, Clone, Copy, thiserror::Error)]
#[error("at most {limit} incoming connections in their handshake are allowed per IP address")]
pub struct Exceeded {
    /// The cap.
    pub limit: usize,
}

/// The IP address of a multiaddr, if it starts with one.
fn ip_of(addr: &Multiaddr) -> Option<IpAddr> {
    match addr.iter().next()? {
        Protocol::Ip4(ip) => Some(IpAddr::V4(ip)),
        Protocol::Ip6(ip) => Some(IpAddr::V6(ip).to_canonical()),
        _ => None,
    }
}

impl Behaviour {
    /// At most `max` handshakes in progress per IP address.
    pub fn new(max: usize) -> Self {
        Behaviour { max, pending: HashMap::new(), per_ip: HashMap::new() }
    }

    fn forget(&mut self, id: ConnectionId) {
        if let Some(ip) = self.pending.remove(&id)
            && let Some(n) = self.per_ip.get_mut(&ip)
        {
            *n = n.saturating_sub(1);
            if *n == 0 {
                self.per_ip.remove(&ip);
            }
        }
    }

    /// Handshakes in progress from `ip`.
    pub fn pending_from(&self, ip: &IpAddr) -> usize {
        self.per_ip.get(ip).copied().unwrap_or(0)
    }
}

impl NetworkBehaviour for Behaviour {
    type ConnectionHandler = dummy::ConnectionHandler;
    type ToSwarm = Infallible;

    fn handle_pending_inbound_connection(
        &mut self,
        id: ConnectionId,
        _local: &Multiaddr,
        remote: &Multiaddr,
    ) -> Result<(), ConnectionDenied> {
        let Some(ip) = ip_of(remote) else { return Ok(()) };
        if self.pending_from(&ip) >= self.max {
            return Err(ConnectionDenied::new(Exceeded { limit: self.max }));
        }
        self.pending.insert(id, ip);
        *self.per_ip.entry(ip).or_default() += 1;
        Ok(())
    }

    fn handle_established_inbound_connection(
        &mut self,
        id: ConnectionId,
        _: PeerId,
        _: &Multiaddr,
        _: &Multiaddr,
    ) -> Result<THandler<Self>, ConnectionDenied> {
        self.forget(id);
        Ok(dummy::ConnectionHandler)
    }

    fn handle_established_outbound_connection(
        &mut self,
        _: ConnectionId,
        _: PeerId,
        _: &Multiaddr,
        _: Endpoint,
        _: PortUse,
    ) -> Result<THandler<Self>, ConnectionDenied> {
        Ok(dummy::ConnectionHandler)
    }

    fn on_swarm_event(&mut self, event: FromSwarm) {
        // A handshake that failed, or a connection another behaviour denied.
        if let FromSwarm::ListenFailure(f) = event {
            self.forget(f.connection_id);
        }
    }

    fn on_connection_handler_event(&mut self, _: PeerId, _: ConnectionId, event: THandlerOutEvent<Self>) {
        match event {}
    }

    fn poll(&mut self, _: &mut Context<'_>) -> Poll<ToSwarm<Self::ToSwarm, THandlerInEvent<Self>>> {
        Poll::Pending
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn from(ip: &str) -> Multiaddr {
        format!("/ip4/{ip}/tcp/4000").parse().unwrap_or_else(|_| Multiaddr::empty())
    }

    #[test]
    fn each_ip_has_its_own_share_of_handshakes() {
        let mut b = Behaviour::new(2);
        let local = from("127.0.0.1");
        let (a1, a2, a3) =
            (ConnectionId::new_unchecked(1), ConnectionId::new_unchecked(2), ConnectionId::new_unchecked(3));
        assert!(b.handle_pending_inbound_connection(a1, &local, &from("10.0.0.1")).is_ok());
        assert!(b.handle_pending_inbound_connection(a2, &local, &from("10.0.0.1")).is_ok());
        let denied = b.handle_pending_inbound_connection(a3, &local, &from("10.0.0.1"));
        assert!(denied.is_err_and(|e| e.downcast_ref::<Exceeded>().is_some()));
        let other = ConnectionId::new_unchecked(4);
        assert!(b.handle_pending_inbound_connection(other, &local, &from("10.0.0.2")).is_ok(), "another host");
        // One handshake completes: its place is free again.
        assert!(b.handle_established_inbound_connection(a1, PeerId::random(), &local, &from("10.0.0.1")).is_ok());
        assert_eq!(b.pending_from(&"10.0.0.1".parse().unwrap_or(IpAddr::from([0, 0, 0, 0]))), 1);
        assert!(b.handle_pending_inbound_connection(a3, &local, &from("10.0.0.1")).is_ok());
    }
}
