//! `staffpass-admin`: parse, run, map the outcome to an exit code.

use std::process::ExitCode;

use clap::Parser;
use staffpass_admin::cli::{self, Cli};
use staffpass_admin::error::{Error, Exit};

fn main() -> ExitCode {
    // clap prints help and version (exit 0) and usage errors (exit 2) itself.
    let cli = Cli::parse();
    match cli::run(cli) {
        Ok(()) => Exit::Ok.into(),
        // The reader went away (e.g. `| head`): nothing more to say.
        Err(Error::Output(e)) if e.kind() == std::io::ErrorKind::BrokenPipe => Exit::Ok.into(),
        Err(e) => {
            eprintln!("staffpass-admin: {}", e.one_line());
            e.exit().into()
        }
    }
}
