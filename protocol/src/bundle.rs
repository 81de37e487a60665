//! Consented bundles and the receiver's acceptance rules.
//!
//! A bundle is a signed credential, the disclosures for the consented
//! claims only, and the signed consent. [`verify_bundle`] is every rule of
//! the design in one pure function; each refusal has its own stable,
//! machine-readable [`Rejection`].

use std::collections::BTreeSet;
use std::fmt;

use serde::{Deserialize, Serialize};

use crate::claims::{Claim, ClaimKind};
use crate::consent::{Consent, SignedConsent};
use crate::credential::{Disclosure, SignedCredential};
use crate::datetime::Timestamp;
use crate::ids::{AgreementId, ConsentId, CredentialId, NodeId, OrgId, StaffRef};
use crate::keys::{IssuerPublicKey, StaffPublicKey};
use crate::revocation::StatusList;
use crate::roster::{KeyValidity, MemberStatus, MoveKind, Rosters, State};
use crate::signing::{self, Signable, Signature};

/// How far in the future a signed time may lie (clock skew between trusts).
pub const MAX_CLOCK_SKEW_SECS: i64 = 300;

/// A consented bundle, as sent from the home trust to the receiver.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Bundle {
    /// The signed credential.
    pub credential: SignedCredential,
    /// Disclosures for the consented claims only.
    pub disclosures: Vec<Disclosure>,
    /// The signed consent.
    pub consent: SignedConsent,
}

macro_rules! rejections {
    ($($(#[$doc:meta])* $variant:ident => $code:literal),* $(,)?) => {
        /// Why a bundle was refused. The names (`code()`) are stable and
        /// machine-readable; they travel in signed rejection receipts.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub enum Rejection { $($(#[$doc])* $variant),* }

        impl Rejection {
            /// Every reason.
            pub const ALL: &'static [Rejection] = &[$(Rejection::$variant),*];
            /// The stable code.
            pub fn code(self) -> &'static str {
                match self { $(Rejection::$variant => $code),* }
            }
            /// From a stable code.
            pub fn from_code(s: &str) -> Option<Self> {
                match s { $($code => Some(Rejection::$variant),)* _ => None }
            }
        }
    };
}

rejections! {
    /// An object's encoding version is not spoken here.
    UnsupportedVersion => "unsupported-version",
    /// The bundle could not be decoded.
    Malformed => "malformed",
    /// The receiver holds no roster for the agreement named.
    UnknownAgreement => "unknown-agreement",
    /// The agreement's roster is past its valid_until.
    RosterStale => "roster-stale",
    /// The agreement's roster is halted after an equivocation.
    RosterHalted => "roster-halted",
    /// The issuing organisation is not a member of the agreement.
    IssuerNotMember => "issuer-not-member",
    /// The issuing organisation is suspended.
    IssuerSuspended => "issuer-suspended",
    /// The receiving organisation is not a member of the agreement.
    ReceiverNotMember => "receiver-not-member",
    /// The receiving organisation is suspended.
    ReceiverSuspended => "receiver-suspended",
    /// The sending node does not belong to the issuing organisation.
    SenderNotIssuer => "sender-not-issuer",
    /// The consent is for another staff member or another home trust, or
    /// what is held under it was issued by another organisation.
    ConsentMismatch => "consent-mismatch",
    /// The consent names another receiving organisation.
    ConsentForOtherReceiver => "consent-for-other-receiver",
    /// The agreement does not cover this kind of move.
    MoveNotCovered => "move-not-covered",
    /// The consent or disclosed claims include a check the agreement does not accept.
    ClaimNotAccepted => "claim-not-accepted",
    /// The signing key is not an issuer key of the organisation.
    UnknownIssuerKey => "unknown-issuer-key",
    /// The signing key was not yet registered when it signed.
    IssuerKeyNotYetValid => "issuer-key-not-yet-valid",
    /// The signing key was retired before it signed.
    IssuerKeyRetired => "issuer-key-retired",
    /// The credential's signature does not verify.
    BadCredentialSignature => "bad-credential-signature",
    /// The consent's signature does not verify.
    BadConsentSignature => "bad-consent-signature",
    /// The consent names a staff key but carries no staff signature.
    MissingStaffSignature => "missing-staff-signature",
    /// The staff signature does not verify.
    BadStaffSignature => "bad-staff-signature",
    /// A signed time lies in the future.
    IssuedInFuture => "issued-in-future",
    /// The consent's window has not started.
    ConsentNotYetValid => "consent-not-yet-valid",
    /// The consent's window has ended.
    ConsentExpired => "consent-expired",
    /// The consent was withdrawn.
    ConsentWithdrawn => "consent-withdrawn",
    /// The credential has expired.
    CredentialExpired => "credential-expired",
    /// The credential was revoked.
    CredentialRevoked => "credential-revoked",
    /// A disclosure's digest is not in the credential.
    DisclosureDigestMismatch => "disclosure-digest-mismatch",
    /// A disclosed claim is outside the consent.
    DisclosureOutsideConsent => "disclosure-outside-consent",
    /// The same claim is disclosed twice.
    DuplicateDisclosure => "duplicate-disclosure",
    /// A disclosed claim is not well formed.
    InvalidClaim => "invalid-claim",
    /// Too many disclosures or digests.
    TooManyClaims => "too-many-claims",
    /// The standard-form copy (SD-JWT VC presentation) does not verify.
    BadPresentation => "bad-presentation",
    /// The standard-form copy says something the bundle does not.
    PresentationMismatch => "presentation-mismatch",
}

impl Rejection {
    /// A sentence for people.
    pub fn describe(self) -> &'static str {
        use Rejection::*;
        match self {
            UnsupportedVersion => "an object's encoding version is not supported by this node",
            Malformed => "the message could not be decoded",
            UnknownAgreement => "this node holds no roster for the agreement named in the consent",
            RosterStale => {
                "the agreement's roster has passed its valid-until time and must be re-signed by its stewards"
            }
            RosterHalted => "the agreement's roster is halted after an equivocation; its stewards must resolve it",
            IssuerNotMember => "the issuing organisation is not a member of the agreement",
            IssuerSuspended => "the issuing organisation is suspended from the agreement",
            ReceiverNotMember => "the receiving organisation is not a member of the agreement",
            ReceiverSuspended => "the receiving organisation is suspended from the agreement",
            SenderNotIssuer => "the sending node is not one of the issuing organisation's nodes",
            ConsentMismatch => {
                "the consent is for another staff member or home trust than the credential, or what is held under it was issued by another organisation"
            }
            ConsentForOtherReceiver => "the consent names another receiving organisation",
            MoveNotCovered => "the agreement does not cover this kind of move",
            ClaimNotAccepted => "a claim is not among the checks the agreement accepts",
            UnknownIssuerKey => "the signing key is not an issuer key of the organisation",
            IssuerKeyNotYetValid => "the signing key had not been registered when it signed",
            IssuerKeyRetired => "the signing key had been retired when it signed",
            BadCredentialSignature => "the credential's signature does not verify",
            BadConsentSignature => "the consent's signature does not verify",
            MissingStaffSignature => "the consent names a staff key but has no staff signature",
            BadStaffSignature => "the staff member's signature does not verify",
            IssuedInFuture => "a signed time lies in the future",
            ConsentNotYetValid => "the consent's sharing window has not started",
            ConsentExpired => "the consent's sharing window has ended",
            ConsentWithdrawn => "the staff member withdrew the consent",
            CredentialExpired => "the credential has expired",
            CredentialRevoked => "the issuer revoked the credential",
            DisclosureDigestMismatch => "a disclosure does not match any digest in the credential",
            DisclosureOutsideConsent => "a disclosed claim is outside what the staff member consented to",
            DuplicateDisclosure => "the same claim is disclosed more than once",
            InvalidClaim => "a disclosed claim is not well formed",
            TooManyClaims => "the credential or bundle has more claims than allowed",
            BadPresentation => {
                "the passport's SD-JWT VC copy does not verify (malformed, expired, or not signed by the issuer)"
            }
            PresentationMismatch => {
                "the passport's SD-JWT VC copy disagrees with the bundle (staff member, expiry or claims)"
            }
        }
    }
}

impl fmt::Display for Rejection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.code(), self.describe())
    }
}

impl std::error::Error for Rejection {}

impl Serialize for Rejection {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.code())
    }
}

impl<'de> Deserialize<'de> for Rejection {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = <std::borrow::Cow<'de, str>>::deserialize(d)?;
        Rejection::from_code(&s).ok_or_else(|| serde::de::Error::custom(format!("unknown rejection code {s:?}")))
    }
}

/// Most digests in a credential and disclosures in a bundle.
pub const MAX_CLAIMS: usize = 64;

/// A bundle that passed every rule: what the receiver may store and show.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct VerifiedPassport {
    /// The credential.
    pub credential: CredentialId,
    /// The consent.
    pub consent: ConsentId,
    /// The issuing (home) organisation.
    pub issuer: OrgId,
    /// The staff member.
    pub subject: StaffRef,
    /// The agreement.
    pub agreement: AgreementId,
    /// The move.
    pub move_kind: MoveKind,
    /// When the credential was issued.
    pub issued_at: Timestamp,
    /// When it expires.
    pub expires_at: Timestamp,
    /// Sharing ends (erase then).
    pub not_after: Timestamp,
    /// The disclosed claims.
    pub claims: Vec<Claim>,
}

/// Checks the standard-form copy an offer carries with its bundle (an
/// SD-JWT VC presentation of exactly the consented claims, see
/// [`crate::sdjwt`]) against `passport`, the bundle as [`verify_bundle`]
/// accepted it: signed by an issuer key of the home trust (found by its
/// `kid` among the keys the agreement's roster lists for it) that was
/// valid when the copy was issued, strictly valid now (RFC 9901 §7.1, `typ`,
/// `vct`, `exp`), for the same staff member, expiring when the shared
/// passport does (the earlier of the credential's expiry and the consent's
/// end), and disclosing exactly the bundle's claims with the same values.
/// Its `iss` (the home's issuer URL, its own configuration) and `status`
/// are the home's to say and are not compared.
pub fn check_presentation(
    presentation: &str,
    passport: &VerifiedPassport,
    rosters: &impl Rosters,
    now: Timestamp,
) -> Result<(), Rejection> {
    use crate::sdjwt;
    let named = rosters.roster(&passport.agreement).ok_or(Rejection::UnknownAgreement)?;
    let state = named.state();
    let kid = sdjwt::kid(presentation).ok_or(Rejection::BadPresentation)?;
    let key = state
        .members
        .get(&passport.issuer)
        .and_then(|m| m.keys.iter().map(|k| k.key).find(|k| sdjwt::thumbprint(k) == kid))
        .ok_or(Rejection::UnknownIssuerKey)?;
    let v = sdjwt::verify(presentation, &key, now).map_err(|_| Rejection::BadPresentation)?;
    let iat = v.payload.get("iat").and_then(serde_json::Value::as_i64).and_then(Timestamp::from_unix);
    check_key(state, &passport.issuer, &key, iat.ok_or(Rejection::BadPresentation)?)?;
    let claims: std::collections::BTreeMap<String, serde_json::Value> =
        passport.claims.iter().map(|c| (sdjwt::claim_name(c), sdjwt::claim_value(c))).collect();
    if v.sub() != Some(passport.subject.as_str())
        || v.exp() != Some(passport.expires_at.min(passport.not_after))
        || v.claims != claims
    {
        return Err(Rejection::PresentationMismatch);
    }
    Ok(())
}

fn check_key(state: &State, org: &OrgId, key: &IssuerPublicKey, signed_at: Timestamp) -> Result<(), Rejection> {
    match state.key_validity(org, key, signed_at) {
        KeyValidity::Valid => Ok(()),
        KeyValidity::Unknown => Err(Rejection::UnknownIssuerKey),
        KeyValidity::NotYetValid => Err(Rejection::IssuerKeyNotYetValid),
        KeyValidity::Retired => Err(Rejection::IssuerKeyRetired),
    }
}

fn check_membership(state: &State, org: &OrgId, not_member: Rejection, suspended: Rejection) -> Result<(), Rejection> {
    match state.status(org) {
        Some(MemberStatus::Active) => Ok(()),
        Some(MemberStatus::Suspended) => Err(suspended),
        Some(MemberStatus::Removed) | None => Err(not_member),
    }
}

/// One exchange under an agreement, as its terms must allow it: who
/// sends to whom, for which move, which claims.
#[derive(Debug, Clone, Copy)]
pub struct Exchange<'a> {
    /// The agreement.
    pub agreement: &'a AgreementId,
    /// The issuing (home) organisation.
    pub issuer: &'a OrgId,
    /// The receiving organisation.
    pub receiver: &'a OrgId,
    /// The move.
    pub move_kind: MoveKind,
    /// The claims shared.
    pub claims: &'a BTreeSet<ClaimKind>,
}

/// The agreement's terms for one exchange at `now`: its roster held, not
/// halted and fresh; the issuer and the receiver active members; the move
/// covered and every claim accepted. Returns the roster state it judged
/// by. The one terms check: the home runs it when a consent is granted and
/// before an offer is sent, the receiver in [`verify_bundle`].
pub fn check_terms<'r>(rosters: &'r impl Rosters, x: &Exchange<'_>, now: Timestamp) -> Result<&'r State, Rejection> {
    let chain = rosters.roster(x.agreement).ok_or(Rejection::UnknownAgreement)?;
    if chain.halted().is_some() {
        return Err(Rejection::RosterHalted);
    }
    let state = chain.state();
    if !state.is_fresh(now) {
        return Err(Rejection::RosterStale);
    }
    check_membership(state, x.issuer, Rejection::IssuerNotMember, Rejection::IssuerSuspended)?;
    check_membership(state, x.receiver, Rejection::ReceiverNotMember, Rejection::ReceiverSuspended)?;
    if !state.terms.moves.contains(&x.move_kind) {
        return Err(Rejection::MoveNotCovered);
    }
    if !x.claims.is_subset(&state.terms.accepts) {
        return Err(Rejection::ClaimNotAccepted);
    }
    Ok(state)
}

/// A record at the receiver that a withdrawal or revocation touches: who
/// issued it, and the agreement it came under (unknown for an erasure
/// tombstone, which keeps ids only).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Held<'a> {
    /// The issuing (home) organisation.
    pub issuer: &'a OrgId,
    /// The agreement it was received under, if still known.
    pub agreement: Option<&'a AgreementId>,
}

/// What is held under a consent belongs to the organisation that issued
/// it: a message from any other organisation about it (an offer that would
/// replace it, a withdrawal that would erase it) is refused as
/// `consent-mismatch`.
pub fn check_held_by(held: Option<Held<'_>>, org: &OrgId) -> Result<(), Rejection> {
    match held {
        Some(h) if h.issuer != org => Err(Rejection::ConsentMismatch),
        _ => Ok(()),
    }
}

/// Who signed a message about a record (a withdrawal or revocation):
/// `org`, through node `sender`, with `key`, at `signed_at`.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Signer<'a> {
    pub org: &'a OrgId,
    pub sender: &'a NodeId,
    pub key: &'a IssuerPublicKey,
    pub signed_at: Timestamp,
}

/// The signer judged in one agreement's roster: a member there that is not
/// removed (a suspended home may still withdraw and revoke), the sender one
/// of its nodes, the time not in the future, the key valid for it then.
fn check_signer_in(state: &State, s: &Signer<'_>, now: Timestamp) -> Result<(), Rejection> {
    match state.status(s.org) {
        Some(MemberStatus::Active | MemberStatus::Suspended) => {}
        Some(MemberStatus::Removed) | None => return Err(Rejection::IssuerNotMember),
    }
    if !state.nodes_of(s.org).contains(s.sender) {
        return Err(Rejection::SenderNotIssuer);
    }
    if s.signed_at > now.plus_secs(MAX_CLOCK_SKEW_SECS) {
        return Err(Rejection::IssuedInFuture);
    }
    check_key(state, s.org, s.key, s.signed_at)
}

/// The signer of a message about `held`, judged in the chain of the
/// agreement the record came under. With no agreement known (nothing held,
/// or only a tombstone) it is judged chain by chain, every rule in one
/// chain, and passes if one chain passes it; never in the union of chains.
pub(crate) fn check_signer(
    rosters: &impl Rosters,
    held: Option<Held<'_>>,
    s: &Signer<'_>,
    now: Timestamp,
) -> Result<(), Rejection> {
    if let Some(agreement) = held.and_then(|h| h.agreement) {
        let chain = rosters.roster(agreement).ok_or(Rejection::UnknownAgreement)?;
        return check_signer_in(chain.state(), s, now);
    }
    let mut verdict = Err(Rejection::IssuerNotMember);
    for chain in rosters.each() {
        match check_signer_in(chain.state(), s, now) {
            Ok(()) => return Ok(()),
            // The first refusal by a chain the org is a member of says most.
            Err(r) if verdict == Err(Rejection::IssuerNotMember) => verdict = Err(r),
            Err(_) => {}
        }
    }
    verdict
}

/// Checks `sig` over `body` with an already decoded key: what
/// [`IssuerPublicKey::verify`] does, without decoding the key again.
fn verify_sig<T: Signable>(
    key: Option<&ed25519_dalek::VerifyingKey>,
    body: &T,
    sig: &Signature,
    err: Rejection,
) -> Result<(), Rejection> {
    let key = key.ok_or(err)?;
    signing::verify(key, body, sig).map_err(|_| err)
}

fn verify_staff(consent: &Consent, staff_key: &StaffPublicKey, sig: Option<&Signature>) -> Result<(), Rejection> {
    let sig = sig.ok_or(Rejection::MissingStaffSignature)?;
    staff_key.verify(consent, sig).map_err(|_| Rejection::BadStaffSignature)
}

/// Decides whether the receiver `receiver` may accept `bundle`, sent by
/// node `sender`, at time `now`. Every rule of the design, each with its
/// own [`Rejection`].
pub fn verify_bundle(
    bundle: &Bundle,
    sender: &NodeId,
    receiver: &OrgId,
    rosters: &impl Rosters,
    status: &impl StatusList,
    now: Timestamp,
) -> Result<VerifiedPassport, Rejection> {
    let cred_env = &bundle.credential;
    let cons_env = &bundle.consent.signed;
    if !cred_env.version_ok() || !cons_env.version_ok() {
        return Err(Rejection::UnsupportedVersion);
    }
    let cred = &cred_env.body;
    let consent = &cons_env.body;
    if cred.digests.len() > MAX_CLAIMS || bundle.disclosures.len() > MAX_CLAIMS {
        return Err(Rejection::TooManyClaims);
    }

    // A sender that is no member's node in the agreement named is told
    // what it would be told if this node did not hold that agreement: its
    // answer must not say which other agreements the receiver is in.
    let named = rosters.roster(&consent.agreement).ok_or(Rejection::UnknownAgreement)?;
    if named.state().org_of_node(sender).is_none() {
        return Err(Rejection::UnknownAgreement);
    }

    // The agreement's terms: roster usable, both organisations active,
    // the move covered, the claims accepted; the sender one of the issuer's nodes.
    let state = check_terms(
        rosters,
        &Exchange {
            agreement: &consent.agreement,
            issuer: &cred.issuer,
            receiver,
            move_kind: consent.move_kind,
            claims: &consent.claims,
        },
        now,
    )?;
    if !state.nodes_of(&cred.issuer).contains(sender) {
        return Err(Rejection::SenderNotIssuer);
    }

    // Signatures, by keys valid for the issuer when they signed.
    let skewed_now = now.plus_secs(MAX_CLOCK_SKEW_SECS);
    if cred.issued_at > skewed_now || consent.issued_at > skewed_now {
        return Err(Rejection::IssuedInFuture);
    }
    check_key(state, &cred.issuer, &cred.issuer_key, cred.issued_at)?;
    // Decoding a key (a point decompression) costs about a fifth of a
    // signature check; the home usually signs both with the same key.
    let cred_key = cred.issuer_key.dalek().ok();
    verify_sig(cred_key.as_ref(), cred, &cred_env.signature, Rejection::BadCredentialSignature)?;
    if consent.home != cred.issuer || consent.subject != cred.subject {
        return Err(Rejection::ConsentMismatch);
    }
    check_key(state, &consent.home, &consent.issuer_key, consent.issued_at)?;
    let consent_key = if consent.issuer_key == cred.issuer_key { cred_key } else { consent.issuer_key.dalek().ok() };
    verify_sig(consent_key.as_ref(), consent, &cons_env.signature, Rejection::BadConsentSignature)?;
    if let Some(staff_key) = &consent.staff_key {
        verify_staff(consent, staff_key, bundle.consent.staff_signature.as_ref())?;
    }

    // The consent: for this receiver, in its window, not withdrawn.
    if consent.receiver != *receiver {
        return Err(Rejection::ConsentForOtherReceiver);
    }
    if now < consent.not_before {
        return Err(Rejection::ConsentNotYetValid);
    }
    if now >= consent.not_after {
        return Err(Rejection::ConsentExpired);
    }
    if status.withdrawn(&consent.id) {
        return Err(Rejection::ConsentWithdrawn);
    }

    // The credential: in date, not revoked.
    if now >= cred.expires_at {
        return Err(Rejection::CredentialExpired);
    }
    if status.revoked(&cred.id).is_some() {
        return Err(Rejection::CredentialRevoked);
    }

    // Each disclosure: matches a digest, within the consent, once.
    let mut seen = BTreeSet::new();
    let mut claims = Vec::with_capacity(bundle.disclosures.len());
    for d in &bundle.disclosures {
        if cred.digests.binary_search(&d.digest()).is_err() {
            return Err(Rejection::DisclosureDigestMismatch);
        }
        let kind = d.claim.kind();
        if !consent.claims.contains(&kind) {
            return Err(Rejection::DisclosureOutsideConsent);
        }
        if !seen.insert(kind) {
            return Err(Rejection::DuplicateDisclosure);
        }
        d.claim.validate().map_err(|_| Rejection::InvalidClaim)?;
        claims.push(d.claim.clone());
    }

    Ok(VerifiedPassport {
        credential: cred.id,
        consent: consent.id,
        issuer: cred.issuer.clone(),
        subject: cred.subject.clone(),
        agreement: consent.agreement.clone(),
        move_kind: consent.move_kind,
        issued_at: cred.issued_at,
        expires_at: cred.expires_at,
        not_after: consent.not_after,
        claims,
    })
}

/// The claim kinds a bundle discloses.
pub fn disclosed_kinds(bundle: &Bundle) -> BTreeSet<ClaimKind> {
    bundle.disclosures.iter().map(|d| d.claim.kind()).collect()
}
