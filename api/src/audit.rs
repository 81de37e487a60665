//! The audit log as the API shows it (`admin`; a staff member's own
//! activity: `hr`).

use serde::{Deserialize, Serialize};
use staffpass_protocol::{Hash, OrgId, StaffRef, Timestamp};
use utoipa::{IntoParams, ToSchema};

use crate::staff::DEFAULT_LIMIT;

/// One link of the hash chain.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct Entry {
    /// Its position, from 1.
    pub seq: u64,
    /// When it was recorded.
    #[schema(value_type = String, format = DateTime)]
    pub at: Timestamp,
    /// The previous entry's hash (all zeros for entry 1).
    #[schema(value_type = crate::schema::Hash)]
    pub prev: Hash,
    /// What happened.
    pub event: Event,
    /// The hash of `(seq, at, prev, event)`.
    #[schema(value_type = crate::schema::Hash)]
    pub hash: Hash,
}

/// One audited event: identifiers and codes only, never personal data.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct Event {
    /// Who: a client certificate subject, `peer:<PeerId>`, or `system`.
    pub actor: String,
    /// What happened (e.g. `issue`, `consent`, `roster-change`).
    pub action: String,
    /// Whose data, by pseudonymous reference.
    #[schema(value_type = Option<crate::schema::StaffRef>)]
    pub staff: Option<StaffRef>,
    /// The other organisation involved (receiver, sender, member).
    #[schema(value_type = Option<crate::schema::OrgId>)]
    pub org: Option<OrgId>,
    /// What it was done to, by id.
    pub object: Option<String>,
    /// A machine-readable code (e.g. `consent-expired`).
    pub reason: Option<String>,
}

fn default_limit() -> usize {
    DEFAULT_LIMIT
}

/// The query of `GET /v1/audit`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct AuditQuery {
    /// Entries from this seq on (default 0).
    #[serde(default, deserialize_with = "crate::query::saturating_u64")]
    #[param(format = "uint64")]
    pub since: u64,
    /// Page size, 1 to 10000 (default 100); a larger one is served as the largest.
    #[serde(default = "default_limit", deserialize_with = "crate::query::saturating_usize")]
    #[param(format = "uint64")]
    pub limit: usize,
}

impl Default for AuditQuery {
    fn default() -> Self {
        AuditQuery { since: 0, limit: DEFAULT_LIMIT }
    }
}

/// The end of the chain: the last entry's seq and hash (0 and zeros when
/// the log is empty).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize, ToSchema)]
pub struct Head {
    /// The last seq.
    pub seq: u64,
    /// The last hash.
    #[schema(value_type = crate::schema::Hash)]
    pub hash: Hash,
}

/// A signed checkpoint: the node's issuer key vouches that entry `seq`
/// has `hash`, and so for the whole chain up to there.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct Checkpoint {
    /// The entry vouched for.
    pub seq: u64,
    /// Its hash.
    #[schema(value_type = crate::schema::Hash)]
    pub hash: Hash,
    /// When it was signed.
    #[schema(value_type = String, format = DateTime)]
    pub at: Timestamp,
    /// The issuer key that signed it (`issuer-pk:...`).
    pub key: String,
}

/// A successful verification of the whole chain and its checkpoints.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct VerifyReport {
    /// How many entries were checked.
    pub entries: u64,
    /// The head they lead to.
    pub head: Head,
    /// How many signed checkpoints were checked (signature, key, and the
    /// entry each names).
    #[serde(default)]
    pub checkpoints: u64,
    /// The latest of them. Entries after it are vouched for by the hash
    /// chain alone: someone who can write the store could rewrite them.
    #[serde(default)]
    pub latest_checkpoint: Option<Checkpoint>,
}

/// Why the chain does not verify, as a code.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "kebab-case")]
pub enum Fault {
    /// The entry is not there (deleted, or the log was cut short).
    Missing,
    /// A key in the audit tree is not a sequence number.
    BadKey,
    /// The stored bytes are not an entry.
    Undecodable,
    /// The entry claims another position.
    SeqMismatch,
    /// It does not follow the previous entry: this or that one was altered.
    PrevMismatch,
    /// Its content does not match its hash: it was altered.
    HashMismatch,
    /// The last entry is not the one this node last wrote.
    HeadMismatch,
    /// A field no longer has a valid format.
    InvalidEvent,
    /// The staff index does not list it.
    IndexMissing,
    /// The store could not be read.
    Unreadable,
    /// The log ends before this entry, but the node signed a checkpoint of
    /// a later one: its tail was cut off.
    Truncated,
    /// Its hash is not the one the node signed in a checkpoint: the log was
    /// rewritten.
    CheckpointMismatch,
    /// A checkpoint of it is signed by a key that is not one of this
    /// node's issuer keys.
    CheckpointKey,
    /// A checkpoint of it has a signature that does not verify.
    CheckpointSignature,
    /// A checkpoint of it (at 0: the checkpoint file) cannot be read.
    CheckpointUndecodable,
}

/// `GET /v1/audit/verify`: 200 with `ok: true` and the report, or 409 with
/// `ok: false`, the first broken seq, the fault and why.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(untagged)]
pub enum Verification {
    /// The chain verifies.
    Intact {
        /// Always true.
        ok: bool,
        /// What was checked.
        report: VerifyReport,
    },
    /// The chain is broken.
    Broken {
        /// Always false.
        ok: bool,
        /// The first entry that does not verify.
        broken_at: u64,
        /// What is wrong with it, as a code.
        fault: Fault,
        /// What is wrong with it, in words.
        why: String,
    },
}
