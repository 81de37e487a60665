//! `node status|peers|outbox|metrics`: how a node is doing.

use clap::Subcommand;

use crate::connect::{NodeArgs, block_on};
use crate::error::Result;
use crate::output::{self, Fields, Format, Table, or_dash};

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
    /// This trust's JWT VC issuer metadata (its issuer URL and issuer key as a JWK): what a
    /// verifier of its SD-JWT VCs needs, to publish at <issuer>/.well-known/jwt-vc-issuer.
    IssuerMetadata {
        /// Write it to this file (replaced atomically) instead of printing it.
        #[arg(long, value_name = "FILE")]
        out: Option<std::path::PathBuf>,
        #[command(flatten)]
        node: NodeArgs,
    },
    /// This trust's Token Status List (a statuslist+jwt signed with the issuer key, valid for a
    /// day): one bit per exported credential, set when it is revoked, superseded or erased. To
    /// publish at <issuer>/statuslists/1, the URL every exported credential names.
    StatusList {
        /// Write the token to this file (replaced atomically) instead of printing it.
        #[arg(long, value_name = "FILE")]
        out: Option<std::path::PathBuf>,
        #[command(flatten)]
        node: NodeArgs,
    },
}

/// Runs a node command.
pub fn run(cmd: Command, format: Format) -> Result<()> {
    match cmd {
        Command::Status { node } => {
            let client = node.client()?;
            let s = block_on(async { Ok(client.status().await?) })?;
            if format.is_json() {
                return output::json(&s);
            }
            Fields::new()
                .add("node", client.base_url())
                .add("organisation", s.org.clone())
                .add("peer id", s.peer_id.clone())
                .add("issuer key", s.issuer_key.clone())
                .add("listening on", s.listen_addrs.join(", "))
                .add("connected peers", s.connected_peers.to_string())
                .add("outbox pending", s.outbox_pending.to_string())
                .add("version", s.version.clone())
                .print()?;
            let mut t = Table::new(&["agreement", "head", "members", "valid until", "this trust"]);
            for a in &s.agreements {
                t.row([
                    a.id.to_string(),
                    a.seq.to_string(),
                    a.active_members.to_string(),
                    format!("{}{}", a.valid_until, if a.fresh { "" } else { " (EXPIRED)" }),
                    a.member_status.map_or_else(|| "not a member".to_owned(), |m| m.to_string()),
                ]);
            }
            output::line("")?;
            t.print_or("No agreements yet.")?;
            let alarms = s.alarms.len();
            if alarms > 0 {
                output::line(format!(
                    "\nALARM: {alarms} roster equivocation(s): see `staffpass-admin node status --json` and tell the stewards."
                ))?;
            }
            Ok(())
        }
        Command::Peers { node } => {
            let client = node.client()?;
            let peers = block_on(async { Ok(client.peers().await?) })?;
            if format.is_json() {
                return output::json(&peers);
            }
            let mut t = Table::new(&["peer id", "organisation", "connected", "standing"]);
            let yes_no = |b: bool| if b { "yes" } else { "no" }.to_string();
            for p in &peers {
                t.row([p.peer_id.clone(), or_dash(p.org.as_ref()), yes_no(p.connected), yes_no(p.standing)]);
            }
            t.print_or("No peers known: this node is not yet in an agreement with other members.")
        }
        Command::IssuerMetadata { out, node } => {
            let client = node.client()?;
            let doc = block_on(async { Ok(client.issuer_metadata().await?) })?;
            match out {
                Some(path) => {
                    crate::files::replace(&path, &crate::files::to_json_bytes(&doc))?;
                    output::line(format!("Wrote the issuer metadata to {}.", path.display()))
                }
                None => output::json(&doc),
            }
        }
        Command::StatusList { out, node } => {
            let client = node.client()?;
            let list = block_on(async { Ok(client.status_list().await?) })?;
            match out {
                Some(path) => {
                    crate::files::replace(&path, list.token.as_bytes())?;
                    output::line(format!("Wrote the status list to {} (publish it at {}).", path.display(), list.uri))
                }
                None if format.is_json() => output::json(&list),
                None => output::line(&list.token),
            }
        }
        Command::Outbox { node } => {
            let client = node.client()?;
            let items = block_on(async { Ok(client.outbox().await?) })?;
            if format.is_json() {
                return output::json(&items);
            }
            let mut t = Table::new(&["message", "kind", "to", "agreement", "attempts", "last error"]);
            for i in &items {
                t.row([
                    i.id.to_string(),
                    i.kind.as_str().to_owned(),
                    i.to.to_string(),
                    i.agreement.to_string(),
                    i.attempts.to_string(),
                    or_dash(i.last_error.as_ref()),
                ]);
            }
            t.print_or("The outbox is empty: every message has been delivered.")
        }
        Command::Metrics { node } => {
            let client = node.client()?;
            let text = block_on(async { Ok(client.metrics().await?) })?;
            if format.is_json() {
                return output::json(&serde_json::json!({ "metrics": text }));
            }
            output::print(&text)
        }
    }
}
