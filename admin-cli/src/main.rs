//! `staffpass-admin`: parse, run, map the outcome to an exit code.

use std::process::ExitCode;

use clap::Parser;
use staffpass_admin::cli::{self, Cli};
use staffpass_admin::error::Exit;

fn main() -> ExitCode {
    // clap prints help and version (exit 0) and usage errors (exit 2) itself.
    let cli = Cli::parse();
    match cli::run(cli) {
        Ok(()) => Exit::Ok.into(),
        Err(e) => {
            eprintln!("staffpass-admin: {}", e.one_line());
            e.exit().into()
        }
    }
}
