//! # staffpass-admin
//!
//! The command line for agreement stewards and trust admins. Stewards
//! make keys, create agreements and propose, sign, verify and submit
//! roster changes, offline and one file at a time; every check is the
//! `staffpass-protocol` rule the nodes use. Admins and HR operate their own
//! node through its mTLS API (`staffpass_api::Client`, one typed method per route).
//!
//! `main.rs` only parses the command line, runs it, and maps the error to
//! an exit code ([`error::Exit`]).

pub mod agreement;
pub mod audit;
pub mod cert;
pub mod claims;
pub mod cli;
pub mod connect;
pub mod consent;
pub mod credential;
pub mod error;
pub mod files;
pub mod keys;
pub mod node;
pub mod output;
pub mod parse;
pub mod received;
pub mod roster;
pub mod staff;
