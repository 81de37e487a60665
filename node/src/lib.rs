//! # staffpass-node
//!
//! The daemon a trust runs: configuration, key files, encrypted storage
//! (sled), the peer-to-peer network (rust-libp2p), roster sync, the
//! exchange service and its workers, and the local HTTPS API. `main.rs`
//! only parses arguments, loads config, starts a [`node::Node`] and waits
//! for a signal.
//!
//! The parts, what each owns and one consent's path through them are
//! described in `docs/architecture.md`. In short: [`exchange::Exchange`]
//! (synchronous; store, audit, rosters and [`clock::Clock`] injected),
//! its workers over [`exchange::Transport`], [`sync`], the
//! [`network`] event loop, the [`api`], and the composition root
//! [`node::Builder`], which nothing else imports. With the `testkit`
//! feature (tests only), [`testkit`] runs exchange services in memory.

pub mod api;
pub mod audit;
pub mod backup;
pub mod clock;
pub mod config;
pub mod exchange;
pub mod keys;
pub mod limits;
pub mod metrics;
pub mod misbehaviour;
pub mod network;
pub mod node;
pub mod rosters;
pub mod store;
pub mod sync;
pub mod task;
#[cfg(feature = "testkit")]
pub mod testkit;
pub mod tls;
