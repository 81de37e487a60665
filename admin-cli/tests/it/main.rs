//! The integration tests of `admin-cli`, as one test binary (one link, one
//! process start per run); each module is one former test file.

#![allow(clippy::unwrap_used)] // test code: a failed unwrap is a failed test

mod cert;
mod common;
mod connection;
mod e2e;
mod help;
mod offline;
mod rotation;
