//! How the outbox reaches other nodes: send one exchange request to one
//! node, get its response. The libp2p `Network` implements it in
//! production; the testkit's loopback hands the request straight to
//! another [`super::Exchange`] in the same process.

use std::future::Future;

use staffpass_protocol::NodeId;
use staffpass_protocol::wire::exchange::{Request, Response};

/// Sends exchange requests to nodes.
pub trait Transport: Clone + Send + Sync + 'static {
    /// Why a request got no response.
    type Error: std::fmt::Display + Send;

    /// Sends `request` to the node `to` and waits for its response.
    fn exchange(&self, to: &NodeId, request: Request) -> impl Future<Output = Result<Response, Self::Error>> + Send;

    /// Lets the nodes of receivers that are owed an erasure or a
    /// revocation but are no longer active members (suspended, removed)
    /// be reached, with their roster address hints; replaces the previous
    /// set. A transport without a gate has nothing to do.
    fn owe(&self, nodes: Vec<(NodeId, Vec<String>)>) -> impl Future<Output = ()> + Send {
        let _ = nodes;
        async {}
    }
}
