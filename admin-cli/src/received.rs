//! `received list|show|export`: passports other trusts shared with this
//! one, what in them is still in date, and a FHIR copy for this trust's
//! workforce systems.

use clap::Subcommand;
use staffpass_api::credentials::{ReceivedExportFormat, ReceivedExportRequest};
use staffpass_api::received::{ClaimView, ReceivedView};
use staffpass_protocol::ConsentId;
use staffpass_protocol::claims::Validity;

use crate::claims::validity_text;
use crate::connect::{NodeArgs, block_on};
use crate::error::Result;
use crate::output::{self, Fields, Format, Table, or_dash};

/// Received-passport commands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// List the passports received, with how many claims are in date.
    List {
        #[command(flatten)]
        node: NodeArgs,
    },
    /// Show one received passport: each claim and whether it is in date,
    /// expires soon, or has expired, and the copies exported of it (listed
    /// after erasure too: they are outside the node's reach).
    Show {
        /// The consent it was shared under (consent-...).
        #[arg(value_name = "ID")]
        id: ConsentId,
        #[command(flatten)]
        node: NodeArgs,
    },
    /// A received passport for this trust's workforce systems (e-rostering, HR): as a FHIR R4
    /// Bundle (the consented claims, never the NI number; the home trust and this one; the host
    /// role until the consent ends, and that end as the erase-after date), or as the SD-JWT VC
    /// presentation of the consented claims the home trust signed and sent with it. Audited as
    /// an export and listed by `received show`: the copy is out of the node's reach, so erase it
    /// when the consent ends. Holds personal data: with --out it is written to a new file, mode
    /// 0600; without, printed.
    Export {
        /// The consent it was shared under (consent-...).
        #[arg(value_name = "ID")]
        id: ConsentId,
        /// The form: fhir or sd-jwt-vc.
        #[arg(long, value_enum, value_name = "FORMAT")]
        format: ReceivedForm,
        /// Write it to this new file (0600) instead of printing it.
        #[arg(long, value_name = "FILE")]
        out: Option<std::path::PathBuf>,
        #[command(flatten)]
        node: NodeArgs,
    },
}

/// The standard forms a received passport leaves in.
#[derive(Debug, Clone, Copy, clap::ValueEnum)]
pub enum ReceivedForm {
    /// FHIR R4 Bundle (UK Core shaped).
    Fhir,
    /// The home trust's SD-JWT VC presentation of the consented claims (verify it with the home's
    /// published issuer key).
    SdJwtVc,
}

fn expired(c: &ClaimView) -> bool {
    matches!(c.validity, Validity::Expired { .. })
}

/// The status, with its reason if any.
fn status_text(r: &ReceivedView) -> String {
    format!("{}{}", r.status, r.reason.as_deref().map(|s| format!(": {s}")).unwrap_or_default())
}

/// Runs a received command.
pub fn run(cmd: Command, format: Format) -> Result<()> {
    match cmd {
        Command::Export { id, format: form, out, node } => {
            let client = node.client()?;
            let (wire, what) = match form {
                ReceivedForm::Fhir => (ReceivedExportFormat::Fhir, "FHIR Bundle"),
                ReceivedForm::SdJwtVc => (ReceivedExportFormat::SdJwtVc, "SD-JWT VC"),
            };
            let request = ReceivedExportRequest { format: wire };
            crate::credential::write_export(
                out.as_deref(),
                format,
                || block_on(async { Ok(client.export_received(&id, &request).await?) }),
                |v, path| {
                    format!(
                        "Wrote the {what} of the passport of {id} to {} ({} claims: {}).",
                        path.display(),
                        v.claims.len(),
                        crate::parse::join(&v.claims)
                    )
                },
            )
        }
        Command::List { node } => {
            let client = node.client()?;
            let list = block_on(async { Ok(client.received().await?) })?;
            if format.is_json() {
                return output::json(&list);
            }
            let mut t =
                Table::new(&["consent", "from", "staff", "agreement", "move", "status", "claims in date", "until"]);
            for r in &list {
                let ok = r.claims.iter().filter(|c| !expired(c)).count();
                t.row([
                    r.consent.to_string(),
                    r.issuer.to_string(),
                    or_dash(r.subject.as_ref()),
                    or_dash(r.agreement.as_ref()),
                    or_dash(r.move_kind.as_ref()),
                    status_text(r),
                    format!("{ok} of {}", r.claims.len()),
                    or_dash(r.not_after.as_ref()),
                ]);
            }
            t.print_or("No passports received.")
        }
        Command::Show { id, node } => {
            let client = node.client()?;
            let r = block_on(async { Ok(client.received_one(&id).await?) })?;
            if format.is_json() {
                return output::json(&r);
            }
            Fields::new()
                .add("consent", r.consent.to_string())
                .add("credential", r.credential.to_string())
                .add("from", r.issuer.to_string())
                .add("staff", or_dash(r.subject.as_ref()))
                .add("agreement", or_dash(r.agreement.as_ref()))
                .add("move", or_dash(r.move_kind.as_ref()))
                .add("status", status_text(&r))
                .add("received", or_dash(r.received_at.as_ref()))
                .add("shared until", format!("{} (erased then)", or_dash(r.not_after.as_ref())))
                .add("passport expires", or_dash(r.expires_at.as_ref()))
                .print()?;
            output::line("")?;
            let mut t = Table::new(&["claim", "in date?"]);
            for c in &r.claims {
                t.row([c.claim.clone(), validity_text(&c.validity)]);
            }
            t.print_or("No claims (erased).")?;
            if !r.exports.is_empty() {
                output::line("")?;
                output::line(if r.status == "erased" {
                    "Copies exported before it was erased (outside the node: remove them):"
                } else {
                    "Copies exported (outside the node: remove them when it is withdrawn or erased):"
                })?;
                let mut t = Table::new(&["format", "exported at"]);
                for x in &r.exports {
                    t.row([x.format.clone(), x.at.to_string()]);
                }
                t.print_or("")?;
            }
            Ok(())
        }
    }
}
