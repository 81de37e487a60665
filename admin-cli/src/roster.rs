//! `roster ...`: proposing, signing, checking and sharing roster changes.
//!
//! Files in, files out: a CHAIN file is a JSON array of entries from
//! genesis (from `roster fetch`, or a signed genesis file, which is a chain
//! of one); a change file is one entry. Every check is the protocol's own
//! (`roster::apply`, `Chain`): this module only reads files, asks, and
//! writes.

use std::path::{Path, PathBuf};

use clap::{Args, Subcommand};
use serde::Serialize;
use serde_json::json;
use staffpass_api::agreements::{EntriesQuery, Submission};
use staffpass_protocol::roster::{self, Chain, Change, Entry, EntryBody, MemberSpec, State, Terms};
use staffpass_protocol::{
    AgreementId, Hash, IssuerPublicKey, NodeId, OrgId, StewardPublicKey, StewardSecretKey, Timestamp,
};

use crate::connect::{NodeArgs, block_on};
use crate::error::{Error, Result};
use crate::files;
use crate::keys::{Issuer, Role, Steward};
use crate::output::{self, Fields, Format, Table, short};
use crate::parse::{Claims, Moves, Span, Until, join, now};

/// Roster commands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Make an unsigned change that extends a chain's head (offline).
    ///
    /// The change names the next seq and the hash of the chain's head, so
    /// it can only be applied right after it. It is checked against the
    /// chain's current state by the protocol rules before it is written.
    /// Then each steward signs it with `roster sign`.
    #[command(subcommand)]
    Propose(Propose),
    /// Add your steward signature to a change or genesis file (offline).
    ///
    /// Shows what is being signed and asks for confirmation (unless --yes).
    /// Refuses, before writing anything, a change that does not extend the
    /// head of the chain it names, and a key that is not a steward of the
    /// agreement (for a genesis: one of the stewards it names).
    Sign {
        /// The change (or genesis) file; it is updated in place unless --out.
        #[arg(value_name = "CHANGE")]
        change: PathBuf,
        /// Your steward key file.
        #[arg(long, value_name = "FILE")]
        key: PathBuf,
        /// The chain the change extends (needed for any change but a genesis).
        #[arg(long, value_name = "CHAIN")]
        chain: Option<PathBuf>,
        /// Write the signed change here instead of updating CHANGE.
        #[arg(long, value_name = "FILE")]
        out: Option<PathBuf>,
        /// For a resolution: the two entries at the halted seq (the same
        /// file as for `roster propose resolve`); the change is then checked
        /// after the chosen one instead of after the chain's head.
        #[arg(long, value_name = "FILE", requires = "chain")]
        evidence: Option<PathBuf>,
        /// Sign without asking (after checking it with `roster show`).
        #[arg(long, short = 'y')]
        yes: bool,
    },
    /// Show a chain or a change, in words (offline).
    Show {
        /// A CHAIN file or a change file.
        #[arg(value_name = "FILE")]
        file: PathBuf,
    },
    /// Check a whole chain with the protocol rules (offline).
    ///
    /// Exit code 0 if every entry is validly signed and linked, 3 if not
    /// (with the first entry refused and why).
    Verify {
        /// The CHAIN file.
        #[arg(value_name = "CHAIN")]
        chain: PathBuf,
    },
    /// Append a fully signed change to your copy of the chain (offline).
    ///
    /// Refused (exit 3) unless the change is valid as the chain's next entry.
    Append {
        /// The CHAIN file; it is updated in place unless --out.
        #[arg(value_name = "CHAIN")]
        chain: PathBuf,
        /// The signed change.
        #[arg(value_name = "CHANGE")]
        change: PathBuf,
        /// Write the longer chain here instead of updating CHAIN.
        #[arg(long, value_name = "FILE")]
        out: Option<PathBuf>,
    },
    /// Download an agreement's chain from a node, verify it, and save it.
    ///
    /// If the output file already holds a chain for the agreement, the
    /// node's chain must continue it; otherwise nothing is written (exit 3).
    Fetch {
        /// The agreement.
        #[arg(long, value_name = "ID")]
        agreement: AgreementId,
        /// The CHAIN file to write.
        #[arg(long, value_name = "CHAIN")]
        out: PathBuf,
        #[command(flatten)]
        node: NodeArgs,
    },
    /// Send a signed change, or a whole chain, to a node.
    ///
    /// The node checks it with the same rules and spreads it to the other
    /// members. If the node refuses it, its reason is shown (exit 3).
    Submit {
        /// A change file or a CHAIN file.
        #[arg(value_name = "FILE")]
        file: PathBuf,
        #[command(flatten)]
        node: NodeArgs,
    },
}

/// Where a proposal is read from and written to.
#[derive(Debug, Args)]
pub struct Target {
    /// The chain to extend (a CHAIN file, e.g. from `roster fetch`).
    #[arg(long, value_name = "CHAIN")]
    chain: PathBuf,
    /// The change file to create.
    #[arg(long, value_name = "FILE")]
    out: PathBuf,
}

/// The changes a proposal can make.
#[derive(Debug, Subcommand)]
pub enum Propose {
    /// Add a signatory organisation.
    AddMember {
        #[command(flatten)]
        target: Target,
        /// Its organisation id (ODS code, e.g. RJZ; or ext:<register>:<number>).
        #[arg(long)]
        org: OrgId,
        /// Its name.
        #[arg(long)]
        name: String,
        /// Its issuer public key (issuer-pk:..., from `staffpass-admin node status` at that trust), repeatable.
        #[arg(long = "issuer-key", value_name = "KEY", required = true)]
        issuer_keys: Vec<String>,
        /// Its node's PeerId (12D3KooW...), repeatable.
        #[arg(long = "node", value_name = "PEER_ID")]
        nodes: Vec<NodeId>,
        /// Where its node can be reached (a multiaddr, e.g. /ip4/10.1.2.3/tcp/7400), repeatable.
        #[arg(long = "address", value_name = "MULTIADDR")]
        addresses: Vec<String>,
    },
    /// Change a member's name, nodes or addresses (what is not given stays).
    UpdateMember {
        #[command(flatten)]
        target: Target,
        /// The member.
        #[arg(long)]
        org: OrgId,
        /// New name.
        #[arg(long)]
        name: Option<String>,
        /// New node list (replaces the old one), repeatable.
        #[arg(long = "node", value_name = "PEER_ID")]
        nodes: Vec<NodeId>,
        /// New address hints (replace the old ones), repeatable.
        #[arg(long = "address", value_name = "MULTIADDR")]
        addresses: Vec<String>,
        /// Remove all address hints.
        #[arg(long, conflicts_with = "addresses")]
        clear_addresses: bool,
    },
    /// Suspend a member: its exchanges stop and its connections drop.
    Suspend {
        #[command(flatten)]
        target: Target,
        /// The member.
        #[arg(long)]
        org: OrgId,
        /// Why (no personal data).
        #[arg(long)]
        reason: String,
    },
    /// Lift a member's suspension.
    Reinstate {
        #[command(flatten)]
        target: Target,
        /// The member.
        #[arg(long)]
        org: OrgId,
    },
    /// Remove a member.
    Remove {
        #[command(flatten)]
        target: Target,
        /// The member.
        #[arg(long)]
        org: OrgId,
    },
    /// Add an issuer key for a member, and optionally retire an old one.
    ///
    /// A retired key still verifies what it signed before this change.
    RotateKey {
        #[command(flatten)]
        target: Target,
        /// The member.
        #[arg(long)]
        org: OrgId,
        /// The new issuer public key (issuer-pk:...).
        #[arg(long, value_name = "KEY")]
        add: String,
        /// The key to retire from this change on.
        #[arg(long, value_name = "KEY")]
        retire: Option<String>,
    },
    /// Revoke a member's issuer key as compromised: everything it signs
    /// claiming a time at or after --since is refused (a rotation only
    /// retires a key from the change's own time).
    RevokeKey {
        #[command(flatten)]
        target: Target,
        /// The member.
        #[arg(long)]
        org: OrgId,
        /// The compromised issuer public key (issuer-pk:...).
        #[arg(long, value_name = "KEY")]
        key: String,
        /// From when the key is not to be trusted (an RFC 3339 timestamp, e.g. 2026-11-30T09:00:00Z).
        #[arg(long, value_name = "TIME")]
        since: staffpass_protocol::Timestamp,
    },
    /// Resolve an equivocation: of the two entries at the halted seq, the
    /// one with hash CHOSEN stands. Signed by a threshold of the stewards in
    /// office after it; every node then ends the halt.
    Resolve {
        /// The halted agreement's chain as a halted node shows it (`roster fetch`).
        #[arg(long)]
        chain: PathBuf,
        /// The two entries at the halted seq, as the node reports them
        /// (`agreement show --json`, field `halted`): a JSON file.
        #[arg(long, value_name = "FILE")]
        evidence: PathBuf,
        /// The hash of the entry that stands (hex).
        #[arg(long, value_name = "HASH")]
        chosen: staffpass_protocol::Hash,
        /// The change file to create.
        #[arg(long, value_name = "FILE")]
        out: PathBuf,
    },
    /// Replace the stewards and the threshold (signed by the current stewards).
    SetStewards {
        #[command(flatten)]
        target: Target,
        /// A steward: key file or steward-pk:... text, repeatable.
        #[arg(long = "steward", value_name = "KEY", required = true)]
        stewards: Vec<String>,
        /// Signatures needed for each later change.
        #[arg(long)]
        threshold: u8,
    },
    /// Replace the agreement's terms (what is not given stays).
    SetTerms {
        #[command(flatten)]
        target: Target,
        /// Moves covered, comma-separated: rotation, honorary-contract, secondment, emergency-deployment.
        #[arg(long, value_name = "MOVES")]
        moves: Option<Moves>,
        /// Checks the signatories accept from each other, comma-separated, or `all`.
        #[arg(long, value_name = "CLAIMS")]
        accepts: Option<Claims>,
        /// The lawful basis for processing.
        #[arg(long, value_name = "TEXT")]
        lawful_basis: Option<String>,
    },
    /// Re-sign the roster: extend its valid_until.
    Resign {
        #[command(flatten)]
        target: Target,
        /// New validity, from now (e.g. 90d).
        #[arg(long, value_name = "SPAN", conflicts_with = "valid_until", required_unless_present = "valid_until")]
        valid_for: Option<Span>,
        /// New end of validity (a date or a timestamp).
        #[arg(long, value_name = "WHEN")]
        valid_until: Option<Until>,
    },
}

/// Runs a roster command.
pub fn run(cmd: Command, format: Format) -> Result<()> {
    match cmd {
        Command::Propose(p) => propose(p, format),
        Command::Sign { change, key, chain, out, evidence, yes } => {
            sign(&change, &key, chain.as_deref(), evidence.as_deref(), out.as_deref(), yes, format)
        }
        Command::Show { file } => show(&file, format),
        Command::Verify { chain } => verify(&chain, format),
        Command::Append { chain, change, out } => append(&chain, &change, out.as_deref(), format),
        Command::Fetch { agreement, out, node } => fetch(&agreement, &out, &node, format),
        Command::Submit { file, node } => submit(&file, &node, format),
    }
}

// ------------------------------------------------------------------ files

/// What a roster file holds.
#[derive(Debug)]
pub enum RosterFile {
    /// Entries from genesis.
    Chain(Vec<Entry>),
    /// One entry.
    Entry(Box<Entry>),
}

/// Reads a CHAIN or change file.
pub fn read_file(path: &Path) -> Result<RosterFile> {
    let bytes = files::read(path, files::MAX_FILE, "roster file")?;
    parse_file(path, &bytes)
}

/// Parses the bytes of a CHAIN or change file read from `path` (named in
/// errors): a JSON array of entries is a chain, anything else one entry.
pub fn parse_file(path: &Path, bytes: &[u8]) -> Result<RosterFile> {
    let first = bytes.iter().find(|b| !b.is_ascii_whitespace());
    match first {
        Some(b'[') => Ok(RosterFile::Chain(files::parse_json(path, bytes, "roster chain (JSON array of entries)")?)),
        _ => Ok(RosterFile::Entry(Box::new(files::parse_json(path, bytes, "roster change (JSON entry)")?))),
    }
}

/// Reads a CHAIN file (a single entry is a chain of one, e.g. a signed genesis).
pub fn read_chain_file(path: &Path) -> Result<Vec<Entry>> {
    Ok(match read_file(path)? {
        RosterFile::Chain(v) => v,
        RosterFile::Entry(e) => vec![*e],
    })
}

/// Reads a change file.
pub fn read_change(path: &Path) -> Result<Entry> {
    match read_file(path)? {
        RosterFile::Entry(e) => Ok(*e),
        RosterFile::Chain(mut v) if v.len() == 1 => Ok(v.remove(0)),
        RosterFile::Chain(v) => Err(Error::BadValue {
            what: "change file",
            input: path.display().to_string(),
            reason: format!("it holds a chain of {} entries, not one change", v.len()),
        }),
    }
}

/// Builds a chain from entries, checking each; on failure returns the
/// chain as far as it verified, with the first refused seq and why.
pub fn build_chain(entries: Vec<Entry>) -> (Option<Chain>, Option<(u64, roster::Error)>) {
    let mut it = entries.into_iter();
    let Some(first) = it.next() else { return (None, Some((0, roster::Error::NotGenesis))) };
    let mut chain = match Chain::new(first) {
        Ok(c) => c,
        Err(e) => return (None, Some((0, e))),
    };
    for e in it {
        let seq = e.body.seq;
        if let Err(err) = chain.append(e) {
            return (Some(chain), Some((seq, err)));
        }
    }
    (Some(chain), None)
}

/// Reads and fully verifies a CHAIN file.
pub fn load_chain(path: &Path) -> Result<Chain> {
    match build_chain(read_chain_file(path)?) {
        (Some(c), None) => Ok(c),
        (_, Some((seq, source))) => Err(Error::InvalidChain { path: path.into(), seq, source }),
        (None, None) => Err(Error::InvalidChain { path: path.into(), seq: 0, source: roster::Error::NotGenesis }),
    }
}

fn write_out(path: &Path, entries: &[Entry], replace: bool) -> Result<()> {
    let bytes = files::to_json_bytes(entries);
    if replace { files::replace(path, &bytes) } else { files::create(path, &bytes) }
}

fn write_entry(path: &Path, entry: &Entry, replace: bool) -> Result<()> {
    let bytes = files::to_json_bytes(entry);
    if replace { files::replace(path, &bytes) } else { files::create(path, &bytes) }
}

// --------------------------------------------------------------- checking

/// Checks a change's content against `state` (`None`: a genesis) with the
/// protocol's rules, without its signatures: everything `apply` checks
/// except who signed.
pub fn dry_run(state: Option<&State>, body: &EntryBody) -> Result<(), roster::Error> {
    match state {
        None => match roster::apply(None, &Entry::unsigned(body.clone())) {
            // An unsigned genesis that passes every content check fails
            // only for want of signatures.
            Err(roster::Error::BelowThreshold { have: 0, .. }) => Ok(()),
            Err(e) => Err(e),
            Ok(_) => Ok(()),
        },
        Some(st) => {
            let probe = StewardSecretKey::generate(&mut rand::rng());
            let mut probe_state = st.clone();
            probe_state.stewards = [probe.public()].into_iter().collect();
            probe_state.threshold = 1;
            let mut e = Entry::unsigned(body.clone());
            e.sign(&probe);
            roster::apply(Some(&probe_state), &e).map(drop)
        }
    }
}

/// Checks that `entry` is the next entry of `chain` (agreement, seq, prev).
fn check_extends(chain: &Chain, entry: &Entry) -> Result<()> {
    let body = &entry.body;
    if body.agreement != *chain.agreement() {
        return Err(Error::roster(
            "the change is for another agreement",
            roster::Error::WrongAgreement { expected: chain.agreement().clone(), found: body.agreement.clone() },
        ));
    }
    if body.seq != chain.seq() + 1 || body.prev != chain.head() {
        return Err(Error::NotExtending {
            seq: body.seq,
            prev: short(&body.prev.to_string(), 12),
            head_seq: chain.seq(),
            head: short(&chain.head().to_string(), 12),
        });
    }
    Ok(())
}

/// Checks the signatures already on an entry: each by a steward, each valid.
fn check_existing(entry: &Entry, stewards: &std::collections::BTreeSet<StewardPublicKey>) -> Result<()> {
    for s in &entry.signatures {
        if !stewards.contains(&s.steward) {
            return Err(Error::roster(
                "the change already carries a signature that can never count",
                roster::Error::UnknownSigner { steward: s.steward },
            ));
        }
        if s.steward.verify(&entry.body, &s.signature).is_err() {
            return Err(Error::roster(
                "the change was altered after it was signed",
                roster::Error::BadSignature { steward: s.steward },
            ));
        }
    }
    Ok(())
}

fn stewards_short(stewards: &std::collections::BTreeSet<StewardPublicKey>) -> String {
    join(stewards.iter().map(|s| short_key(&s.to_string())))
}

/// A key's prefix and first hex digits, e.g. `steward-pk:1a2b3c4d…`.
pub fn short_key(k: &str) -> String {
    match k.split_once(':') {
        Some((p, h)) => format!("{p}:{}", short(h, 8)),
        None => short(k, 16),
    }
}

// -------------------------------------------------------------- describing

/// A change in words.
pub fn describe(change: &Change) -> String {
    match change {
        Change::Genesis { title, terms, stewards, threshold, valid_until } => format!(
            "create agreement {title:?}: {threshold} of {} stewards ({}) must sign each change; {}; valid until {valid_until}",
            stewards.len(),
            stewards_short(stewards),
            describe_terms(terms)
        ),
        Change::AddMember(MemberSpec { org, name, issuer_keys, nodes, addresses }) => format!(
            "add member {org} ({name:?}) with issuer key(s) {}; node(s) {}; address(es) {}",
            join(issuer_keys),
            or_none(nodes),
            or_none(addresses)
        ),
        Change::UpdateMember { org, name, nodes, addresses } => {
            let mut parts = Vec::new();
            if let Some(n) = name {
                parts.push(format!("name {n:?}"));
            }
            if let Some(n) = nodes {
                parts.push(format!("node(s) {}", or_none(n)));
            }
            if let Some(a) = addresses {
                parts.push(format!("address(es) {}", or_none(a)));
            }
            if parts.is_empty() {
                parts.push("nothing".into());
            }
            format!("update member {org}: set {}", parts.join("; "))
        }
        Change::RotateKey { org, add, retire } => match retire {
            Some(r) => format!("rotate {org}'s issuer key: add {add}, retire {r}"),
            None => format!("add issuer key {add} for {org} (no key retired)"),
        },
        Change::Suspend { org, reason } => format!("suspend member {org}: {reason:?}"),
        Change::Reinstate { org } => format!("reinstate member {org}"),
        Change::Remove { org } => format!("remove member {org}"),
        Change::SetStewards { stewards, threshold } => format!(
            "replace the stewards: {threshold} of {} ({}) must sign each later change",
            stewards.len(),
            stewards_short(stewards)
        ),
        Change::SetTerms(t) => format!("replace the terms: {}", describe_terms(t)),
        Change::Resign { valid_until } => format!("re-sign the roster: valid until {valid_until}"),
        Change::RevokeKey { org, key, compromised_since } => {
            format!("revoke {org}'s issuer key {key} as compromised since {compromised_since}")
        }
        Change::Resolve { seq, chosen } => {
            format!("resolve the equivocation at seq {seq}: entry {chosen} stands, the other is refused")
        }
    }
}

fn or_none<T: std::fmt::Display>(v: &[T]) -> String {
    if v.is_empty() { "none".into() } else { join(v) }
}

fn describe_terms(t: &Terms) -> String {
    format!("moves: {}; accepts: {}; lawful basis: {:?}", join(&t.moves), accepts_text(t), t.lawful_basis)
}

fn accepts_text(t: &Terms) -> String {
    if t.accepts.len() == staffpass_protocol::ClaimKind::all().len() { "all checks".into() } else { join(&t.accepts) }
}

// ----------------------------------------------------------------- propose

/// `roster propose resolve`: the resolution entry after the chosen one of
/// the two entries at a halted seq.
/// The roster state after the entry `chosen`, one of the two entries at the
/// halted seq in the `evidence` file, applied to `chain` as it stood before
/// that seq: what a resolution choosing it is checked and signed against.
fn after_chosen(chain: &Chain, evidence: &Path, chosen: Hash) -> Result<State> {
    let eq: roster::Equivocation = crate::files::read_json(evidence, "equivocation evidence")?;
    let bad = |reason: String| Error::BadValue { what: "resolve", input: chosen.to_string(), reason };
    let picked = [&eq.existing, &eq.conflicting]
        .into_iter()
        .find(|e| e.hash() == chosen)
        .ok_or_else(|| bad(format!("neither entry at seq {} has this hash", eq.seq)))?;
    let before = eq
        .seq
        .checked_sub(1)
        .and_then(|s| chain.state_at(s))
        .ok_or_else(|| bad("the chain file does not reach the halted seq".into()))?;
    roster::apply(Some(&before), picked).map_err(|e| Error::roster("the chosen entry does not apply", e))
}

fn propose_resolve(chain: &Path, evidence: &Path, chosen: Hash, out: &Path, format: Format) -> Result<()> {
    let after = after_chosen(&load_chain(chain)?, evidence, chosen)?;
    let body = EntryBody {
        agreement: after.agreement.clone(),
        seq: after.seq + 1,
        prev: chosen,
        issued_at: now().max(after.issued_at),
        change: Change::Resolve { seq: after.seq, chosen },
    };
    dry_run(Some(&after), &body).map_err(|e| Error::roster("the resolution would be refused", e))?;
    let entry = Entry::unsigned(body);
    write_entry(out, &entry, false)?;
    if format.is_json() {
        return output::json(&change_json(&entry));
    }
    output::line(format!("Wrote {}: entry {} of {}.", out.display(), entry.body.seq, entry.body.agreement))?;
    output::line(format!("  {}", describe(&entry.body.change)))?;
    output::line(format!(
        "It needs {} signature(s) of the stewards in office after the chosen entry: each runs `staffpass-admin roster sign {} --key STEWARD.key --chain {} --evidence {}`; then submit it to any node.",
        after.threshold,
        out.display(),
        chain.display(),
        evidence.display()
    ))
}

fn propose(p: Propose, format: Format) -> Result<()> {
    let (target, change) = match p {
        Propose::Resolve { chain, evidence, chosen, out } => {
            return propose_resolve(&chain, &evidence, chosen, &out, format);
        }
        Propose::AddMember { target, org, name, issuer_keys, nodes, addresses } => {
            let keys = issuer_keys.iter().map(|k| Issuer::public_arg(k)).collect::<Result<Vec<IssuerPublicKey>>>()?;
            (target, Change::AddMember(MemberSpec { org, name, issuer_keys: keys, nodes, addresses }))
        }
        Propose::UpdateMember { target, org, name, nodes, addresses, clear_addresses } => {
            let addresses = if clear_addresses { Some(Vec::new()) } else { Some(addresses).filter(|a| !a.is_empty()) };
            let nodes = Some(nodes).filter(|n| !n.is_empty());
            if name.is_none() && nodes.is_none() && addresses.is_none() {
                return Err(Error::BadValue {
                    what: "update-member",
                    input: org.to_string(),
                    reason: "nothing to change: give --name, --node, --address or --clear-addresses".into(),
                });
            }
            (target, Change::UpdateMember { org, name, nodes, addresses })
        }
        Propose::Suspend { target, org, reason } => (target, Change::Suspend { org, reason }),
        Propose::Reinstate { target, org } => (target, Change::Reinstate { org }),
        Propose::Remove { target, org } => (target, Change::Remove { org }),
        Propose::RotateKey { target, org, add, retire } => {
            let add = Issuer::public_arg(&add)?;
            let retire = retire.as_deref().map(Issuer::public_arg).transpose()?;
            (target, Change::RotateKey { org, add, retire })
        }
        Propose::RevokeKey { target, org, key, since } => {
            let key = Issuer::public_arg(&key)?;
            (target, Change::RevokeKey { org, key, compromised_since: since })
        }
        Propose::SetStewards { target, stewards, threshold } => {
            let stewards = stewards.iter().map(|s| Steward::public_arg(s)).collect::<Result<_>>()?;
            (target, Change::SetStewards { stewards, threshold })
        }
        Propose::SetTerms { target, moves, accepts, lawful_basis } => {
            let chain = load_chain(&target.chain)?;
            let cur = chain.state().terms.clone();
            if moves.is_none() && accepts.is_none() && lawful_basis.is_none() {
                return Err(Error::BadValue {
                    what: "set-terms",
                    input: chain.agreement().to_string(),
                    reason: "nothing to change: give --moves, --accepts or --lawful-basis".into(),
                });
            }
            let terms = Terms {
                moves: moves.map(|m| m.0).unwrap_or(cur.moves),
                accepts: accepts.map(|a| a.0).unwrap_or(cur.accepts),
                lawful_basis: lawful_basis.unwrap_or(cur.lawful_basis),
            };
            (target, Change::SetTerms(terms))
        }
        Propose::Resign { target, valid_for, valid_until } => {
            let t = now();
            let until = match (valid_for, valid_until) {
                (Some(Span(s)), _) => t.plus_secs(s),
                (None, Some(u)) => u.resolve(t),
                (None, None) => t,
            };
            (target, Change::Resign { valid_until: until })
        }
    };
    let chain = load_chain(&target.chain)?;
    let state = chain.state();
    let issued_at = now().max(state.issued_at);
    let body =
        EntryBody { agreement: state.agreement.clone(), seq: chain.seq() + 1, prev: chain.head(), issued_at, change };
    dry_run(Some(state), &body).map_err(|e| Error::roster("the change would be refused", e))?;
    let entry = Entry::unsigned(body);
    write_entry(&target.out, &entry, false)?;
    if format.is_json() {
        return output::json(&change_json(&entry));
    }
    output::line(format!("Wrote {}: entry {} of {}.", target.out.display(), entry.body.seq, entry.body.agreement))?;
    output::line(format!("  {}", describe(&entry.body.change)))?;
    output::line(format!(
        "It needs {} steward signature(s): each steward runs `staffpass-admin roster sign {} --key STEWARD.key --chain {}`.",
        state.threshold,
        target.out.display(),
        target.chain.display()
    ))
}

/// The JSON shown for a change.
fn change_json(entry: &Entry) -> serde_json::Value {
    json!({
        "kind": "change",
        "agreement": entry.body.agreement,
        "seq": entry.body.seq,
        "prev": entry.body.prev,
        "issued_at": entry.body.issued_at,
        "hash": entry.hash(),
        "change": entry.body.change.name(),
        "summary": describe(&entry.body.change),
        "signed_by": entry.signatures.iter().map(|s| s.steward).collect::<Vec<_>>(),
        "entry": entry,
    })
}

// -------------------------------------------------------------------- sign

fn sign(
    path: &Path,
    key_path: &Path,
    chain_path: Option<&Path>,
    evidence: Option<&Path>,
    out: Option<&Path>,
    yes: bool,
    format: Format,
) -> Result<()> {
    let mut entry = read_change(path)?;
    let key = Steward::load_secret(key_path)?;
    let me = key.public();
    let is_genesis = matches!(entry.body.change, Change::Genesis { .. });

    // The state the signature must count in, and the checks before signing.
    let (stewards, threshold, state) = if let Change::Genesis { stewards, threshold, .. } = &entry.body.change {
        if let Some(cp) = chain_path {
            let entries = read_chain_file(cp)?;
            if entries.first().map(Entry::hash) != Some(entry.hash()) {
                return Err(Error::roster(
                    format!("{} is a genesis, but {} starts with another one", path.display(), cp.display()),
                    roster::Error::NotGenesis,
                ));
            }
        }
        dry_run(None, &entry.body).map_err(|e| Error::roster("the genesis would be refused", e))?;
        (stewards.clone(), *threshold, None)
    } else {
        let cp = chain_path
            .ok_or_else(|| Error::NeedChain { agreement: entry.body.agreement.clone(), seq: entry.body.seq })?;
        let chain = load_chain(cp)?;
        let st = match (evidence, &entry.body.change) {
            (Some(ev), Change::Resolve { chosen, .. }) => after_chosen(&chain, ev, *chosen)?,
            _ => {
                check_extends(&chain, &entry)?;
                chain.state().clone()
            }
        };
        (st.stewards.clone(), st.threshold, Some(st))
    };
    if !stewards.contains(&me) {
        return Err(Error::NotSteward {
            steward: me,
            agreement: entry.body.agreement.clone(),
            stewards: stewards_short(&stewards),
        });
    }
    check_existing(&entry, &stewards)?;
    if let Some(st) = &state {
        dry_run(Some(st), &entry.body).map_err(|e| Error::roster("the change would be refused", e))?;
    }

    let already = entry.signatures.iter().any(|s| s.steward == me);
    let have = entry.signatures.len() + usize::from(!already);
    let mut f = Fields::new();
    f.add("agreement", entry.body.agreement.to_string())
        .add(
            "entry",
            if is_genesis {
                "0 (genesis)".to_string()
            } else {
                format!("{} (after {})", entry.body.seq, short(&entry.body.prev.to_string(), 16))
            },
        )
        .add("issued at", entry.body.issued_at.to_string())
        .add("change", describe(&entry.body.change))
        .add(
            "signed by",
            if entry.signatures.is_empty() {
                "nobody yet".into()
            } else {
                join(entry.signatures.iter().map(|s| short_key(&s.steward.to_string())))
            },
        )
        .add("you sign as", me.to_string())
        .add("signatures", format!("{have} of {threshold} needed after yours"));
    let summary = f.render();

    if !yes {
        let check = format!("Check the change with `staffpass-admin roster show {}`", path.display());
        output::confirm(&format!("You are about to sign:\n{summary}Sign this change?"), check)?;
    }

    entry.sign(&key);
    let complete = entry.signatures.len() >= usize::from(threshold);
    if complete {
        // With enough signatures the change must apply as it stands; check
        // that before writing anything.
        roster::apply(state.as_ref(), &entry)
            .map_err(|e| Error::roster("signed, but the change is still refused", e))?;
    }
    let target = out.unwrap_or(path);
    write_entry(target, &entry, out.is_none() || target == path)?;

    if format.is_json() {
        return output::json(&json!({
            "file": target,
            "agreement": entry.body.agreement,
            "seq": entry.body.seq,
            "hash": entry.hash(),
            "signed_by": entry.signatures.iter().map(|s| s.steward).collect::<Vec<_>>(),
            "signatures": entry.signatures.len(),
            "needed": threshold,
            "complete": complete,
        }));
    }
    if yes {
        // Without --yes the summary was shown with the question.
        output::print(&summary)?;
    }
    if already {
        output::line("Your signature was already on it; it is unchanged.")?;
    }
    output::line(format!(
        "Signed: {} now has {} of {} needed signatures.",
        target.display(),
        entry.signatures.len(),
        threshold
    ))?;
    if !complete {
        output::line(format!("Pass {} to the next steward.", target.display()))
    } else if is_genesis {
        output::line(format!(
            "The genesis is complete: {} is now a chain of one. Submit it with `staffpass-admin roster submit {}`.",
            target.display(),
            target.display()
        ))
    } else {
        output::line(format!(
            "Ready: submit it with `staffpass-admin roster submit {}`, then `roster append` it to your chain.",
            target.display()
        ))
    }
}

// -------------------------------------------------------------- show/verify

fn show(path: &Path, format: Format) -> Result<()> {
    match read_file(path)? {
        // A fully signed genesis is a chain of one: show it as one.
        RosterFile::Entry(e) if e.body.seq == 0 && Chain::new((*e).clone()).is_ok() => show_chain(vec![*e], format),
        RosterFile::Entry(e) => show_change(&e, format),
        RosterFile::Chain(entries) => show_chain(entries, format),
    }
}

fn show_change(entry: &Entry, format: Format) -> Result<()> {
    if format.is_json() {
        return output::json(&change_json(entry));
    }
    let mut f = Fields::new();
    f.add("agreement", entry.body.agreement.to_string())
        .add("entry", entry.body.seq.to_string())
        .add(
            "extends",
            if entry.body.seq == 0 {
                "nothing (genesis)".into()
            } else {
                format!("entry {} with hash {}", entry.body.seq - 1, entry.body.prev)
            },
        )
        .add("issued at", entry.body.issued_at.to_string())
        .add("hash", entry.hash().to_string())
        .add("change", describe(&entry.body.change));
    let sigs = if entry.signatures.is_empty() {
        "none yet".into()
    } else {
        let mut s = entry.signatures.iter().map(|s| {
            let ok = if s.steward.verify(&entry.body, &s.signature).is_ok() { "" } else { " (DOES NOT VERIFY)" };
            format!("{}{ok}", s.steward)
        });
        let first = s.next().unwrap_or_default();
        s.fold(first, |a, b| format!("{a}\n            {b}"))
    };
    f.add("signed by", sigs);
    if let Change::Genesis { threshold, .. } = &entry.body.change {
        f.add("needs", format!("{threshold} signatures"));
    }
    f.print()
}

#[derive(Serialize)]
struct EntryLine {
    seq: u64,
    issued_at: Timestamp,
    hash: Hash,
    change: &'static str,
    summary: String,
    signatures: usize,
}

fn entry_lines(entries: &[Entry]) -> Vec<EntryLine> {
    entries
        .iter()
        .map(|e| EntryLine {
            seq: e.body.seq,
            issued_at: e.body.issued_at,
            hash: e.hash(),
            change: e.body.change.name(),
            summary: describe(&e.body.change),
            signatures: e.signatures.len(),
        })
        .collect()
}

fn show_chain(entries: Vec<Entry>, format: Format) -> Result<()> {
    let lines = entry_lines(&entries);
    let (chain, failure) = build_chain(entries);
    if format.is_json() {
        return output::json(&json!({
            "kind": "chain",
            "verified": failure.is_none(),
            "error": failure.as_ref().map(|(seq, e)| json!({"seq": seq, "message": e.to_string()})),
            "state": chain.as_ref().map(Chain::state),
            "entries": lines,
        }));
    }
    if let Some(c) = &chain {
        print_state(c.state(), c.seq(), &c.head())?;
        output::line("")?;
    }
    let mut t = Table::new(&["seq", "issued at", "sigs", "change"]);
    for l in &lines {
        t.row([l.seq.to_string(), l.issued_at.to_string(), l.signatures.to_string(), l.summary.clone()]);
    }
    output::line("Entries")?;
    t.print_or("(none)")?;
    match failure {
        None => output::line(format!("\nVerified: all {} entries are validly signed and linked.", lines.len())),
        Some((seq, e)) => output::line(format!(
            "\nNOT VERIFIED: entry {seq} is refused: {e}. The state above is as of the entry before it."
        )),
    }
}

/// Prints a roster state (agreement, terms, stewards, members).
pub fn print_state(st: &State, seq: u64, head: &Hash) -> Result<()> {
    let t = now();
    let mut f = Fields::new();
    f.add("agreement", format!("{} — {}", st.agreement, st.title))
        .add("head", format!("entry {seq}, hash {head}"))
        .add(
            "valid until",
            format!(
                "{}{}",
                st.valid_until,
                if st.is_fresh(t) { "" } else { " (EXPIRED: nodes refuse new exchanges until the stewards re-sign)" }
            ),
        )
        .add(
            "stewards",
            format!("{} of {} must sign: {}", st.threshold, st.stewards.len(), stewards_short(&st.stewards)),
        )
        .add("moves", join(&st.terms.moves))
        .add("accepts", accepts_text(&st.terms))
        .add("lawful basis", st.terms.lawful_basis.clone());
    f.print()?;
    output::line("")?;
    let mut m = Table::new(&["org", "name", "status", "issuer keys (current)", "nodes"]);
    for mem in st.members.values() {
        let keys: Vec<String> =
            mem.keys.iter().filter(|k| k.retired_at.is_none()).map(|k| short_key(&k.key.to_string())).collect();
        m.row([
            mem.org.to_string(),
            mem.name.clone(),
            mem.status.to_string(),
            keys.join(", "),
            join(mem.nodes.iter().map(|n| short(&n.to_string(), 16))),
        ]);
    }
    output::line("Members")?;
    m.print_or("(none yet)")
}

fn verify(path: &Path, format: Format) -> Result<()> {
    let entries = read_chain_file(path)?;
    let n = entries.len();
    match build_chain(entries) {
        (Some(c), None) => {
            let st = c.state();
            let fresh = st.is_fresh(now());
            if format.is_json() {
                output::json(&json!({
                    "valid": true, "agreement": st.agreement, "entries": n, "seq": c.seq(), "head": c.head(),
                    "valid_until": st.valid_until, "fresh": fresh, "members": st.members.len(),
                }))?;
            } else {
                output::line(format!(
                    "Valid: {} ({}), {n} entr{}, head entry {} ({}), {} member(s), valid until {}.",
                    st.agreement,
                    st.title,
                    if n == 1 { "y" } else { "ies" },
                    c.seq(),
                    short(&c.head().to_string(), 16),
                    st.members.len(),
                    st.valid_until
                ))?;
            }
            if !fresh {
                output::note(format!(
                    "warning: the roster expired at {}: nodes refuse new exchanges under it until the stewards re-sign it (roster propose resign)",
                    st.valid_until
                ));
            }
            Ok(())
        }
        (_, failure) => {
            let (seq, source) = failure.unwrap_or((0, roster::Error::NotGenesis));
            if format.is_json() {
                output::json(&json!({"valid": false, "seq": seq, "error": source.to_string()}))?;
            }
            Err(Error::InvalidChain { path: path.into(), seq, source })
        }
    }
}

// ------------------------------------------------------------------ append

fn append(chain_path: &Path, change_path: &Path, out: Option<&Path>, format: Format) -> Result<()> {
    let mut chain = load_chain(chain_path)?;
    let entry = read_change(change_path)?;
    check_extends_or_held(&chain, &entry)?;
    let outcome =
        chain.append(entry).map_err(|e| Error::roster(format!("{} cannot be appended", change_path.display()), e))?;
    let target = out.unwrap_or(chain_path);
    if outcome == roster::Appended::Applied || out.is_some() {
        write_out(target, chain.entries(), true)?;
    }
    if format.is_json() {
        return output::json(&json!({
            "appended": outcome == roster::Appended::Applied, "agreement": chain.agreement(),
            "seq": chain.seq(), "head": chain.head(), "file": target,
        }));
    }
    match outcome {
        roster::Appended::Applied => output::line(format!(
            "Appended entry {} to {}: {}.",
            chain.seq(),
            target.display(),
            describe(&chain.entries()[chain.entries().len() - 1].body.change)
        )),
        roster::Appended::AlreadyHave => {
            output::line(format!("{} already holds this entry; nothing changed.", chain_path.display()))
        }
    }
}

/// Like [`check_extends`], but an entry the chain already holds is fine.
fn check_extends_or_held(chain: &Chain, entry: &Entry) -> Result<()> {
    let held = usize::try_from(entry.body.seq)
        .ok()
        .and_then(|i| chain.entries().get(i))
        .is_some_and(|e| e.hash() == entry.hash());
    if held { Ok(()) } else { check_extends(chain, entry) }
}

// ------------------------------------------------------------ fetch/submit

fn fetch(agreement: &AgreementId, out: &Path, node: &NodeArgs, format: Format) -> Result<()> {
    let client = node.client()?;
    let entries = block_on(async { Ok(client.entries(agreement, EntriesQuery { from: 0 }).await?) })?;
    let chain = match build_chain(entries) {
        (Some(c), None) => c,
        (_, failure) => {
            let (seq, source) = failure.unwrap_or((0, roster::Error::NotGenesis));
            return Err(Error::roster(
                format!("the node's roster for {agreement} does not verify at entry {seq}"),
                source,
            ));
        }
    };
    if chain.agreement() != agreement {
        return Err(Error::roster(
            "the node answered with another agreement's roster",
            roster::Error::WrongAgreement { expected: agreement.clone(), found: chain.agreement().clone() },
        ));
    }
    if out.exists() {
        let old = read_chain_file(out)?;
        if old.first().is_some_and(|e| e.body.agreement == *agreement) {
            let differs = old.iter().zip(chain.entries()).position(|(a, b)| a.hash() != b.hash());
            if let Some(i) = differs {
                return Err(Error::Fork { agreement: agreement.clone(), path: out.into(), seq: i as u64 });
            }
            if old.len() > chain.entries().len() {
                return Err(Error::Behind {
                    agreement: agreement.clone(),
                    path: out.into(),
                    node_seq: chain.seq(),
                    local_seq: old.len() as u64 - 1,
                });
            }
        }
    }
    write_out(out, chain.entries(), true)?;
    if format.is_json() {
        return output::json(&json!({
            "agreement": agreement, "entries": chain.entries().len(), "seq": chain.seq(), "head": chain.head(), "file": out,
        }));
    }
    output::line(format!(
        "Fetched and verified {} entries of {} (head entry {}, {}) into {}.",
        chain.entries().len(),
        agreement,
        chain.seq(),
        short(&chain.head().to_string(), 16),
        out.display()
    ))
}

fn submit(path: &Path, node: &NodeArgs, format: Format) -> Result<()> {
    let file = read_file(path)?;
    let client = node.client()?;
    let answer = block_on(async {
        Ok(match &file {
            RosterFile::Entry(e) => client.submit_entries(&e.body.agreement, &Submission::One(e.clone())).await?,
            RosterFile::Chain(v) => client.submit_chain(v).await?,
        })
    })?;
    if format.is_json() {
        return output::json(&answer);
    }
    output::line(format!(
        "The node at {} accepted it: {} new entr{} applied, {} already held; {} is now at entry {}.",
        client.base_url(),
        answer.applied,
        if answer.applied == 1 { "y" } else { "ies" },
        answer.already_held,
        answer.agreement,
        answer.seq
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use staffpass_protocol::roster::MoveKind;

    fn genesis(keys: &[&StewardSecretKey], threshold: u8) -> Entry {
        let t: Timestamp = "2026-01-01T00:00:00Z".parse().unwrap();
        Entry::unsigned(EntryBody {
            agreement: "london-mou".parse().unwrap(),
            seq: 0,
            prev: Hash::default(),
            issued_at: t,
            change: Change::Genesis {
                title: "London MOU".into(),
                terms: Terms {
                    moves: [MoveKind::Rotation].into_iter().collect(),
                    accepts: [staffpass_protocol::ClaimKind::Dbs].into_iter().collect(),
                    lawful_basis: "UK GDPR 6(1)(b)".into(),
                },
                stewards: keys.iter().map(|k| k.public()).collect(),
                threshold,
                valid_until: t.plus_days(90),
            },
        })
    }

    #[test]
    fn dry_run_checks_content_not_signatures() {
        let a = StewardSecretKey::from_bytes(&[1; 32]);
        let b = StewardSecretKey::from_bytes(&[2; 32]);
        let g = genesis(&[&a, &b], 2);
        assert!(dry_run(None, &g.body).is_ok());
        let bad = genesis(&[&a, &b], 3);
        assert!(matches!(dry_run(None, &bad.body), Err(roster::Error::Invalid(_))));

        let mut signed = g.clone();
        signed.sign(&a);
        signed.sign(&b);
        let chain = Chain::new(signed).unwrap();
        let body = |change| EntryBody {
            agreement: chain.agreement().clone(),
            seq: 1,
            prev: chain.head(),
            issued_at: chain.state().issued_at,
            change,
        };
        let org: OrgId = "RJZ".parse().unwrap();
        assert!(dry_run(Some(chain.state()), &body(Change::Remove { org: org.clone() })).is_err());
        let spec = MemberSpec {
            org,
            name: "King's".into(),
            issuer_keys: vec![staffpass_protocol::IssuerSecretKey::from_bytes(&[3; 32]).public()],
            nodes: vec![],
            addresses: vec![],
        };
        assert!(dry_run(Some(chain.state()), &body(Change::AddMember(spec))).is_ok());
    }

    #[test]
    fn descriptions_name_the_change() {
        let a = StewardSecretKey::from_bytes(&[1; 32]);
        let g = genesis(&[&a], 1);
        let d = describe(&g.body.change);
        assert!(d.contains("London MOU") && d.contains("1 of 1"), "{d}");
        assert_eq!(g.body.change.name(), "genesis");
    }
}
