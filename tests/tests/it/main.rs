//! The integration tests of `tests`, as one test binary (one link, one
//! process start per run); each module is one former test file.

#![allow(clippy::unwrap_used)] // test code: a failed unwrap is a failed test

mod audit;
mod backup;
mod exchange;
mod hostile;
mod network;
mod standards;
mod standing;
