//! `consent grant|sign|withdraw|list|show`: a staff member's choices about
//! sharing their passport.

use std::path::{Path, PathBuf};

use clap::Subcommand;
use serde_json::{Value, json};
use staffpass_node::api::Client;
use staffpass_protocol::consent::Consent;
use staffpass_protocol::roster::MoveKind;
use staffpass_protocol::{AgreementId, ConsentId, OrgId, Signable, StaffRef};

use crate::connect::{NodeArgs, block_on};
use crate::error::{Error, Result};
use crate::keys::{Role, Staff};
use crate::output::{self, Fields, Format, Table, cell};
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
            let body = json!({
                "staff": staff,
                "receiver": to,
                "agreement": agreement,
                "move_kind": move_kind,
                "claims": claims.0,
                "not_before": from.map(|f| f.resolve(t)),
                "not_after": until.resolve(t),
                "staff_key": key.as_ref().map(|k| k.public()),
            });
            let mut view: Value = block_on(async { Ok(client.post_json("/v1/consents", &body).await?) })?;
            if let Some(k) = &key {
                let consent = consent_of(&view)?;
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
            let view: Value = block_on(async { Ok(client.get_json(&format!("/v1/consents/{id}")).await?) })?;
            let view = staff_sign(&client, &view, &key, yes, &staff_key)?;
            print_view(&view, format, "Signed")
        }
        Command::Withdraw { id, node } => {
            let client = node.client()?;
            let view: Value = block_on(async { Ok(client.delete_json(&format!("/v1/consents/{id}")).await?) })?;
            print_view(&view, format, "Withdrew")
        }
        Command::List { node } => {
            let client = node.client()?;
            let list: Vec<Value> = block_on(async { Ok(client.get_json("/v1/consents").await?) })?;
            if format.is_json() {
                return output::json(&list);
            }
            let mut t = Table::new(&["consent", "staff", "to", "agreement", "move", "claims", "until", "state"]);
            for v in &list {
                let c = &v["consent"];
                let n = c["claims"].as_array().map(Vec::len).unwrap_or(0);
                t.row([
                    cell(&c["id"]),
                    cell(&c["subject"]),
                    cell(&c["receiver"]),
                    cell(&c["agreement"]),
                    cell(&c["move_kind"]),
                    n.to_string(),
                    cell(&c["not_after"]),
                    state_text(&v["state"]),
                ]);
            }
            t.print_or("No consents recorded.")
        }
        Command::Show { id, node } => {
            let client = node.client()?;
            let view: Value = block_on(async { Ok(client.get_json(&format!("/v1/consents/{id}")).await?) })?;
            print_view(&view, format, "")
        }
    }
}

fn consent_of(view: &Value) -> Result<Consent> {
    serde_json::from_value(view["consent"].clone())
        .map_err(|e| Error::Answer(format!("the consent cannot be read: {e}")))
}

/// Signs the consent in `view` with the staff key and sends the signature.
fn staff_sign(
    client: &Client,
    view: &Value,
    key: &<Staff as Role>::Secret,
    yes: bool,
    key_path: &Path,
) -> Result<Value> {
    let consent = consent_of(view)?;
    let Some(expected) = view["staff_signing_bytes"].as_str() else {
        return Err(Error::BadValue {
            what: "consent",
            input: consent.id.to_string(),
            reason: format!("it is not awaiting a staff signature (it is {})", state_text(&view["state"])),
        });
    };
    if hex_of(&consent) != expected {
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
    let signature = key.sign(&consent);
    let id = consent.id;
    block_on(async {
        Ok(client.post_json(&format!("/v1/consents/{id}/staff-signature"), &json!({ "signature": signature })).await?)
    })
}

fn hex_of(c: &Consent) -> String {
    c.signing_bytes().iter().map(|b| format!("{b:02x}")).collect()
}

/// A consent state in words. The node sends `{"state": "delivered", "at": ...}`;
/// `"pending"` and `{"delivered": {"at": ...}}` are read too.
fn state_text(s: &Value) -> String {
    let (name, fields) = match s {
        Value::String(n) => (n.clone(), &Value::Null),
        Value::Object(o) if o.contains_key("state") => (cell(&s["state"]), s),
        Value::Object(o) if o.len() == 1 => o.iter().next().map(|(k, v)| (k.clone(), v)).unwrap_or_default(),
        other => (cell(other), &Value::Null),
    };
    match name.as_str() {
        "awaiting-staff-signature" => "awaiting the staff member's signature".into(),
        "pending" => "pending: waiting to be delivered".into(),
        "delivered" => format!("delivered {}", cell(&fields["at"])),
        "rejected" => format!("rejected by the receiver: {}", cell(&fields["reason"])),
        "withdrawn" if fields["erased"].is_null() => "withdrawn, erasure not yet confirmed".into(),
        "withdrawn" => format!("withdrawn, erased {}", cell(&fields["erased"])),
        _ => name,
    }
}

fn print_view(v: &Value, format: Format, verb: &str) -> Result<()> {
    if format.is_json() {
        return output::json(v);
    }
    let c = &v["consent"];
    if !verb.is_empty() {
        output::line(format!("{verb} {}.", cell(&c["id"])))?;
    }
    Fields::new()
        .add("consent", cell(&c["id"]))
        .add("staff", cell(&c["subject"]))
        .add("to", cell(&c["receiver"]))
        .add("agreement", cell(&c["agreement"]))
        .add("move", cell(&c["move_kind"]))
        .add("claims", cell(&c["claims"]))
        .add("from", cell(&c["not_before"]))
        .add("until", cell(&c["not_after"]))
        .add("staff key", cell(&c["staff_key"]))
        .add("state", state_text(&v["state"]))
        .add("receipts", v["receipts"].as_array().map(Vec::len).unwrap_or(0).to_string())
        .print()?;
    if !v["staff_signing_bytes"].is_null() {
        output::line(format!(
            "\nIt waits for the staff member's signature: `staffpass-admin consent sign {} --staff-key FILE`.",
            cell(&c["id"])
        ))?;
    }
    Ok(())
}
