//! `credential issue|show|revoke`: passport credentials issued by this trust.

use clap::Subcommand;
use staffpass_api::credentials::RevokeRequest;
use staffpass_protocol::revocation::RevocationReason;
use staffpass_protocol::{CredentialId, StaffRef};

use crate::connect::{NodeArgs, block_on};
use crate::error::Result;
use crate::output::{self, Fields, Format};
use crate::parse::join;

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
    /// Revoke a credential (and any earlier credential of the same person a
    /// live consent still references) and tell every organisation that
    /// received one; with --staff, every credential of that person.
    Revoke {
        /// The credential id (cred-...).
        #[arg(value_name = "ID", required_unless_present = "staff", conflicts_with = "staff")]
        id: Option<CredentialId>,
        /// Revoke every credential of this staff member instead (st-...).
        #[arg(long, value_name = "REF")]
        staff: Option<StaffRef>,
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
            (block_on(async { Ok(client.issue_credential(&staff).await?) })?, "Issued")
        }
        Command::Show { id, node } => {
            let client = node.client()?;
            (block_on(async { Ok(client.credential(&id).await?) })?, "")
        }
        Command::Revoke { id: Some(id), reason, node, .. } => {
            let client = node.client()?;
            (block_on(async { Ok(client.revoke_credential(&id, &RevokeRequest { reason }).await?) })?, "Revoked")
        }
        Command::Revoke { id: None, staff, reason, node } => {
            let staff = staff.ok_or_else(|| crate::error::Error::BadValue {
                what: "credential revoke",
                input: String::new(),
                reason: "give a credential ID or --staff REF".into(),
            })?;
            let client = node.client()?;
            let revoked = block_on(async { Ok(client.revoke_staff(&staff, &RevokeRequest { reason }).await?) })?;
            if format.is_json() {
                return output::json(&revoked);
            }
            if revoked.is_empty() {
                return output::line(format!("Every credential of {staff} was already revoked."));
            }
            for c in &revoked {
                output::line(format!("Revoked {} (issued {}).", c.id, c.issued_at))?;
            }
            return Ok(());
        }
    };
    if format.is_json() {
        return output::json(&v);
    }
    if !verb.is_empty() {
        output::line(format!("{verb} {}.", v.id))?;
    }
    Fields::new()
        .add("credential", v.id.to_string())
        .add("staff ref", v.staff_ref.to_string())
        .add("issued", v.issued_at.to_string())
        .add("expires", v.expires_at.to_string())
        .add("claims", join(&v.claims))
        .add("revoked", v.revoked.map_or_else(|| "no".into(), |r| format!("yes: {r}")))
        .print()
}
