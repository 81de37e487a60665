//! Revocation of credentials, and what a receiver knows has been revoked
//! or withdrawn.

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};

use crate::bundle::{Held, Rejection, Signer, check_signer};
use crate::claims::named_enum;
use crate::datetime::Timestamp;
use crate::ids::{ConsentId, CredentialId, NodeId, OrgId};
use crate::keys::IssuerPublicKey;
use crate::roster::Rosters;
use crate::signing::{Signable, Signed};

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

impl Revocation {
    /// True if it revokes `credential` as issued by `issuer`: an issuer
    /// revokes only its own credentials, whoever else uses the same id.
    pub fn covers(&self, issuer: &OrgId, credential: &CredentialId) -> bool {
        self.issuer == *issuer && self.credential == *credential
    }
}

/// Decides whether a receiver may act on revocation `r`, sent by node
/// `sender` at `now`, for one record it holds (`held`, which the
/// revocation must [cover](Revocation::covers)) or for none (then it only
/// blocks later offers of that credential from that issuer). Each refusal
/// has its own [`Rejection`]:
///
/// - `unsupported-version`: the revocation's version is not spoken here;
/// - `sender-not-issuer`: the held record was issued by another
///   organisation;
/// - the signer's rules, in the chain of the held record's agreement (see
///   [`Held`]): `unknown-agreement`, `issuer-not-member` (not a member
///   there, or removed), `sender-not-issuer`, `issued-in-future`,
///   `unknown-issuer-key`, `issuer-key-not-yet-valid`, `issuer-key-retired`;
/// - `bad-credential-signature`: the issuer's signature does not verify.
pub fn verify_revocation<'r>(
    r: &'r Signed<Revocation>,
    sender: &NodeId,
    held: Option<Held<'_>>,
    rosters: &impl Rosters,
    now: Timestamp,
) -> Result<&'r Revocation, Rejection> {
    if !r.version_ok() {
        return Err(Rejection::UnsupportedVersion);
    }
    let b = &r.body;
    if held.is_some_and(|h| *h.issuer != b.issuer) {
        return Err(Rejection::SenderNotIssuer);
    }
    let signer = Signer { org: &b.issuer, sender, key: &b.issuer_key, signed_at: b.revoked_at };
    check_signer(rosters, held, &signer, now)?;
    b.issuer_key.verify(b, &r.signature).map_err(|_| Rejection::BadCredentialSignature)?;
    Ok(b)
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
