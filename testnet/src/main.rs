//! staffpass-testnet (see issue 7): local networks, scenarios and
//! benchmarks (`bench`, issue 8).

mod bench;

use clap::{Parser, Subcommand};

#[derive(Parser, Debug)]
#[command(name = "staffpass-testnet", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Run every benchmark figure beside its baseline, print one table
    /// (see BENCHMARKS.md).
    Bench(bench::Args),
}

fn main() -> anyhow::Result<()> {
    match Cli::parse().command {
        Command::Bench(args) => bench::run(args),
    }
}
