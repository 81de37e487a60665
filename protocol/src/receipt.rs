//! Signed receipts: what a receiver answers to every message that must
//! arrive.

use std::collections::BTreeSet;

use serde::{Deserialize, Serialize};

use crate::bundle::Rejection;
use crate::claims::ClaimKind;
use crate::datetime::Timestamp;
use crate::ids::{ConsentId, CredentialId, MessageId, OrgId};
use crate::keys::IssuerPublicKey;
use crate::signing::Signable;

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
