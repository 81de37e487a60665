//! What the exchange service keeps in the store, and under which keys. Keys hold only
//! ids; everything personal is in values of encrypted trees.

use serde::{Deserialize, Serialize};
use staffpass_protocol::bundle::{Rejection, VerifiedPassport};
use staffpass_protocol::consent::{Consent, SignedConsent};
use staffpass_protocol::credential::{Disclosure, SignedCredential};
use staffpass_protocol::receipt::Receipt;
use staffpass_protocol::revocation::RevocationReason;
use staffpass_protocol::wire::exchange;
use staffpass_protocol::{
    AgreementId, ConsentId, CredentialId, MessageId, NodeId, OrgId, Signed, StaffRef, Timestamp, encoding,
};

use crate::store::{Batch, Tree};

/// An issued credential with all its disclosures.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct CredentialRecord {
    /// The signed credential.
    pub signed: SignedCredential,
    /// One disclosure per claim.
    pub disclosures: Vec<Disclosure>,
    /// The staff member.
    pub staff_ref: StaffRef,
    /// Revoked: why and when.
    pub revoked: Option<(RevocationReason, Timestamp)>,
}

/// Where a consent stands at the home trust. (Stored with postcard, so
/// externally tagged; the API shows it as `staffpass_api::consents::ConsentState`,
/// `{"state": name, ...}`.)
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ConsentState {
    /// Waits for the staff member's own signature.
    AwaitingStaffSignature,
    /// The offer is in the outbox.
    Pending,
    /// The receiver verified and stored it.
    Delivered {
        /// When the receipt came.
        at: Timestamp,
    },
    /// The receiver refused it.
    Rejected {
        /// Why.
        reason: Rejection,
        /// When.
        at: Timestamp,
    },
    /// The staff member withdrew it.
    Withdrawn {
        /// When.
        at: Timestamp,
        /// When the receiver confirmed erasure.
        erased: Option<Timestamp>,
    },
}

impl ConsentState {
    /// The state's name.
    pub fn name(&self) -> &'static str {
        staffpass_api::consents::ConsentState::from(self).name()
    }
}

impl From<&ConsentState> for staffpass_api::consents::ConsentState {
    fn from(s: &ConsentState) -> Self {
        use staffpass_api::consents::ConsentState as View;
        match s {
            ConsentState::AwaitingStaffSignature => View::AwaitingStaffSignature,
            ConsentState::Pending => View::Pending,
            ConsentState::Delivered { at } => View::Delivered { at: *at },
            ConsentState::Rejected { reason, at } => View::Rejected { reason: *reason, at: *at },
            ConsentState::Withdrawn { at, erased } => View::Withdrawn { at: *at, erased: *erased },
        }
    }
}

/// A consent at the home trust.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ConsentRecord {
    /// The signed consent.
    pub signed: SignedConsent,
    /// The credential last sent under it.
    pub credential: CredentialId,
    /// Where it stands.
    pub state: ConsentState,
    /// When it was recorded.
    pub created_at: Timestamp,
    /// Messages sent under it.
    pub messages: Vec<MessageId>,
    /// Signed receipts received for them.
    pub receipts: Vec<Signed<Receipt>>,
}

/// What an outbox message is: the kind of its request (stored as such).
pub use staffpass_protocol::wire::exchange::Kind as OutKind;

/// A message that must arrive.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct OutboxItem {
    /// Message id (receiver idempotency).
    pub id: MessageId,
    /// Its kind.
    pub kind: OutKind,
    /// The consent it belongs to.
    pub consent: ConsentId,
    /// The staff member.
    pub staff: StaffRef,
    /// The receiving organisation.
    pub to: OrgId,
    /// Under which agreement (whose roster names the receiver's nodes).
    pub agreement: AgreementId,
    /// The encoded request.
    pub request: Vec<u8>,
    /// Created at, in milliseconds since the epoch (orders the outbox).
    pub created_ms: i64,
    /// Attempts so far.
    pub attempts: u32,
    /// Last failure, if any (no personal data).
    pub last_error: Option<String>,
    /// When the next attempt is due (ms since the epoch), after a failure.
    pub next_ms: Option<i64>,
}

impl OutboxItem {
    /// A new message for `consent`'s receiver, created at `created_ms`
    /// (milliseconds since the epoch, by the service's clock).
    pub fn new(id: MessageId, consent: &Consent, kind: OutKind, request: exchange::Request, created_ms: i64) -> Self {
        OutboxItem {
            id,
            kind,
            consent: consent.id,
            staff: consent.subject.clone(),
            to: consent.receiver.clone(),
            agreement: consent.agreement.clone(),
            request: request.encode(),
            created_ms,
            attempts: 0,
            last_error: None,
            next_ms: None,
        }
    }

    /// Its store key: creation time then id, so the outbox is in order.
    pub fn key(&self) -> Vec<u8> {
        let mut k = self.created_ms.to_be_bytes().to_vec();
        k.extend_from_slice(self.id.as_bytes());
        k
    }

    /// Adds it to a batch.
    pub fn put(&self, batch: &mut Batch) {
        batch.put(Tree::Outbox, self.key(), encoding::to_bytes(self));
    }
}

/// Where a received passport stands at the host trust.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ReceivedState {
    /// Held and usable.
    Active,
    /// The issuer revoked it.
    Revoked {
        /// Why.
        reason: RevocationReason,
        /// When.
        at: Timestamp,
    },
}

/// A verified passport held at the host trust.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ReceivedRecord {
    /// What was verified.
    pub passport: VerifiedPassport,
    /// The sending node.
    pub sender: NodeId,
    /// When it arrived (or was last updated).
    pub received_at: Timestamp,
    /// The message that brought it.
    pub message: MessageId,
    /// Where it stands.
    pub state: ReceivedState,
    /// Its standard-form copy (an SD-JWT VC presentation of the consented
    /// claims, checked against the bundle), when the sender sent one: what
    /// `received export --format sd-jwt-vc` hands to the host's HR system.
    pub presentation: Option<String>,
}

/// A received passport as stored before offers carried a standard-form
/// copy: read, and shown, as one without it.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ReceivedRecordV1 {
    /// What was verified.
    pub passport: VerifiedPassport,
    /// The sending node.
    pub sender: NodeId,
    /// When it arrived (or was last updated).
    pub received_at: Timestamp,
    /// The message that brought it.
    pub message: MessageId,
    /// Where it stands.
    pub state: ReceivedState,
}

impl From<ReceivedRecordV1> for ReceivedRecord {
    fn from(r: ReceivedRecordV1) -> Self {
        ReceivedRecord {
            passport: r.passport,
            sender: r.sender,
            received_at: r.received_at,
            message: r.message,
            state: r.state,
            presentation: None,
        }
    }
}

/// What remains after erasure: ids and times only.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ErasedRecord {
    /// The consent.
    pub consent: ConsentId,
    /// The credential.
    pub credential: CredentialId,
    /// The home trust.
    pub issuer: OrgId,
    /// When erased.
    pub erased_at: Timestamp,
    /// `withdrawn` or `expired`.
    pub why: String,
}

/// A copy of a received passport made outside the node: its form and
/// when (ids and times only, kept after erasure so the host knows which
/// copies to remove).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ExportMark {
    /// `fhir`.
    pub format: String,
    /// When it was made.
    pub at: Timestamp,
}

/// Key of the exports made of a received passport (by consent): a
/// `Vec<ExportMark>`.
pub fn exports_key(id: &ConsentId) -> Vec<u8> {
    let mut k = b"x/".to_vec();
    k.extend_from_slice(id.as_bytes());
    k
}

/// Key of a consent record.
pub fn consent_key(id: &ConsentId) -> Vec<u8> {
    id.as_bytes().to_vec()
}

/// Puts a consent record into a batch.
pub fn put_consent(batch: &mut Batch, c: &ConsentRecord) {
    batch.put(Tree::Consents, consent_key(&c.signed.consent().id), encoding::to_bytes(c));
}

/// Key of a credential record.
/// A value sealed under one staff member's own key, with their reference
/// beside it in the clear of this layer (the store still seals it under
/// the data key), so it can be opened, or found and erased, without
/// knowing whose it is first.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct OfStaff {
    /// Whose.
    pub staff: StaffRef,
    /// The value, sealed under their key.
    pub sealed: Vec<u8>,
}

/// The staff reference a key of the staff tree names (`None`: not one).
pub fn staff_ref_of_key(k: &[u8]) -> Option<StaffRef> {
    std::str::from_utf8(k).ok()?.parse().ok()
}

/// The record-key id of a staff member's key at the home trust.
pub fn staff_key_id(r: &StaffRef) -> Vec<u8> {
    format!("s/{r}").into_bytes()
}

pub fn credential_key(id: &CredentialId) -> Vec<u8> {
    let mut k = b"c/".to_vec();
    k.extend_from_slice(id.as_bytes());
    k
}

/// The credential id a `c/` key of the credentials tree names.
pub fn credential_id_of_key(k: &[u8]) -> Option<CredentialId> {
    let b: [u8; 16] = k.strip_prefix(b"c/")?.try_into().ok()?;
    Some(CredentialId::from_bytes(b))
}

/// Key of a staff member's current credential id.
pub fn current_key(r: &StaffRef) -> Vec<u8> {
    format!("cur/{r}").into_bytes()
}

/// Key of a received passport (by consent).
pub fn received_key(id: &ConsentId) -> Vec<u8> {
    let mut k = b"p/".to_vec();
    k.extend_from_slice(id.as_bytes());
    k
}

/// Key of an erasure tombstone (by consent).
pub fn erased_key(id: &ConsentId) -> Vec<u8> {
    let mut k = b"e/".to_vec();
    k.extend_from_slice(id.as_bytes());
    k
}

/// Key of a withdrawal marker: by home trust and consent, so a withdrawal
/// signed by one member never blocks another member's consent.
pub fn withdrawn_key(home: &OrgId, id: &ConsentId) -> Vec<u8> {
    marker_key(b"w/", home, id.as_bytes())
}

/// Key of a revocation marker: by issuer and credential, so one member's
/// revocation never blocks another member's credential of the same id.
pub fn revoked_key(issuer: &OrgId, id: &CredentialId) -> Vec<u8> {
    marker_key(b"r/", issuer, id.as_bytes())
}

/// Key of a supersession marker: by home trust and consent, the
/// `issued_at` of the newest credential offered under
/// it and refused as revoked. An offer of a credential issued no later is
/// superseded by a revoked one and is refused too, so a late retry of an
/// older offer never brings back an active passport.
pub fn superseded_key(home: &OrgId, id: &ConsentId) -> Vec<u8> {
    marker_key(b"s/", home, id.as_bytes())
}

fn marker_key(prefix: &[u8], org: &OrgId, id: &[u8]) -> Vec<u8> {
    let mut k = prefix.to_vec();
    k.extend_from_slice(org.to_string().as_bytes());
    k.push(b'/');
    k.extend_from_slice(id);
    k
}
