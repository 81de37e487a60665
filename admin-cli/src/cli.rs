//! The command tree. Doc comments are the help text; completions and the
//! man page are generated from these same definitions.

use std::path::PathBuf;

use clap::{CommandFactory, Parser, Subcommand};

use crate::error::{Error, Result};
use crate::output::{self, Format};
use crate::{agreement, audit, cert, consent, credential, keys, node, received, roster, staff};

/// What the exit codes mean, shown at the end of `--help`.
pub const EXIT_CODES: &str = "\
Exit codes:
  0  done
  1  error: a file could not be read or written, the node could not be reached, or it failed
  2  usage: the command line, or an input file or key file, is not what the command takes
     (e.g. a truncated change file, an issuer key given as a steward key, no --yes without a terminal)
  3  a check failed or was refused: a roster that does not verify, a change that does not extend
     the chain or is for another agreement, a key that is not a steward, or a request the node
     refused (its error code and message are shown)

Node connection (for commands that talk to a node): --node URL, --ca, --cert, --key, or the
environment (STAFFPASS_NODE, STAFFPASS_CA, STAFFPASS_CERT, STAFFPASS_KEY), or --data-dir of a
node on this machine (STAFFPASS_DATA_DIR), or a TOML --config file (STAFFPASS_ADMIN_CONFIG).";

/// staffpass-admin: keys, agreements and rosters for agreement stewards,
/// and the operation of a trust's staffpass node.
///
/// Stewards work offline, files in and files out: `key gen`, `agreement
/// init`, `roster propose`, `roster sign`, `roster verify`, then `roster
/// submit` to any member node. Trust admins and HR operate their own node
/// through its API with the client certificate from `staffpass-node init`.
#[derive(Debug, Parser)]
#[command(name = "staffpass-admin", version, about, long_about, after_long_help = EXIT_CODES)]
pub struct Cli {
    /// Print JSON instead of tables and text (for scripts).
    #[arg(long, global = true)]
    pub json: bool,
    #[command(subcommand)]
    pub command: Command,
}

/// The command groups.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Make and show keys (steward, issuer, staff).
    #[command(subcommand)]
    Key(keys::Command),
    /// Create an agreement (offline), or list and show those a node holds.
    #[command(subcommand)]
    Agreement(agreement::Command),
    /// Propose, sign, verify and submit roster changes.
    #[command(subcommand)]
    Roster(roster::Command),
    /// A node's status, peers, outbox and metrics.
    #[command(subcommand)]
    Node(node::Command),
    /// Staff records: import, list, show, activity.
    #[command(subcommand)]
    Staff(staff::Command),
    /// Passport credentials: issue, show, revoke.
    #[command(subcommand)]
    Credential(credential::Command),
    /// Sharing consents: grant, sign, withdraw, list, show.
    #[command(subcommand)]
    Consent(consent::Command),
    /// Passports received from other trusts.
    #[command(subcommand)]
    Received(received::Command),
    /// The node's audit log: tail, verify.
    #[command(subcommand)]
    Audit(audit::Command),
    /// API client certificates: make your key and a signing request.
    #[command(subcommand)]
    Cert(cert::Command),
    /// Print a shell completion script (e.g. `staffpass-admin completions bash > /etc/bash_completion.d/staffpass-admin`).
    Completions {
        /// The shell.
        #[arg(value_enum)]
        shell: clap_complete::Shell,
    },
    /// Print the man page, or write one page per command into a directory.
    Man {
        /// Write staffpass-admin.1 and a page per subcommand here instead.
        #[arg(long, value_name = "DIR")]
        out_dir: Option<PathBuf>,
    },
}

/// The clap command, for completions, the man page and tests.
pub fn command() -> clap::Command {
    Cli::command()
}

/// Runs a parsed command line.
pub fn run(cli: Cli) -> Result<()> {
    let format = Format::from_flag(cli.json);
    match cli.command {
        Command::Key(c) => keys::run(c, format),
        Command::Agreement(c) => agreement::run(c, format),
        Command::Roster(c) => roster::run(c, format),
        Command::Node(c) => node::run(c, format),
        Command::Staff(c) => staff::run(c, format),
        Command::Credential(c) => credential::run(c, format),
        Command::Consent(c) => consent::run(c, format),
        Command::Received(c) => received::run(c, format),
        Command::Audit(c) => audit::run(c, format),
        Command::Cert(c) => cert::run(c, format),
        Command::Completions { shell } => {
            let mut out = Vec::new();
            clap_complete::generate(shell, &mut command(), "staffpass-admin", &mut out);
            output::print(&String::from_utf8_lossy(&out))
        }
        Command::Man { out_dir } => match out_dir {
            Some(dir) => {
                std::fs::create_dir_all(&dir).map_err(|source| Error::Write { path: dir.clone(), source })?;
                clap_mangen::generate_to(command(), &dir)
                    .map_err(|source| Error::Write { path: dir.clone(), source })?;
                output::line(format!("Wrote the man pages to {}.", dir.display()))
            }
            None => {
                let mut out = Vec::new();
                clap_mangen::Man::new(command()).render(&mut out).map_err(Error::Output)?;
                output::print(&String::from_utf8_lossy(&out))
            }
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_command_tree_is_consistent() {
        command().debug_assert();
    }
}
