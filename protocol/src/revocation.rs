//! Revocation of credentials, and what a receiver knows has been revoked
//! or withdrawn.

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};

use crate::claims::named_enum;
use crate::datetime::Timestamp;
use crate::ids::{ConsentId, CredentialId, OrgId};
use crate::keys::IssuerPublicKey;
use crate::signing::Signable;

named_enum!(
    /// Why a credential was revoked (the Digital Staff Passport reason codes).
    RevocationReason {
        /// A training record in it has expired.
        TrainingExpiry => "training-expiry",
        /// The staff member left the organisation.
        LeavingOrganisation => "leaving-organisation",
        /// It was issued in error.
        ProvidedInError => "provided-in-error",
        /// The staff member lost the device that held it.
        LostPhone => "lost-phone",
        /// No longer valid.
        NoLongerValid => "no-longer-valid",
        /// Suspected to be no longer valid.
        SuspectNoLongerValid => "suspect-no-longer-valid",
        /// The staff member has died.
        Deceased => "deceased",
    }
);

/// The issuer revokes a credential (unsigned body).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Revocation {
    /// The credential.
    pub credential: CredentialId,
    /// Its issuer.
    pub issuer: OrgId,
    /// Why.
    pub reason: RevocationReason,
    /// When.
    pub revoked_at: Timestamp,
    /// The issuer key that signs it.
    pub issuer_key: IssuerPublicKey,
}

impl Signable for Revocation {
    const TAG: &'static str = "revocation";
    const VERSION: u16 = 1;
}

/// What a node knows to be revoked or withdrawn.
pub trait StatusList {
    /// The reason, if the credential is revoked.
    fn revoked(&self, credential: &CredentialId) -> Option<RevocationReason>;
    /// True if the consent has been withdrawn.
    fn withdrawn(&self, consent: &ConsentId) -> bool;
}

/// An in-memory [`StatusList`].
#[derive(Debug, Clone, Default)]
pub struct Revocations {
    /// Revoked credentials and why.
    pub credentials: BTreeMap<CredentialId, RevocationReason>,
    /// Withdrawn consents.
    pub consents: BTreeSet<ConsentId>,
}

impl StatusList for Revocations {
    fn revoked(&self, credential: &CredentialId) -> Option<RevocationReason> {
        self.credentials.get(credential).copied()
    }
    fn withdrawn(&self, consent: &ConsentId) -> bool {
        self.consents.contains(consent)
    }
}
