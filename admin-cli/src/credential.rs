//! `credential issue|show|revoke`: passport credentials issued by this trust.

use clap::Subcommand;
use serde_json::{Value, json};
use staffpass_protocol::revocation::RevocationReason;
use staffpass_protocol::{CredentialId, StaffRef};

use crate::connect::{NodeArgs, block_on};
use crate::error::{Error, Result};
use crate::output::{self, Fields, Format, cell};

/// Credential commands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Issue a passport credential for a staff member, from their current record.
    Issue {
        /// The staff reference (st-...).
        #[arg(value_name = "REF")]
        staff: StaffRef,
        #[command(flatten)]
        node: NodeArgs,
    },
    /// Show a credential: its claims, validity and whether it is revoked.
    Show {
        /// The credential id (cred-...).
        #[arg(value_name = "ID")]
        id: CredentialId,
        #[command(flatten)]
        node: NodeArgs,
    },
    /// Revoke a credential and tell every organisation that received it.
    Revoke {
        /// The credential id (cred-...).
        #[arg(value_name = "ID")]
        id: CredentialId,
        /// Why: training-expiry, leaving-organisation, provided-in-error, lost-phone,
        /// no-longer-valid, suspect-no-longer-valid, deceased.
        #[arg(long, value_name = "REASON", value_parser = parse_reason)]
        reason: RevocationReason,
        #[command(flatten)]
        node: NodeArgs,
    },
}

fn parse_reason(s: &str) -> std::result::Result<RevocationReason, String> {
    s.parse().map_err(|e: staffpass_protocol::claims::Error| e.to_string())
}

/// Runs a credential command.
pub fn run(cmd: Command, format: Format) -> Result<()> {
    let (v, verb) = match cmd {
        Command::Issue { staff, node } => {
            let client = node.client()?;
            let v: Value =
                block_on(async { Ok(client.post_json(&format!("/v1/staff/{staff}/credentials"), &json!({})).await?) })?;
            (v, "Issued")
        }
        Command::Show { id, node } => {
            let client = node.client()?;
            (block_on(async { Ok(client.get_json(&format!("/v1/credentials/{id}")).await?) })?, "")
        }
        Command::Revoke { id, reason, node } => {
            let client = node.client()?;
            let body = json!({ "reason": reason });
            (
                block_on(async { Ok(client.post_json(&format!("/v1/credentials/{id}/revoke"), &body).await?) })?,
                "Revoked",
            )
        }
    };
    if format.is_json() {
        return output::json(&v);
    }
    if v.get("id").is_none() {
        return Err(Error::Answer("a credential without an id".into()));
    }
    if !verb.is_empty() {
        output::line(format!("{verb} {}.", cell(&v["id"])))?;
    }
    Fields::new()
        .add("credential", cell(&v["id"]))
        .add("staff ref", cell(&v["staff_ref"]))
        .add("issued", cell(&v["issued_at"]))
        .add("expires", cell(&v["expires_at"]))
        .add("claims", cell(&v["claims"]))
        .add("revoked", if v["revoked"].is_null() { "no".into() } else { format!("yes: {}", cell(&v["revoked"])) })
        .print()
}
