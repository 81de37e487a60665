//! `credential issue|show|revoke`: passport credentials issued by this trust.

use std::path::PathBuf;

use clap::{Subcommand, ValueEnum};
use staffpass_api::credentials::{ExportFormat, ExportRequest, ExportView, RevokeRequest};
use staffpass_protocol::claims::ClaimKind;
use staffpass_protocol::revocation::RevocationReason;
use staffpass_protocol::{CredentialId, StaffRef};

use crate::connect::{NodeArgs, block_on};
use crate::error::Result;
use crate::output::{self, Fields, Format};
use crate::parse::{Claims, join};

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
    /// A staff member's current credential in a standard form: an SD-JWT VC, the staff
    /// member's wallet copy, signed anew by this trust's issuer key, which any SD-JWT VC
    /// verifier checks against the trust's issuer metadata (`node issuer-metadata`); or a FHIR
    /// R4 Bundle for a workforce system (never the NI number). Every claim of the credential, or
    /// those given. Audited as an export. It holds personal data: with --out it is written to a
    /// new file, mode 0600; without, printed.
    Export {
        /// The staff reference (st-...).
        #[arg(long, value_name = "REF")]
        staff: StaffRef,
        /// The form: sd-jwt-vc or fhir.
        #[arg(long, value_enum, value_name = "FORMAT")]
        format: Form,
        /// Only these claims, comma-separated (e.g. identity,dbs,training:fire-safety); each must
        /// be in the credential. Default: all of them.
        #[arg(long, value_name = "LIST")]
        claims: Option<Claims>,
        /// Write it to this new file (0600) instead of printing it.
        #[arg(long, value_name = "FILE")]
        out: Option<PathBuf>,
        #[command(flatten)]
        node: NodeArgs,
    },
}

/// The standard forms a credential is exported in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Form {
    /// SD-JWT VC (RFC 9901 SD-JWT, IETF SD-JWT VC).
    SdJwtVc,
    /// FHIR R4 Bundle (UK Core shaped; never the NI number), for a workforce system.
    Fhir,
}

impl Form {
    /// The API's format.
    pub fn api(self) -> ExportFormat {
        match self {
            Form::SdJwtVc => ExportFormat::SdJwtVc,
            Form::Fhir => ExportFormat::Fhir,
        }
    }
    /// What it is called in messages.
    pub fn title(self) -> &'static str {
        match self {
            Form::SdJwtVc => "SD-JWT VC",
            Form::Fhir => "FHIR Bundle",
        }
    }
}

/// Writes an export to a new 0600 file (refused if `out` exists, before
/// the node makes and audits it), or prints it. `run` makes the export.
pub fn write_export(
    out: Option<&std::path::Path>,
    format: Format,
    run: impl FnOnce() -> Result<ExportView>,
    describe: impl FnOnce(&ExportView, &std::path::Path) -> String,
) -> Result<()> {
    if let Some(path) = out
        && std::fs::symlink_metadata(path).is_ok()
    {
        return Err(crate::error::Error::Exists { path: path.to_path_buf() });
    }
    let v = run()?;
    if let Some(path) = out {
        crate::files::create_secret(path, format!("{}\n", v.token).as_bytes())?;
    }
    if format.is_json() {
        return output::json(&v);
    }
    match out {
        Some(path) => output::line(describe(&v, path)),
        None => output::line(&v.token),
    }
}

fn parse_reason(s: &str) -> std::result::Result<RevocationReason, String> {
    s.parse().map_err(|e: staffpass_protocol::claims::Error| e.to_string())
}

/// Runs a credential command.
pub fn run(cmd: Command, format: Format) -> Result<()> {
    let (v, verb) = match cmd {
        Command::Export { staff, format: form, claims, out, node } => {
            let client = node.client()?;
            // `all` means every claim the credential holds.
            let every: std::collections::BTreeSet<ClaimKind> = ClaimKind::all().into_iter().collect();
            let claims = claims.map(|c| c.0).filter(|c| *c != every);
            let request = ExportRequest { format: form.api(), claims };
            return write_export(
                out.as_deref(),
                format,
                || block_on(async { Ok(client.export_credential(&staff, &request).await?) }),
                |v, path| {
                    let issuer = if v.issuer.is_empty() { String::new() } else { format!("; issuer {}", v.issuer) };
                    format!(
                        "Wrote the {} of {staff} to {} (from {}; {} claims: {}{issuer}).",
                        form.title(),
                        path.display(),
                        v.credential,
                        v.claims.len(),
                        join(&v.claims),
                    )
                },
            );
        }
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
