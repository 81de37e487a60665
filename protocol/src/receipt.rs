//! Signed receipts: what a receiver answers to every message that must
//! arrive.

use std::collections::BTreeSet;

use serde::{Deserialize, Serialize};

use crate::bundle::{MAX_CLOCK_SKEW_SECS, Rejection};
use crate::claims::ClaimKind;
use crate::datetime::Timestamp;
use crate::ids::{AgreementId, ConsentId, CredentialId, MessageId, OrgId};
use crate::keys::IssuerPublicKey;
use crate::roster::{KeyValidity, Rosters};
use crate::signing::{Signable, Signed};
use crate::wire::exchange::Kind;

/// What the receipt acknowledges.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Outcome {
    /// The passport was verified and stored.
    Received {
        /// Under this consent.
        consent: ConsentId,
        /// This credential.
        credential: CredentialId,
        /// These claims.
        claims: BTreeSet<ClaimKind>,
    },
    /// The disclosures under this consent were erased.
    Erased {
        /// The consent withdrawn.
        consent: ConsentId,
    },
    /// The revocation was recorded.
    RevocationAcknowledged {
        /// The credential.
        credential: CredentialId,
    },
    /// The message was refused; nothing of it was kept.
    Rejected {
        /// Why.
        reason: Rejection,
    },
}

/// A receipt (unsigned body).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Receipt {
    /// The message it answers.
    pub message: MessageId,
    /// The organisation that received it.
    pub receiver: OrgId,
    /// What happened.
    pub outcome: Outcome,
    /// When.
    pub at: Timestamp,
    /// The receiver's issuer key that signs it.
    pub issuer_key: IssuerPublicKey,
}

impl Signable for Receipt {
    const TAG: &'static str = "receipt";
    const VERSION: u16 = 1;
}

impl Outcome {
    /// Its name: `received`, `erased`, `revocation-acknowledged` or `rejected`.
    pub fn name(&self) -> &'static str {
        match self {
            Outcome::Received { .. } => "received",
            Outcome::Erased { .. } => "erased",
            Outcome::RevocationAcknowledged { .. } => "revocation-acknowledged",
            Outcome::Rejected { .. } => "rejected",
        }
    }

    /// Its label in metrics and logs: the name, and for a rejection its
    /// code too (`rejected:consent-expired`).
    pub fn label(&self) -> String {
        match self {
            Outcome::Rejected { reason } => format!("rejected:{}", reason.code()),
            other => other.name().to_string(),
        }
    }

    /// True if it can answer a message of this kind: an offer is received,
    /// a withdrawal erased, a revocation acknowledged; any may be rejected.
    pub fn fits(&self, kind: Kind) -> bool {
        matches!(
            (self, kind),
            (Outcome::Rejected { .. }, _)
                | (Outcome::Received { .. }, Kind::Offer)
                | (Outcome::Erased { .. }, Kind::Withdraw)
                | (Outcome::RevocationAcknowledged { .. }, Kind::Revoke)
        )
    }
}

/// What the sender of a message expects of its receipt.
#[derive(Debug, Clone, Copy)]
pub struct Expected<'a> {
    /// The message sent.
    pub message: MessageId,
    /// Its kind.
    pub kind: Kind,
    /// The organisation it was sent to.
    pub receiver: &'a OrgId,
    /// The agreement it was sent under, whose roster holds the receiver's keys.
    pub agreement: &'a AgreementId,
}

/// Why a receipt is not taken as the answer to a message (the message
/// stays in the outbox). The names (`code()`) are stable.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Error {
    /// The receipt's encoding version is not spoken here.
    #[error("the receipt's version {found} is not supported (this build speaks {supported})")]
    UnsupportedVersion {
        /// Found.
        found: u16,
        /// Supported.
        supported: u16,
    },
    /// It answers another message.
    #[error("the receipt answers message {found}, not {expected}")]
    OtherMessage {
        /// The message sent.
        expected: MessageId,
        /// The one the receipt names.
        found: MessageId,
    },
    /// It is from another organisation than the one the message went to.
    #[error("the receipt is from {found}, but the message went to {expected}")]
    OtherReceiver {
        /// The receiver.
        expected: OrgId,
        /// The organisation the receipt names.
        found: OrgId,
    },
    /// The sender holds no roster for the agreement.
    #[error("this node holds no roster for agreement {0}, so cannot check the receiver's keys")]
    UnknownAgreement(AgreementId),
    /// Its time lies in the future.
    #[error("the receipt is dated {at}, in the future")]
    IssuedInFuture {
        /// The receipt's time.
        at: Timestamp,
    },
    /// The signing key is not an issuer key of the receiver.
    #[error("the receipt is signed by a key that is not an issuer key of {receiver}")]
    UnknownIssuerKey {
        /// The receiver.
        receiver: OrgId,
    },
    /// The signing key was not yet registered at the receipt's time.
    #[error("the receipt is signed by a key of {receiver} not yet registered at {at}")]
    IssuerKeyNotYetValid {
        /// The receiver.
        receiver: OrgId,
        /// The receipt's time.
        at: Timestamp,
    },
    /// The signing key was retired by the receipt's time.
    #[error("the receipt is signed by a key of {receiver} retired by {at}")]
    IssuerKeyRetired {
        /// The receiver.
        receiver: OrgId,
        /// The receipt's time.
        at: Timestamp,
    },
    /// The signature does not verify.
    #[error("the receipt's signature does not verify")]
    BadSignature,
    /// The outcome cannot answer this kind of message.
    #[error("the receipt's outcome ({outcome}) does not answer a message of kind {kind}")]
    OutcomeMismatch {
        /// The message's kind.
        kind: Kind,
        /// The receipt's outcome.
        outcome: &'static str,
    },
}

impl Error {
    /// A stable machine-readable code.
    pub fn code(&self) -> &'static str {
        match self {
            Error::UnsupportedVersion { .. } => "unsupported-version",
            Error::OtherMessage { .. } => "other-message",
            Error::OtherReceiver { .. } => "other-receiver",
            Error::UnknownAgreement(_) => "unknown-agreement",
            Error::IssuedInFuture { .. } => "issued-in-future",
            Error::UnknownIssuerKey { .. } => "unknown-issuer-key",
            Error::IssuerKeyNotYetValid { .. } => "issuer-key-not-yet-valid",
            Error::IssuerKeyRetired { .. } => "issuer-key-retired",
            Error::BadSignature => "bad-receipt-signature",
            Error::OutcomeMismatch { .. } => "outcome-mismatch",
        }
    }
}

/// Decides whether `r` is the receipt for the message `expect` describes,
/// at `now`: this message, from its receiver, signed by an issuer key the
/// receiver held at the receipt's time in the roster of the message's
/// agreement (whatever the receiver's standing: a suspended or removed
/// receiver still confirms erasure), with an outcome that fits the
/// message's kind. Each refusal has its own [`Error`].
pub fn verify_receipt<'r>(
    r: &'r Signed<Receipt>,
    expect: &Expected<'_>,
    rosters: &impl Rosters,
    now: Timestamp,
) -> Result<&'r Receipt, Error> {
    if !r.version_ok() {
        return Err(Error::UnsupportedVersion { found: r.version, supported: Receipt::VERSION });
    }
    let b = &r.body;
    if b.message != expect.message {
        return Err(Error::OtherMessage { expected: expect.message, found: b.message });
    }
    if b.receiver != *expect.receiver {
        return Err(Error::OtherReceiver { expected: expect.receiver.clone(), found: b.receiver.clone() });
    }
    let chain = rosters.roster(expect.agreement).ok_or_else(|| Error::UnknownAgreement(expect.agreement.clone()))?;
    if b.at > now.plus_secs(MAX_CLOCK_SKEW_SECS) {
        return Err(Error::IssuedInFuture { at: b.at });
    }
    let receiver = b.receiver.clone();
    match chain.state().key_validity(&b.receiver, &b.issuer_key, b.at) {
        KeyValidity::Valid => {}
        KeyValidity::Unknown => return Err(Error::UnknownIssuerKey { receiver }),
        KeyValidity::NotYetValid => return Err(Error::IssuerKeyNotYetValid { receiver, at: b.at }),
        KeyValidity::Retired => return Err(Error::IssuerKeyRetired { receiver, at: b.at }),
    }
    b.issuer_key.verify(b, &r.signature).map_err(|_| Error::BadSignature)?;
    if !b.outcome.fits(expect.kind) {
        return Err(Error::OutcomeMismatch { kind: expect.kind, outcome: b.outcome.name() });
    }
    Ok(b)
}
