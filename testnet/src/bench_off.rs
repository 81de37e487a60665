//! `staffpass-testnet bench` in a build without the `bench` feature: the
//! benchmark's fixtures come from the protocol's testkit, which ordinary
//! builds leave out, so this says how to get a build that has it.

use std::ffi::OsString;

/// `bench` arguments, unread in this build.
#[derive(clap::Args, Debug, Clone)]
pub struct Args {
    /// The benchmark's arguments (see `--features bench`).
    #[arg(trailing_var_arg = true, allow_hyphen_values = true, hide = true)]
    pub rest: Vec<OsString>,
}

/// Refuses with the command that builds the benchmark.
pub fn run(_args: Args) -> anyhow::Result<()> {
    anyhow::bail!(
        "this staffpass-testnet was built without the benchmark: run \
         `cargo run --release -p staffpass-testnet --features bench -- bench` (see BENCHMARKS.md)"
    )
}
