//! The roster chain: an agreement's signatory membership as an append-only,
//! hash-linked list of steward-signed changes.
//!
//! Entry 0 (genesis) names the agreement, its terms, the stewards and the
//! threshold M. Every later entry names the hash of the one before, and
//! carries at least M valid signatures from distinct stewards of the state
//! before it. [`apply`] is the whole rule; [`Chain`] adds storage of the
//! entries and equivocation detection (two different valid entries at one
//! seq: both refused, the chain halted, never one chosen).

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use imbl::OrdMap;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::claims::{ClaimKind, named_enum};
use crate::datetime::Timestamp;
use crate::ids::{AgreementId, NodeId, OrgId};
use crate::keys::{IssuerPublicKey, StewardPublicKey, StewardSecretKey};
use crate::signing::{Hash, Signable, Signature};

named_enum!(
    /// The kinds of staff move an agreement can cover.
    MoveKind {
        /// Postgraduate doctors' rotation.
        Rotation => "rotation",
        /// Honorary contract.
        HonoraryContract => "honorary-contract",
        /// Secondment.
        Secondment => "secondment",
        /// Emergency deployment.
        EmergencyDeployment => "emergency-deployment",
    }
);

/// Limits on roster contents, so a chain stays small and cheap to check.
pub mod limits {
    /// Longest title, name, reason or lawful basis, in characters.
    pub const MAX_TEXT: usize = 500;
    /// Most stewards.
    pub const MAX_STEWARDS: usize = 32;
    /// Most issuer keys, nodes or address hints per member.
    pub const MAX_PER_MEMBER: usize = 16;
    /// Longest address hint.
    pub const MAX_ADDRESS: usize = 256;
    /// Most members (a national agreement: every NHS trust, board and
    /// practice that moves staff). The state holds them in persistent maps,
    /// so an entry costs O(log members); nothing on the wire grows with
    /// the count (entries are sent one by one, never the state).
    pub const MAX_MEMBERS: usize = 25_000;
}

/// An agreement's terms.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Terms {
    /// Which moves it covers.
    pub moves: BTreeSet<MoveKind>,
    /// Which checks signatories accept from each other.
    pub accepts: BTreeSet<ClaimKind>,
    /// The lawful basis for processing (e.g. UK GDPR 6(1)(b), 9(2)(h)).
    pub lawful_basis: String,
}

/// A member as added to the roster.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MemberSpec {
    /// The organisation.
    pub org: OrgId,
    /// Its name.
    pub name: String,
    /// Its issuer keys.
    pub issuer_keys: Vec<IssuerPublicKey>,
    /// Its nodes.
    pub nodes: Vec<NodeId>,
    /// Where its nodes can be reached (multiaddrs).
    pub addresses: Vec<String>,
}

/// One change to the roster.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Change {
    /// Entry 0: the agreement itself.
    Genesis {
        /// Human title.
        title: String,
        /// Terms.
        terms: Terms,
        /// Steward keys.
        stewards: BTreeSet<StewardPublicKey>,
        /// Signatures needed for each later change.
        threshold: u8,
        /// The roster fails closed after this time unless re-signed.
        valid_until: Timestamp,
    },
    /// A new signatory.
    AddMember(MemberSpec),
    /// New name, nodes or address hints for a member.
    UpdateMember {
        /// Which member.
        org: OrgId,
        /// New name, if changed.
        name: Option<String>,
        /// New node list, if changed.
        nodes: Option<Vec<NodeId>>,
        /// New address hints, if changed.
        addresses: Option<Vec<String>>,
    },
    /// Issuer key rotation: add a key, and optionally retire one. A retired
    /// key still verifies what it signed before the retirement.
    RotateKey {
        /// Which member.
        org: OrgId,
        /// The new key.
        add: IssuerPublicKey,
        /// The key retired from this entry's `issued_at`.
        retire: Option<IssuerPublicKey>,
    },
    /// Suspend a member: its exchanges stop and its connections drop.
    Suspend {
        /// Which member.
        org: OrgId,
        /// Why (no personal data).
        reason: String,
    },
    /// Lift a suspension.
    Reinstate {
        /// Which member.
        org: OrgId,
    },
    /// Remove a member.
    Remove {
        /// Which member.
        org: OrgId,
    },
    /// Replace the stewards and threshold (signed by the old stewards).
    SetStewards {
        /// New steward keys.
        stewards: BTreeSet<StewardPublicKey>,
        /// New threshold.
        threshold: u8,
    },
    /// Replace the terms.
    SetTerms(Terms),
    /// Periodic re-sign: extends `valid_until`.
    Resign {
        /// The new end of validity.
        valid_until: Timestamp,
    },
    /// An issuer key known or feared compromised: every signature claiming
    /// a time at or after `compromised_since` is invalid (unlike a
    /// rotation, which retires a key only from the entry's own time).
    RevokeKey {
        /// Which member.
        org: OrgId,
        /// The key.
        key: IssuerPublicKey,
        /// From when it is not to be trusted.
        compromised_since: Timestamp,
    },
    /// Ends the halt after an equivocation at `seq`: of the two entries
    /// there, `chosen` stands. Placed at `seq + 1` right after the chosen
    /// entry (its `prev`), signed by a threshold of the stewards in office
    /// after it; the other entry is refused from then on.
    Resolve {
        /// The seq of the equivocation.
        seq: u64,
        /// The hash of the entry that stands.
        chosen: Hash,
    },
}

impl Change {
    /// The change's stable name, as its kind is spelled in JSON
    /// (`add-member`, `rotate-key`, ...): for logs, audit and the CLI.
    pub fn name(&self) -> &'static str {
        match self {
            Change::Genesis { .. } => "genesis",
            Change::AddMember(_) => "add-member",
            Change::UpdateMember { .. } => "update-member",
            Change::RotateKey { .. } => "rotate-key",
            Change::Suspend { .. } => "suspend",
            Change::Reinstate { .. } => "reinstate",
            Change::Remove { .. } => "remove",
            Change::SetStewards { .. } => "set-stewards",
            Change::SetTerms(_) => "set-terms",
            Change::Resign { .. } => "resign",
            Change::RevokeKey { .. } => "revoke-key",
            Change::Resolve { .. } => "resolve",
        }
    }
}

/// The signed part of an entry.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EntryBody {
    /// The agreement.
    pub agreement: AgreementId,
    /// Position in the chain, from 0.
    pub seq: u64,
    /// Hash of the previous entry's body (all zero for genesis).
    pub prev: Hash,
    /// When the stewards made the change.
    pub issued_at: Timestamp,
    /// The change.
    pub change: Change,
}

impl Signable for EntryBody {
    const TAG: &'static str = "roster-entry";
    const VERSION: u16 = 1;
}

/// A steward's signature on an entry.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StewardSignature {
    /// The steward.
    pub steward: StewardPublicKey,
    /// The signature over the entry body.
    pub signature: Signature,
}

/// A roster entry: body and steward signatures.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Entry {
    /// Encoding version; must equal `EntryBody::VERSION`.
    pub version: u16,
    /// What is signed.
    pub body: EntryBody,
    /// Steward signatures.
    pub signatures: Vec<StewardSignature>,
}

impl Entry {
    /// An unsigned entry.
    pub fn unsigned(body: EntryBody) -> Self {
        Entry { version: EntryBody::VERSION, body, signatures: Vec::new() }
    }

    /// Adds (or replaces) `key`'s signature.
    pub fn sign(&mut self, key: &StewardSecretKey) {
        let steward = key.public();
        let signature = key.sign(&self.body);
        self.signatures.retain(|s| s.steward != steward);
        self.signatures.push(StewardSignature { steward, signature });
        self.signatures.sort_by_key(|s| s.steward);
    }

    /// The entry's hash: that of its body, so the same change with another
    /// set of signatures is the same entry.
    pub fn hash(&self) -> Hash {
        self.body.hash()
    }
}

/// Why a roster entry was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Error {
    /// Encoding version not spoken here.
    #[error("roster entry version {found} is not supported (this build speaks {supported})")]
    UnsupportedVersion {
        /// Found.
        found: u16,
        /// Supported.
        supported: u16,
    },
    /// The first entry must be a genesis at seq 0, and only the first.
    #[error("a chain starts with a genesis entry at seq 0, and has no other")]
    NotGenesis,
    /// For another agreement.
    #[error("entry is for agreement {found}, chain is {expected}")]
    WrongAgreement {
        /// The chain's agreement.
        expected: AgreementId,
        /// The entry's.
        found: AgreementId,
    },
    /// Not the next seq.
    #[error("entry has seq {found}, the next is {expected}")]
    WrongSeq {
        /// The next seq.
        expected: u64,
        /// The entry's.
        found: u64,
    },
    /// Entries are missing before this one.
    #[error("entries {from}..{to} are missing before this one; fetch them first")]
    Gap {
        /// First missing.
        from: u64,
        /// The entry's seq.
        to: u64,
    },
    /// Does not name the previous entry's hash.
    #[error("entry does not link to the chain head (prev hash {found}, head is {expected})")]
    BadPrev {
        /// The head's hash.
        expected: Hash,
        /// The entry's prev.
        found: Hash,
    },
    /// Issued before the previous entry.
    #[error("entry is dated {found}, before the previous entry ({previous})")]
    IssuedBeforePrevious {
        /// Previous entry's time.
        previous: Timestamp,
        /// This entry's.
        found: Timestamp,
    },
    /// Signed by a key that is not a steward.
    #[error("signature by {steward}, who is not a steward of this agreement")]
    UnknownSigner {
        /// The key.
        steward: StewardPublicKey,
    },
    /// The same steward signed twice.
    #[error("steward {steward} signed more than once")]
    DuplicateSigner {
        /// The key.
        steward: StewardPublicKey,
    },
    /// A signature does not verify.
    #[error("signature by steward {steward} does not verify")]
    BadSignature {
        /// The key.
        steward: StewardPublicKey,
    },
    /// Too few signatures.
    #[error("{have} valid steward signatures, {need} needed")]
    BelowThreshold {
        /// Valid signatures.
        have: usize,
        /// Threshold.
        need: usize,
    },
    /// The change itself is not allowed in this state.
    #[error("change refused: {0}")]
    Invalid(#[from] ChangeError),
    /// Two different valid entries at one seq.
    #[error("equivocation at seq {seq}: two different validly signed entries; both refused, chain halted")]
    Equivocation {
        /// The seq.
        seq: u64,
        /// The entry held.
        existing: Box<Entry>,
        /// The conflicting entry.
        conflicting: Box<Entry>,
    },
    /// A genesis other than the one this chain started from. A chain is
    /// the one its node's admin installed; another genesis for the same
    /// agreement id is another chain, never an equivocation.
    #[error(
        "a different genesis for this agreement (held {held}, offered {found}): refused; a chain is only ever installed by its node's admin"
    )]
    GenesisMismatch {
        /// The held genesis.
        held: Hash,
        /// The one offered.
        found: Hash,
    },
    /// A different entry at a taken seq, validly signed for its place, but
    /// only with the help of stewards who are no longer stewards: it cannot
    /// halt or fork the chain; it is refused and kept as evidence.
    #[error(
        "a different entry at seq {seq} signed by former stewards ({current} current signer(s), {need} needed): refused, kept as evidence; the chain goes on"
    )]
    FormerStewards {
        /// The seq.
        seq: u64,
        /// Signers among the current stewards.
        current: usize,
        /// The threshold at that seq.
        need: usize,
    },
    /// An entry dated further in the future than the allowed clock skew.
    #[error(
        "the entry is dated {issued_at}, more than {skew_secs} s after this node's clock ({now}); check the steward's clock"
    )]
    FromTheFuture {
        /// The entry's time.
        issued_at: Timestamp,
        /// This node's clock.
        now: Timestamp,
        /// The allowed skew.
        skew_secs: i64,
    },
    /// A different entry at a seq whose equivocation was resolved (by the
    /// stewards or this node's admin): the other entry stands.
    #[error("seq {seq} was resolved after an equivocation; the entry chosen there stands")]
    Resolved {
        /// The seq.
        seq: u64,
    },
    /// The chain is halted after an equivocation.
    #[error("the roster chain is halted after an equivocation at seq {seq}; stewards must resolve it")]
    Halted {
        /// Where.
        seq: u64,
    },
}

/// A change that is not allowed in the current state.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ChangeError {
    /// Already a member.
    #[error("{org} is already a member")]
    AlreadyMember {
        /// Which.
        org: OrgId,
    },
    /// Not a member.
    #[error("{org} is not a member")]
    NotMember {
        /// Which.
        org: OrgId,
    },
    /// The member's status does not allow this.
    #[error("{org} is {status}, which does not allow this change")]
    WrongStatus {
        /// Which.
        org: OrgId,
        /// Its status.
        status: MemberStatus,
    },
    /// A key already in use.
    #[error("key {key} is already registered")]
    DuplicateKey {
        /// Which.
        key: IssuerPublicKey,
    },
    /// A node already belongs to another member.
    #[error("node {node} already belongs to {org}")]
    NodeTaken {
        /// Which node.
        node: NodeId,
        /// Its member.
        org: OrgId,
    },
    /// The key to retire is not a current key of the member.
    #[error("key {key} is not a current key of {org}")]
    UnknownKey {
        /// Which member.
        org: OrgId,
        /// Which key.
        key: IssuerPublicKey,
    },
    /// A member needs a current issuer key.
    #[error("{org} would have no current issuer key")]
    NoIssuerKey {
        /// Which member.
        org: OrgId,
    },
    /// Threshold out of range.
    #[error("threshold {threshold} must be between 1 and the number of stewards ({stewards})")]
    BadThreshold {
        /// Given.
        threshold: u8,
        /// Number of stewards.
        stewards: usize,
    },
    /// Too many or too few of something.
    #[error("{field} must have between {min} and {max} items")]
    BadCount {
        /// Which field.
        field: &'static str,
        /// Minimum.
        min: usize,
        /// Maximum.
        max: usize,
    },
    /// A text field is empty or too long.
    #[error("{field} must be 1 to {max} characters")]
    BadText {
        /// Which field.
        field: &'static str,
        /// Limit.
        max: usize,
    },
    /// valid_until must move forward and lie after the entry.
    #[error("valid_until {valid_until} must be after the entry's issued_at and not earlier than the current {current}")]
    BadValidUntil {
        /// Given.
        valid_until: Timestamp,
        /// Current.
        current: Timestamp,
    },
    /// Genesis in the middle of a chain.
    #[error("genesis can only be entry 0")]
    LateGenesis,
    /// A resolution must follow the entry it chooses, at the seq after the
    /// equivocation it ends.
    #[error("a resolution of seq {seq} must be entry {seq}+1 and name the entry before it")]
    BadResolve {
        /// The seq it names.
        seq: u64,
    },
}

named_enum!(
    /// A member's standing.
    MemberStatus {
        /// Active: may exchange.
        Active => "active",
        /// Suspended: no exchanges, connections dropped.
        Suspended => "suspended",
        /// Removed.
        Removed => "removed",
    }
);

/// An issuer key with its validity period.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct KeyRecord {
    /// The key.
    pub key: IssuerPublicKey,
    /// From (the roster entry that added it).
    pub added_at: Timestamp,
    /// Until (the roster entry that retired it), if retired.
    pub retired_at: Option<Timestamp>,
}

/// A member in the current state.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Member {
    /// The organisation.
    pub org: OrgId,
    /// Its name.
    pub name: String,
    /// Every issuer key it has had.
    pub keys: Vec<KeyRecord>,
    /// Its nodes.
    pub nodes: Vec<NodeId>,
    /// Address hints.
    pub addresses: Vec<String>,
    /// Current standing.
    pub status: MemberStatus,
    /// Every change of standing, oldest first.
    pub history: Vec<(Timestamp, MemberStatus)>,
    /// The seq of the entry that set the current standing (for a removed
    /// member: the last entry it may still read, the one removing it).
    #[serde(default)]
    pub status_seq: u64,
}

/// The verdict on an issuer key at a time.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyValidity {
    /// Valid then.
    Valid,
    /// Not one of the member's keys.
    Unknown,
    /// Not yet added then.
    NotYetValid,
    /// Retired by then.
    Retired,
}

/// A state's members, by organisation, with the member of every node and
/// of every issuer key (current, retired or revoked) beside them.
///
/// Persistent maps: a copy shares everything with the original, and a
/// change copies only the path to what changed (members are shared
/// behind `Arc`s, so a copied tree node copies pointers, not members), so
/// applying an entry to a roster of 25,000 members copies and looks up
/// O(log members), never the whole roster. Read-only outside this module, so the indexes always
/// agree with the members: they follow every change, are not encoded
/// (the encoding is exactly that of a `BTreeMap<OrgId, Member>`), and are
/// rebuilt when a state is decoded.
///
/// A node or a key belongs to at most one member, of any standing (the
/// rules refuse a change that would give it a second); should a decoded
/// state break that, the index names one of them (when read back, the
/// first in organisation order, as a scan would).
#[derive(Clone, Default)]
pub struct Members {
    map: OrdMap<OrgId, Arc<Member>>,
    by_node: OrdMap<NodeId, OrgId>,
    by_key: OrdMap<IssuerPublicKey, OrgId>,
}

impl Members {
    /// The member `org`.
    pub fn get(&self, org: &OrgId) -> Option<&Member> {
        self.map.get(org).map(|m| &**m)
    }

    /// True if `org` is (or was: removed members stay) a member.
    pub fn contains_key(&self, org: &OrgId) -> bool {
        self.map.contains_key(org)
    }

    /// How many members, of any standing.
    pub fn len(&self) -> usize {
        self.map.len()
    }

    /// True if there are none.
    pub fn is_empty(&self) -> bool {
        self.map.is_empty()
    }

    /// Every member with its organisation, in organisation order.
    pub fn iter(&self) -> impl DoubleEndedIterator<Item = (&OrgId, &Member)> + ExactSizeIterator {
        self.into_iter()
    }

    /// Every organisation, in order.
    pub fn keys(&self) -> impl DoubleEndedIterator<Item = &OrgId> + ExactSizeIterator {
        self.map.keys()
    }

    /// Every member, in organisation order.
    pub fn values(&self) -> impl DoubleEndedIterator<Item = &Member> + ExactSizeIterator {
        self.map.values().map(|m| &**m)
    }

    /// The member `node` belongs to (in O(log members)).
    pub fn of_node(&self, node: &NodeId) -> Option<&Member> {
        self.by_node.get(node).and_then(|org| self.get(org))
    }

    /// The member that has (or had) the issuer key `key` (in O(log members)).
    pub fn of_key(&self, key: &IssuerPublicKey) -> Option<&Member> {
        self.by_key.get(key).and_then(|org| self.get(org))
    }

    /// Adds `m`, or replaces the member of its organisation.
    fn insert(&mut self, m: Member) {
        if let Some(old) = self.map.get(&m.org) {
            let (nodes, keys) = (old.nodes.clone(), key_list(old));
            self.unindex(&m.org, &nodes, &keys);
        }
        self.index(&m.org, &m);
        self.map.insert(m.org.clone(), Arc::new(m));
    }

    /// Changes the member `org` with `f` (which may fail: the state is then
    /// thrown away, but its indexes still agree with it).
    fn update<R>(
        &mut self,
        org: &OrgId,
        f: impl FnOnce(&mut Member) -> Result<R, ChangeError>,
    ) -> Result<R, ChangeError> {
        let Some(m) = self.map.get_mut(org) else { return Err(ChangeError::NotMember { org: org.clone() }) };
        // The one member changed is copied (if shared), not its neighbours.
        let m = Arc::make_mut(m);
        let (nodes, keys) = (m.nodes.clone(), key_list(m));
        let result = f(m);
        if m.nodes != nodes || !m.keys.iter().map(|k| &k.key).eq(keys.iter()) {
            let m = m.clone();
            self.unindex(org, &nodes, &keys);
            self.index(org, &m);
        }
        result
    }

    /// Files `m`'s nodes and keys under `org`, unless taken.
    fn index(&mut self, org: &OrgId, m: &Member) {
        for n in &m.nodes {
            self.by_node.entry(n.clone()).or_insert_with(|| org.clone());
        }
        for k in &m.keys {
            self.by_key.entry(k.key).or_insert_with(|| org.clone());
        }
    }

    /// The members of `map`, indexed.
    fn from_map(map: OrdMap<OrgId, Arc<Member>>) -> Self {
        let mut out = Members { map, ..Members::default() };
        for (org, m) in out.map.clone().iter() {
            out.index(org, m);
        }
        out
    }

    fn unindex(&mut self, org: &OrgId, nodes: &[NodeId], keys: &[IssuerPublicKey]) {
        for n in nodes {
            if self.by_node.get(n) == Some(org) {
                self.by_node.remove(n);
            }
        }
        for k in keys {
            if self.by_key.get(k) == Some(org) {
                self.by_key.remove(k);
            }
        }
    }
}

/// A member's keys, current or not.
fn key_list(m: &Member) -> Vec<IssuerPublicKey> {
    m.keys.iter().map(|k| k.key).collect()
}

impl FromIterator<Member> for Members {
    fn from_iter<I: IntoIterator<Item = Member>>(iter: I) -> Self {
        Members::from_map(iter.into_iter().map(|m| (m.org.clone(), Arc::new(m))).collect())
    }
}

/// What iterating over `&Members` yields.
type MemberRef<'a> = (&'a OrgId, &'a Member);

impl<'a> IntoIterator for &'a Members {
    type Item = MemberRef<'a>;
    type IntoIter = std::iter::Map<
        imbl::ordmap::Iter<'a, OrgId, Arc<Member>, imbl::shared_ptr::DefaultSharedPtr>,
        fn((&'a OrgId, &'a Arc<Member>)) -> MemberRef<'a>,
    >;
    fn into_iter(self) -> Self::IntoIter {
        self.map.iter().map(|(o, m)| (o, &**m))
    }
}

impl std::ops::Index<&OrgId> for Members {
    type Output = Member;
    fn index(&self, org: &OrgId) -> &Member {
        &self.map[org]
    }
}

impl PartialEq for Members {
    fn eq(&self, other: &Self) -> bool {
        // The indexes follow from the members.
        self.map == other.map
    }
}

impl Eq for Members {}

impl std::fmt::Debug for Members {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_map().entries(self.iter()).finish()
    }
}

impl Serialize for Members {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        // As `BTreeMap` serialises itself: a map in key order.
        s.collect_map(self.iter())
    }
}

impl<'de> Deserialize<'de> for Members {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        // Read as a `BTreeMap` is (the same map, the same errors), then
        // indexed.
        let map = BTreeMap::<OrgId, Member>::deserialize(d)?;
        Ok(Members::from_map(map.into_iter().map(|(o, m)| (o, Arc::new(m))).collect()))
    }
}

/// The roster state after applying entries 0..=seq.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct State {
    /// The agreement.
    pub agreement: AgreementId,
    /// Its title.
    pub title: String,
    /// Its terms.
    pub terms: Terms,
    /// Steward keys.
    pub stewards: BTreeSet<StewardPublicKey>,
    /// Signatures needed for the next change.
    pub threshold: u8,
    /// The roster fails closed after this.
    pub valid_until: Timestamp,
    /// Seq of the last applied entry.
    pub seq: u64,
    /// Hash of the last applied entry.
    pub head: Hash,
    /// Time of the last applied entry.
    pub issued_at: Timestamp,
    /// Members, by organisation.
    pub members: Members,
    /// The stewards' keys, decompressed.
    #[serde(skip)]
    points: StewardPoints,
}

/// Steward keys as curve points, decompressed once per steward set rather
/// than once per signature checked (a tenth of an entry's cost, on a node
/// catching up thousands). Neither encoded nor compared: a state read
/// back has none, and checks signatures from the keys' bytes as before. A
/// key is looked up here only once it is known to be a steward's.
#[derive(Clone, Default)]
struct StewardPoints(Arc<BTreeMap<StewardPublicKey, ed25519_dalek::VerifyingKey>>);

impl StewardPoints {
    fn of(stewards: &BTreeSet<StewardPublicKey>) -> Self {
        StewardPoints(Arc::new(stewards.iter().filter_map(|k| Some((*k, k.dalek().ok()?))).collect()))
    }

    /// Checks `steward`'s signature over `entry`.
    fn verify(&self, steward: &StewardPublicKey, entry: &Entry, sig: &Signature) -> bool {
        match self.0.get(steward) {
            Some(point) => crate::signing::verify(point, &entry.body, sig).is_ok(),
            None => steward.verify(&entry.body, sig).is_ok(),
        }
    }
}

impl PartialEq for StewardPoints {
    fn eq(&self, _: &Self) -> bool {
        // Follows from the stewards, which are compared.
        true
    }
}

impl Eq for StewardPoints {}

impl std::fmt::Debug for StewardPoints {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("StewardPoints(..)")
    }
}

impl State {
    /// The member's standing now.
    pub fn status(&self, org: &OrgId) -> Option<MemberStatus> {
        self.members.get(org).map(|m| m.status)
    }

    /// True if `org` was an active member at time `t` (by the standing
    /// history this state knows).
    pub fn is_active_at(&self, org: &OrgId, t: Timestamp) -> bool {
        let Some(m) = self.members.get(org) else { return false };
        m.history.iter().rev().find(|(at, _)| *at <= t).is_some_and(|(_, s)| *s == MemberStatus::Active)
    }

    /// True if `org` is an active member now (the latest standing).
    pub fn is_active(&self, org: &OrgId) -> bool {
        self.status(org) == Some(MemberStatus::Active)
    }

    /// Whether `key` was a valid issuer key of `org` at time `t`. Retired
    /// keys still verify what they signed before their retirement.
    pub fn key_validity(&self, org: &OrgId, key: &IssuerPublicKey, t: Timestamp) -> KeyValidity {
        let Some(rec) = self.members.get(org).and_then(|m| m.keys.iter().find(|k| k.key == *key)) else {
            return KeyValidity::Unknown;
        };
        if t < rec.added_at {
            KeyValidity::NotYetValid
        } else if rec.retired_at.is_some_and(|r| t >= r) {
            KeyValidity::Retired
        } else {
            KeyValidity::Valid
        }
    }

    /// The issuer keys of `org` valid at time `t`.
    pub fn keys_at(&self, org: &OrgId, t: Timestamp) -> Vec<IssuerPublicKey> {
        self.members
            .get(org)
            .map(|m| {
                m.keys
                    .iter()
                    .filter(|k| self.key_validity(org, &k.key, t) == KeyValidity::Valid)
                    .map(|k| k.key)
                    .collect()
            })
            .unwrap_or_default()
    }

    /// The nodes of `org`.
    pub fn nodes_of(&self, org: &OrgId) -> &[NodeId] {
        self.members.get(org).map(|m| m.nodes.as_slice()).unwrap_or(&[])
    }

    /// The member a node belongs to.
    pub fn org_of_node(&self, node: &NodeId) -> Option<&Member> {
        self.members.of_node(node)
    }

    /// True if the roster is fresh at `t` (not past `valid_until`).
    pub fn is_fresh(&self, t: Timestamp) -> bool {
        t <= self.valid_until
    }
}

fn check_text(field: &'static str, v: &str) -> Result<(), ChangeError> {
    if v.trim().is_empty() || v.chars().count() > limits::MAX_TEXT {
        return Err(ChangeError::BadText { field, max: limits::MAX_TEXT });
    }
    Ok(())
}

fn check_count(field: &'static str, n: usize, min: usize, max: usize) -> Result<(), ChangeError> {
    if n < min || n > max {
        return Err(ChangeError::BadCount { field, min, max });
    }
    Ok(())
}

fn check_addresses(a: &[String]) -> Result<(), ChangeError> {
    check_count("addresses", a.len(), 0, limits::MAX_PER_MEMBER)?;
    for x in a {
        if x.is_empty() || x.len() > limits::MAX_ADDRESS || !x.starts_with('/') {
            return Err(ChangeError::BadText { field: "addresses", max: limits::MAX_ADDRESS });
        }
    }
    Ok(())
}

fn check_terms(t: &Terms) -> Result<(), ChangeError> {
    check_text("lawful_basis", &t.lawful_basis)?;
    check_count("moves", t.moves.len(), 1, MoveKind::ALL.len())?;
    check_count("accepts", t.accepts.len(), 1, usize::MAX)
}

fn check_stewards(stewards: &BTreeSet<StewardPublicKey>, threshold: u8) -> Result<(), ChangeError> {
    check_count("stewards", stewards.len(), 1, limits::MAX_STEWARDS)?;
    if threshold == 0 || usize::from(threshold) > stewards.len() {
        return Err(ChangeError::BadThreshold { threshold, stewards: stewards.len() });
    }
    Ok(())
}

/// Checks that at least `threshold` distinct stewards of `stewards` signed
/// (with their keys from `points` where it has them).
fn check_signatures(
    entry: &Entry,
    stewards: &BTreeSet<StewardPublicKey>,
    threshold: u8,
    points: &StewardPoints,
) -> Result<(), Error> {
    let mut seen = BTreeSet::new();
    for s in &entry.signatures {
        if !stewards.contains(&s.steward) {
            return Err(Error::UnknownSigner { steward: s.steward });
        }
        if !seen.insert(s.steward) {
            return Err(Error::DuplicateSigner { steward: s.steward });
        }
        if !points.verify(&s.steward, entry, &s.signature) {
            return Err(Error::BadSignature { steward: s.steward });
        }
    }
    if seen.len() < usize::from(threshold) {
        return Err(Error::BelowThreshold { have: seen.len(), need: usize::from(threshold) });
    }
    Ok(())
}

/// Refuses an entry dated more than the allowed clock skew after `now`.
pub fn check_clock(entry: &Entry, now: Timestamp) -> Result<(), Error> {
    let skew_secs = crate::bundle::MAX_CLOCK_SKEW_SECS;
    if entry.body.issued_at > now.plus_secs(skew_secs) {
        return Err(Error::FromTheFuture { issued_at: entry.body.issued_at, now, skew_secs });
    }
    Ok(())
}

/// Applies `entry` to `state` (`None` for a new chain), returning the new
/// state, or why the entry is refused. Pure: the input is not changed.
pub fn apply(state: Option<&State>, entry: &Entry) -> Result<State, Error> {
    if entry.version != EntryBody::VERSION {
        return Err(Error::UnsupportedVersion { found: entry.version, supported: EntryBody::VERSION });
    }
    let body = &entry.body;
    let Some(state) = state else {
        return genesis(entry);
    };
    if body.agreement != state.agreement {
        return Err(Error::WrongAgreement { expected: state.agreement.clone(), found: body.agreement.clone() });
    }
    let expected = state.seq + 1;
    if body.seq != expected {
        if body.seq > expected {
            return Err(Error::Gap { from: expected, to: body.seq });
        }
        return Err(Error::WrongSeq { expected, found: body.seq });
    }
    if body.prev != state.head {
        return Err(Error::BadPrev { expected: state.head, found: body.prev });
    }
    if body.issued_at < state.issued_at {
        return Err(Error::IssuedBeforePrevious { previous: state.issued_at, found: body.issued_at });
    }
    check_signatures(entry, &state.stewards, state.threshold, &state.points)?;
    if let Change::Resolve { seq, chosen } = &body.change
        && (seq.checked_add(1) != Some(body.seq) || *chosen != body.prev)
    {
        return Err(ChangeError::BadResolve { seq: *seq }.into());
    }

    let mut next = state.clone();
    next.seq = body.seq;
    next.head = entry.hash();
    next.issued_at = body.issued_at;
    let at = body.issued_at;
    change(&mut next, &body.change, at)?;
    Ok(next)
}

fn genesis(entry: &Entry) -> Result<State, Error> {
    let body = &entry.body;
    let Change::Genesis { title, terms, stewards, threshold, valid_until } = &body.change else {
        return Err(Error::NotGenesis);
    };
    if body.seq != 0 || body.prev != Hash::default() {
        return Err(Error::NotGenesis);
    }
    check_text("title", title)?;
    check_terms(terms)?;
    check_stewards(stewards, *threshold)?;
    if *valid_until <= body.issued_at {
        return Err(ChangeError::BadValidUntil { valid_until: *valid_until, current: body.issued_at }.into());
    }
    let points = StewardPoints::of(stewards);
    check_signatures(entry, stewards, *threshold, &points)?;
    Ok(State {
        agreement: body.agreement.clone(),
        title: title.clone(),
        terms: terms.clone(),
        stewards: stewards.clone(),
        threshold: *threshold,
        valid_until: *valid_until,
        seq: 0,
        head: entry.hash(),
        issued_at: body.issued_at,
        members: Members::default(),
        points,
    })
}

fn check_nodes_free(s: &State, org: &OrgId, nodes: &[NodeId]) -> Result<(), ChangeError> {
    check_count("nodes", nodes.len(), 0, limits::MAX_PER_MEMBER)?;
    for n in nodes {
        if let Some(other) = s.org_of_node(n).filter(|m| m.org != *org) {
            return Err(ChangeError::NodeTaken { node: n.clone(), org: other.org.clone() });
        }
    }
    Ok(())
}

fn key_in_use(s: &State, key: &IssuerPublicKey) -> bool {
    s.members.of_key(key).is_some()
}

fn set_status(
    m: &mut Member,
    from: &[MemberStatus],
    to: MemberStatus,
    at: Timestamp,
    seq: u64,
) -> Result<(), ChangeError> {
    if !from.contains(&m.status) {
        return Err(ChangeError::WrongStatus { org: m.org.clone(), status: m.status });
    }
    m.status = to;
    m.status_seq = seq;
    m.history.push((at, to));
    Ok(())
}

fn change(s: &mut State, change: &Change, at: Timestamp) -> Result<(), ChangeError> {
    use MemberStatus::*;
    let seq = s.seq;
    match change {
        Change::Genesis { .. } => return Err(ChangeError::LateGenesis),
        Change::AddMember(spec) => {
            check_text("name", &spec.name)?;
            check_count("issuer_keys", spec.issuer_keys.len(), 1, limits::MAX_PER_MEMBER)?;
            check_addresses(&spec.addresses)?;
            check_nodes_free(s, &spec.org, &spec.nodes)?;
            let rejoining = match s.members.get(&spec.org) {
                Some(m) if m.status != Removed => return Err(ChangeError::AlreadyMember { org: spec.org.clone() }),
                Some(m) => Some(m.clone()),
                None => None,
            };
            // A member re-added starts with the keys its new entry names:
            // every old key is retired from now (a removed member's keys
            // stay valid until then, so it can still sign the erasure
            // receipts it owes).
            let mut keys = rejoining.as_ref().map(|m| m.keys.clone()).unwrap_or_default();
            for k in keys.iter_mut().filter(|k| k.retired_at.is_none()) {
                k.retired_at = Some(at);
            }
            for k in &spec.issuer_keys {
                if key_in_use(s, k) || keys.iter().any(|r| r.key == *k) {
                    return Err(ChangeError::DuplicateKey { key: *k });
                }
                keys.push(KeyRecord { key: *k, added_at: at, retired_at: None });
            }
            if s.members.len() >= limits::MAX_MEMBERS && rejoining.is_none() {
                return Err(ChangeError::BadCount { field: "members", min: 0, max: limits::MAX_MEMBERS });
            }
            let mut history = rejoining.map(|m| m.history).unwrap_or_default();
            history.push((at, Active));
            s.members.insert(Member {
                org: spec.org.clone(),
                name: spec.name.clone(),
                keys,
                nodes: spec.nodes.clone(),
                addresses: spec.addresses.clone(),
                status: Active,
                history,
                status_seq: seq,
            });
        }
        Change::UpdateMember { org, name, nodes, addresses } => {
            if let Some(n) = name {
                check_text("name", n)?;
            }
            if let Some(a) = addresses {
                check_addresses(a)?;
            }
            if let Some(n) = nodes {
                check_nodes_free(s, org, n)?;
            }
            s.members.update(org, |m| {
                if m.status == Removed {
                    return Err(ChangeError::WrongStatus { org: org.clone(), status: m.status });
                }
                if let Some(n) = name {
                    m.name = n.clone();
                }
                if let Some(n) = nodes {
                    m.nodes = n.clone();
                }
                if let Some(a) = addresses {
                    m.addresses = a.clone();
                }
                Ok(())
            })?;
        }
        Change::RotateKey { org, add, retire } => {
            if key_in_use(s, add) {
                return Err(ChangeError::DuplicateKey { key: *add });
            }
            s.members.update(org, |m| {
                if m.status == Removed {
                    return Err(ChangeError::WrongStatus { org: org.clone(), status: m.status });
                }
                // Count the current keys after the change: a rotation that
                // retires one key as it adds another keeps the count.
                let current = m.keys.iter().filter(|k| k.retired_at.is_none()).count();
                let after = current + 1 - usize::from(retire.is_some());
                check_count("issuer_keys", after, 1, limits::MAX_PER_MEMBER)?;
                if let Some(old) = retire {
                    let rec = m
                        .keys
                        .iter_mut()
                        .find(|k| k.key == *old && k.retired_at.is_none())
                        .ok_or_else(|| ChangeError::UnknownKey { org: org.clone(), key: *old })?;
                    rec.retired_at = Some(at);
                }
                m.keys.push(KeyRecord { key: *add, added_at: at, retired_at: None });
                Ok(())
            })?;
        }
        Change::Suspend { org, reason } => {
            check_text("reason", reason)?;
            s.members.update(org, |m| set_status(m, &[Active], Suspended, at, seq))?;
        }
        Change::Reinstate { org } => s.members.update(org, |m| set_status(m, &[Suspended], Active, at, seq))?,
        Change::Remove { org } => s.members.update(org, |m| set_status(m, &[Active, Suspended], Removed, at, seq))?,
        Change::RevokeKey { org, key, compromised_since } => s.members.update(org, |m| {
            let rec = m
                .keys
                .iter_mut()
                .find(|k| k.key == *key)
                .ok_or_else(|| ChangeError::UnknownKey { org: org.clone(), key: *key })?;
            rec.retired_at = Some(rec.retired_at.map_or(*compromised_since, |r| r.min(*compromised_since)));
            Ok(())
        })?,
        Change::SetStewards { stewards, threshold } => {
            check_stewards(stewards, *threshold)?;
            s.stewards = stewards.clone();
            s.points = StewardPoints::of(stewards);
            s.threshold = *threshold;
        }
        Change::SetTerms(terms) => {
            check_terms(terms)?;
            s.terms = terms.clone();
        }
        Change::Resign { valid_until } => {
            if *valid_until <= at || *valid_until < s.valid_until {
                return Err(ChangeError::BadValidUntil { valid_until: *valid_until, current: s.valid_until });
            }
            s.valid_until = *valid_until;
        }
        // Checked against its place in `apply`; it changes no state.
        Change::Resolve { .. } => {}
    }
    Ok(())
}

/// Evidence of an equivocation: two different valid entries at one seq.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Equivocation {
    /// The seq.
    pub seq: u64,
    /// The entry that was held.
    pub existing: Entry,
    /// The conflicting one.
    pub conflicting: Entry,
}

/// What appending an entry will do, decided by [`Chain::prepare`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Prepared {
    /// Apply it: the state it makes.
    Apply {
        /// The entry.
        entry: Box<Entry>,
        /// The state after it.
        state: Box<State>,
    },
    /// Already held.
    AlreadyHave,
    /// A valid different entry at a taken seq: halt.
    Halt(Box<Equivocation>),
    /// A steward-signed resolution of the halt: the chosen entry, then the
    /// resolution entry after it, and the state they make.
    Resolve {
        /// The entry that stands at the halted seq.
        chosen: Box<Entry>,
        /// The resolution entry.
        entry: Box<Entry>,
        /// The state after both.
        state: Box<State>,
    },
    /// This node's admin's local resolution: the chosen entry and its state.
    Override {
        /// The entry that stands at the halted seq.
        chosen: Box<Entry>,
        /// The state after it.
        state: Box<State>,
    },
}

/// What [`Chain::append`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Appended {
    /// The entry was new and applied.
    Applied,
    /// The chain already held this entry.
    AlreadyHave,
}

/// The steward set that judges the entries from `from` on.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Epoch {
    from: u64,
    stewards: BTreeSet<StewardPublicKey>,
    threshold: u8,
}

/// The steward sets of a chain, from its entries (no checks: the entries
/// are the chain's own, already checked or being restored).
fn epochs_of(entries: &[Entry]) -> Vec<Epoch> {
    let mut out = Vec::new();
    for e in entries {
        match &e.body.change {
            Change::Genesis { stewards, threshold, .. } | Change::SetStewards { stewards, threshold } => out
                .push(Epoch { from: e.body.seq.saturating_add(1), stewards: stewards.clone(), threshold: *threshold }),
            _ => {}
        }
    }
    out
}

/// How a chain is stored: its entries, state and halt; the per-seq hashes
/// and steward sets are rebuilt from the entries when it is read back.
#[derive(Deserialize)]
struct StoredChain {
    entries: Vec<Entry>,
    state: State,
    halted: Option<Equivocation>,
}

impl From<StoredChain> for Chain {
    fn from(c: StoredChain) -> Self {
        let hashes = c.entries.iter().map(Entry::hash).collect();
        let epochs = epochs_of(&c.entries);
        Chain { entries: c.entries, hashes, epochs, state: c.state, halted: c.halted, overridden: BTreeSet::new() }
    }
}

/// An agreement's chain: its entries and the state they make, with the
/// hash of every seq and the steward set of every stretch, so judging an
/// entry at a taken seq costs the same on a chain of 100 entries and of
/// 10,000 (no replay from genesis).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(from = "StoredChain")]
pub struct Chain {
    entries: Vec<Entry>,
    #[serde(skip)]
    hashes: Vec<Hash>,
    #[serde(skip)]
    epochs: Vec<Epoch>,
    state: State,
    halted: Option<Equivocation>,
    /// Seqs whose equivocation this node's admin resolved locally (a
    /// steward-signed resolution is an entry of the chain itself).
    #[serde(skip)]
    overridden: BTreeSet<u64>,
}

impl Chain {
    /// A chain from its genesis entry.
    pub fn new(genesis: Entry) -> Result<Self, Error> {
        let state = apply(None, &genesis)?;
        let hashes = vec![genesis.hash()];
        let epochs = epochs_of(std::slice::from_ref(&genesis));
        Ok(Chain { entries: vec![genesis], hashes, epochs, state, halted: None, overridden: BTreeSet::new() })
    }

    /// A chain from all its entries, checking each.
    pub fn from_entries(entries: impl IntoIterator<Item = Entry>) -> Result<Self, Error> {
        let mut it = entries.into_iter();
        let mut chain = Chain::new(it.next().ok_or(Error::NotGenesis)?)?;
        for e in it {
            chain.append(e)?;
        }
        Ok(chain)
    }

    /// The current state (while halted, the state before the equivocation).
    pub fn state(&self) -> &State {
        &self.state
    }

    /// The agreement.
    pub fn agreement(&self) -> &AgreementId {
        &self.state.agreement
    }

    /// All entries, from genesis.
    pub fn entries(&self) -> &[Entry] {
        &self.entries
    }

    /// Entries from `seq` on.
    pub fn entries_from(&self, seq: u64) -> &[Entry] {
        let start = usize::try_from(seq).unwrap_or(usize::MAX).min(self.entries.len());
        &self.entries[start..]
    }

    /// The head's seq.
    pub fn seq(&self) -> u64 {
        self.state.seq
    }

    /// The head's hash.
    pub fn head(&self) -> Hash {
        self.state.head
    }

    /// The equivocation that halted the chain, if any.
    pub fn halted(&self) -> Option<&Equivocation> {
        self.halted.as_ref()
    }

    /// The hash of the held entry at `seq`.
    pub fn hash_at(&self, seq: u64) -> Option<Hash> {
        self.hashes.get(usize::try_from(seq).ok()?).copied()
    }

    /// The steward set that judges an entry at `seq`.
    fn epoch_for(&self, seq: u64) -> Option<&Epoch> {
        let i = self.epochs.partition_point(|e| e.from <= seq);
        self.epochs.get(i.checked_sub(1)?)
    }

    /// [`Chain::append`], after refusing an entry dated more than
    /// [`MAX_CLOCK_SKEW_SECS`](crate::bundle::MAX_CLOCK_SKEW_SECS) after
    /// `now`: a steward machine with a wrong clock must not push every
    /// later entry's date (or a key's validity) into the future.
    pub fn append_at(&mut self, entry: Entry, now: Timestamp) -> Result<Appended, Error> {
        check_clock(&entry, now)?;
        self.append(entry)
    }

    /// The state after entries `0..=seq`, replayed.
    pub fn state_at(&self, seq: u64) -> Option<State> {
        let mut st: Option<State> = None;
        for e in self.entries.iter().take_while(|e| e.body.seq <= seq) {
            st = Some(apply(st.as_ref(), e).ok()?);
        }
        st
    }

    /// Appends an entry: applies it if it is the valid next one, says so if
    /// it is already held, and halts the chain if it is a different valid
    /// entry at a seq already taken (equivocation).
    pub fn append(&mut self, entry: Entry) -> Result<Appended, Error> {
        let prepared = self.prepare(entry)?;
        self.commit(prepared)
    }

    /// Decides what appending `entry` would do, without changing the chain
    /// (so a node can make the outcome durable first, then
    /// [`commit`](Chain::commit) it; nothing is cloned but the state the
    /// entry makes).
    pub fn prepare(&self, entry: Entry) -> Result<Prepared, Error> {
        if let Some(eq) = &self.halted {
            if entry.body.seq == eq.seq && (entry.hash() == eq.existing.hash() || entry.hash() == eq.conflicting.hash())
            {
                return Ok(Prepared::AlreadyHave);
            }
            if let Change::Resolve { seq, chosen } = &entry.body.change
                && *seq == eq.seq
            {
                let chosen_entry = [&eq.existing, &eq.conflicting]
                    .into_iter()
                    .find(|e| e.hash() == *chosen)
                    .ok_or(ChangeError::BadResolve { seq: *seq })?;
                // While halted the state is the one before the seq.
                let after_chosen = apply(Some(&self.state), chosen_entry)?;
                let state = apply(Some(&after_chosen), &entry)?;
                return Ok(Prepared::Resolve {
                    chosen: Box::new(chosen_entry.clone()),
                    entry: Box::new(entry),
                    state: Box::new(state),
                });
            }
            return Err(Error::Halted { seq: eq.seq });
        }
        if entry.body.agreement != self.state.agreement {
            return Err(Error::WrongAgreement { expected: self.state.agreement.clone(), found: entry.body.agreement });
        }
        let seq = entry.body.seq;
        if seq <= self.state.seq {
            let idx = usize::try_from(seq).unwrap_or(usize::MAX);
            // A chain read back from storage may hold fewer entries than its
            // state says: refuse rather than index past them.
            let (Some(existing), Some(held)) = (self.entries.get(idx), self.hashes.get(idx)) else {
                return Err(Error::Gap { from: self.entries.len() as u64, to: seq });
            };
            let hash = entry.hash();
            if *held == hash {
                return Ok(Prepared::AlreadyHave);
            }
            if seq == 0 {
                return Err(Error::GenesisMismatch { held: *held, found: hash });
            }
            if self.is_resolved(seq) {
                return Err(Error::Resolved { seq });
            }
            // A different entry at a taken seq: an equivocation if it links
            // there and a threshold of the stewards of that seq, still
            // stewards now, signed it (two entries signed by M stewards at
            // one seq is the stewards' fault, whatever the change says);
            // judged from the stored hashes and steward sets, never by
            // replaying the chain.
            self.check_alternative(&entry)?;
            let equivocation = Equivocation { seq, existing: existing.clone(), conflicting: entry };
            return Ok(Prepared::Halt(Box::new(equivocation)));
        }
        let state = apply(Some(&self.state), &entry)?;
        Ok(Prepared::Apply { entry: Box::new(entry), state: Box::new(state) })
    }

    /// Carries out what [`prepare`](Chain::prepare) decided (on this
    /// chain, unchanged since). A halt falls back to the state before the
    /// seq (replayed once: only a threshold of current stewards can cause
    /// it), keeps the evidence, accepts nothing more, and is returned as
    /// [`Error::Equivocation`].
    pub fn commit(&mut self, prepared: Prepared) -> Result<Appended, Error> {
        match prepared {
            Prepared::AlreadyHave => Ok(Appended::AlreadyHave),
            Prepared::Apply { entry, state } => {
                self.state = *state;
                self.push(*entry);
                Ok(Appended::Applied)
            }
            Prepared::Resolve { chosen, entry, state } => {
                self.truncate(chosen.body.seq);
                self.push(*chosen);
                self.push(*entry);
                self.state = *state;
                self.halted = None;
                Ok(Appended::Applied)
            }
            Prepared::Override { chosen, state } => {
                let seq = chosen.body.seq;
                self.truncate(seq);
                self.push(*chosen);
                self.state = *state;
                self.halted = None;
                self.overridden.insert(seq);
                Ok(Appended::Applied)
            }
            Prepared::Halt(eq) => {
                if let Some(prev) = eq.seq.checked_sub(1).and_then(|p| self.state_at(p)) {
                    self.state = prev;
                }
                self.halted = Some((*eq).clone());
                Err(Error::Equivocation {
                    seq: eq.seq,
                    existing: Box::new(eq.existing),
                    conflicting: Box::new(eq.conflicting),
                })
            }
        }
    }

    /// True if an equivocation at `seq` was resolved: by a steward-signed
    /// resolution (the next entry) or by this node's admin.
    fn is_resolved(&self, seq: u64) -> bool {
        let next = seq.checked_add(1).and_then(|n| usize::try_from(n).ok()).and_then(|n| self.entries.get(n));
        self.overridden.contains(&seq)
            || next.is_some_and(|e| matches!(e.body.change, Change::Resolve { seq: s, .. } if s == seq))
    }

    /// This node's admin ends the halt locally: the entry `chosen` (one of
    /// the two at the halted seq) stands, the other is refused from now
    /// on. For when the stewards cannot sign a resolution in time; audited
    /// by the node.
    pub fn prepare_override(&self, chosen: &Hash) -> Result<Prepared, Error> {
        let Some(eq) = &self.halted else { return Err(ChangeError::BadResolve { seq: self.state.seq }.into()) };
        let chosen_entry = [&eq.existing, &eq.conflicting]
            .into_iter()
            .find(|e| e.hash() == *chosen)
            .ok_or(ChangeError::BadResolve { seq: eq.seq })?;
        let state = apply(Some(&self.state), chosen_entry)?;
        Ok(Prepared::Override { chosen: Box::new(chosen_entry.clone()), state: Box::new(state) })
    }

    /// Marks `seq` as resolved by this node's admin (when a chain is read
    /// back from storage).
    pub fn mark_overridden(&mut self, seq: u64) {
        self.overridden.insert(seq);
    }

    /// Drops every entry from `seq` on, with their hashes and steward sets.
    fn truncate(&mut self, seq: u64) {
        let keep = usize::try_from(seq).unwrap_or(usize::MAX).min(self.entries.len());
        self.entries.truncate(keep);
        self.hashes.truncate(keep);
        self.epochs = epochs_of(&self.entries);
    }

    /// Records an applied entry.
    fn push(&mut self, entry: Entry) {
        if let Change::SetStewards { stewards, threshold } = &entry.body.change {
            let from = entry.body.seq.saturating_add(1);
            self.epochs.push(Epoch { from, stewards: stewards.clone(), threshold: *threshold });
        }
        self.hashes.push(entry.hash());
        self.entries.push(entry);
    }

    /// Judges a different entry at the taken `seq >= 1`: `Ok` if it is a
    /// valid alternative there (an equivocation); otherwise why not.
    fn check_alternative(&self, entry: &Entry) -> Result<(), Error> {
        let seq = entry.body.seq;
        if entry.version != EntryBody::VERSION {
            return Err(Error::UnsupportedVersion { found: entry.version, supported: EntryBody::VERSION });
        }
        let taken = Error::WrongSeq { expected: self.state.seq + 1, found: seq };
        let prev = usize::try_from(seq - 1).ok().and_then(|i| Some((self.hashes.get(i)?, self.entries.get(i)?)));
        let Some((prev_hash, prev_entry)) = prev else { return Err(taken) };
        // One that does not even link there is just an entry for a seq
        // already taken.
        if entry.body.prev != *prev_hash || entry.body.issued_at < prev_entry.body.issued_at {
            return Err(taken);
        }
        if matches!(entry.body.change, Change::Genesis { .. }) {
            return Err(ChangeError::LateGenesis.into());
        }
        let Some(epoch) = self.epoch_for(seq) else { return Err(taken) };
        check_signatures(entry, &epoch.stewards, epoch.threshold, &self.state.points)?;
        // Former stewards cannot halt or fork the chain: only signers who
        // are still stewards count.
        let current = entry.signatures.iter().filter(|s| self.state.stewards.contains(&s.steward)).count();
        let need = usize::from(epoch.threshold);
        if current < need {
            return Err(Error::FormerStewards { seq, current, need });
        }
        Ok(())
    }

    /// Restores a halted chain as it was stored (entries, evidence).
    pub fn restore(entries: Vec<Entry>, halted: Option<Equivocation>) -> Result<Self, Error> {
        let mut chain = Chain::from_entries(entries)?;
        if let Some(eq) = halted {
            if let Some(prev) = eq.seq.checked_sub(1).and_then(|p| chain.state_at(p)) {
                chain.state = prev;
            }
            chain.halted = Some(eq);
        }
        Ok(chain)
    }
}

/// Looks up the chain of an agreement.
pub trait Rosters {
    /// The chain, if this node holds it.
    fn roster(&self, agreement: &AgreementId) -> Option<&Chain>;
    /// Every chain held, each to be judged on its own (never their union).
    fn each(&self) -> Box<dyn Iterator<Item = &Chain> + '_>;
}

impl Rosters for BTreeMap<AgreementId, Chain> {
    fn roster(&self, agreement: &AgreementId) -> Option<&Chain> {
        self.get(agreement)
    }
    fn each(&self) -> Box<dyn Iterator<Item = &Chain> + '_> {
        Box::new(self.values())
    }
}

impl Rosters for std::collections::HashMap<AgreementId, Chain> {
    fn roster(&self, agreement: &AgreementId) -> Option<&Chain> {
        self.get(agreement)
    }
    fn each(&self) -> Box<dyn Iterator<Item = &Chain> + '_> {
        Box::new(self.values())
    }
}

impl Rosters for Chain {
    fn roster(&self, agreement: &AgreementId) -> Option<&Chain> {
        (self.agreement() == agreement).then_some(self)
    }
    fn each(&self) -> Box<dyn Iterator<Item = &Chain> + '_> {
        Box::new(std::iter::once(self))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::encoding;
    use crate::testkit::{self, RosterBuilder, issuer, node, org};

    /// The node and key indexes as a scan of the members finds them.
    fn assert_indexed(st: &State) {
        let (mut nodes, mut keys) = (BTreeMap::new(), BTreeMap::new());
        for (o, m) in st.members.iter() {
            for n in &m.nodes {
                nodes.entry(n.clone()).or_insert_with(|| o.clone());
            }
            for k in &m.keys {
                keys.entry(k.key).or_insert_with(|| o.clone());
            }
        }
        fn pairs<K: Ord + Clone>(m: &OrdMap<K, OrgId>) -> BTreeMap<K, OrgId> {
            m.iter().map(|(a, b)| (a.clone(), b.clone())).collect()
        }
        assert_eq!(pairs(&st.members.by_node), nodes);
        assert_eq!(pairs(&st.members.by_key), keys);
    }

    fn refused(r: &RosterBuilder, change: Change) -> ChangeError {
        match r.chain.prepare(r.entry(change, 2)) {
            Err(Error::Invalid(e)) => e,
            other => panic!("expected a refused change, got {other:?}"),
        }
    }

    fn spec(code: &str, node_label: &str, key_generation: u32) -> MemberSpec {
        MemberSpec {
            org: org(code),
            name: format!("{code} NHS Trust"),
            issuer_keys: vec![issuer(code, key_generation).public()],
            nodes: vec![node(node_label)],
            addresses: vec![],
        }
    }

    #[test]
    fn the_node_and_key_indexes_follow_every_change() {
        let (rjz, rj1, rv5) = (org("RJZ"), org("RJ1"), org("RV5"));
        let mut r = testkit::roster();
        assert_indexed(r.chain.state());
        assert_eq!(r.chain.state().org_of_node(&node("RJZ")).map(|m| &m.org), Some(&rjz));
        assert!(r.chain.state().org_of_node(&node("RV5")).is_none());

        r.push(Change::AddMember(spec("RV5", "RV5", 0)));
        assert_indexed(r.chain.state());
        assert_eq!(r.chain.state().org_of_node(&node("RV5")).map(|m| &m.org), Some(&rv5));
        assert_eq!(r.chain.state().members.of_key(&issuer("RV5", 0).public()).map(|m| &m.org), Some(&rv5));

        // A node change: the old node is free, the new one taken.
        r.push(Change::UpdateMember {
            org: rjz.clone(),
            name: None,
            nodes: Some(vec![node("RJZ-2")]),
            addresses: None,
        });
        assert_indexed(r.chain.state());
        assert!(r.chain.state().org_of_node(&node("RJZ")).is_none());
        assert_eq!(r.chain.state().org_of_node(&node("RJZ-2")).map(|m| &m.org), Some(&rjz));
        let taken = refused(
            &r,
            Change::UpdateMember { org: rj1.clone(), name: None, nodes: Some(vec![node("RJZ-2")]), addresses: None },
        );
        assert_eq!(taken, ChangeError::NodeTaken { node: node("RJZ-2"), org: rjz.clone() });
        r.push(Change::UpdateMember { org: rj1.clone(), name: None, nodes: Some(vec![node("RJZ")]), addresses: None });
        assert_indexed(r.chain.state());
        assert_eq!(r.chain.state().org_of_node(&node("RJZ")).map(|m| &m.org), Some(&rj1));

        // A key rotation: the new key is RJZ's, and so is the retired one
        // (still in use: no one else may register it).
        let (old, new) = (issuer("RJZ", 0).public(), issuer("RJZ", 1).public());
        r.push(Change::RotateKey { org: rjz.clone(), add: new, retire: Some(old) });
        assert_indexed(r.chain.state());
        assert_eq!(r.chain.state().members.of_key(&new).map(|m| &m.org), Some(&rjz));
        assert_eq!(r.chain.state().members.of_key(&old).map(|m| &m.org), Some(&rjz));
        assert_eq!(
            refused(&r, Change::RotateKey { org: rj1.clone(), add: old, retire: None }),
            ChangeError::DuplicateKey { key: old }
        );
        r.push(Change::RevokeKey { org: rjz.clone(), key: old, compromised_since: r.clock });
        assert_indexed(r.chain.state());

        // A removed member keeps its node and keys; re-added with others,
        // its old node is free and its old key still its own.
        r.push(Change::Suspend { org: rv5.clone(), reason: "audit".into() });
        r.push(Change::Reinstate { org: rv5.clone() });
        r.push(Change::Remove { org: rv5.clone() });
        assert_indexed(r.chain.state());
        assert_eq!(r.chain.state().org_of_node(&node("RV5")).map(|m| &m.org), Some(&rv5));
        assert_eq!(
            refused(&r, Change::AddMember(spec("RAX", "RV5", 0))),
            ChangeError::NodeTaken { node: node("RV5"), org: rv5.clone() }
        );
        assert_eq!(
            refused(&r, Change::AddMember(spec("RV5", "RV5-2", 0))),
            ChangeError::DuplicateKey { key: issuer("RV5", 0).public() }
        );
        r.push(Change::AddMember(spec("RV5", "RV5-2", 1)));
        assert_indexed(r.chain.state());
        assert!(r.chain.state().org_of_node(&node("RV5")).is_none());
        assert_eq!(r.chain.state().org_of_node(&node("RV5-2")).map(|m| &m.org), Some(&rv5));
        for generation in [0, 1] {
            let key = issuer("RV5", generation).public();
            assert_eq!(r.chain.state().members.of_key(&key).map(|m| &m.org), Some(&rv5));
        }
        r.push(Change::AddMember(spec("RAX", "RV5", 0)));
        assert_indexed(r.chain.state());
        assert_eq!(r.chain.state().org_of_node(&node("RV5")).map(|m| &m.org), Some(&org("RAX")));

        // A refused change leaves the state as it was.
        let before = r.chain.state().clone();
        let e = r.entry(Change::RotateKey { org: rjz.clone(), add: new, retire: None }, 2);
        assert!(r.chain.append(e).is_err());
        assert_eq!(r.chain.state(), &before);
        assert_indexed(r.chain.state());

        // Replayed, and read back from either encoding, the indexes are the same.
        let replayed = Chain::from_entries(r.chain.entries().to_vec()).unwrap();
        assert_eq!(replayed.state(), r.chain.state());
        assert_indexed(replayed.state());
        let bytes = encoding::to_bytes(r.chain.state());
        let decoded: State = encoding::from_canonical_bytes(&bytes, usize::MAX, "state").unwrap();
        assert_eq!(&decoded, r.chain.state());
        assert_indexed(&decoded);
        let json: State = serde_json::from_value(serde_json::to_value(r.chain.state()).unwrap()).unwrap();
        assert_eq!(&json, r.chain.state());
        assert_indexed(&json);
    }

    #[test]
    fn members_encode_exactly_as_a_btreemap_does() {
        let mut r = testkit::roster();
        r.add_member("RV5").add_member("RAX");
        let st = r.chain.state();
        let plain: BTreeMap<OrgId, Member> = st.members.iter().map(|(o, m)| (o.clone(), m.clone())).collect();
        assert_eq!(encoding::to_bytes(&st.members), encoding::to_bytes(&plain));
        assert_eq!(serde_json::to_string(&st.members).unwrap(), serde_json::to_string(&plain).unwrap());
        assert_eq!(format!("{:?}", st.members), format!("{plain:?}"));
        let back: Members = encoding::from_bytes(&encoding::to_bytes(&plain), usize::MAX, "members").unwrap();
        assert_eq!(back, st.members);
    }

    #[test]
    fn the_25000th_member_is_accepted_and_the_25001st_refused() {
        let r = testkit::roster();
        // Filled to one short of the limit directly (signing and checking
        // 25,000 entries is the benchmark's job, not a unit test's); the
        // last two come as entries, through the rules.
        let mut st = r.chain.state().clone();
        let at = st.issued_at;
        for i in st.members.len()..limits::MAX_MEMBERS - 1 {
            let code = format!("M{i:05}");
            st.members.insert(Member {
                org: org(&code),
                name: code.clone(),
                keys: vec![KeyRecord { key: issuer(&code, 0).public(), added_at: at, retired_at: None }],
                nodes: vec![NodeId::from_ed25519_public(&testkit::seed(&code))],
                addresses: vec![],
                status: MemberStatus::Active,
                history: vec![(at, MemberStatus::Active)],
                status_seq: 0,
            });
        }
        assert_eq!(st.members.len(), limits::MAX_MEMBERS - 1);
        let next = |st: &State, change: Change| {
            let mut e = Entry::unsigned(EntryBody {
                agreement: st.agreement.clone(),
                seq: st.seq + 1,
                prev: st.head,
                issued_at: st.issued_at.plus_secs(60),
                change,
            });
            for s in &r.stewards[..2] {
                e.sign(s);
            }
            e
        };
        let st = apply(Some(&st), &next(&st, Change::AddMember(spec("RV5", "RV5", 0)))).unwrap();
        assert_eq!(st.members.len(), limits::MAX_MEMBERS);
        assert_eq!(st.org_of_node(&node("RV5")).map(|m| m.org.to_string()), Some("RV5".into()));
        assert_eq!(
            apply(Some(&st), &next(&st, Change::AddMember(spec("RAX", "RAX", 0)))),
            Err(Error::Invalid(ChangeError::BadCount { field: "members", min: 0, max: limits::MAX_MEMBERS }))
        );
        // A removed member may come back when the roster is full: it is
        // counted already.
        let st = apply(Some(&st), &next(&st, Change::Remove { org: org("M00100") })).unwrap();
        let st = apply(Some(&st), &next(&st, Change::AddMember(spec("M00100", "M00100-2", 1)))).unwrap();
        assert_eq!(st.members.len(), limits::MAX_MEMBERS);
        assert_eq!(st.status(&org("M00100")), Some(MemberStatus::Active));
    }
}
