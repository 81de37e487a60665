//! Sharing consents and their withdrawal.
//!
//! A consent records the staff member's choice: which receiving
//! organisation, under which agreement, for which move, which claims, from
//! when until when. The home trust signs it; where the staff member holds a
//! key, they sign it too.

use std::collections::BTreeSet;

use serde::{Deserialize, Serialize};

use crate::bundle::{Held, Rejection, Signer, check_held_by, check_signer};
use crate::claims::ClaimKind;
use crate::datetime::Timestamp;
use crate::ids::{AgreementId, ConsentId, NodeId, OrgId, StaffRef};
use crate::keys::{IssuerPublicKey, StaffPublicKey};
use crate::roster::{MoveKind, Rosters};
use crate::signing::{Signable, Signature, Signed};

/// A staff member's change of their own registered key, signed with the
/// key it replaces: the only way, besides an audited admin act, that a
/// registered staff key changes. The home accepts it only while `old` is
/// the key it holds for `staff` and `signed_at` is near its own clock
/// ([`STAFF_KEY_CHANGE_WINDOW_SECS`]), so it cannot be replayed later.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StaffKeyChange {
    /// The staff member.
    pub staff: StaffRef,
    /// The key it replaces (the signer).
    pub old: StaffPublicKey,
    /// The new key, or `None` to remove the registered key.
    pub new: Option<StaffPublicKey>,
    /// When the staff member signed it.
    pub signed_at: Timestamp,
}

impl Signable for StaffKeyChange {
    const TAG: &'static str = "staff-key-change";
    const VERSION: u16 = 1;
}

/// How far a staff key change's `signed_at` may be from the home's clock.
pub const STAFF_KEY_CHANGE_WINDOW_SECS: i64 = 600;

/// A sharing consent (unsigned body).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Consent {
    /// Its id.
    pub id: ConsentId,
    /// The staff member.
    pub subject: StaffRef,
    /// The home trust (the credential's issuer).
    pub home: OrgId,
    /// The organisation that may receive the claims.
    pub receiver: OrgId,
    /// The agreement it is made under.
    pub agreement: AgreementId,
    /// The move it is for.
    pub move_kind: MoveKind,
    /// The claims the staff member agreed to share.
    pub claims: BTreeSet<ClaimKind>,
    /// Sharing may start at.
    pub not_before: Timestamp,
    /// Sharing ends at; the receiver erases then.
    pub not_after: Timestamp,
    /// When the consent was recorded.
    pub issued_at: Timestamp,
    /// The home trust's issuer key that signs it.
    pub issuer_key: IssuerPublicKey,
    /// The staff member's own key, if they hold one; then their signature
    /// is required too.
    pub staff_key: Option<StaffPublicKey>,
}

impl Signable for Consent {
    const TAG: &'static str = "consent";
    const VERSION: u16 = 1;
}

/// A consent signed by the home trust, and by the staff member where they
/// hold a key.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SignedConsent {
    /// Signed by the home trust's issuer key.
    pub signed: Signed<Consent>,
    /// The staff member's signature over the same consent, if they hold a key.
    pub staff_signature: Option<Signature>,
}

impl SignedConsent {
    /// The consent.
    pub fn consent(&self) -> &Consent {
        &self.signed.body
    }
}

/// The staff member withdraws a consent (unsigned body).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Withdrawal {
    /// The consent withdrawn.
    pub consent: ConsentId,
    /// The staff member.
    pub subject: StaffRef,
    /// The home trust.
    pub home: OrgId,
    /// The receiver that must erase.
    pub receiver: OrgId,
    /// When.
    pub withdrawn_at: Timestamp,
    /// The home trust's issuer key that signs it.
    pub issuer_key: IssuerPublicKey,
}

impl Signable for Withdrawal {
    const TAG: &'static str = "withdrawal";
    const VERSION: u16 = 1;
}

/// Decides whether `receiver` may act on withdrawal `w`, sent by node
/// `sender` at `now`, given what it holds under the consent named
/// (`held`: a passport or its tombstone, or nothing yet). Each refusal has
/// its own [`Rejection`]:
///
/// - `unsupported-version`: the withdrawal's version is not spoken here;
/// - `consent-for-other-receiver`: it names another receiver;
/// - `consent-mismatch`: what is held was issued by another organisation
///   (a member may withdraw only its own consents);
/// - the signer's rules, in the chain of the held record's agreement (see
///   [`Held`]): `unknown-agreement`, `issuer-not-member` (not a member
///   there, or removed), `sender-not-issuer`, `issued-in-future`,
///   `unknown-issuer-key`, `issuer-key-not-yet-valid`, `issuer-key-retired`;
/// - `bad-consent-signature`: the home's signature does not verify.
pub fn verify_withdrawal<'w>(
    w: &'w Signed<Withdrawal>,
    sender: &NodeId,
    receiver: &OrgId,
    held: Option<Held<'_>>,
    rosters: &impl Rosters,
    now: Timestamp,
) -> Result<&'w Withdrawal, Rejection> {
    if !w.version_ok() {
        return Err(Rejection::UnsupportedVersion);
    }
    let b = &w.body;
    if b.receiver != *receiver {
        return Err(Rejection::ConsentForOtherReceiver);
    }
    check_held_by(held, &b.home)?;
    let signer = Signer { org: &b.home, sender, key: &b.issuer_key, signed_at: b.withdrawn_at };
    check_signer(rosters, held, &signer, now)?;
    b.issuer_key.verify(b, &w.signature).map_err(|_| Rejection::BadConsentSignature)?;
    Ok(b)
}
