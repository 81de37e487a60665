//! `staff import|list|show|activity`: staff records at the home trust.

use std::io::IsTerminal;
use std::path::{Path, PathBuf};

use clap::{Subcommand, ValueEnum};
use futures::StreamExt;
use serde_json::Value;
use staffpass_node::api::ClientError;
use staffpass_protocol::StaffRef;
use staffpass_protocol::claims::Claim;

use crate::audit::print_entries;
use crate::claims::{summary, validity_text};
use crate::connect::{NodeArgs, block_on};
use crate::error::{Error, Result};
use crate::files;
use crate::output::{self, Fields, Format, Table, cell};
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
        Command::List { limit, node } => {
            let client = node.client()?;
            let want = limit.unwrap_or(usize::MAX);
            let all: Vec<Value> = block_on(async {
                let mut all: Vec<Value> = Vec::new();
                loop {
                    let n = PAGE.min(want - all.len());
                    let mut path = format!("/v1/staff?limit={n}");
                    if let Some(last) = all.last().and_then(|v| v["staff_ref"].as_str()) {
                        path.push_str(&format!("&after={last}"));
                    }
                    let page: Vec<Value> = client.get_json(&path).await?;
                    let done = page.len() < n;
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
                let n = s["claims"].as_array().map(Vec::len).unwrap_or(0);
                t.row([cell(&s["staff_ref"]), cell(&s["assignment_number"]), n.to_string(), cell(&s["updated_at"])]);
            }
            t.print_or("No staff records: load them with `staffpass-admin staff import FILE`.")
        }
        Command::Show { staff, node } => {
            let client = node.client()?;
            let rec: Value = block_on(async { Ok(client.get_json(&format!("/v1/staff/{staff}")).await?) })?;
            if format.is_json() {
                return output::json(&rec);
            }
            Fields::new()
                .add("staff ref", cell(&rec["staff_ref"]))
                .add("assignment", cell(&rec["assignment_number"]))
                .add("own key", cell(&rec["staff_key"]))
                .add("updated", cell(&rec["updated_at"]))
                .print()?;
            output::line("")?;
            let today = now().date();
            let mut t = Table::new(&["claim", "in date?", "details"]);
            for (kind, v) in rec["claims"].as_object().into_iter().flatten() {
                match serde_json::from_value::<Claim>(v.clone()) {
                    Ok(c) => t.row([kind.clone(), validity_text(&c.validity(today)), summary(&c)]),
                    Err(_) => t.row([kind.clone(), "?".into(), "(not readable by this version)".into()]),
                }
            }
            t.print_or("No checks or training recorded.")
        }
        Command::Activity { staff, node } => {
            let client = node.client()?;
            let entries: Vec<Value> =
                block_on(async { Ok(client.get_json(&format!("/v1/staff/{staff}/activity")).await?) })?;
            if format.is_json() {
                return output::json(&entries);
            }
            print_entries(&entries, "Nothing recorded for this staff member yet.")
        }
    }
}

fn content_type(file: &Path, f: Option<ImportFormat>) -> &'static str {
    let json = match f {
        Some(ImportFormat::Json) => true,
        Some(ImportFormat::Csv) => false,
        None => file.extension().is_some_and(|e| e.eq_ignore_ascii_case("json")),
    };
    if json { "application/json" } else { "text/csv" }
}

fn import(file: &Path, partial: bool, f: Option<ImportFormat>, node: &NodeArgs, format: Format) -> Result<()> {
    let bytes = files::read(file, MAX_IMPORT, "staff import")?;
    let client = node.client()?;
    let ct = content_type(file, f);
    let path = if partial { "/v1/staff/import?partial=true" } else { "/v1/staff/import" };
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
    let result: std::result::Result<Value, ClientError> =
        block_on(async { Ok(client.post_bytes(path, ct, body).await) })?;
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
        Err(ClientError::Status { code, details: Some(report), .. }) if code == "rows-rejected" => {
            if format.is_json() {
                output::json(&report)?;
            } else {
                print_report(&report)?;
            }
            let n = |k: &str| report[k].as_u64().unwrap_or(0);
            Err(Error::ImportRejected {
                message: format!(
                    "{} of {} rows were refused, so nothing was imported: fix them, or import the good rows with --partial",
                    n("rejected"),
                    n("rows")
                ),
            })
        }
        Err(e) => Err(e.into()),
    }
}

fn print_report(r: &Value) -> Result<()> {
    let n = |k: &str| r[k].as_u64().unwrap_or(0);
    if r["aborted"].as_bool() == Some(true) {
        output::line(format!("Nothing imported: {} of {} rows were refused.", n("rejected"), n("rows")))?;
    } else {
        output::line(format!(
            "Imported {} of {} rows ({} new, {} updated); {} refused.",
            n("imported"),
            n("rows"),
            n("created"),
            n("updated"),
            n("rejected")
        ))?;
    }
    let errors = r["errors"].as_array().cloned().unwrap_or_default();
    if !errors.is_empty() {
        let mut t = Table::new(&["line", "column", "problem", "reason"]);
        for e in &errors {
            t.row([cell(&e["line"]), cell(&e["column"]), cell(&e["code"]), cell(&e["message"])]);
        }
        output::print(&t.render())?;
        if (errors.len() as u64) < n("rejected") {
            output::line(format!("(the first {} of {} refused rows)", errors.len(), n("rejected")))?;
        }
    }
    Ok(())
}
