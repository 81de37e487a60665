//! The integration tests of `protocol`, as one test binary (one link, one
//! process start per run); each module is one former test file.

#![allow(clippy::unwrap_used)] // test code: a failed unwrap is a failed test

mod common;
mod decoding;
mod fhir;
mod roster_chain;
mod sdjwt;
mod signing;
mod smoke;
mod vectors;
mod verify_bundle;
mod verify_messages;
