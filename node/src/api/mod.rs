//! The node's local HTTPS API: the server side.
//!
//! - [`server`]: the TLS accept loop with client-certificate authentication,
//!   connection limits, body limits and graceful shutdown;
//! - [`auth`]: roles (`admin` ⊇ `hr` ⊇ `read-only`), the [`Caller`] read from
//!   the verified client certificate, and route guards;
//! - [`error`]: the one JSON error shape of every API error;
//! - [`routes`]: every route, grouped by role behind one auth layer each,
//!   with one module per resource.
//!
//! The request and response types of every route, the route paths, the
//! OpenAPI document and the client are in `staffpass-api`.
//!
//! The node's certificates come from [`crate::tls`].

pub mod auth;
pub mod error;
pub mod public;
pub mod routes;
pub mod server;

pub use auth::{Caller, Role, require};
pub use error::{ApiError, Json};
pub use server::{serve, serve_with};
