//! `received list|show`: passports other trusts shared with this one, and
//! what in them is still in date.

use clap::Subcommand;
use serde_json::Value;
use staffpass_protocol::ConsentId;

use crate::claims::validity_value_text;
use crate::connect::{NodeArgs, block_on};
use crate::error::Result;
use crate::output::{self, Fields, Format, Table, cell};

/// Received-passport commands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// List the passports received, with how many claims are in date.
    List {
        #[command(flatten)]
        node: NodeArgs,
    },
    /// Show one received passport: each claim and whether it is in date,
    /// expires soon, or has expired.
    Show {
        /// The consent it was shared under (consent-...).
        #[arg(value_name = "ID")]
        id: ConsentId,
        #[command(flatten)]
        node: NodeArgs,
    },
}

fn expired(c: &Value) -> bool {
    c["validity"]["status"].as_str() == Some("expired")
}

/// Runs a received command.
pub fn run(cmd: Command, format: Format) -> Result<()> {
    match cmd {
        Command::List { node } => {
            let client = node.client()?;
            let list: Vec<Value> = block_on(async { Ok(client.get_json("/v1/received").await?) })?;
            if format.is_json() {
                return output::json(&list);
            }
            let mut t =
                Table::new(&["consent", "from", "staff", "agreement", "move", "status", "claims in date", "until"]);
            for r in &list {
                let claims = r["claims"].as_array().cloned().unwrap_or_default();
                let ok = claims.iter().filter(|c| !expired(c)).count();
                t.row([
                    cell(&r["consent"]),
                    cell(&r["issuer"]),
                    cell(&r["subject"]),
                    cell(&r["agreement"]),
                    cell(&r["move_kind"]),
                    format!(
                        "{}{}",
                        cell(&r["status"]),
                        r["reason"].as_str().map(|s| format!(": {s}")).unwrap_or_default()
                    ),
                    format!("{ok} of {}", claims.len()),
                    cell(&r["not_after"]),
                ]);
            }
            t.print_or("No passports received.")
        }
        Command::Show { id, node } => {
            let client = node.client()?;
            let r: Value = block_on(async { Ok(client.get_json(&format!("/v1/received/{id}")).await?) })?;
            if format.is_json() {
                return output::json(&r);
            }
            Fields::new()
                .add("consent", cell(&r["consent"]))
                .add("credential", cell(&r["credential"]))
                .add("from", cell(&r["issuer"]))
                .add("staff", cell(&r["subject"]))
                .add("agreement", cell(&r["agreement"]))
                .add("move", cell(&r["move_kind"]))
                .add(
                    "status",
                    format!(
                        "{}{}",
                        cell(&r["status"]),
                        r["reason"].as_str().map(|s| format!(": {s}")).unwrap_or_default()
                    ),
                )
                .add("received", cell(&r["received_at"]))
                .add("shared until", format!("{} (erased then)", cell(&r["not_after"])))
                .add("passport expires", cell(&r["expires_at"]))
                .print()?;
            output::line("")?;
            let mut t = Table::new(&["claim", "in date?"]);
            for c in r["claims"].as_array().into_iter().flatten() {
                t.row([cell(&c["claim"]), validity_value_text(&c["validity"])]);
            }
            t.print_or("No claims (erased).")
        }
    }
}
