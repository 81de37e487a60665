//! `audit tail|verify`: the node's hash-chained audit log.

use std::collections::VecDeque;

use clap::Subcommand;
use staffpass_api::audit::{AuditQuery, Entry, Verification};

use crate::connect::{NodeArgs, block_on};
use crate::error::{Error, Result};
use crate::output::{self, Format, Table, or_dash};

/// Entries asked for per request while reading the log.
const PAGE: usize = 10_000;

/// Audit commands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// The last entries of the audit log.
    Tail {
        /// How many.
        #[arg(short = 'n', long = "lines", value_name = "N", default_value_t = 20)]
        lines: usize,
        #[command(flatten)]
        node: NodeArgs,
    },
    /// Check the audit log's whole hash chain and signed checkpoints (exit 3
    /// if broken).
    Verify {
        #[command(flatten)]
        node: NodeArgs,
    },
}

/// Runs an audit command.
pub fn run(cmd: Command, format: Format) -> Result<()> {
    match cmd {
        Command::Tail { lines, node } => {
            let client = node.client()?;
            let last = block_on(async {
                // Reads forward from the start, keeping the last `lines`;
                // entries already seen (by seq) are skipped, so it works
                // whether `since` is inclusive or not.
                let mut keep: VecDeque<Entry> = VecDeque::new();
                let mut since = 0u64;
                let mut seen: Option<u64> = None;
                loop {
                    let page = client.audit(AuditQuery { since, limit: PAGE }).await?;
                    let mut new = 0;
                    for e in page {
                        if seen.is_some_and(|prev| e.seq <= prev) {
                            continue;
                        }
                        seen = Some(e.seq);
                        new += 1;
                        keep.push_back(e);
                        if keep.len() > lines {
                            keep.pop_front();
                        }
                    }
                    match seen {
                        Some(s) if new > 0 && s >= since => since = s,
                        _ => return Ok(keep),
                    }
                }
            })?;
            let entries: Vec<Entry> = last.into();
            if format.is_json() {
                return output::json(&entries);
            }
            print_entries(&entries, "The audit log is empty.")
        }
        Command::Verify { node } => {
            let client = node.client()?;
            let verdict = block_on(async { Ok(client.verify_audit().await?) })?;
            if format.is_json() {
                output::json(&verdict)?;
            }
            match verdict {
                Verification::Intact { report, .. } => {
                    if format.is_json() {
                        return Ok(());
                    }
                    output::line(format!(
                        "The audit log verifies: {} entries, head entry {} ({}).",
                        report.entries, report.head.seq, report.head.hash
                    ))?;
                    let Some(c) = &report.latest_checkpoint else {
                        return output::line("No signed checkpoint yet: the entries rest on the hash chain alone.");
                    };
                    output::line(format!(
                        "Signed checkpoints checked: {}; the latest vouches for entries 1 to {} (signed {} by {}).",
                        report.checkpoints, c.seq, c.at, c.key
                    ))?;
                    if c.seq < report.head.seq {
                        output::line(format!(
                            "Entries {} to {} rest on the hash chain alone until the next checkpoint.",
                            c.seq + 1,
                            report.head.seq
                        ))?;
                    }
                    Ok(())
                }
                Verification::Broken { broken_at, why, .. } => {
                    Err(Error::AuditBroken { seq: broken_at.to_string(), why })
                }
            }
        }
    }
}

/// Prints audit entries as a table.
pub fn print_entries(entries: &[Entry], empty: &str) -> Result<()> {
    let mut t = Table::new(&["seq", "at", "actor", "action", "about", "reason"]);
    for e in entries {
        let ev = &e.event;
        let about: Vec<String> = [ev.staff.as_ref().map(ToString::to_string), ev.org.as_ref().map(ToString::to_string)]
            .into_iter()
            .chain([ev.object.clone()])
            .flatten()
            .collect();
        t.row([
            e.seq.to_string(),
            e.at.to_string(),
            ev.actor.clone(),
            ev.action.clone(),
            about.join(" "),
            or_dash(ev.reason.as_ref()),
        ]);
    }
    t.print_or(empty)
}
