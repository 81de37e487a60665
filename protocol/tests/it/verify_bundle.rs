//! The receiver's acceptance rules, one broken thing at a time.
//!
//! Every case starts from the valid fixture (RJZ sends a bundle of 3 of 14
//! claims to RJ1 under `london-mou`) and breaks exactly one thing, so the
//! rule it covers is the only reason it can be refused. The cases are both
//! separate tests and one table, and the table is checked to produce every
//! [`Rejection`] except `Malformed` (which belongs to decoding).

// Test code: a failed unwrap is a failed assertion (clippy.toml allows it
// in #[test] fns; this extends it to the helpers).
#![allow(clippy::unwrap_used)]

use std::collections::BTreeSet;
use std::sync::OnceLock;

use staffpass_protocol::bundle::{Bundle, MAX_CLAIMS, MAX_CLOCK_SKEW_SECS};
use staffpass_protocol::claims::{Claim, ClaimKind, CstfSubject, Training};
use staffpass_protocol::credential::{Credential, Disclosure, Salt};
use staffpass_protocol::keys::IssuerSecretKey;
use staffpass_protocol::revocation::{RevocationReason, Revocations};
use staffpass_protocol::roster::{Chain, Change, MoveKind, Terms};
use staffpass_protocol::testkit::{self, BundleParts, RosterBuilder, agreement, issuer, node, org};
use staffpass_protocol::{
    ConsentId, NodeId, OrgId, Rejection, Signature, Signed, Timestamp, VerifiedPassport, signing, verify_bundle,
};

use crate::common::Raw;

type Verdict = Result<VerifiedPassport, Rejection>;

/// The standard roster, built (and its signatures checked) once.
fn roster() -> RosterBuilder {
    static BASE: OnceLock<(Chain, Timestamp)> = OnceLock::new();
    let (chain, clock) = BASE.get_or_init(|| {
        let r = testkit::roster();
        (r.chain, r.clock)
    });
    RosterBuilder { chain: chain.clone(), stewards: (0..3).map(testkit::steward).collect(), clock: *clock }
}

/// Everything `verify_bundle` looks at, valid as made by [`Env::new`].
struct Env {
    parts: BundleParts,
    key: IssuerSecretKey,
    roster: RosterBuilder,
    sender: NodeId,
    receiver: OrgId,
    status: Revocations,
    now: Timestamp,
}

impl Env {
    fn new() -> Self {
        Env {
            parts: testkit::bundle_parts(),
            key: issuer("RJZ", 0),
            roster: roster(),
            sender: node("RJZ"),
            receiver: org("RJ1"),
            status: Revocations::default(),
            now: testkit::now(),
        }
    }

    fn bundle(&self) -> Bundle {
        self.parts.build(&self.key)
    }

    fn verify(&self, b: &Bundle) -> Verdict {
        verify_bundle(b, &self.sender, &self.receiver, &testkit::rosters(&self.roster.chain), &self.status, self.now)
    }

    fn run(&self) -> Verdict {
        self.verify(&self.bundle())
    }

    /// Runs with the built bundle changed by `f` (after signing).
    fn run_with(&self, f: impl FnOnce(&mut Bundle)) -> Verdict {
        let mut b = self.bundle();
        f(&mut b);
        self.verify(&b)
    }
}

fn now() -> Timestamp {
    testkit::now()
}

fn flip_sig(s: &mut Signature) {
    s.0[7] ^= 0x01;
}

/// A training claim that fails validation (CSTF level 0).
fn invalid_training() -> Claim {
    Claim::Training(
        CstfSubject::SafeguardingChildren,
        Training { level: 0, completed_on: "2025-01-01".parse().unwrap(), refresher_months: 12 },
    )
}

/// The issuer's signature over `body`'s canonical bytes under the tag of `T`.
fn sign_as<T: signing::Signable>(key: &IssuerSecretKey, body: &impl serde::Serialize) -> Signature {
    key.sign(&Raw::<T>::new(staffpass_protocol::encoding::to_bytes(body)))
}

/// Each case: the valid environment with exactly one thing broken.
mod cases {
    use super::*;

    // Versions and sizes.
    pub fn unsupported_credential_version() -> Verdict {
        Env::new().run_with(|b| b.credential.version += 1)
    }
    pub fn unsupported_consent_version() -> Verdict {
        Env::new().run_with(|b| b.consent.signed.version += 1)
    }
    pub fn too_many_digests() -> Verdict {
        let mut e = Env::new();
        let extra = MAX_CLAIMS + 1 - e.parts.all.len();
        let claim = e.parts.all.iter().find(|d| !e.parts.disclose.contains(&d.claim.kind())).unwrap().claim.clone();
        for i in 0..extra {
            e.parts.all.push(Disclosure { salt: Salt([i as u8; 16]), claim: claim.clone() });
        }
        e.run()
    }
    pub fn too_many_disclosures() -> Verdict {
        Env::new().run_with(|b| {
            let d = b.disclosures[0].clone();
            b.disclosures.resize(MAX_CLAIMS + 1, d);
        })
    }

    // The roster.
    pub fn unknown_agreement() -> Verdict {
        let mut e = Env::new();
        e.parts.consent.agreement = "kent-mou".parse().unwrap();
        e.run()
    }
    pub fn roster_stale() -> Verdict {
        let mut e = Env::new();
        e.roster = RosterBuilder::with_valid_until(agreement(), 3, 2, now().plus_secs(-1));
        e.roster.add_member("RJZ").add_member("RJ1");
        e.run()
    }
    pub fn roster_halted() -> Verdict {
        let mut e = Env::new();
        // A second, validly signed entry at the head's seq: an equivocation.
        let seq = e.roster.chain.seq();
        let other = crate::common::conflicting(&e.roster.chain, seq, &e.roster.stewards[..2]);
        let err = e.roster.chain.append(other).unwrap_err();
        assert!(matches!(err, staffpass_protocol::roster::Error::Equivocation { .. }), "{err}");
        e.run()
    }

    // Membership and the sender.
    pub fn issuer_not_member() -> Verdict {
        // Sent by a member's node (any other sender is told the agreement
        // is unknown), in the name of an organisation that is not one.
        let mut e = Env::new();
        e.roster = RosterBuilder::new(agreement(), 3, 2);
        e.roster.add_member("RJ1");
        e.sender = node("RJ1");
        e.run()
    }
    pub fn issuer_removed() -> Verdict {
        let mut e = Env::new();
        e.roster.push(Change::Remove { org: org("RJZ") });
        e.run()
    }
    pub fn issuer_suspended() -> Verdict {
        let mut e = Env::new();
        e.roster.push(Change::Suspend { org: org("RJZ"), reason: "audit".into() });
        e.run()
    }
    pub fn receiver_not_member() -> Verdict {
        let mut e = Env::new();
        e.roster = RosterBuilder::new(agreement(), 3, 2);
        e.roster.add_member("RJZ");
        e.run()
    }
    pub fn receiver_removed() -> Verdict {
        let mut e = Env::new();
        e.roster.push(Change::Remove { org: org("RJ1") });
        e.run()
    }
    pub fn receiver_suspended() -> Verdict {
        let mut e = Env::new();
        e.roster.push(Change::Suspend { org: org("RJ1"), reason: "audit".into() });
        e.run()
    }
    pub fn sender_is_another_members_node() -> Verdict {
        let mut e = Env::new();
        e.sender = node("RJ1");
        e.run()
    }
    pub fn sender_is_no_members_node() -> Verdict {
        let mut e = Env::new();
        e.sender = node("RV5");
        e.run()
    }

    // Times.
    pub fn credential_issued_in_future() -> Verdict {
        let mut e = Env::new();
        e.parts.credential.issued_at = now().plus_secs(MAX_CLOCK_SKEW_SECS + 1);
        e.run()
    }
    pub fn consent_issued_in_future() -> Verdict {
        let mut e = Env::new();
        e.parts.consent.issued_at = now().plus_secs(MAX_CLOCK_SKEW_SECS + 1);
        e.run()
    }

    // Issuer keys.
    pub fn unknown_issuer_key() -> Verdict {
        let mut e = Env::new();
        e.key = issuer("RJZ", 9);
        e.run()
    }
    pub fn another_members_issuer_key() -> Verdict {
        let mut e = Env::new();
        e.key = issuer("RJ1", 0);
        e.run()
    }
    pub fn issuer_key_retired() -> Verdict {
        let mut e = Env::new();
        e.roster.clock = now().plus_days(-2);
        e.roster.push(Change::RotateKey {
            org: org("RJZ"),
            add: issuer("RJZ", 1).public(),
            retire: Some(issuer("RJZ", 0).public()),
        });
        e.run()
    }
    pub fn issuer_key_not_yet_valid() -> Verdict {
        let mut e = Env::new();
        e.roster.clock = now().plus_days(-2);
        e.roster.push(Change::RotateKey { org: org("RJZ"), add: issuer("RJZ", 1).public(), retire: None });
        e.key = issuer("RJZ", 1);
        e.parts.credential.issued_at = now().plus_days(-3);
        e.run()
    }

    /// The bundle with its consent re-signed by `key` (the credential untouched).
    fn consent_signed_by(e: &Env, key: &IssuerSecretKey) -> Verdict {
        e.run_with(|b| {
            let mut consent = b.consent.signed.body.clone();
            consent.issuer_key = key.public();
            b.consent.signed = Signed::new(consent, |c| key.sign(c));
        })
    }
    pub fn consent_signed_by_unknown_key() -> Verdict {
        consent_signed_by(&Env::new(), &issuer("RJZ", 9))
    }
    pub fn consent_signed_by_retired_key() -> Verdict {
        let mut e = Env::new();
        e.roster.clock = now().plus_days(-2);
        e.roster.push(Change::RotateKey {
            org: org("RJZ"),
            add: issuer("RJZ", 1).public(),
            retire: Some(issuer("RJZ", 0).public()),
        });
        e.key = issuer("RJZ", 1);
        consent_signed_by(&e, &issuer("RJZ", 0))
    }
    pub fn consent_signed_before_its_key_was_added() -> Verdict {
        let mut e = Env::new();
        e.roster.clock = now().plus_days(-2);
        e.roster.push(Change::RotateKey { org: org("RJZ"), add: issuer("RJZ", 1).public(), retire: None });
        e.parts.consent.issued_at = now().plus_days(-3);
        let key = issuer("RJZ", 1);
        e.run_with(|b| {
            let mut consent = b.consent.signed.body.clone();
            consent.issuer_key = key.public();
            b.consent.signed = Signed::new(consent, |c| key.sign(c));
        })
    }

    // Signatures.
    pub fn bad_credential_signature() -> Verdict {
        Env::new().run_with(|b| flip_sig(&mut b.credential.signature))
    }
    pub fn credential_changed_after_signing() -> Verdict {
        Env::new().run_with(|b| b.credential.body.expires_at = b.credential.body.expires_at.plus_days(365))
    }
    pub fn credential_signature_replayed_from_consent_tag() -> Verdict {
        let e = Env::new();
        e.run_with(|b| {
            b.credential.signature = sign_as::<staffpass_protocol::consent::Consent>(&e.key, &b.credential.body)
        })
    }
    pub fn bad_consent_signature() -> Verdict {
        Env::new().run_with(|b| flip_sig(&mut b.consent.signed.signature))
    }
    pub fn consent_signature_replayed_from_credential_tag() -> Verdict {
        // The issuer's signature over the consent's very bytes, but made
        // under the credential tag (as a confused or malicious signer
        // could produce): it must not stand for a consent.
        let e = Env::new();
        e.run_with(|b| b.consent.signed.signature = sign_as::<Credential>(&e.key, &b.consent.signed.body))
    }
    pub fn consent_signature_is_the_credentials() -> Verdict {
        Env::new().run_with(|b| b.consent.signed.signature = b.credential.signature)
    }
    pub fn missing_staff_signature() -> Verdict {
        let mut e = Env::new();
        e.parts.consent.staff_key = Some(testkit::staff("alex").public());
        e.run()
    }
    pub fn staff_signature_by_another_staff_key() -> Verdict {
        let mut e = Env::new();
        e.parts.consent.staff_key = Some(testkit::staff("alex").public());
        e.run_with(|b| b.consent.staff_signature = Some(testkit::staff("sam").sign(&b.consent.signed.body)))
    }
    pub fn staff_signature_is_the_issuers() -> Verdict {
        let mut e = Env::new();
        e.parts.consent.staff_key = Some(testkit::staff("alex").public());
        e.run_with(|b| b.consent.staff_signature = Some(b.consent.signed.signature))
    }

    // The consent.
    pub fn consent_for_another_subject() -> Verdict {
        let mut e = Env::new();
        e.parts.consent.subject = "st-00000000000000000000000000009999".parse().unwrap();
        e.run()
    }
    pub fn consent_from_another_home() -> Verdict {
        let mut e = Env::new();
        e.parts.consent.home = org("RJ1");
        e.run()
    }
    pub fn consent_for_another_receiver() -> Verdict {
        let mut e = Env::new();
        e.parts.consent.receiver = org("RV5");
        e.run()
    }
    pub fn move_not_covered() -> Verdict {
        let mut e = Env::new();
        let mut terms = testkit::terms();
        terms.moves = [MoveKind::Secondment].into_iter().collect();
        e.roster.push(Change::SetTerms(terms));
        e.run()
    }
    pub fn claim_not_accepted() -> Verdict {
        let mut e = Env::new();
        let mut terms: Terms = testkit::terms();
        terms.accepts.remove(&ClaimKind::Dbs);
        e.roster.push(Change::SetTerms(terms));
        e.run()
    }
    pub fn consent_not_yet_valid() -> Verdict {
        let mut e = Env::new();
        e.parts.consent.not_before = now().plus_secs(1);
        e.run()
    }
    pub fn consent_expired() -> Verdict {
        let mut e = Env::new();
        e.parts.consent.not_after = now();
        e.run()
    }
    pub fn consent_withdrawn() -> Verdict {
        let mut e = Env::new();
        e.status.consents.insert(e.parts.consent.id);
        e.run()
    }

    // The credential.
    pub fn credential_expired() -> Verdict {
        let mut e = Env::new();
        e.parts.credential.expires_at = now();
        e.run()
    }
    pub fn credential_revoked() -> Verdict {
        let mut e = Env::new();
        e.status.credentials.insert(e.parts.credential.id, RevocationReason::LeavingOrganisation);
        e.run()
    }

    // Disclosures.
    pub fn disclosure_claim_tampered() -> Verdict {
        Env::new().run_with(|b| {
            let Claim::Identity(id) = &mut b.disclosures[0].claim else { panic!("fixture order") };
            id.full_name = "Someone Else".into();
        })
    }
    pub fn disclosure_salt_tampered() -> Verdict {
        Env::new().run_with(|b| b.disclosures[1].salt.0[0] ^= 1)
    }
    pub fn disclosure_outside_consent() -> Verdict {
        let mut e = Env::new();
        e.parts.disclose.insert(ClaimKind::RightToWork);
        e.run()
    }
    pub fn duplicate_disclosure() -> Verdict {
        Env::new().run_with(|b| {
            let d = b.disclosures[2].clone();
            b.disclosures.push(d);
        })
    }
    pub fn same_claim_disclosed_twice_with_two_salts() -> Verdict {
        let mut e = Env::new();
        let mut again = e.parts.all[0].clone();
        again.salt = Salt([0xee; 16]);
        e.parts.all.push(again);
        e.run()
    }
    pub fn invalid_claim() -> Verdict {
        let mut e = Env::new();
        let claim = invalid_training();
        e.parts.disclose.insert(claim.kind());
        e.parts.consent.claims.insert(claim.kind());
        e.parts.all.push(Disclosure { salt: Salt([0xaa; 16]), claim });
        e.run()
    }

    // The standard-form copy an offer carries (`check_presentation`).
    pub fn presentation_missing_a_claim() -> Verdict {
        with_presentation(|p| {
            p.claims.pop();
        })
    }
    pub fn presentation_with_another_value() -> Verdict {
        with_presentation(|p| {
            p.claims[1] = super::invalid_training();
        })
    }
    pub fn presentation_with_an_extra_claim() -> Verdict {
        with_presentation(|p| p.claims.push(super::invalid_training()))
    }
    pub fn presentation_expiring_later() -> Verdict {
        with_presentation(|p| p.exp = p.exp.plus_secs(1))
    }
    pub fn presentation_for_another_subject() -> Verdict {
        with_presentation(|p| p.sub = "12345678-9".parse().unwrap())
    }
    pub fn presentation_tampered() -> Verdict {
        let e = Env::new();
        let v = e.run()?;
        let mut vc = PresentationParts::of(&v).issue(&e.key);
        // A disclosure changed in transit: its digest is in no `_sd`.
        let at = vc.rfind('~').unwrap() - 3;
        vc.replace_range(at..at + 1, if &vc[at..at + 1] == "A" { "B" } else { "A" });
        e.check(&vc, v)
    }
    pub fn presentation_signed_by_another_trust() -> Verdict {
        let e = Env::new();
        let v = e.run()?;
        let vc = PresentationParts::of(&v).issue(&issuer("RJ1", 0));
        e.check(&vc, v)
    }
    pub fn presentation_expired() -> Verdict {
        with_presentation(|p| {
            p.iat = p.iat.plus_days(-400);
            p.exp = p.iat.plus_days(1);
        })
    }

    /// The valid bundle, with a presentation of it changed by `f`.
    fn with_presentation(f: impl FnOnce(&mut PresentationParts)) -> Verdict {
        let e = Env::new();
        let v = e.run()?;
        let mut p = PresentationParts::of(&v);
        f(&mut p);
        let vc = p.issue(&e.key);
        e.check(&vc, v)
    }
}

/// What a presentation says, as a home trust would make it of `v`.
struct PresentationParts {
    iat: Timestamp,
    exp: Timestamp,
    sub: staffpass_protocol::StaffRef,
    claims: Vec<Claim>,
}

impl PresentationParts {
    fn of(v: &VerifiedPassport) -> Self {
        PresentationParts {
            iat: testkit::now(),
            exp: v.expires_at.min(v.not_after),
            sub: v.subject.clone(),
            claims: v.claims.clone(),
        }
    }

    fn issue(&self, key: &IssuerSecretKey) -> String {
        let vc = staffpass_protocol::sdjwt::Vc {
            iss: "https://staffpass.rjz.invalid",
            iat: self.iat,
            exp: self.exp,
            sub: &self.sub,
            cnf: None,
            status: None,
            claims: &self.claims,
        };
        let mut n = 0u8;
        staffpass_protocol::sdjwt::issue(key, &vc, &mut || {
            n += 1;
            [n; 16]
        })
    }
}

impl Env {
    fn check(&self, vc: &str, v: VerifiedPassport) -> Verdict {
        let rosters = testkit::rosters(&self.roster.chain);
        staffpass_protocol::bundle::check_presentation(vc, &v, &rosters, self.now).map(|()| v)
    }
}

#[test]
fn a_presentation_of_exactly_the_bundle_is_accepted() {
    let e = Env::new();
    let v = e.run().unwrap();
    let vc = PresentationParts::of(&v).issue(&e.key);
    assert_eq!(e.check(&vc, v.clone()), Ok(v));
}

macro_rules! rejection_cases {
    ($($name:ident => $reason:ident,)*) => {
        $(
            #[test]
            fn $name() {
                assert_eq!(cases::$name(), Err(Rejection::$reason));
            }
        )*

        /// Every case: its name, how to run it, and the rejection it must give.
        const CASES: &[(&str, fn() -> Verdict, Rejection)] =
            &[$((stringify!($name), cases::$name, Rejection::$reason)),*];
    };
}

rejection_cases! {
    unsupported_credential_version => UnsupportedVersion,
    unsupported_consent_version => UnsupportedVersion,
    too_many_digests => TooManyClaims,
    too_many_disclosures => TooManyClaims,
    unknown_agreement => UnknownAgreement,
    roster_stale => RosterStale,
    roster_halted => RosterHalted,
    issuer_not_member => IssuerNotMember,
    issuer_removed => IssuerNotMember,
    issuer_suspended => IssuerSuspended,
    receiver_not_member => ReceiverNotMember,
    receiver_removed => ReceiverNotMember,
    receiver_suspended => ReceiverSuspended,
    sender_is_another_members_node => SenderNotIssuer,
    // Told as if the agreement were not held: no answer names another's.
    sender_is_no_members_node => UnknownAgreement,
    credential_issued_in_future => IssuedInFuture,
    consent_issued_in_future => IssuedInFuture,
    unknown_issuer_key => UnknownIssuerKey,
    another_members_issuer_key => UnknownIssuerKey,
    issuer_key_retired => IssuerKeyRetired,
    issuer_key_not_yet_valid => IssuerKeyNotYetValid,
    consent_signed_by_unknown_key => UnknownIssuerKey,
    consent_signed_by_retired_key => IssuerKeyRetired,
    consent_signed_before_its_key_was_added => IssuerKeyNotYetValid,
    bad_credential_signature => BadCredentialSignature,
    credential_changed_after_signing => BadCredentialSignature,
    credential_signature_replayed_from_consent_tag => BadCredentialSignature,
    bad_consent_signature => BadConsentSignature,
    consent_signature_replayed_from_credential_tag => BadConsentSignature,
    consent_signature_is_the_credentials => BadConsentSignature,
    missing_staff_signature => MissingStaffSignature,
    staff_signature_by_another_staff_key => BadStaffSignature,
    staff_signature_is_the_issuers => BadStaffSignature,
    consent_for_another_subject => ConsentMismatch,
    consent_from_another_home => ConsentMismatch,
    consent_for_another_receiver => ConsentForOtherReceiver,
    move_not_covered => MoveNotCovered,
    claim_not_accepted => ClaimNotAccepted,
    consent_not_yet_valid => ConsentNotYetValid,
    consent_expired => ConsentExpired,
    consent_withdrawn => ConsentWithdrawn,
    credential_expired => CredentialExpired,
    credential_revoked => CredentialRevoked,
    disclosure_claim_tampered => DisclosureDigestMismatch,
    disclosure_salt_tampered => DisclosureDigestMismatch,
    disclosure_outside_consent => DisclosureOutsideConsent,
    duplicate_disclosure => DuplicateDisclosure,
    same_claim_disclosed_twice_with_two_salts => DuplicateDisclosure,
    invalid_claim => InvalidClaim,
    presentation_missing_a_claim => PresentationMismatch,
    presentation_with_another_value => PresentationMismatch,
    presentation_with_an_extra_claim => PresentationMismatch,
    presentation_expiring_later => PresentationMismatch,
    presentation_for_another_subject => PresentationMismatch,
    presentation_tampered => BadPresentation,
    presentation_signed_by_another_trust => UnknownIssuerKey,
    presentation_expired => BadPresentation,
}

#[test]
fn every_rejection_is_produced_by_some_case() {
    let mut produced = BTreeSet::new();
    let mut wrong = Vec::new();
    for (name, case, expected) in CASES {
        match case() {
            Err(got) if got == *expected => {
                produced.insert(got);
            }
            other => wrong.push(format!("{name}: expected {expected:?}, got {:?}", other.map(|v| v.credential))),
        }
    }
    assert!(wrong.is_empty(), "cases with the wrong verdict:\n{}", wrong.join("\n"));
    let missing: Vec<_> =
        Rejection::ALL.iter().filter(|r| **r != Rejection::Malformed && !produced.contains(r)).collect();
    assert!(missing.is_empty(), "no case produces {missing:?}");
    assert!(!produced.contains(&Rejection::Malformed));
}

// ------------------------------------------------------------ acceptance

#[test]
fn the_valid_bundle_verifies_with_exactly_its_disclosed_claims() {
    let e = Env::new();
    let v = e.run().unwrap();
    let expected: Vec<Claim> =
        e.parts.all.iter().filter(|d| e.parts.disclose.contains(&d.claim.kind())).map(|d| d.claim.clone()).collect();
    assert_eq!(v.claims.len(), 3);
    assert_eq!(v.claims, expected);
    let kinds: BTreeSet<ClaimKind> = v.claims.iter().map(Claim::kind).collect();
    assert_eq!(
        kinds,
        [ClaimKind::Identity, ClaimKind::Dbs, ClaimKind::Training(CstfSubject::FireSafety)].into_iter().collect()
    );
    assert_eq!(v.credential, e.parts.credential.id);
    assert_eq!(v.consent, e.parts.consent.id);
    assert_eq!(v.issuer, org("RJZ"));
    assert_eq!(v.subject, e.parts.credential.subject);
    assert_eq!(v.agreement, agreement());
    assert_eq!(v.move_kind, MoveKind::Rotation);
    assert_eq!(v.issued_at, e.parts.credential.issued_at);
    assert_eq!(v.expires_at, e.parts.credential.expires_at);
    assert_eq!(v.not_after, e.parts.consent.not_after);
    // Nothing of the undisclosed claims reaches the receiver.
    assert_eq!(e.bundle().disclosures.len(), 3);
}

#[test]
fn a_valid_staff_signed_consent_passes() {
    let mut e = Env::new();
    let staff = testkit::staff("alex");
    e.parts.consent.staff_key = Some(staff.public());
    let v = e.run_with(|b| b.consent.staff_signature = Some(staff.sign(&b.consent.signed.body)));
    assert!(v.is_ok(), "{v:?}");
}

#[test]
fn a_retired_key_still_verifies_what_it_signed_before_retirement() {
    let mut e = Env::new();
    e.roster.clock = now().plus_days(-2);
    e.roster.push(Change::RotateKey {
        org: org("RJZ"),
        add: issuer("RJZ", 1).public(),
        retire: Some(issuer("RJZ", 0).public()),
    });
    // Signed with the old key three days ago, before it was retired.
    e.parts.credential.issued_at = now().plus_days(-3);
    e.parts.consent.issued_at = now().plus_days(-3);
    assert!(e.run().is_ok());
    // The new key signs from its rotation on.
    e.key = issuer("RJZ", 1);
    e.parts.credential.issued_at = now().plus_days(-1);
    e.parts.consent.issued_at = now().plus_days(-1);
    assert!(e.run().is_ok());
}

#[test]
fn boundaries_of_the_time_rules() {
    // Clock skew: up to MAX_CLOCK_SKEW_SECS ahead is accepted.
    let mut e = Env::new();
    e.parts.credential.issued_at = now().plus_secs(MAX_CLOCK_SKEW_SECS);
    e.parts.consent.issued_at = now().plus_secs(MAX_CLOCK_SKEW_SECS);
    assert!(e.run().is_ok());
    // The consent window is [not_before, not_after).
    let mut e = Env::new();
    e.parts.consent.not_before = now();
    e.parts.consent.not_after = now().plus_secs(1);
    assert!(e.run().is_ok());
    // The credential is valid until (not at) expires_at.
    let mut e = Env::new();
    e.parts.credential.expires_at = now().plus_secs(1);
    assert!(e.run().is_ok());
    // The roster is fresh up to and including valid_until.
    let mut e = Env::new();
    e.now = e.roster.chain.state().valid_until;
    e.parts.consent.not_after = e.now.plus_days(1);
    e.parts.credential.expires_at = e.now.plus_days(1);
    assert!(e.run().is_ok());
    e.now = e.now.plus_secs(1);
    assert_eq!(e.run(), Err(Rejection::RosterStale));
}

#[test]
fn exactly_max_claims_digests_are_accepted() {
    let mut e = Env::new();
    let extra = MAX_CLAIMS - e.parts.all.len();
    let claim = e.parts.all.iter().find(|d| !e.parts.disclose.contains(&d.claim.kind())).unwrap().claim.clone();
    for i in 0..extra {
        e.parts.all.push(Disclosure { salt: Salt([i as u8; 16]), claim: claim.clone() });
    }
    assert_eq!(e.bundle().credential.body.digests.len(), MAX_CLAIMS);
    assert!(e.run().is_ok());
}

#[test]
fn withdrawal_and_revocation_of_other_items_do_not_matter() {
    let mut e = Env::new();
    e.status.consents.insert(ConsentId::from_bytes([9; 16]));
    e.status.credentials.insert(staffpass_protocol::CredentialId::from_bytes([9; 16]), RevocationReason::Deceased);
    assert!(e.run().is_ok());
}

// ----------------------------------------------------------- rejections

#[test]
fn rejection_codes_round_trip() {
    let mut codes = BTreeSet::new();
    for r in Rejection::ALL {
        let code = r.code();
        assert!(codes.insert(code), "duplicate code {code}");
        assert!(!code.is_empty() && code.bytes().all(|c| c.is_ascii_lowercase() || c == b'-'), "{code}");
        assert_eq!(Rejection::from_code(code), Some(*r));
        let json = serde_json::to_string(r).unwrap();
        assert_eq!(json, format!("\"{code}\""));
        assert_eq!(serde_json::from_str::<Rejection>(&json).unwrap(), *r);
        assert!(!r.describe().is_empty());
        assert!(r.to_string().starts_with(code));
    }
    assert_eq!(Rejection::from_code("no-such-reason"), None);
    assert!(serde_json::from_str::<Rejection>("\"no-such-reason\"").is_err());
    assert!(serde_json::from_str::<Rejection>("3").is_err());
}
