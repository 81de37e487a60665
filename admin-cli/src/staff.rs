//! `staff import|list|show|activity`: staff records at the home trust.

use std::io::IsTerminal;
use std::path::{Path, PathBuf};

use clap::{Subcommand, ValueEnum};
use futures::StreamExt;
use staffpass_api::ClientError;
use staffpass_api::error::code as api_code;
use staffpass_api::staff::{self as api, ImportQuery, ImportReport, PageQuery, StaffSummary};
use staffpass_protocol::StaffRef;

use crate::audit::print_entries;
use crate::claims::{summary, validity_text};
use crate::connect::{NodeArgs, block_on};
use crate::error::{Error, Result};
use crate::files;
use crate::output::{self, Fields, Format, Table, or_dash};
use crate::parse::now;

/// Largest import file read.
const MAX_IMPORT: u64 = 1024 * 1024 * 1024;
/// Upload chunk size (one progress step).
const CHUNK: usize = 64 * 1024;
/// Page size when listing.
const PAGE: usize = 1000;

/// Staff commands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Load staff records from an ESR-style CSV export or a JSON array.
    ///
    /// All or nothing: if any row is refused, nothing is imported and the
    /// refused rows are listed by line and reason (exit 3); with --partial
    /// the good rows are imported and the refused ones listed. Importing an
    /// assignment again updates its record.
    Import {
        /// The CSV or JSON file.
        #[arg(value_name = "FILE")]
        file: PathBuf,
        /// Import the good rows even if some are refused.
        #[arg(long)]
        partial: bool,
        /// The file's format [default: from its extension; csv unless .json].
        #[arg(long, value_enum)]
        format: Option<ImportFormat>,
        #[command(flatten)]
        node: NodeArgs,
    },
    /// List staff records (reference, assignment, claims held).
    List {
        /// Show at most this many.
        #[arg(long, value_name = "N")]
        limit: Option<usize>,
        #[command(flatten)]
        node: NodeArgs,
    },
    /// Show one staff record: each check and training, and whether it is in date.
    Show {
        /// The staff reference (st-...).
        #[arg(value_name = "REF")]
        staff: StaffRef,
        #[command(flatten)]
        node: NodeArgs,
    },
    /// Erase a staff member (they left, or asked for erasure): every live
    /// consent is withdrawn and each receiver told to erase, offers not yet
    /// sent are cancelled, their record and credentials are deleted and
    /// their key destroyed. The audit log keeps their reference only.
    /// Final: needs --yes.
    Erase {
        /// The staff reference (st-...).
        #[arg(value_name = "REF")]
        staff: StaffRef,
        /// Erase: this cannot be undone.
        #[arg(long)]
        yes: bool,
        #[command(flatten)]
        node: NodeArgs,
    },
    /// The staff member's current credential in a standard form (as `credential export`):
    /// fhir, a FHIR R4 Bundle for a workforce system, or sd-jwt-vc, their wallet copy.
    /// Audited as an export; holds personal data (--out writes a new 0600 file).
    Export {
        /// The staff reference (st-...).
        #[arg(value_name = "REF")]
        staff: StaffRef,
        /// The form: fhir or sd-jwt-vc.
        #[arg(long, value_enum, value_name = "FORMAT")]
        format: crate::credential::Form,
        /// Only these claims, comma-separated; each must be in the credential. Default: all.
        #[arg(long, value_name = "LIST")]
        claims: Option<crate::parse::Claims>,
        /// Write it to this new file (0600) instead of printing it.
        #[arg(long, value_name = "FILE")]
        out: Option<std::path::PathBuf>,
        #[command(flatten)]
        node: NodeArgs,
    },
    /// Replace (or remove) a staff member's registered key: an admin's act,
    /// audited. HR cannot change a registered key; consents must use it.
    SetKey {
        /// The staff reference (st-...).
        #[arg(value_name = "REF")]
        staff: StaffRef,
        /// The new key: `staff-pk:<hex>`, or a file holding the public key
        /// (or the staff member's secret key, from which it is derived).
        #[arg(long = "staff-key", value_name = "KEY", required_unless_present = "remove", conflicts_with = "remove")]
        staff_key: Option<String>,
        /// Remove the registered key instead.
        #[arg(long)]
        remove: bool,
        #[command(flatten)]
        node: NodeArgs,
    },
    /// The staff member changes (or removes) their own registered key,
    /// signing the change with the key it replaces (HR may run it for
    /// them; only the holder of the old key can make the signature).
    ChangeKey {
        /// The staff reference (st-...).
        #[arg(value_name = "REF")]
        staff: StaffRef,
        /// The staff member's current secret key file (signs the change).
        #[arg(long = "old-key", value_name = "FILE")]
        old_key: PathBuf,
        /// The new key: `staff-pk:<hex>`, or a key file.
        #[arg(long = "new-key", value_name = "KEY", required_unless_present = "remove", conflicts_with = "remove")]
        new_key: Option<String>,
        /// Remove the registered key instead.
        #[arg(long)]
        remove: bool,
        #[command(flatten)]
        node: NodeArgs,
    },
    /// Everything that happened to a staff member's data: issues, shares,
    /// receipts, withdrawals, erasures, revocations.
    Activity {
        /// The staff reference (st-...).
        #[arg(value_name = "REF")]
        staff: StaffRef,
        #[command(flatten)]
        node: NodeArgs,
    },
}

/// Import file formats.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ImportFormat {
    /// ESR-style CSV export with a header row.
    Csv,
    /// A JSON array of staff records.
    Json,
}

/// Runs a staff command.
pub fn run(cmd: Command, format: Format) -> Result<()> {
    match cmd {
        Command::Import { file, partial, format: ff, node } => import(&file, partial, ff, &node, format),
        Command::Export { staff, format: form, claims, out, node } => crate::credential::run(
            crate::credential::Command::Export { staff, format: form, claims, out, node },
            format,
        ),
        Command::List { limit, node } => {
            let client = node.client()?;
            let want = limit.unwrap_or(usize::MAX);
            let all: Vec<StaffSummary> = block_on(async {
                let mut all: Vec<StaffSummary> = Vec::new();
                loop {
                    let limit = PAGE.min(want - all.len());
                    let query = PageQuery { after: all.last().map(|s| s.staff_ref.clone()), limit };
                    let page = client.staff_list(&query).await?;
                    let done = page.len() < limit;
                    all.extend(page);
                    if done || all.len() >= want {
                        return Ok(all);
                    }
                }
            })?;
            if format.is_json() {
                return output::json(&all);
            }
            let mut t = Table::new(&["staff ref", "assignment", "claims", "updated"]);
            for s in &all {
                t.row([
                    s.staff_ref.to_string(),
                    s.assignment_number.clone(),
                    s.claims.len().to_string(),
                    s.updated_at.to_string(),
                ]);
            }
            t.print_or("No staff records: load them with `staffpass-admin staff import FILE`.")
        }
        Command::Show { staff, node } => {
            let client = node.client()?;
            let rec = block_on(async { Ok(client.staff(&staff).await?) })?;
            if format.is_json() {
                return output::json(&rec);
            }
            Fields::new()
                .add("staff ref", rec.staff_ref.to_string())
                .add("assignment", rec.assignment_number.clone())
                .add("own key", or_dash(rec.staff_key.as_ref()))
                .add("updated", rec.updated_at.to_string())
                .print()?;
            output::line("")?;
            let today = now().date();
            let mut t = Table::new(&["claim", "in date?", "details"]);
            for (kind, c) in &rec.claims {
                t.row([kind.to_string(), validity_text(&c.validity(today)), summary(c)]);
            }
            t.print_or("No checks or training recorded.")
        }
        Command::Erase { staff, yes, node } => {
            if !yes {
                return Err(crate::error::Error::BadValue {
                    what: "staff erase",
                    input: staff.to_string(),
                    reason: "erasing is final: check `staffpass-admin staff show REF` and `staff activity REF`, \
                             then run again with --yes"
                        .into(),
                });
            }
            let client = node.client()?;
            block_on(async { Ok(client.delete_staff(&staff).await?) })?;
            output::line(format!(
                "Erased {staff}: record and credentials deleted, live consents withdrawn (receivers told to erase; \
                 `staffpass-admin consent list` shows their erasure receipts)."
            ))?;
            // Copies that left the node (the audit keeps the reference):
            // erasure cannot reach them, so say which were made.
            let activity = block_on(async { Ok(client.activity(&staff).await?) })?;
            let exports: Vec<String> = activity
                .iter()
                .filter(|e| e.event.action == "export")
                .map(|e| {
                    format!(
                        "  {} {} of {} by {}",
                        e.at,
                        e.event.reason.as_deref().unwrap_or("export"),
                        e.event.object.as_deref().unwrap_or("-"),
                        e.event.actor
                    )
                })
                .collect();
            if !exports.is_empty() {
                output::line(format!(
                    "{} export(s) of this person's passport were made; those copies are outside staffpass and \
                     not erased:\n{}",
                    exports.len(),
                    exports.join("\n")
                ))?;
            }
            Ok(())
        }
        Command::SetKey { staff, staff_key, remove: _, node } => {
            use crate::keys::Role as _;
            let staff_key = staff_key.as_deref().map(crate::keys::Staff::public_arg).transpose()?;
            let client = node.client()?;
            let request = staffpass_api::staff::StaffKeyRequest { staff_key };
            let rec = block_on(async { Ok(client.set_staff_key(&staff, &request).await?) })?;
            if format.is_json() {
                return output::json(&rec);
            }
            output::line(match rec.staff_key {
                Some(k) => format!("{staff}'s registered key is now {k}."),
                None => format!("{staff} has no registered key now."),
            })
        }
        Command::ChangeKey { staff, old_key, new_key, remove: _, node } => {
            use crate::keys::Role as _;
            let old = crate::keys::Staff::load_secret(&old_key)?;
            let new_key = new_key.as_deref().map(crate::keys::Staff::public_arg).transpose()?;
            let signed_at = crate::parse::now();
            let change = staffpass_protocol::consent::StaffKeyChange {
                staff: staff.clone(),
                old: old.public(),
                new: new_key,
                signed_at,
            };
            let request =
                staffpass_api::staff::StaffKeyChangeRequest { new_key, signed_at, signature: old.sign(&change) };
            let client = node.client()?;
            let rec = block_on(async { Ok(client.change_staff_key(&staff, &request).await?) })?;
            if format.is_json() {
                return output::json(&rec);
            }
            output::line(match rec.staff_key {
                Some(k) => format!("{staff}'s registered key is now {k} (signed by the old key)."),
                None => format!("{staff} has no registered key now (removal signed by the old key)."),
            })
        }
        Command::Activity { staff, node } => {
            let client = node.client()?;
            let entries = block_on(async { Ok(client.activity(&staff).await?) })?;
            if format.is_json() {
                return output::json(&entries);
            }
            print_entries(&entries, "Nothing recorded for this staff member yet.")
        }
    }
}

fn body_format(file: &Path, f: Option<ImportFormat>) -> api::ImportFormat {
    let json = match f {
        Some(ImportFormat::Json) => true,
        Some(ImportFormat::Csv) => false,
        None => file.extension().is_some_and(|e| e.eq_ignore_ascii_case("json")),
    };
    if json { api::ImportFormat::Json } else { api::ImportFormat::Csv }
}

fn import(file: &Path, partial: bool, f: Option<ImportFormat>, node: &NodeArgs, format: Format) -> Result<()> {
    let bytes = files::read(file, MAX_IMPORT, "staff import")?;
    let client = node.client()?;
    let body_format = body_format(file, f);
    let total = bytes.len() as u64;
    let bar = (std::io::stderr().is_terminal() && !format.is_json()).then(|| {
        let bar = indicatif::ProgressBar::new(total);
        if let Ok(style) =
            indicatif::ProgressStyle::with_template("uploading {bar:40} {bytes}/{total_bytes} ({eta} left)")
        {
            bar.set_style(style);
        }
        bar
    });
    let chunks: Vec<std::io::Result<Vec<u8>>> = bytes.chunks(CHUNK).map(|c| Ok(c.to_vec())).collect();
    drop(bytes);
    let progress = bar.clone();
    let stream = futures::stream::iter(chunks).inspect(move |c| {
        if let (Some(b), Ok(c)) = (&progress, c) {
            b.inc(c.len() as u64);
        }
    });
    let body = reqwest::Body::wrap_stream(stream);
    let result = block_on(async { Ok(client.import_staff(body_format, body, ImportQuery { partial }).await) })?;
    if let Some(b) = &bar {
        b.finish_and_clear();
    }
    match result {
        Ok(report) => {
            if format.is_json() {
                return output::json(&report);
            }
            print_report(&report)
        }
        Err(ClientError::Status { code, details: Some(details), .. }) if code == api_code::ROWS_REJECTED => {
            let report: ImportReport = serde_json::from_value(details)
                .map_err(|e| Error::Answer(format!("the import report cannot be read: {e}")))?;
            if format.is_json() {
                output::json(&report)?;
            } else {
                print_report(&report)?;
            }
            Err(Error::ImportRejected {
                message: format!(
                    "{} of {} rows were refused, so nothing was imported: fix them, or import the good rows with --partial",
                    report.rejected, report.rows
                ),
            })
        }
        Err(e) => Err(e.into()),
    }
}

fn print_report(r: &ImportReport) -> Result<()> {
    if r.aborted {
        output::line(format!("Nothing imported: {} of {} rows were refused.", r.rejected, r.rows))?;
    } else {
        output::line(format!(
            "Imported {} of {} rows ({} new, {} updated); {} refused.",
            r.imported, r.rows, r.created, r.updated, r.rejected
        ))?;
    }
    if !r.errors.is_empty() {
        let mut t = Table::new(&["line", "column", "problem", "reason"]);
        for e in &r.errors {
            t.row([e.line.to_string(), or_dash(e.column.as_ref()), e.code.clone(), e.message.clone()]);
        }
        output::print(&t.render())?;
        if (r.errors.len() as u64) < r.rejected {
            output::line(format!("(the first {} of {} refused rows)", r.errors.len(), r.rejected))?;
        }
    }
    Ok(())
}
