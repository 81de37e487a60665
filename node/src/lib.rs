//! # staffpass-node
//!
//! The daemon a trust runs: configuration, key files, encrypted storage
//! (sled), the peer-to-peer network (rust-libp2p), roster sync, the
//! passport flows and the local HTTPS API. `main.rs` only parses
//! arguments, loads config, starts a [`node::Node`] and waits for a signal.

pub mod api;
pub mod audit;
pub mod config;
pub mod flows;
pub mod keys;
pub mod limits;
pub mod metrics;
pub mod misbehaviour;
pub mod network;
pub mod node;
pub mod rosters;
pub mod store;
pub mod tls;
