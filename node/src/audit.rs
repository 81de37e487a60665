//! The audit log: append-only and hash-chained.
//!
//! Every issue, share, receipt, rejection (with its reason), withdrawal,
//! erasure, expiry, revocation, roster change and admin action is an
//! [`Entry`] in [`Tree::Audit`], keyed by its big-endian sequence number
//! (1, 2, 3, ...), written **in the same atomic commit** as the change it
//! records ([`Audit::commit`]), so the log can neither miss a change nor
//! record one that did not happen.
//!
//! Each entry's `hash` is SHA-256 over `"staffpass\0audit-entry\0"`, the
//! format version and the canonical (postcard) bytes of `(seq, at, prev,
//! event)`, and `prev` is the previous entry's hash (all zeros for the
//! first), so [`Audit::verify`] finds the first entry that was altered,
//! removed or reordered.
//!
//! **No personal data**, ever: an [`Event`] names a staff member only by
//! their pseudonymous [`StaffRef`], objects only by id, and reasons only by
//! machine-readable codes. [`Event::validate`] enforces the formats (an id
//! or a code cannot hold a sentence), and nothing here echoes a rejected
//! value back in an error. Never put names, NI numbers or claim values in
//! any field.
//!
//! A staff member's own history is served from an index
//! ([`Tree::AuditByStaff`], written in the same commit).
//!
//! **Checkpoints.** A hash chain alone has no key: whoever can write the
//! store can rewrite it consistently, and cut off its tail. So, once
//! [`Audit::start_checkpoints`] has run, the node signs its head (seq,
//! hash, time and the signing key: a [`Checkpoint`]) with its issuer key,
//! which is kept outside the store: every [`CHECKPOINT_EVERY`] entries, on
//! request ([`Audit::checkpoint`]: the node does so every
//! [`CHECKPOINT_INTERVAL`] and at a clean shutdown) and at start-up if the
//! head moved since the last one. Every checkpoint is kept in the store
//! ([`Tree::Meta`], under `audit/checkpoint/`), and the latest also in a
//! file beside it ([`CHECKPOINT_FILE`], written atomically, `0600`), where
//! deleting entries and checkpoints from the store does not reach it.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock, PoisonError};
use std::time::Duration;

use serde::{Deserialize, Serialize};
use staffpass_protocol::encoding;
use staffpass_protocol::{Hash, IssuerPublicKey, IssuerSecretKey, OrgId, Signable, Signed, StaffRef, Timestamp};

use crate::store::{self, Batch, Store, Tree};

/// The largest encoded entry accepted when reading the log.
pub const MAX_ENTRY_BYTES: usize = 4096;
/// The longest `actor`, in bytes.
pub const MAX_ACTOR: usize = 256;
/// The longest `object`, in bytes.
pub const MAX_OBJECT: usize = 128;
/// The longest `reason`, in bytes.
pub const MAX_REASON: usize = 64;
/// The most entries one query returns.
pub const MAX_PAGE: usize = 10_000;
/// A signed checkpoint after every this many entries (the default of
/// [`Checkpoints::every`]).
pub const CHECKPOINT_EVERY: u64 = 256;
/// How often a running node signs a checkpoint of a head that moved since
/// the last one.
pub const CHECKPOINT_INTERVAL: Duration = Duration::from_secs(600);
/// The name of the file, in the data directory, that holds the latest
/// checkpoint.
pub const CHECKPOINT_FILE: &str = "audit-checkpoint";
/// The largest encoded checkpoint accepted when reading one.
pub const MAX_CHECKPOINT_BYTES: usize = 1024;
/// Where checkpoints are kept in [`Tree::Meta`], followed by the
/// big-endian seq.
const CHECKPOINT_PREFIX: &[u8] = b"audit/checkpoint/";

/// What happened.
///
/// The canonical encoding numbers the variants in order: add new ones at
/// the end only (the golden hash test will tell).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Action {
    /// Staff records loaded (CSV/JSON import).
    Import,
    /// A staff record changed.
    StaffUpdate,
    /// A staff record deleted.
    StaffDelete,
    /// A passport credential issued.
    Issue,
    /// A sharing consent granted.
    Consent,
    /// A consented bundle offered to a receiving trust.
    Offer,
    /// A bundle received and accepted (receipt sent), or a receipt received.
    Receipt,
    /// A bundle rejected (`reason` holds the machine-readable code).
    Rejection,
    /// A consent withdrawn.
    Withdrawal,
    /// Disclosures erased (after withdrawal or on request).
    Erasure,
    /// Disclosures erased because the consent ended.
    Expiry,
    /// A credential revoked (`reason` holds the code).
    Revocation,
    /// A roster entry applied (or refused: see `reason`).
    RosterChange,
    /// Any other administrative action.
    Admin,
    /// An issuer, node or data key rotated.
    KeyRotation,
    /// A passport exported in a standard form (`reason`: the format), to
    /// leave the node: a wallet copy, or a received passport handed to the
    /// host's HR system.
    Export,
}

impl Action {
    /// Every action.
    pub const ALL: [Action; 16] = [
        Action::Import,
        Action::StaffUpdate,
        Action::StaffDelete,
        Action::Issue,
        Action::Consent,
        Action::Offer,
        Action::Receipt,
        Action::Rejection,
        Action::Withdrawal,
        Action::Erasure,
        Action::Expiry,
        Action::Revocation,
        Action::RosterChange,
        Action::Admin,
        Action::KeyRotation,
        Action::Export,
    ];

    /// The kebab-case name (as in JSON).
    pub const fn as_str(self) -> &'static str {
        match self {
            Action::Import => "import",
            Action::StaffUpdate => "staff-update",
            Action::StaffDelete => "staff-delete",
            Action::Issue => "issue",
            Action::Consent => "consent",
            Action::Offer => "offer",
            Action::Receipt => "receipt",
            Action::Rejection => "rejection",
            Action::Withdrawal => "withdrawal",
            Action::Erasure => "erasure",
            Action::Expiry => "expiry",
            Action::Revocation => "revocation",
            Action::RosterChange => "roster-change",
            Action::Admin => "admin",
            Action::KeyRotation => "key-rotation",
            Action::Export => "export",
        }
    }
}

impl std::fmt::Display for Action {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One audited event. Holds identifiers and codes only, never personal
/// data (see the module docs).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Event {
    /// Who: a client certificate subject, `peer:<PeerId>`, or `system`.
    pub actor: String,
    /// What happened.
    pub action: Action,
    /// Whose data, by pseudonymous reference.
    pub staff: Option<StaffRef>,
    /// The other organisation involved (receiver, sender, member).
    pub org: Option<OrgId>,
    /// What it was done to, by id (`cred-...`, `consent-...`, `msg-...`,
    /// an agreement id).
    pub object: Option<String>,
    /// A machine-readable code (e.g. `consent-expired`, `training-expiry`).
    pub reason: Option<String>,
}

impl Event {
    /// An event by `actor`.
    pub fn new(actor: impl Into<String>, action: Action) -> Self {
        Event { actor: actor.into(), action, staff: None, org: None, object: None, reason: None }
    }

    /// An event by the node itself (expiry sweeps, retries).
    pub fn system(action: Action) -> Self {
        Event::new("system", action)
    }

    /// An event caused by a peer node.
    pub fn peer(peer: impl std::fmt::Display, action: Action) -> Self {
        Event::new(format!("peer:{peer}"), action)
    }

    /// Names the staff member concerned.
    pub fn staff(mut self, staff: StaffRef) -> Self {
        self.staff = Some(staff);
        self
    }

    /// Names the other organisation.
    pub fn org(mut self, org: OrgId) -> Self {
        self.org = Some(org);
        self
    }

    /// Names the object, by id.
    pub fn object(mut self, id: impl std::fmt::Display) -> Self {
        self.object = Some(id.to_string());
        self
    }

    /// Gives a machine-readable reason code.
    pub fn reason(mut self, code: impl Into<String>) -> Self {
        self.reason = Some(code.into());
        self
    }

    /// Checks the field formats: `actor` printable (no control characters)
    /// and at most [`MAX_ACTOR`] bytes; `object` an id (printable ASCII, no
    /// spaces, at most [`MAX_OBJECT`]); `reason` a code (lower-case ASCII
    /// letters, digits, `-`, `_`, `.`, `:`, at most [`MAX_REASON`]). The
    /// error names the field, never its content.
    pub fn validate(&self) -> Result<(), Error> {
        let bad = |field, why| Err(Error::InvalidEvent { field, why });
        if self.actor.is_empty() || self.actor.len() > MAX_ACTOR {
            return bad("actor", "must be 1 to 256 bytes");
        }
        if self.actor.chars().any(char::is_control) {
            return bad("actor", "must not hold control characters");
        }
        if let Some(o) = &self.object {
            if o.is_empty() || o.len() > MAX_OBJECT {
                return bad("object", "must be 1 to 128 bytes");
            }
            if !o.bytes().all(|b| b.is_ascii_graphic()) {
                return bad("object", "must be an id: printable ASCII without spaces");
            }
        }
        if let Some(r) = &self.reason {
            if r.is_empty() || r.len() > MAX_REASON {
                return bad("reason", "must be 1 to 64 bytes");
            }
            let code_char = |b: u8| b.is_ascii_lowercase() || b.is_ascii_digit() || b"-_.:".contains(&b);
            if !r.bytes().all(code_char) {
                return bad("reason", "must be a code: lower-case letters, digits, '-', '_', '.', ':'");
            }
        }
        Ok(())
    }
}

/// One link of the chain.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Entry {
    /// Its position, from 1.
    pub seq: u64,
    /// When it was recorded.
    pub at: Timestamp,
    /// The previous entry's hash (all zeros for entry 1).
    pub prev: Hash,
    /// What happened.
    pub event: Event,
    /// The hash of `(seq, at, prev, event)`, see [`Entry::compute_hash`].
    pub hash: Hash,
}

/// The hashed part of an entry.
#[derive(Serialize)]
struct Body<'a> {
    seq: u64,
    at: Timestamp,
    prev: Hash,
    event: &'a Event,
}

impl Signable for Body<'_> {
    const TAG: &'static str = "audit-entry";
    const VERSION: u16 = 1;
}

impl Entry {
    /// The chain hash of `(seq, at, prev, event)`: SHA-256 over the domain
    /// tag `audit-entry`, version 1 and their canonical bytes.
    pub fn compute_hash(seq: u64, at: Timestamp, prev: &Hash, event: &Event) -> Hash {
        Body { seq, at, prev: *prev, event }.hash()
    }

    fn new(seq: u64, at: Timestamp, prev: Hash, event: Event) -> Entry {
        let hash = Entry::compute_hash(seq, at, &prev, &event);
        Entry { seq, at, prev, event, hash }
    }

    /// True if `hash` matches the rest of the entry.
    pub fn hash_ok(&self) -> bool {
        Entry::compute_hash(self.seq, self.at, &self.prev, &self.event) == self.hash
    }

    fn decode(bytes: &[u8]) -> Result<Entry, encoding::Error> {
        encoding::from_bytes(bytes, MAX_ENTRY_BYTES, "audit entry")
    }
}

/// A signed statement that entry `seq` of this node's log has `hash`:
/// since each hash covers the one before, it vouches for the whole chain
/// up to there. Signed with `key`, the node's issuer key at `at`.
///
/// The canonical encoding is signed (tag `audit-checkpoint`, version 1):
/// add fields at the end only, in a new version (the golden test will tell).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Checkpoint {
    /// The entry vouched for (the head when it was signed).
    pub seq: u64,
    /// Its hash.
    pub hash: Hash,
    /// When it was signed.
    pub at: Timestamp,
    /// The issuer key that signed it.
    pub key: IssuerPublicKey,
}

impl Signable for Checkpoint {
    const TAG: &'static str = "audit-checkpoint";
    const VERSION: u16 = 1;
}

/// A checkpoint and its signature.
pub type SignedCheckpoint = Signed<Checkpoint>;

impl Checkpoint {
    /// Signs the head `(seq, hash)` at `at` with `key`.
    pub fn sign(key: &IssuerSecretKey, seq: u64, hash: Hash, at: Timestamp) -> SignedCheckpoint {
        Signed::new(Checkpoint { seq, hash, at, key: key.public() }, |c| key.sign(c))
    }

    fn decode(bytes: &[u8]) -> Result<SignedCheckpoint, encoding::Error> {
        encoding::from_bytes(bytes, MAX_CHECKPOINT_BYTES, "audit checkpoint")
    }
}

/// Whether an issuer key other than the current one was one of this
/// node's organisation's issuer keys at a time: `(key, at)` → yes or no.
pub type EarlierKeys = Box<dyn Fn(&IssuerPublicKey, Timestamp) -> bool + Send + Sync>;

/// How the log signs checkpoints ([`Audit::start_checkpoints`]).
pub struct Checkpoints {
    /// The node's current issuer key: it signs every new checkpoint.
    pub key: IssuerSecretKey,
    /// The file that holds the latest checkpoint, outside the store
    /// (`<data dir>/`[`CHECKPOINT_FILE`]); `None` keeps checkpoints in the
    /// store only (an in-memory store).
    pub file: Option<PathBuf>,
    /// A checkpoint after every this many entries (default
    /// [`CHECKPOINT_EVERY`]; 0: none but those asked for).
    pub every: u64,
    /// Which earlier issuer keys are accepted on older checkpoints (after a
    /// rotation); by default none.
    pub earlier_keys: EarlierKeys,
}

impl Checkpoints {
    /// Checkpoints signed with `key`, every [`CHECKPOINT_EVERY`] entries,
    /// kept in the store only, accepting no earlier key.
    pub fn new(key: IssuerSecretKey) -> Self {
        Checkpoints { key, file: None, every: CHECKPOINT_EVERY, earlier_keys: Box::new(|_, _| false) }
    }

    /// Also keeps the latest checkpoint in `path`.
    pub fn file(mut self, path: impl Into<PathBuf>) -> Self {
        self.file = Some(path.into());
        self
    }

    /// A checkpoint after every `n` entries.
    pub fn every(mut self, n: u64) -> Self {
        self.every = n;
        self
    }

    /// Accepts older checkpoints signed by the keys `known` accepts.
    pub fn earlier_keys(mut self, known: EarlierKeys) -> Self {
        self.earlier_keys = known;
        self
    }
}

impl std::fmt::Debug for Checkpoints {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Checkpoints")
            .field("key", &self.key.public())
            .field("file", &self.file)
            .field("every", &self.every)
            .finish_non_exhaustive()
    }
}

/// The signing side of the log, once started.
struct Signer {
    cfg: Checkpoints,
    /// The head of the latest checkpoint written or found; held while one
    /// is written, so they are written one at a time, in order.
    last: Mutex<Option<Head>>,
    /// Set once the checkpoints found at start-up verified: until then
    /// none is signed.
    armed: AtomicBool,
}

impl Signer {
    fn lock(&self) -> MutexGuard<'_, Option<Head>> {
        // Replaced whole, after the checkpoint is written.
        self.last.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// A checkpoint read from the store: its seq (from the key) and itself,
/// or why it cannot be decoded.
type Stored = (u64, Result<SignedCheckpoint, encoding::Error>);

fn checkpoint_key(seq: u64) -> Vec<u8> {
    [CHECKPOINT_PREFIX, &seq.to_be_bytes()].concat()
}

/// Reads the checkpoint file: `None` if there is none.
fn read_checkpoint_file(path: &Path) -> Result<Option<SignedCheckpoint>, Error> {
    let failed = |detail: String| Error::CheckpointFile { path: path.to_path_buf(), detail };
    let bytes = match crate::keys::read_secret_file(path) {
        Ok(b) => b,
        Err(crate::keys::Error::Missing { .. }) => return Ok(None),
        Err(e) => return Err(failed(e.to_string())),
    };
    if bytes.len() > MAX_CHECKPOINT_BYTES * 4 {
        return Err(failed(format!("larger than {} bytes", MAX_CHECKPOINT_BYTES * 4)));
    }
    serde_json::from_slice(&bytes).map(Some).map_err(|e| failed(format!("not a checkpoint ({e})")))
}

/// Replaces the checkpoint file atomically (mode `0600`).
fn write_checkpoint_file(path: &Path, checkpoint: &SignedCheckpoint) -> Result<(), Error> {
    let mut json = serde_json::to_vec(checkpoint).unwrap_or_default();
    json.push(b'\n');
    crate::keys::write_secret_file(path, &json, true)
        .map_err(|e| Error::CheckpointFile { path: path.to_path_buf(), detail: e.to_string() })
}

pub use staffpass_api::audit::{Head, VerifyReport};

impl From<&Entry> for staffpass_api::audit::Entry {
    fn from(e: &Entry) -> Self {
        let ev = &e.event;
        staffpass_api::audit::Entry {
            seq: e.seq,
            at: e.at,
            prev: e.prev,
            event: staffpass_api::audit::Event {
                actor: ev.actor.clone(),
                action: ev.action.to_string(),
                staff: ev.staff.clone(),
                org: ev.org.clone(),
                object: ev.object.clone(),
                reason: ev.reason.clone(),
            },
            hash: e.hash,
        }
    }
}

/// The first broken link found by [`Audit::verify`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "the audit log is broken at entry {seq}: {fault}. Restore the store from a backup and keep this copy as evidence"
)]
pub struct Broken {
    /// The first entry that does not verify.
    pub seq: u64,
    /// What is wrong with it.
    pub fault: Fault,
}

/// What is wrong at a [`Broken`] link.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Fault {
    /// The entry is not there (deleted, or the log was cut short).
    #[error("the entry is missing")]
    Missing,
    /// A key in the audit tree that is not an 8-byte sequence number.
    #[error("a key in the audit tree is not a sequence number")]
    BadKey,
    /// The stored bytes are not an entry.
    #[error("the entry cannot be decoded ({detail})")]
    Undecodable {
        /// Why.
        detail: String,
    },
    /// The entry claims another position than its key.
    #[error("the entry says it is number {found}")]
    SeqMismatch {
        /// The seq inside the entry.
        found: u64,
    },
    /// `prev` is not the previous entry's hash: this or the previous entry
    /// was altered.
    #[error("it does not follow the previous entry (prev hash differs)")]
    PrevMismatch,
    /// `hash` does not match the entry's content: the entry was altered.
    #[error("its content does not match its hash")]
    HashMismatch,
    /// The last entry is not the one this node appended.
    #[error("it differs from the head this node last wrote")]
    HeadMismatch,
    /// A field no longer has a valid format.
    #[error("invalid {field}")]
    InvalidEvent {
        /// The field.
        field: &'static str,
    },
    /// The staff index lacks this entry, so the staff member's own history
    /// would miss it.
    #[error("the staff index does not list it")]
    IndexMissing,
    /// The store could not be read.
    #[error("the store could not be read ({detail})")]
    Unreadable {
        /// The store error.
        detail: String,
    },
    /// The log ends before this entry, but the node signed a checkpoint
    /// of a later one: its tail was cut off.
    #[error("the log ends before it, but the node signed a checkpoint at entry {checkpoint}: its tail was cut off")]
    Truncated {
        /// The seq of that checkpoint.
        checkpoint: u64,
    },
    /// The entry's hash is not the one the node signed in a checkpoint:
    /// the log was rewritten up to here (every hash recomputed).
    #[error("its hash is not the one the node signed in a checkpoint: the log was rewritten")]
    CheckpointMismatch,
    /// A checkpoint of this entry is signed by a key that is not one of
    /// this node's issuer keys.
    #[error("its checkpoint is signed by {key}, which is not one of this node's issuer keys")]
    CheckpointKey {
        /// The key it names.
        key: IssuerPublicKey,
    },
    /// A checkpoint of this entry has a signature that does not verify.
    #[error("its checkpoint's signature does not verify")]
    CheckpointSignature,
    /// A checkpoint (of this entry; at 0, the checkpoint file) cannot be
    /// read.
    #[error("its checkpoint cannot be read ({detail})")]
    CheckpointUndecodable {
        /// Why.
        detail: String,
    },
}

impl Fault {
    /// The machine-readable code the API reports.
    pub fn code(&self) -> staffpass_api::audit::Fault {
        use staffpass_api::audit::Fault as Code;
        match self {
            Fault::Missing => Code::Missing,
            Fault::BadKey => Code::BadKey,
            Fault::Undecodable { .. } => Code::Undecodable,
            Fault::SeqMismatch { .. } => Code::SeqMismatch,
            Fault::PrevMismatch => Code::PrevMismatch,
            Fault::HashMismatch => Code::HashMismatch,
            Fault::HeadMismatch => Code::HeadMismatch,
            Fault::InvalidEvent { .. } => Code::InvalidEvent,
            Fault::IndexMissing => Code::IndexMissing,
            Fault::Unreadable { .. } => Code::Unreadable,
            Fault::Truncated { .. } => Code::Truncated,
            Fault::CheckpointMismatch => Code::CheckpointMismatch,
            Fault::CheckpointKey { .. } => Code::CheckpointKey,
            Fault::CheckpointSignature => Code::CheckpointSignature,
            Fault::CheckpointUndecodable { .. } => Code::CheckpointUndecodable,
        }
    }
}

/// An audit operation that failed.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The store failed; nothing of the commit was written.
    #[error(transparent)]
    Store(#[from] store::Error),
    /// An event field has the wrong format (its content is not repeated).
    #[error("audit event {field} {why}; audit events hold ids and codes only, never personal data")]
    InvalidEvent {
        /// The field.
        field: &'static str,
        /// The rule it breaks.
        why: &'static str,
    },
    /// An entry read back does not verify.
    #[error(transparent)]
    Broken(#[from] Broken),
    /// 2^64 entries.
    #[error("the audit log is full")]
    Full,
    /// The checkpoint file could not be read or written.
    #[error(
        "the audit checkpoint file {}: {detail}. It is kept beside the store and must be backed up and restored with it",
        .path.display()
    )]
    CheckpointFile {
        /// The file.
        path: PathBuf,
        /// What went wrong.
        detail: String,
    },
    /// [`Audit::start_checkpoints`] was called twice.
    #[error("audit checkpoints were already started")]
    CheckpointsStarted,
}

/// The audit log over a store. Use one per store: it keeps the head in
/// memory and serialises appends.
pub struct Audit {
    store: Arc<dyn Store>,
    head: Mutex<Head>,
    signer: OnceLock<Signer>,
}

impl std::fmt::Debug for Audit {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Audit").field("head", &*self.lock()).finish_non_exhaustive()
    }
}

fn seq_key(seq: u64) -> [u8; 8] {
    seq.to_be_bytes()
}

/// `staff || 0x00 || seq`: staff references hold no NUL, so one staff
/// member's prefix never matches another's.
fn index_key(staff: &StaffRef, seq: u64) -> Vec<u8> {
    let mut k = index_prefix(staff);
    k.extend_from_slice(&seq_key(seq));
    k
}

fn index_prefix(staff: &StaffRef) -> Vec<u8> {
    let mut k = Vec::with_capacity(staff.as_str().len() + 9);
    k.extend_from_slice(staff.as_str().as_bytes());
    k.push(0);
    k
}

fn decode_at(seq: u64, bytes: &[u8]) -> Result<Entry, Broken> {
    Entry::decode(bytes).map_err(|e| Broken { seq, fault: Fault::Undecodable { detail: e.to_string() } })
}

fn read_head(store: &dyn Store) -> Result<Head, Error> {
    let Some((key, value)) = store.last(Tree::Audit)? else { return Ok(Head::default()) };
    let seq = <[u8; 8]>::try_from(key.as_slice())
        .map(u64::from_be_bytes)
        .map_err(|_| Broken { seq: 0, fault: Fault::BadKey })?;
    let entry = decode_at(seq, &value)?;
    if entry.seq != seq {
        return Err(Broken { seq, fault: Fault::SeqMismatch { found: entry.seq } }.into());
    }
    if !entry.hash_ok() {
        return Err(Broken { seq, fault: Fault::HashMismatch }.into());
    }
    Ok(Head { seq, hash: entry.hash })
}

impl Audit {
    /// Opens the log in `store`, reading its head. Refuses a log whose
    /// last entry does not verify ([`Error::Broken`]): appending to it
    /// would bury the damage.
    pub fn open(store: Arc<dyn Store>) -> Result<Audit, Error> {
        let head = read_head(&*store)?;
        Ok(Audit { store, head: Mutex::new(head), signer: OnceLock::new() })
    }

    fn lock(&self) -> MutexGuard<'_, Head> {
        // The head is only replaced whole, after a successful apply.
        self.head.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The current head.
    pub fn head(&self) -> Head {
        *self.lock()
    }

    /// Appends `events` (in order, all stamped `at`) to `batch` and commits
    /// both atomically; returns the new entries' seqs once durable.
    ///
    /// Appends are serialised, so seqs stay contiguous; a commit that fails
    /// writes nothing, leaves the head where it was and so leaves no gap.
    /// Only the ordering step holds the lock, not the fsync: concurrent
    /// commits share flushes.
    pub fn commit(&self, mut batch: Batch, events: Vec<Event>, at: Timestamp) -> Result<Vec<u64>, Error> {
        for e in &events {
            e.validate()?;
        }
        let mut head = self.lock();
        let before = head.seq;
        let mut seq = head.seq;
        let mut prev = head.hash;
        let mut seqs = Vec::with_capacity(events.len());
        for event in events {
            seq = seq.checked_add(1).ok_or(Error::Full)?;
            let entry = Entry::new(seq, at, prev, event);
            if let Some(staff) = &entry.event.staff {
                batch.put_new(Tree::AuditByStaff, index_key(staff, seq), Vec::new());
            }
            batch.put_new(Tree::Audit, seq_key(seq), encoding::to_bytes(&entry));
            prev = entry.hash;
            seqs.push(seq);
        }
        let pending = match self.store.apply(batch) {
            Ok(p) => p,
            Err(e) => {
                if matches!(e, store::Error::AlreadyExists { tree: Tree::Audit | Tree::AuditByStaff, .. }) {
                    // Someone else appended to this store: follow them, so
                    // the next commit does not fail the same way.
                    tracing::error!("the audit log was appended to by another writer; reloading its head");
                    if let Ok(h) = read_head(&*self.store) {
                        *head = h;
                    }
                }
                return Err(e.into());
            }
        };
        *head = Head { seq, hash: prev };
        drop(head);
        self.store.wait_durable(pending)?;
        if let Some(signer) = self.armed() {
            let every = signer.cfg.every;
            if every > 0 && seq / every > before / every {
                // This head is durable (so is all before it): safe to sign.
                // The entries are committed whatever happens here; a
                // checkpoint that fails is taken at the next occasion.
                if let Err(e) = self.write_checkpoint(signer, Head { seq, hash: prev }, at) {
                    tracing::error!(error = %e, seq, "could not write an audit checkpoint");
                }
            }
        }
        Ok(seqs)
    }

    /// Signs a checkpoint of the current head at `at`, unless checkpoints
    /// are not started, the log is empty, or the latest checkpoint is
    /// already of this head. Returns the one written.
    pub fn checkpoint(&self, at: Timestamp) -> Result<Option<SignedCheckpoint>, Error> {
        let Some(signer) = self.armed() else { return Ok(None) };
        let head = self.head();
        if head.seq == 0 {
            return Ok(None);
        }
        // Sign only what is on disk: a crash must not leave a checkpoint
        // ahead of the log.
        self.store.flush()?;
        self.write_checkpoint(signer, head, at)
    }

    /// The signer, once checkpoints are started and the log checked.
    fn armed(&self) -> Option<&Signer> {
        self.signer.get().filter(|s| s.armed.load(Ordering::SeqCst))
    }

    /// Signs and keeps a checkpoint of `head`, which must be durable,
    /// unless the latest is at or after it.
    fn write_checkpoint(&self, signer: &Signer, head: Head, at: Timestamp) -> Result<Option<SignedCheckpoint>, Error> {
        let mut last = signer.lock();
        if last.is_some_and(|l| l.seq >= head.seq) {
            return Ok(None);
        }
        let signed = Checkpoint::sign(&signer.cfg.key, head.seq, head.hash, at);
        // The store first: the file then never names a checkpoint the
        // store lacks, unless someone removed it.
        let mut batch = Batch::new();
        batch.put(Tree::Meta, checkpoint_key(head.seq), encoding::to_bytes(&signed));
        self.store.commit(batch)?;
        if let Some(path) = &signer.cfg.file {
            write_checkpoint_file(path, &signed)?;
        }
        *last = Some(head);
        tracing::debug!(seq = head.seq, "audit checkpoint signed");
        Ok(Some(signed))
    }

    /// Every checkpoint kept in the store, by seq (undecodable ones as
    /// their error).
    fn stored_checkpoints(&self) -> Result<Vec<Stored>, store::Error> {
        let rows = self.store.scan_prefix(Tree::Meta, CHECKPOINT_PREFIX)?;
        Ok(rows
            .into_iter()
            .map(|(k, v)| {
                let seq = k
                    .get(CHECKPOINT_PREFIX.len()..)
                    .and_then(|b| <[u8; 8]>::try_from(b).ok())
                    .map_or(0, u64::from_be_bytes);
                (seq, Checkpoint::decode(&v))
            })
            .collect())
    }

    /// Starts signing checkpoints with `cfg` (once, when the node starts,
    /// at time `now`).
    ///
    /// First checks every checkpoint (in the store and the file) against
    /// the log as [`Audit::verify`] does, and refuses ([`Error::Broken`])
    /// a log that was cut short or rewritten up to a checkpoint, or a
    /// checkpoint that does not verify: signing on would bury the damage.
    /// The checkpoints are then still checked by [`Audit::verify`], but no
    /// new one is signed.
    ///
    /// Then takes up from the latest checkpoint. If the file is missing
    /// while the store holds checkpoints, that is recorded in the log itself
    /// (reason `checkpoint-file-missing`) and the file is written again.
    /// Last, if the head moved since the latest checkpoint, signs one.
    pub fn start_checkpoints(&self, cfg: Checkpoints, now: Timestamp) -> Result<(), Error> {
        let file = match &cfg.file {
            Some(path) => Some((path.clone(), read_checkpoint_file(path)?)),
            None => None,
        };
        let signer = Signer { cfg, last: Mutex::new(None), armed: AtomicBool::new(false) };
        if self.signer.set(signer).is_err() {
            return Err(Error::CheckpointsStarted);
        }
        let signer = self.signer.get().ok_or(Error::CheckpointsStarted)?;
        let head = self.head();
        let mut latest: Option<SignedCheckpoint> = None;
        for (seq, found) in self.all_checkpoints()? {
            for c in found {
                let c = c.map_err(|detail| Broken { seq, fault: Fault::CheckpointUndecodable { detail } })?;
                let entry = match c.body.seq {
                    0 => Some(Hash::default()),
                    s if s > head.seq => None,
                    s => Some(self.get(s)?.ok_or(Broken { seq: s, fault: Fault::Missing })?.hash),
                };
                self.check_checkpoint(&c, entry, head.seq)?;
                latest = Some(c);
            }
        }
        let latest_stored = self.stored_checkpoints()?.into_iter().rev().find_map(|(_, c)| c.ok());
        *signer.lock() = latest.as_ref().map(|c| Head { seq: c.body.seq, hash: c.body.hash });
        signer.armed.store(true, Ordering::SeqCst);
        if let (Some((path, None)), Some(c)) = (&file, &latest_stored) {
            tracing::warn!(
                path = %path.display(),
                "the audit checkpoint file is missing although the store holds checkpoints; \
                 writing it again from the store (restore it with the store when restoring a backup)"
            );
            write_checkpoint_file(path, c)?;
            self.record(vec![Event::system(Action::Admin).reason("checkpoint-file-missing")], now)?;
        } else if let (Some((path, Some(f))), Some(c)) = (&file, &latest)
            && c.body.seq > f.body.seq
        {
            // A stop between writing the store and the file.
            write_checkpoint_file(path, c)?;
        }
        self.checkpoint(now)?;
        Ok(())
    }

    /// Every checkpoint, in the store and (once started) the file, by the
    /// seq it vouches for (undecodable ones by the seq in their key, with
    /// why). Identical copies are listed once.
    fn all_checkpoints(&self) -> Result<BTreeMap<u64, Vec<Result<SignedCheckpoint, String>>>, Broken> {
        let unreadable =
            |e: &dyn std::fmt::Display| Broken { seq: 0, fault: Fault::Unreadable { detail: e.to_string() } };
        let mut all: BTreeMap<u64, Vec<Result<SignedCheckpoint, String>>> = BTreeMap::new();
        let mut add = |seq: u64, c: Result<SignedCheckpoint, String>| {
            let at = all.entry(seq).or_default();
            if !at.contains(&c) {
                at.push(c);
            }
        };
        for (seq, c) in self.stored_checkpoints().map_err(|e| unreadable(&e))? {
            match c {
                Ok(c) => add(c.body.seq, Ok(c)),
                Err(e) => add(seq, Err(e.to_string())),
            }
        }
        if let Some(path) = self.signer.get().and_then(|s| s.cfg.file.as_deref()) {
            match read_checkpoint_file(path) {
                Ok(Some(c)) => add(c.body.seq, Ok(c)),
                Ok(None) => {}
                Err(e) => return Err(Broken { seq: 0, fault: Fault::CheckpointUndecodable { detail: e.to_string() } }),
            }
        }
        Ok(all)
    }

    /// Checks checkpoint `c`: its version; that it is signed by one of
    /// this node's issuer keys (the current one or, by
    /// [`Checkpoints::earlier_keys`], an earlier one; before
    /// [`Audit::start_checkpoints`] any key, as there is none to compare
    /// with); its signature; and that `entry`, the hash of the entry it
    /// names, is the one it signed (`None`: the log ends at `end`, before
    /// that entry).
    fn check_checkpoint(&self, c: &SignedCheckpoint, entry: Option<Hash>, end: u64) -> Result<(), Broken> {
        let seq = c.body.seq;
        let broken = |fault| Err(Broken { seq, fault });
        if !c.version_ok() {
            let detail = format!("version {}, but this node reads version {}", c.version, Checkpoint::VERSION);
            return broken(Fault::CheckpointUndecodable { detail });
        }
        if let Some(s) = self.signer.get() {
            let key = c.body.key;
            if key != s.cfg.key.public() && !(s.cfg.earlier_keys)(&key, c.body.at) {
                return broken(Fault::CheckpointKey { key });
            }
        }
        if c.body.key.verify(&c.body, &c.signature).is_err() {
            return broken(Fault::CheckpointSignature);
        }
        match entry {
            None => Err(Broken { seq: end.saturating_add(1), fault: Fault::Truncated { checkpoint: seq } }),
            Some(hash) if hash != c.body.hash => broken(Fault::CheckpointMismatch),
            Some(_) => Ok(()),
        }
    }

    /// Records `events` with no other change (e.g. a rejection, of which
    /// nothing else is kept).
    pub fn record(&self, events: Vec<Event>, at: Timestamp) -> Result<Vec<u64>, Error> {
        self.commit(Batch::new(), events, at)
    }

    /// The entry at `seq`, if any.
    pub fn get(&self, seq: u64) -> Result<Option<Entry>, Error> {
        match self.store.get(Tree::Audit, &seq_key(seq))? {
            None => Ok(None),
            Some(v) => Ok(Some(decode_at(seq, &v)?)),
        }
    }

    /// Up to `limit` (at most [`MAX_PAGE`]) entries from `from` on,
    /// oldest first. The next page starts at the last seq + 1.
    pub fn since(&self, from: u64, limit: usize) -> Result<Vec<Entry>, Error> {
        let page = self.store.range_from(Tree::Audit, &seq_key(from), limit.min(MAX_PAGE))?;
        page.into_iter()
            .map(|(k, v)| {
                let seq = <[u8; 8]>::try_from(k.as_slice())
                    .map(u64::from_be_bytes)
                    .map_err(|_| Broken { seq: from, fault: Fault::BadKey })?;
                Ok(decode_at(seq, &v)?)
            })
            .collect()
    }

    /// A staff member's own history: up to `limit` entries naming them,
    /// oldest first.
    pub fn for_staff(&self, staff: &StaffRef, limit: usize) -> Result<Vec<Entry>, Error> {
        self.for_staff_since(staff, 0, limit)
    }

    /// [`Audit::for_staff`] from seq `from` on, for paging.
    pub fn for_staff_since(&self, staff: &StaffRef, from: u64, limit: usize) -> Result<Vec<Entry>, Error> {
        let prefix = index_prefix(staff);
        let index = self.store.range_from(Tree::AuditByStaff, &index_key(staff, from), limit.min(MAX_PAGE))?;
        let mut out = Vec::with_capacity(index.len());
        for (k, _) in index.into_iter().take_while(|(k, _)| k.starts_with(&prefix)) {
            let seq = <[u8; 8]>::try_from(&k[prefix.len()..])
                .map(u64::from_be_bytes)
                .map_err(|_| Broken { seq: 0, fault: Fault::BadKey })?;
            let entry = self.get(seq)?.ok_or(Broken { seq, fault: Fault::Missing })?;
            out.push(entry);
        }
        Ok(out)
    }

    /// Recomputes the whole chain, checks every signed checkpoint against
    /// it, and reports the first broken link.
    ///
    /// An entry altered without fixing its hash is reported at its own seq
    /// ([`Fault::HashMismatch`]); one altered and re-hashed at the next seq
    /// ([`Fault::PrevMismatch`]), or, if it was the last, as
    /// [`Fault::HeadMismatch`]; a deleted entry as [`Fault::Missing`], a
    /// cut-off tail too (against the head this node holds in memory).
    /// Entries appended while it runs are checked as well.
    ///
    /// A log rewritten with every later hash recomputed is reported at the
    /// first checkpoint after the change ([`Fault::CheckpointMismatch`]),
    /// and a tail cut off before a restart at the first entry missing
    /// ([`Fault::Truncated`]); a checkpoint signed by another key
    /// ([`Fault::CheckpointKey`]) or whose signature does not verify
    /// ([`Fault::CheckpointSignature`]) at the entry it names. Changes after
    /// the latest checkpoint are found by none of these.
    pub fn verify(&self) -> Result<VerifyReport, Broken> {
        const PAGE: usize = 1024;
        let checkpoints = self.all_checkpoints()?;
        let mut checked = 0u64;
        let mut latest: Option<Checkpoint> = None;
        let mut check = |at: u64, entry: Option<Hash>, end: u64| -> Result<(), Broken> {
            for c in checkpoints.get(&at).into_iter().flatten() {
                let c = c.as_ref().map_err(|detail| Broken {
                    seq: at,
                    fault: Fault::CheckpointUndecodable { detail: detail.clone() },
                })?;
                self.check_checkpoint(c, entry, end)?;
                checked += 1;
                latest = Some(c.body.clone());
            }
            Ok(())
        };
        check(0, Some(Hash::default()), 0)?;
        let head = self.head();
        let unreadable = |seq, e: store::Error| Broken { seq, fault: Fault::Unreadable { detail: e.to_string() } };
        let mut expected = 1u64;
        let mut prev = Hash::default();
        let mut start = Vec::new();
        loop {
            let page = self.store.range_from(Tree::Audit, &start, PAGE).map_err(|e| unreadable(expected, e))?;
            let Some((last_key, _)) = page.last() else { break };
            start = last_key.clone();
            start.push(0);
            for (k, v) in &page {
                let seq = expected;
                let key_seq = <[u8; 8]>::try_from(k.as_slice())
                    .map(u64::from_be_bytes)
                    .map_err(|_| Broken { seq, fault: Fault::BadKey })?;
                if key_seq != seq {
                    // Keys are sorted: a gap means entry `seq` is gone.
                    return Err(Broken { seq, fault: if key_seq > seq { Fault::Missing } else { Fault::BadKey } });
                }
                let entry = decode_at(seq, v)?;
                if entry.seq != seq {
                    return Err(Broken { seq, fault: Fault::SeqMismatch { found: entry.seq } });
                }
                if entry.prev != prev {
                    return Err(Broken { seq, fault: Fault::PrevMismatch });
                }
                if !entry.hash_ok() {
                    return Err(Broken { seq, fault: Fault::HashMismatch });
                }
                if seq == head.seq && entry.hash != head.hash {
                    return Err(Broken { seq, fault: Fault::HeadMismatch });
                }
                if let Err(Error::InvalidEvent { field, .. }) = entry.event.validate() {
                    return Err(Broken { seq, fault: Fault::InvalidEvent { field } });
                }
                if let Some(staff) = &entry.event.staff {
                    let indexed =
                        self.store.get(Tree::AuditByStaff, &index_key(staff, seq)).map_err(|e| unreadable(seq, e))?;
                    if indexed.is_none() {
                        return Err(Broken { seq, fault: Fault::IndexMissing });
                    }
                }
                check(seq, Some(entry.hash), seq)?;
                prev = entry.hash;
                expected += 1;
            }
        }
        let entries = expected - 1;
        // A checkpoint past the end: the tail was cut off.
        if let Some(&beyond) = checkpoints.range(expected..).next().map(|(seq, _)| seq) {
            check(beyond, None, entries)?;
        }
        if entries < head.seq {
            return Err(Broken { seq: expected, fault: Fault::Missing });
        }
        Ok(VerifyReport {
            entries,
            head: Head { seq: entries, hash: prev },
            checkpoints: checked,
            latest_checkpoint: latest.map(|c| staffpass_api::audit::Checkpoint {
                seq: c.seq,
                hash: c.hash,
                at: c.at,
                key: c.key.to_string(),
            }),
        })
    }
}
