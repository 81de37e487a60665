//! The node's local HTTPS API: infrastructure and client.
//!
//! - [`server`]: the TLS accept loop with client-certificate authentication,
//!   connection limits, body limits and graceful shutdown;
//! - [`auth`]: roles (`admin` ⊇ `hr` ⊇ `read-only`), the [`Caller`] read from
//!   the verified client certificate, and route guards;
//! - [`error`]: the one JSON error shape of every API error;
//! - [`client`]: the client used by `staffpass-admin` and the tests.
//!
//! The node's certificates come from [`crate::tls`].

pub mod auth;
pub mod client;
pub mod error;
pub mod routes;
pub mod server;

pub use auth::{Caller, Role, require};
pub use client::{Client, ClientError};
pub use error::{ApiError, Json};
pub use server::{serve, serve_with};
