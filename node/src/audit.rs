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

use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use serde::{Deserialize, Serialize};
use staffpass_protocol::encoding;
use staffpass_protocol::{Hash, OrgId, Signable, StaffRef, Timestamp};

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
}

impl Action {
    /// Every action.
    pub const ALL: [Action; 15] = [
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
}

/// The audit log over a store. Use one per store: it keeps the head in
/// memory and serialises appends.
pub struct Audit {
    store: Arc<dyn Store>,
    head: Mutex<Head>,
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
        Ok(Audit { store, head: Mutex::new(head) })
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
        Ok(seqs)
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

    /// Recomputes the whole chain and reports the first broken link.
    ///
    /// An entry altered without fixing its hash is reported at its own seq
    /// ([`Fault::HashMismatch`]); one altered and re-hashed at the next seq
    /// ([`Fault::PrevMismatch`]), or, if it was the last, as
    /// [`Fault::HeadMismatch`]; a deleted entry as [`Fault::Missing`], a
    /// cut-off tail too (against the head this node holds in memory).
    /// Entries appended while it runs are checked as well.
    pub fn verify(&self) -> Result<VerifyReport, Broken> {
        const PAGE: usize = 1024;
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
                prev = entry.hash;
                expected += 1;
            }
        }
        let entries = expected - 1;
        if entries < head.seq {
            return Err(Broken { seq: expected, fault: Fault::Missing });
        }
        Ok(VerifyReport { entries, head: Head { seq: entries, hash: prev } })
    }
}
