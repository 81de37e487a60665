//! `node status|peers|outbox|metrics`: how a node is doing.

use clap::Subcommand;
use serde_json::Value;

use crate::connect::{NodeArgs, block_on};
use crate::error::Result;
use crate::output::{self, Fields, Format, Table, cell};

/// Node commands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// The node's organisation, identity, issuer key, connections,
    /// agreements and alarms.
    Status {
        #[command(flatten)]
        node: NodeArgs,
    },
    /// The member nodes this node knows of, and which are connected.
    Peers {
        #[command(flatten)]
        node: NodeArgs,
    },
    /// Messages waiting for delivery (offers, withdrawals, revocations).
    Outbox {
        #[command(flatten)]
        node: NodeArgs,
    },
    /// The node's Prometheus metrics, as text.
    Metrics {
        #[command(flatten)]
        node: NodeArgs,
    },
}

/// Runs a node command.
pub fn run(cmd: Command, format: Format) -> Result<()> {
    match cmd {
        Command::Status { node } => {
            let client = node.client()?;
            let s: Value = block_on(async { Ok(client.get_json("/v1/status").await?) })?;
            if format.is_json() {
                return output::json(&s);
            }
            Fields::new()
                .add("node", client.base_url())
                .add("organisation", cell(&s["org"]))
                .add("peer id", cell(&s["peer_id"]))
                .add("issuer key", cell(&s["issuer_key"]))
                .add("listening on", cell(&s["listen_addrs"]))
                .add("connected peers", cell(&s["connected_peers"]))
                .add("outbox pending", cell(&s["outbox_pending"]))
                .add("version", cell(&s["version"]))
                .print()?;
            let mut t = Table::new(&["agreement", "head", "members", "valid until", "this trust"]);
            for a in s["agreements"].as_array().into_iter().flatten() {
                t.row([
                    cell(&a["id"]),
                    cell(&a["seq"]),
                    cell(&a["active_members"]),
                    format!(
                        "{}{}",
                        cell(&a["valid_until"]),
                        if a["fresh"].as_bool() == Some(false) { " (EXPIRED)" } else { "" }
                    ),
                    a["member_status"].as_str().unwrap_or("not a member").to_owned(),
                ]);
            }
            output::line("")?;
            t.print_or("No agreements yet.")?;
            let alarms = s["alarms"].as_array().map(Vec::len).unwrap_or(0);
            if alarms > 0 {
                output::line(format!(
                    "\nALARM: {alarms} roster equivocation(s): see `staffpass-admin node status --json` and tell the stewards."
                ))?;
            }
            Ok(())
        }
        Command::Peers { node } => {
            let client = node.client()?;
            let peers: Vec<Value> = block_on(async { Ok(client.get_json("/v1/peers").await?) })?;
            if format.is_json() {
                return output::json(&peers);
            }
            let mut t = Table::new(&["peer id", "organisation", "connected"]);
            for p in &peers {
                let connected = if p["connected"].as_bool() == Some(true) { "yes" } else { "no" };
                t.row([cell(&p["peer_id"]), cell(&p["org"]), connected.into()]);
            }
            t.print_or("No peers known: this node is not yet in an agreement with other members.")
        }
        Command::Outbox { node } => {
            let client = node.client()?;
            let items: Vec<Value> = block_on(async { Ok(client.get_json("/v1/outbox").await?) })?;
            if format.is_json() {
                return output::json(&items);
            }
            let mut t = Table::new(&["message", "kind", "to", "agreement", "attempts", "last error"]);
            for i in &items {
                t.row([
                    cell(&i["id"]),
                    cell(&i["kind"]),
                    cell(&i["to"]),
                    cell(&i["agreement"]),
                    cell(&i["attempts"]),
                    cell(&i["last_error"]),
                ]);
            }
            t.print_or("The outbox is empty: every message has been delivered.")
        }
        Command::Metrics { node } => {
            let client = node.client()?;
            let text = block_on(async { Ok(client.get_text("/metrics").await?) })?;
            if format.is_json() {
                return output::json(&serde_json::json!({ "metrics": text }));
            }
            output::print(&text)
        }
    }
}
