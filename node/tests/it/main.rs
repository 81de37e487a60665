//! The integration tests of `node`, as one test binary (one link, one
//! process start per run); each module is one former test file.

#![allow(clippy::unwrap_used)] // test code: a failed unwrap is a failed test

mod api_tls;
mod audit_log;
mod cli;
mod client_certs;
mod exchange;
mod export;
mod fuzz_seeds;
mod keys_files;
mod store_at_rest;
mod store_corruption;
mod store_sled;
