//! `audit tail|verify`: the node's hash-chained audit log.

use std::collections::VecDeque;

use clap::Subcommand;
use serde_json::Value;
use staffpass_node::api::ClientError;

use crate::connect::{NodeArgs, block_on};
use crate::error::{Error, Result};
use crate::output::{self, Format, Table, cell};

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
    /// Check the whole hash chain of the audit log (exit 3 if broken).
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
                let mut keep: VecDeque<Value> = VecDeque::new();
                let mut since = 0u64;
                let mut seen: Option<u64> = None;
                loop {
                    let page: Vec<Value> = client.get_json(&format!("/v1/audit?since={since}&limit={PAGE}")).await?;
                    let mut new = 0;
                    for e in page {
                        let seq = e["seq"].as_u64();
                        if let (Some(s), Some(prev)) = (seq, seen)
                            && s <= prev
                        {
                            continue;
                        }
                        seen = seq.or(seen);
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
            let entries: Vec<Value> = last.into();
            if format.is_json() {
                return output::json(&entries);
            }
            print_entries(&entries, "The audit log is empty.")
        }
        Command::Verify { node } => {
            let client = node.client()?;
            let result: std::result::Result<Value, ClientError> =
                block_on(async { Ok(client.get_json("/v1/audit/verify").await) })?;
            match result {
                Ok(v) => {
                    if format.is_json() {
                        return output::json(&v);
                    }
                    let report = &v["report"];
                    let detail = format!(
                        "{} entries, head entry {} ({})",
                        cell(&report["entries"]),
                        cell(&report["head"]["seq"]),
                        cell(&report["head"]["hash"])
                    );
                    output::line(format!("The audit log verifies: {detail}."))
                }
                Err(ClientError::Status { status, message, .. }) if status.as_u16() == 409 => {
                    let v: Value = serde_json::from_str(&message).unwrap_or(Value::Null);
                    if format.is_json() {
                        output::json(&v)?;
                    }
                    Err(Error::AuditBroken { seq: cell(&v["broken_at"]), why: cell(&v["why"]) })
                }
                Err(e) => Err(e.into()),
            }
        }
    }
}

/// Prints audit entries as a table.
pub fn print_entries(entries: &[Value], empty: &str) -> Result<()> {
    let mut t = Table::new(&["seq", "at", "actor", "action", "about", "reason"]);
    for e in entries {
        // The event's fields sit under `event` (flat entries are read too).
        let ev = e.get("event").filter(|v| v.is_object()).unwrap_or(e);
        let about: Vec<String> =
            ["staff", "org", "object"].iter().filter(|k| !ev[**k].is_null()).map(|k| cell(&ev[*k])).collect();
        t.row([
            cell(&e["seq"]),
            cell(e.get("at").unwrap_or(&Value::Null)),
            cell(&ev["actor"]),
            cell(&ev["action"]),
            about.join(" "),
            cell(&ev["reason"]),
        ]);
    }
    t.print_or(empty)
}
