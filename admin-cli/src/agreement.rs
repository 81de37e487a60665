//! `agreement init` (offline: writes an unsigned genesis) and `agreement
//! list|show` (what a node holds).

use std::path::PathBuf;

use clap::Subcommand;
use staffpass_protocol::roster::{Change, Entry, EntryBody, Terms};
use staffpass_protocol::{AgreementId, Hash};

use crate::connect::{NodeArgs, block_on};
use crate::error::{Error, Result};
use crate::files;
use crate::keys::{Role, Steward};
use crate::output::{self, Format, Table};
use crate::parse::{Claims, Moves, Span, Until, now};
use crate::roster::{describe, dry_run, print_state};

/// Agreement commands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Write the unsigned genesis of a new agreement (offline).
    ///
    /// Each steward named then signs it with `roster sign GENESIS --key
    /// STEWARD.key`; with THRESHOLD signatures it is the agreement's chain
    /// of one, to submit to a node with `roster submit`.
    Init {
        /// The agreement's id: lower-case letters, digits and hyphens (e.g. london-mou).
        #[arg(long)]
        id: AgreementId,
        /// Its title.
        #[arg(long)]
        title: String,
        /// A steward: key file or steward-pk:... text (repeatable).
        #[arg(long = "steward", value_name = "KEY", required = true)]
        stewards: Vec<String>,
        /// Signatures needed for each change (M of the N stewards).
        #[arg(long, value_name = "M")]
        threshold: u8,
        /// Moves covered, comma-separated: rotation, honorary-contract, secondment, emergency-deployment.
        #[arg(long, value_name = "MOVES")]
        moves: Moves,
        /// Checks the signatories accept from each other, comma-separated claims (e.g.
        /// identity,dbs,training:fire-safety), or `all`.
        #[arg(long, value_name = "CLAIMS")]
        accepts: Claims,
        /// The lawful basis for processing (e.g. "UK GDPR 6(1)(b) and 9(2)(h)").
        #[arg(long, value_name = "TEXT")]
        lawful_basis: String,
        /// How long the roster stays valid without a re-sign, from now (e.g. 90d).
        #[arg(long, value_name = "SPAN", default_value = "90d", conflicts_with = "valid_until")]
        valid_for: Span,
        /// Or: the end of validity (a date or a timestamp).
        #[arg(long, value_name = "WHEN")]
        valid_until: Option<Until>,
        /// The genesis file to create.
        #[arg(long, value_name = "FILE")]
        out: PathBuf,
    },
    /// List the agreements a node holds.
    List {
        #[command(flatten)]
        node: NodeArgs,
    },
    /// End an equivocation halt on one node, keeping the entry CHOSEN.
    ///
    /// For when the agreement's stewards cannot sign a resolution in time
    /// (`roster propose resolve`); audited on the node as `override`. The
    /// two hashes are in `node status` (alarms) and `agreement show`.
    Override {
        /// The agreement.
        #[arg(value_name = "ID")]
        id: AgreementId,
        /// The hash of the entry that stands (hex).
        #[arg(long, value_name = "HASH")]
        chosen: Hash,
        #[command(flatten)]
        node: NodeArgs,
    },
    /// Show an agreement as a node holds it: terms, stewards, members.
    Show {
        /// The agreement.
        #[arg(value_name = "ID")]
        id: AgreementId,
        #[command(flatten)]
        node: NodeArgs,
    },
}

/// Runs an agreement command.
pub fn run(cmd: Command, format: Format) -> Result<()> {
    match cmd {
        Command::Init { id, title, stewards, threshold, moves, accepts, lawful_basis, valid_for, valid_until, out } => {
            let stewards = stewards.iter().map(|s| Steward::public_arg(s)).collect::<Result<_>>()?;
            let t = now();
            let valid_until = valid_until.map(|u| u.resolve(t)).unwrap_or_else(|| t.plus_secs(valid_for.0));
            let body = EntryBody {
                agreement: id,
                seq: 0,
                prev: Hash::default(),
                issued_at: t,
                change: Change::Genesis {
                    title,
                    terms: Terms { moves: moves.0, accepts: accepts.0, lawful_basis },
                    stewards,
                    threshold,
                    valid_until,
                },
            };
            dry_run(None, &body).map_err(|e| Error::roster("the agreement would be refused", e))?;
            let entry = Entry::unsigned(body);
            files::create(&out, &files::to_json_bytes(&entry))?;
            if format.is_json() {
                return output::json(&serde_json::json!({
                    "file": out, "agreement": entry.body.agreement, "hash": entry.hash(),
                    "summary": describe(&entry.body.change), "entry": entry,
                }));
            }
            output::line(format!("Wrote the unsigned genesis of {} to {}:", entry.body.agreement, out.display()))?;
            output::line(format!("  {}", describe(&entry.body.change)))?;
            output::line(format!(
                "Next: {threshold} of the stewards sign it, each with `staffpass-admin roster sign {} --key STEWARD.key`.",
                out.display()
            ))
        }
        Command::List { node } => {
            let client = node.client()?;
            let list = block_on(async { Ok(client.agreements().await?) })?;
            if format.is_json() {
                return output::json(&list);
            }
            let mut t = Table::new(&["agreement", "title", "head", "members", "valid until", "state", "this trust"]);
            for a in &list {
                let state = if a.halted {
                    "HALTED (equivocation)"
                } else if !a.fresh {
                    "EXPIRED"
                } else {
                    "ok"
                };
                t.row([
                    a.id.to_string(),
                    a.title.clone(),
                    a.seq.to_string(),
                    a.active_members.to_string(),
                    a.valid_until.to_string(),
                    state.into(),
                    a.member_status.map_or_else(|| "not a member".to_owned(), |m| m.to_string()),
                ]);
            }
            t.print_or("This node holds no agreements yet: submit a chain with `staffpass-admin roster submit CHAIN`.")
        }
        Command::Override { id, chosen, node } => {
            let client = node.client()?;
            let body = staffpass_api::agreements::OverrideRequest { chosen };
            let v = block_on(async { Ok(client.override_halt(&id, &body).await?) })?;
            if format.is_json() {
                return output::json(&v);
            }
            output::line(format!(
                "{id} is no longer halted on this node: entry {chosen} stands (head now {}). Ask the stewards to sign a resolution so every node agrees.",
                v.seq
            ))
        }
        Command::Show { id, node } => {
            let client = node.client()?;
            let v = block_on(async { Ok(client.agreement(&id).await?) })?;
            if format.is_json() {
                return output::json(&v);
            }
            let head: Hash = v.head.parse().unwrap_or(v.state.head);
            print_state(&v.state, v.state.seq, &head)?;
            if v.halted.is_some() {
                output::line("")?;
                output::line(
                    "HALTED: two different validly signed entries were seen at one seq; the stewards must resolve it.",
                )?;
            }
            Ok(())
        }
    }
}
