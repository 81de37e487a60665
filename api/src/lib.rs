//! staffpass-api: the node's local HTTPS API, typed once.
//!
//! Both sides depend on this crate and on nothing of each other: the node
//! (`staffpass-node`) serves these types, and `staffpass-admin`, the tests
//! and the testnet call the node through [`Client`], which has one typed
//! method per route. The crate holds:
//!
//! - [`route`]: every route's path template and the role it needs;
//! - one module per resource with its request and response types
//!   ([`status`], [`agreements`], [`staff`], [`credentials`], [`consents`],
//!   [`received`], [`outbox`], [`audit`]);
//! - [`error`]: the one JSON error shape and its codes;
//! - [`Role`]: the roles a client certificate can carry;
//! - [`data_dir`]: where a node's data directory keeps its certificates, so
//!   a client on the same machine finds them without the node;
//! - [`tls`]: the rustls client configuration;
//! - [`openapi`]: the OpenAPI 3.1 document generated from these types
//!   (committed as `api/openapi.json`, served at `GET /v1/openapi.json`),
//!   with [`schema`]: what the ids and codes held as strings look like.
//!
//! It depends on `staffpass-protocol` for ids and signed objects, and never
//! on the node, libp2p or sled.

pub mod agreements;
pub mod audit;
pub mod client;
pub mod consents;
pub mod credentials;
pub mod data_dir;
pub mod error;
pub mod openapi;
pub mod outbox;
pub mod query;
pub mod received;
pub mod role;
pub mod route;
pub mod schema;
pub mod staff;
pub mod status;
pub mod tls;

pub use client::{Client, ClientError, Download};
pub use error::{ErrorBody, ErrorInfo};
pub use role::{Role, UnknownRole};
