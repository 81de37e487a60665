//! The node's local HTTPS API: infrastructure and client.
//!
//! - [`auth`]: roles (`admin` ⊇ `hr` ⊇ `read-only`), the [`Caller`] read from
//!   the verified client certificate, and route guards;
//! - [`error`]: the one JSON error shape of every API error.

pub mod auth;
pub mod error;

pub use auth::{Caller, Role, require};
pub use error::{ApiError, Json};
