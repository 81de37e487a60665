//! `consent grant|sign|withdraw|list|show`: a staff member's choices about
//! sharing their passport.

use std::path::{Path, PathBuf};

use clap::Subcommand;
use staffpass_api::Client;
use staffpass_api::consents::{ConsentRequest, ConsentState, ConsentView};
use staffpass_protocol::consent::Consent;
use staffpass_protocol::roster::MoveKind;
use staffpass_protocol::{AgreementId, ConsentId, OrgId, Signable, StaffRef};

use crate::connect::{NodeArgs, block_on};
use crate::error::{Error, Result};
use crate::keys::{Role, Staff};
use crate::output::{self, Fields, Format, Table, or_dash};
use crate::parse::{Claims, Until, join, now};

/// Consent commands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Record a staff member's consent to share claims with another
    /// organisation, and send the passport.
    ///
    /// If the staff member holds their own key, give it with --staff-key:
    /// the consent is then signed by them too before it is sent. Without
    /// it, a consent for a staff member who has a key waits for `consent
    /// sign`.
    Grant {
        /// The staff member (st-...).
        #[arg(long, value_name = "REF")]
        staff: StaffRef,
        /// The receiving organisation (e.g. RJ1).
        #[arg(long, value_name = "ORG")]
        to: OrgId,
        /// The agreement it is shared under.
        #[arg(long, value_name = "ID")]
        agreement: AgreementId,
        /// The move: rotation, honorary-contract, secondment, emergency-deployment.
        #[arg(long = "move", value_name = "MOVE", value_parser = parse_move)]
        move_kind: MoveKind,
        /// The claims to share, comma-separated (e.g. identity,dbs,training:fire-safety), or `all`.
        #[arg(long, value_name = "CLAIMS")]
        claims: Claims,
        /// Sharing ends: a date (the whole day included), a timestamp, or a span from now (30d).
        #[arg(long, value_name = "WHEN")]
        until: Until,
        /// Sharing starts [default: now].
        #[arg(long, value_name = "WHEN")]
        from: Option<Until>,
        /// The staff member's own key file, to sign the consent with.
        #[arg(long, value_name = "FILE")]
        staff_key: Option<PathBuf>,
        /// Sign with the staff key without asking.
        #[arg(long, short = 'y')]
        yes: bool,
        #[command(flatten)]
        node: NodeArgs,
    },
    /// Add the staff member's own signature to a consent awaiting it.
    Sign {
        /// The consent id (consent-...).
        #[arg(value_name = "ID")]
        id: ConsentId,
        /// The staff member's key file.
        #[arg(long, value_name = "FILE")]
        staff_key: PathBuf,
        /// Sign without asking.
        #[arg(long, short = 'y')]
        yes: bool,
        #[command(flatten)]
        node: NodeArgs,
    },
    /// Withdraw a consent: the receiver is told to erase what it received.
    Withdraw {
        /// The consent id (consent-...).
        #[arg(value_name = "ID")]
        id: ConsentId,
        #[command(flatten)]
        node: NodeArgs,
    },
    /// List consents recorded at this trust.
    List {
        /// Only withdrawn consents whose receiver has not yet confirmed
        /// erasure, with the receiver's standing in the agreement (a
        /// suspended or removed receiver is still told to erase).
        #[arg(long)]
        awaiting_erasure: bool,
        #[command(flatten)]
        node: NodeArgs,
    },
    /// Show one consent: what, with whom, until when, and where it stands.
    Show {
        /// The consent id (consent-...).
        #[arg(value_name = "ID")]
        id: ConsentId,
        #[command(flatten)]
        node: NodeArgs,
    },
}

fn parse_move(s: &str) -> std::result::Result<MoveKind, String> {
    s.parse().map_err(|e: staffpass_protocol::claims::Error| e.to_string())
}

/// Runs a consent command.
pub fn run(cmd: Command, format: Format) -> Result<()> {
    match cmd {
        Command::Grant { staff, to, agreement, move_kind, claims, until, from, staff_key, yes, node } => {
            let key = staff_key.as_deref().map(Staff::load_secret).transpose()?;
            let client = node.client()?;
            let t = now();
            let request = ConsentRequest {
                staff: staff.clone(),
                receiver: to.clone(),
                agreement: agreement.clone(),
                move_kind,
                claims: claims.0.clone(),
                not_before: from.map(|f| f.resolve(t)),
                not_after: until.resolve(t),
                staff_key: key.as_ref().map(|k| k.public()),
            };
            let mut view = block_on(async { Ok(client.grant_consent(&request).await?) })?;
            if let Some(k) = &key {
                let consent = &view.consent;
                let asked =
                    (&consent.subject, &consent.receiver, &consent.agreement, consent.move_kind, &consent.claims);
                if asked != (&staff, &to, &agreement, move_kind, &claims.0) {
                    return Err(Error::Answer("the consent recorded is not the one asked for; not signing it".into()));
                }
                view = staff_sign(&client, &view, k, yes, staff_key.as_deref().unwrap_or(Path::new("")))?;
            }
            print_view(&view, format, "Recorded")
        }
        Command::Sign { id, staff_key, yes, node } => {
            let key = Staff::load_secret(&staff_key)?;
            let client = node.client()?;
            let view = block_on(async { Ok(client.consent(&id).await?) })?;
            let view = staff_sign(&client, &view, &key, yes, &staff_key)?;
            print_view(&view, format, "Signed")
        }
        Command::Withdraw { id, node } => {
            let client = node.client()?;
            let view = block_on(async { Ok(client.withdraw_consent(&id).await?) })?;
            print_view(&view, format, "Withdrew")
        }
        Command::List { awaiting_erasure: true, node } => {
            let client = node.client()?;
            let list = block_on(async { Ok(client.consents().await?) })?;
            let waiting: Vec<&ConsentView> =
                list.iter().filter(|v| matches!(v.state, ConsentState::Withdrawn { erased: None, .. })).collect();
            if format.is_json() {
                return output::json(&waiting);
            }
            let mut standing = std::collections::BTreeMap::new();
            let mut t = Table::new(&["consent", "staff", "to", "agreement", "withdrawn", "receiver is"]);
            for v in waiting {
                let c = &v.consent;
                let ConsentState::Withdrawn { at, .. } = &v.state else { continue };
                if !standing.contains_key(&c.agreement) {
                    let roster = block_on(async { Ok(client.agreement(&c.agreement).await?) }).ok();
                    standing.insert(c.agreement.clone(), roster);
                }
                let of = standing
                    .get(&c.agreement)
                    .and_then(|r| r.as_ref())
                    .and_then(|r| r.state.status(&c.receiver))
                    .map_or_else(|| "not in the roster".to_string(), |s| s.to_string());
                t.row([
                    c.id.to_string(),
                    c.subject.to_string(),
                    c.receiver.to_string(),
                    c.agreement.to_string(),
                    at.to_string(),
                    of,
                ]);
            }
            t.print_or("Every withdrawn consent's erasure has been confirmed by its receiver.")?;
            output::line("Attempts and last errors: `staffpass-admin node outbox` (admin).")
        }
        Command::List { awaiting_erasure: false, node } => {
            let client = node.client()?;
            let list = block_on(async { Ok(client.consents().await?) })?;
            if format.is_json() {
                return output::json(&list);
            }
            let mut t = Table::new(&["consent", "staff", "to", "agreement", "move", "claims", "until", "state"]);
            for v in &list {
                let c = &v.consent;
                t.row([
                    c.id.to_string(),
                    c.subject.to_string(),
                    c.receiver.to_string(),
                    c.agreement.to_string(),
                    c.move_kind.to_string(),
                    c.claims.len().to_string(),
                    c.not_after.to_string(),
                    state_text(&v.state),
                ]);
            }
            t.print_or("No consents recorded.")
        }
        Command::Show { id, node } => {
            let client = node.client()?;
            let view = block_on(async { Ok(client.consent(&id).await?) })?;
            print_view(&view, format, "")
        }
    }
}

/// Signs the consent in `view` with the staff key and sends the signature.
fn staff_sign(
    client: &Client,
    view: &ConsentView,
    key: &<Staff as Role>::Secret,
    yes: bool,
    key_path: &Path,
) -> Result<ConsentView> {
    let consent = &view.consent;
    let Some(expected) = view.staff_signing_bytes.as_deref() else {
        return Err(Error::BadValue {
            what: "consent",
            input: consent.id.to_string(),
            reason: format!("it is not awaiting a staff signature (it is {})", state_text(&view.state)),
        });
    };
    if hex_of(consent) != expected {
        return Err(Error::Answer("the consent's signing bytes differ from what this version would sign".into()));
    }
    if consent.staff_key != Some(key.public()) {
        return Err(Error::BadValue {
            what: "staff key",
            input: key_path.display().to_string(),
            reason: "this consent names another staff key; use the staff member's own key file".into(),
        });
    }
    if !yes {
        let summary = format!(
            "{} consents to share {} with {} under {} for {}, from {} until {}.",
            consent.subject,
            join(&consent.claims),
            consent.receiver,
            consent.agreement,
            consent.move_kind,
            consent.not_before,
            consent.not_after
        );
        output::confirm(
            &format!("{summary}\nSign this consent with the staff key?"),
            format!("Check it with `staffpass-admin consent show {}`", consent.id),
        )?;
    }
    let signature = key.sign(consent);
    let id = consent.id;
    block_on(async { Ok(client.sign_consent(&id, signature).await?) })
}

fn hex_of(c: &Consent) -> String {
    c.signing_bytes().iter().map(|b| format!("{b:02x}")).collect()
}

/// A consent state in words.
fn state_text(s: &ConsentState) -> String {
    match s {
        ConsentState::AwaitingStaffSignature => "awaiting the staff member's signature".into(),
        ConsentState::Pending => "pending: waiting to be delivered".into(),
        ConsentState::Delivered { at } => format!("delivered {at}"),
        ConsentState::Rejected { reason, .. } => format!("rejected by the receiver: {reason}"),
        ConsentState::Withdrawn { erased: None, .. } => "withdrawn, erasure not yet confirmed".into(),
        ConsentState::Withdrawn { erased: Some(at), .. } => format!("withdrawn, erased {at}"),
    }
}

fn print_view(v: &ConsentView, format: Format, verb: &str) -> Result<()> {
    if format.is_json() {
        return output::json(v);
    }
    let c = &v.consent;
    if !verb.is_empty() {
        output::line(format!("{verb} {}.", c.id))?;
    }
    Fields::new()
        .add("consent", c.id.to_string())
        .add("staff", c.subject.to_string())
        .add("to", c.receiver.to_string())
        .add("agreement", c.agreement.to_string())
        .add("move", c.move_kind.to_string())
        .add("claims", join(&c.claims))
        .add("from", c.not_before.to_string())
        .add("until", c.not_after.to_string())
        .add("staff key", or_dash(c.staff_key.as_ref()))
        .add("state", state_text(&v.state))
        .add("receipts", v.receipts.len().to_string())
        .print()?;
    if v.staff_signing_bytes.is_some() {
        output::line(format!(
            "\nIt waits for the staff member's signature: `staffpass-admin consent sign {} --staff-key FILE`.",
            c.id
        ))?;
    }
    Ok(())
}
