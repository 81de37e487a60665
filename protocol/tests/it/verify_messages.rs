//! The rules for the messages about a record: the agreement's terms for an
//! exchange ([`check_terms`]), withdrawals ([`verify_withdrawal`]),
//! revocations ([`verify_revocation`]) and receipts ([`verify_receipt`]).
//!
//! As in `verify_bundle.rs`, each case starts from a valid message and
//! breaks one thing. The `chain_of_the_record` cases are security finding
//! F6: a message about a record is judged in the chain of the record's
//! agreement, with the signer's standing there, never in the union of the
//! chains a node holds, and a member can touch only its own records.

#![allow(clippy::unwrap_used)]

use std::collections::{BTreeMap, BTreeSet};

use staffpass_protocol::bundle::{Exchange, Held, MAX_CLOCK_SKEW_SECS, check_held_by, check_terms};
use staffpass_protocol::claims::ClaimKind;
use staffpass_protocol::consent::{Withdrawal, verify_withdrawal};
use staffpass_protocol::keys::IssuerSecretKey;
use staffpass_protocol::receipt::{self, Expected, Outcome, Receipt, verify_receipt};
use staffpass_protocol::revocation::{Revocation, RevocationReason, verify_revocation};
use staffpass_protocol::roster::{Chain, Change, MemberSpec, MoveKind};
use staffpass_protocol::testkit::{self, RosterBuilder, agreement, issuer, node, org};
use staffpass_protocol::wire::exchange::Kind;
use staffpass_protocol::{AgreementId, ConsentId, CredentialId, MessageId, NodeId, Rejection, Signed, Timestamp};

fn now() -> Timestamp {
    testkit::now()
}

fn kent() -> AgreementId {
    "kent-mou".parse().unwrap()
}

/// `london-mou` with RJZ, RJ1 and RJ2 (the standard roster plus RJ2).
fn london() -> RosterBuilder {
    let mut r = testkit::roster();
    r.add_member("RJ2");
    r
}

/// A second agreement, `kent-mou`, whose stewards register `org` with
/// `nodes` and `key` (as another agreement's stewards, or a planted chain,
/// could).
fn kent_with(org_code: &str, nodes: Vec<NodeId>, key: &IssuerSecretKey) -> RosterBuilder {
    let mut r = RosterBuilder::new(kent(), 3, 2);
    r.push(Change::AddMember(MemberSpec {
        org: org(org_code),
        name: format!("{org_code} as kent-mou registers it"),
        issuer_keys: vec![key.public()],
        nodes,
        addresses: vec![],
    }));
    r.add_member("RJ1");
    r
}

fn rosters(chains: &[&RosterBuilder]) -> BTreeMap<AgreementId, Chain> {
    chains.iter().map(|r| (r.chain.agreement().clone(), r.chain.clone())).collect()
}

/// Retires `org`'s generation-0 key two days before [`now`].
fn rotate(r: &mut RosterBuilder, org_code: &str) {
    r.clock = now().plus_days(-2);
    r.push(Change::RotateKey {
        org: org(org_code),
        add: issuer(org_code, 1).public(),
        retire: Some(issuer(org_code, 0).public()),
    });
}

fn consent_id() -> ConsentId {
    ConsentId::from_bytes([7; 16])
}

fn credential_id() -> CredentialId {
    CredentialId::from_bytes([8; 16])
}

// ---------------------------------------------------------------- terms

mod terms {
    use super::*;

    fn run(
        r: &RosterBuilder,
        issuer: &str,
        receiver: &str,
        move_kind: MoveKind,
        claims: &[ClaimKind],
    ) -> Result<(), Rejection> {
        let claims: BTreeSet<ClaimKind> = claims.iter().copied().collect();
        let (issuer, receiver) = (org(issuer), org(receiver));
        let x = Exchange { agreement: &agreement(), issuer: &issuer, receiver: &receiver, move_kind, claims: &claims };
        check_terms(&rosters(&[r]), &x, now()).map(|_| ())
    }

    fn ok(r: &RosterBuilder) -> Result<(), Rejection> {
        run(r, "RJZ", "RJ1", MoveKind::Rotation, &[ClaimKind::Identity, ClaimKind::Dbs])
    }

    #[test]
    fn the_standard_exchange_is_allowed() {
        assert_eq!(ok(&london()), Ok(()));
    }

    #[test]
    fn unknown_agreement() {
        let r = kent_with("RJZ", vec![node("RJZ")], &issuer("RJZ", 0));
        assert_eq!(ok(&r), Err(Rejection::UnknownAgreement));
    }

    #[test]
    fn roster_halted() {
        let mut r = london();
        let other = crate::common::conflicting(&r.chain, r.chain.seq(), &r.stewards[..2]);
        assert!(r.chain.append(other).is_err());
        assert_eq!(ok(&r), Err(Rejection::RosterHalted));
    }

    #[test]
    fn roster_stale() {
        let mut r = RosterBuilder::with_valid_until(agreement(), 3, 2, now().plus_secs(-1));
        r.add_member("RJZ").add_member("RJ1");
        assert_eq!(ok(&r), Err(Rejection::RosterStale));
    }

    #[test]
    fn issuer_not_member_or_suspended() {
        let mut r = RosterBuilder::new(agreement(), 3, 2);
        r.add_member("RJ1");
        assert_eq!(ok(&r), Err(Rejection::IssuerNotMember));
        let mut r = london();
        r.push(Change::Suspend { org: org("RJZ"), reason: "audit".into() });
        assert_eq!(ok(&r), Err(Rejection::IssuerSuspended));
    }

    #[test]
    fn receiver_not_member_or_suspended() {
        let mut r = RosterBuilder::new(agreement(), 3, 2);
        r.add_member("RJZ");
        assert_eq!(ok(&r), Err(Rejection::ReceiverNotMember));
        let mut r = london();
        r.push(Change::Suspend { org: org("RJ1"), reason: "audit".into() });
        assert_eq!(ok(&r), Err(Rejection::ReceiverSuspended));
    }

    #[test]
    fn move_not_covered() {
        let mut r = london();
        let mut t = testkit::terms();
        t.moves = [MoveKind::Secondment].into_iter().collect();
        r.push(Change::SetTerms(t));
        assert_eq!(ok(&r), Err(Rejection::MoveNotCovered));
    }

    #[test]
    fn claim_not_accepted() {
        let mut r = london();
        let mut t = testkit::terms();
        t.accepts.remove(&ClaimKind::Dbs);
        r.push(Change::SetTerms(t));
        assert_eq!(ok(&r), Err(Rejection::ClaimNotAccepted));
        assert_eq!(run(&r, "RJZ", "RJ1", MoveKind::Rotation, &[ClaimKind::Identity]), Ok(()));
    }
}

// ------------------------------------------------------ what is held

#[test]
fn what_is_held_under_a_consent_is_touched_only_by_its_issuer() {
    let (rjz, rj2, london) = (org("RJZ"), org("RJ2"), agreement());
    let passport = Held { issuer: &rjz, agreement: Some(&london) };
    let tombstone = Held { issuer: &rjz, agreement: None };
    assert_eq!(check_held_by(Some(passport), &rjz), Ok(()));
    assert_eq!(check_held_by(Some(tombstone), &rjz), Ok(()));
    assert_eq!(check_held_by(None, &rj2), Ok(()));
    assert_eq!(check_held_by(Some(passport), &rj2), Err(Rejection::ConsentMismatch));
    assert_eq!(check_held_by(Some(tombstone), &rj2), Err(Rejection::ConsentMismatch));
}

// ----------------------------------------------------------- withdrawals

mod withdrawal {
    use super::*;

    /// A withdrawal of [`consent_id`] by `home`, to RJ1, signed by `key`.
    fn signed(home: &str, key: &IssuerSecretKey, at: Timestamp) -> Signed<Withdrawal> {
        let body = Withdrawal {
            consent: consent_id(),
            subject: testkit::bundle_parts().consent.subject,
            home: org(home),
            receiver: org("RJ1"),
            withdrawn_at: at,
            issuer_key: key.public(),
        };
        Signed::new(body, |b| key.sign(b))
    }

    /// RJ1 judges `w` from `sender`, holding a passport from `held_from`
    /// under `held_under` (or nothing).
    fn judge(
        w: &Signed<Withdrawal>,
        sender: &str,
        held: Option<(&str, Option<AgreementId>)>,
        chains: &[&RosterBuilder],
    ) -> Result<(), Rejection> {
        let held_org = held.as_ref().map(|(o, _)| org(o));
        let held = held.as_ref().zip(held_org.as_ref()).map(|((_, a), o)| Held { issuer: o, agreement: a.as_ref() });
        verify_withdrawal(w, &node(sender), &org("RJ1"), held, &rosters(chains), now()).map(|_| ())
    }

    fn valid() -> Signed<Withdrawal> {
        signed("RJZ", &issuer("RJZ", 0), now())
    }

    fn under_london() -> Option<(&'static str, Option<AgreementId>)> {
        Some(("RJZ", Some(agreement())))
    }

    #[test]
    fn a_valid_withdrawal_passes_for_a_passport_a_tombstone_or_nothing() {
        let r = london();
        assert_eq!(judge(&valid(), "RJZ", under_london(), &[&r]), Ok(()));
        assert_eq!(judge(&valid(), "RJZ", Some(("RJZ", None)), &[&r]), Ok(()));
        assert_eq!(judge(&valid(), "RJZ", None, &[&r]), Ok(()));
    }

    #[test]
    fn unsupported_version() {
        let mut w = valid();
        w.version += 1;
        assert_eq!(judge(&w, "RJZ", under_london(), &[&london()]), Err(Rejection::UnsupportedVersion));
    }

    #[test]
    fn for_another_receiver() {
        let key = issuer("RJZ", 0);
        let mut body = valid().body;
        body.receiver = org("RV5");
        let w = Signed::new(body, |b| key.sign(b));
        assert_eq!(judge(&w, "RJZ", under_london(), &[&london()]), Err(Rejection::ConsentForOtherReceiver));
    }

    #[test]
    fn a_member_cannot_withdraw_another_members_consent() {
        // RJ2 signs a perfectly valid withdrawal of its own, naming the
        // consent under which RJ1 holds RJZ's passport.
        let w = signed("RJ2", &issuer("RJ2", 0), now());
        assert_eq!(judge(&w, "RJ2", under_london(), &[&london()]), Err(Rejection::ConsentMismatch));
        assert_eq!(judge(&w, "RJ2", Some(("RJZ", None)), &[&london()]), Err(Rejection::ConsentMismatch));
    }

    #[test]
    fn unknown_agreement_of_the_record() {
        let held = Some(("RJZ", Some(kent())));
        assert_eq!(judge(&valid(), "RJZ", held, &[&london()]), Err(Rejection::UnknownAgreement));
    }

    #[test]
    fn signer_not_a_member() {
        let w = signed("RV5", &issuer("RV5", 0), now());
        assert_eq!(judge(&w, "RV5", None, &[&london()]), Err(Rejection::IssuerNotMember));
    }

    #[test]
    fn signer_removed() {
        let mut r = london();
        r.push(Change::Remove { org: org("RJZ") });
        assert_eq!(judge(&valid(), "RJZ", under_london(), &[&r]), Err(Rejection::IssuerNotMember));
    }

    #[test]
    fn a_suspended_home_may_still_withdraw() {
        let mut r = london();
        r.push(Change::Suspend { org: org("RJZ"), reason: "audit".into() });
        assert_eq!(judge(&valid(), "RJZ", under_london(), &[&r]), Ok(()));
    }

    #[test]
    fn sender_not_the_homes_node() {
        assert_eq!(judge(&valid(), "RJ1", under_london(), &[&london()]), Err(Rejection::SenderNotIssuer));
    }

    #[test]
    fn issued_in_future() {
        let w = signed("RJZ", &issuer("RJZ", 0), now().plus_secs(MAX_CLOCK_SKEW_SECS + 1));
        assert_eq!(judge(&w, "RJZ", under_london(), &[&london()]), Err(Rejection::IssuedInFuture));
        let w = signed("RJZ", &issuer("RJZ", 0), now().plus_secs(MAX_CLOCK_SKEW_SECS));
        assert_eq!(judge(&w, "RJZ", under_london(), &[&london()]), Ok(()));
    }

    #[test]
    fn unknown_issuer_key() {
        let w = signed("RJZ", &issuer("RJZ", 9), now());
        assert_eq!(judge(&w, "RJZ", under_london(), &[&london()]), Err(Rejection::UnknownIssuerKey));
    }

    #[test]
    fn issuer_key_not_yet_valid() {
        let mut r = london();
        rotate(&mut r, "RJZ");
        let w = signed("RJZ", &issuer("RJZ", 1), now().plus_days(-3));
        assert_eq!(judge(&w, "RJZ", under_london(), &[&r]), Err(Rejection::IssuerKeyNotYetValid));
    }

    #[test]
    fn issuer_key_retired() {
        let mut r = london();
        rotate(&mut r, "RJZ");
        assert_eq!(judge(&valid(), "RJZ", under_london(), &[&r]), Err(Rejection::IssuerKeyRetired));
        let before = signed("RJZ", &issuer("RJZ", 0), now().plus_days(-3));
        assert_eq!(judge(&before, "RJZ", under_london(), &[&r]), Ok(()), "signed before retirement");
    }

    #[test]
    fn bad_signature() {
        let mut w = valid();
        w.signature.0[3] ^= 1;
        assert_eq!(judge(&w, "RJZ", under_london(), &[&london()]), Err(Rejection::BadConsentSignature));
    }

    // F6: the chain of the record, with the signer's standing there.

    #[test]
    fn chain_of_the_record_a_node_registered_by_another_agreement_does_not_count() {
        // kent-mou's stewards register an attacker's node and key as RJZ's.
        let evil = issuer("EVIL", 0);
        let kent = kent_with("RJZ", vec![node("EVIL")], &evil);
        let w = signed("RJZ", &evil, now());
        assert_eq!(judge(&w, "EVIL", under_london(), &[&london(), &kent]), Err(Rejection::SenderNotIssuer));
    }

    #[test]
    fn chain_of_the_record_a_key_retired_there_does_not_verify() {
        let mut r = london();
        rotate(&mut r, "RJZ");
        let kent = kent_with("RJZ", vec![node("RJZ")], &issuer("RJZ", 0));
        assert_eq!(judge(&valid(), "RJZ", under_london(), &[&r, &kent]), Err(Rejection::IssuerKeyRetired));
    }

    #[test]
    fn chain_of_the_record_a_home_removed_there_cannot_withdraw() {
        let mut r = london();
        r.push(Change::Remove { org: org("RJZ") });
        let kent = kent_with("RJZ", vec![node("RJZ")], &issuer("RJZ", 0));
        assert_eq!(judge(&valid(), "RJZ", under_london(), &[&r, &kent]), Err(Rejection::IssuerNotMember));
    }

    #[test]
    fn with_nothing_held_the_signer_is_judged_within_one_chain_never_a_mix() {
        // The sender is RJZ's node in london-mou; the key is RJZ's only in kent-mou.
        let other = issuer("RJZ", 5);
        let kent = kent_with("RJZ", vec![node("RJZ-KENT")], &other);
        let w = signed("RJZ", &other, now());
        assert!(judge(&w, "RJZ", None, &[&london(), &kent]).is_err());
        // Node and key of one chain pass.
        assert_eq!(judge(&w, "RJZ-KENT", None, &[&london(), &kent]), Ok(()));
        assert_eq!(judge(&valid(), "RJZ", None, &[&london(), &kent]), Ok(()));
    }
}

// ----------------------------------------------------------- revocations

mod revocation {
    use super::*;

    fn signed(by: &str, key: &IssuerSecretKey, at: Timestamp) -> Signed<Revocation> {
        let body = Revocation {
            credential: credential_id(),
            issuer: org(by),
            reason: RevocationReason::LeavingOrganisation,
            revoked_at: at,
            issuer_key: key.public(),
        };
        Signed::new(body, |b| key.sign(b))
    }

    fn valid() -> Signed<Revocation> {
        signed("RJZ", &issuer("RJZ", 0), now())
    }

    fn judge(
        r: &Signed<Revocation>,
        sender: &str,
        held: Option<(&str, AgreementId)>,
        chains: &[&RosterBuilder],
    ) -> Result<(), Rejection> {
        let held_org = held.as_ref().map(|(o, _)| org(o));
        let held = held.as_ref().zip(held_org.as_ref()).map(|((_, a), o)| Held { issuer: o, agreement: Some(a) });
        verify_revocation(r, &node(sender), held, &rosters(chains), now()).map(|_| ())
    }

    fn under_london() -> Option<(&'static str, AgreementId)> {
        Some(("RJZ", agreement()))
    }

    #[test]
    fn a_valid_revocation_passes_for_a_held_passport_or_nothing() {
        assert_eq!(judge(&valid(), "RJZ", under_london(), &[&london()]), Ok(()));
        assert_eq!(judge(&valid(), "RJZ", None, &[&london()]), Ok(()));
    }

    #[test]
    fn an_issuer_revokes_only_its_own_credentials() {
        let r = valid().body;
        assert!(r.covers(&org("RJZ"), &credential_id()));
        assert!(!r.covers(&org("RJ2"), &credential_id()), "another issuer's credential of the same id");
        assert!(!r.covers(&org("RJZ"), &CredentialId::from_bytes([9; 16])));
        // A co-receiver's revocation of the same credential id, presented
        // against the real issuer's passport.
        let x = signed("RJ2", &issuer("RJ2", 0), now());
        assert_eq!(judge(&x, "RJ2", under_london(), &[&london()]), Err(Rejection::SenderNotIssuer));
    }

    #[test]
    fn unsupported_version() {
        let mut r = valid();
        r.version += 1;
        assert_eq!(judge(&r, "RJZ", under_london(), &[&london()]), Err(Rejection::UnsupportedVersion));
    }

    #[test]
    fn unknown_agreement_of_the_record() {
        assert_eq!(judge(&valid(), "RJZ", Some(("RJZ", kent())), &[&london()]), Err(Rejection::UnknownAgreement));
    }

    #[test]
    fn signer_not_a_member_or_removed() {
        let r = signed("RV5", &issuer("RV5", 0), now());
        assert_eq!(judge(&r, "RV5", None, &[&london()]), Err(Rejection::IssuerNotMember));
        let mut l = london();
        l.push(Change::Remove { org: org("RJZ") });
        assert_eq!(judge(&valid(), "RJZ", under_london(), &[&l]), Err(Rejection::IssuerNotMember));
    }

    #[test]
    fn sender_not_the_issuers_node() {
        assert_eq!(judge(&valid(), "RJ1", under_london(), &[&london()]), Err(Rejection::SenderNotIssuer));
    }

    #[test]
    fn issued_in_future() {
        let r = signed("RJZ", &issuer("RJZ", 0), now().plus_secs(MAX_CLOCK_SKEW_SECS + 1));
        assert_eq!(judge(&r, "RJZ", under_london(), &[&london()]), Err(Rejection::IssuedInFuture));
    }

    #[test]
    fn issuer_keys() {
        let r = signed("RJZ", &issuer("RJZ", 9), now());
        assert_eq!(judge(&r, "RJZ", under_london(), &[&london()]), Err(Rejection::UnknownIssuerKey));
        let mut l = london();
        rotate(&mut l, "RJZ");
        assert_eq!(judge(&valid(), "RJZ", under_london(), &[&l]), Err(Rejection::IssuerKeyRetired));
        let early = signed("RJZ", &issuer("RJZ", 1), now().plus_days(-3));
        assert_eq!(judge(&early, "RJZ", under_london(), &[&l]), Err(Rejection::IssuerKeyNotYetValid));
    }

    #[test]
    fn bad_signature() {
        let mut r = valid();
        r.signature.0[3] ^= 1;
        assert_eq!(judge(&r, "RJZ", under_london(), &[&london()]), Err(Rejection::BadCredentialSignature));
    }

    #[test]
    fn chain_of_the_record_a_node_and_key_registered_by_another_agreement_do_not_count() {
        let evil = issuer("EVIL", 0);
        let kent = kent_with("RJZ", vec![node("EVIL")], &evil);
        let r = signed("RJZ", &evil, now());
        assert_eq!(judge(&r, "EVIL", under_london(), &[&london(), &kent]), Err(Rejection::SenderNotIssuer));
        let mut l = london();
        rotate(&mut l, "RJZ");
        let kent = kent_with("RJZ", vec![node("RJZ")], &issuer("RJZ", 0));
        assert_eq!(judge(&valid(), "RJZ", under_london(), &[&l, &kent]), Err(Rejection::IssuerKeyRetired));
    }
}

// -------------------------------------------------------------- receipts

mod receipts {
    use super::*;

    fn body(outcome: Outcome, at: Timestamp) -> Receipt {
        Receipt {
            message: MessageId::from_bytes([0x11; 16]),
            receiver: org("RJ1"),
            outcome,
            at,
            issuer_key: issuer("RJ1", 0).public(),
        }
    }

    fn received() -> Outcome {
        Outcome::Received { consent: consent_id(), credential: credential_id(), claims: BTreeSet::new() }
    }

    fn sign(b: Receipt, key: &IssuerSecretKey) -> Signed<Receipt> {
        Signed::new(b, |b| key.sign(b))
    }

    fn valid() -> Signed<Receipt> {
        sign(body(received(), now()), &issuer("RJ1", 0))
    }

    fn judge(r: &Signed<Receipt>, kind: Kind, chain: &RosterBuilder) -> Result<(), &'static str> {
        let (to, agreement) = (org("RJ1"), agreement());
        let expect =
            Expected { message: MessageId::from_bytes([0x11; 16]), kind, receiver: &to, agreement: &agreement };
        verify_receipt(r, &expect, &rosters(&[chain]), now()).map(|_| ()).map_err(|e: receipt::Error| e.code())
    }

    #[test]
    fn a_valid_receipt_passes() {
        assert_eq!(judge(&valid(), Kind::Offer, &london()), Ok(()));
    }

    #[test]
    fn unsupported_version() {
        let mut r = valid();
        r.version += 1;
        assert_eq!(judge(&r, Kind::Offer, &london()), Err("unsupported-version"));
    }

    #[test]
    fn other_message() {
        let mut b = body(received(), now());
        b.message = MessageId::from_bytes([0x12; 16]);
        assert_eq!(judge(&sign(b, &issuer("RJ1", 0)), Kind::Offer, &london()), Err("other-message"));
    }

    #[test]
    fn other_receiver() {
        let mut b = body(received(), now());
        b.receiver = org("RJ2");
        b.issuer_key = issuer("RJ2", 0).public();
        assert_eq!(judge(&sign(b, &issuer("RJ2", 0)), Kind::Offer, &london()), Err("other-receiver"));
    }

    #[test]
    fn unknown_agreement() {
        let kent = kent_with("RJZ", vec![node("RJZ")], &issuer("RJZ", 0));
        assert_eq!(judge(&valid(), Kind::Offer, &kent), Err("unknown-agreement"));
    }

    #[test]
    fn issued_in_future() {
        let r = sign(body(received(), now().plus_secs(MAX_CLOCK_SKEW_SECS + 1)), &issuer("RJ1", 0));
        assert_eq!(judge(&r, Kind::Offer, &london()), Err("issued-in-future"));
    }

    #[test]
    fn issuer_keys() {
        let mut b = body(received(), now());
        b.issuer_key = issuer("RJ2", 0).public();
        assert_eq!(judge(&sign(b, &issuer("RJ2", 0)), Kind::Offer, &london()), Err("unknown-issuer-key"));
        let mut l = london();
        rotate(&mut l, "RJ1");
        assert_eq!(judge(&valid(), Kind::Offer, &l), Err("issuer-key-retired"));
        let mut b = body(received(), now().plus_days(-3));
        b.issuer_key = issuer("RJ1", 1).public();
        assert_eq!(judge(&sign(b, &issuer("RJ1", 1)), Kind::Offer, &l), Err("issuer-key-not-yet-valid"));
    }

    #[test]
    fn bad_signature() {
        let mut r = valid();
        r.signature.0[3] ^= 1;
        assert_eq!(judge(&r, Kind::Offer, &london()), Err("bad-receipt-signature"));
    }

    #[test]
    fn outcome_mismatch() {
        assert_eq!(judge(&valid(), Kind::Withdraw, &london()), Err("outcome-mismatch"));
        let erased = sign(body(Outcome::Erased { consent: consent_id() }, now()), &issuer("RJ1", 0));
        assert_eq!(judge(&erased, Kind::Revoke, &london()), Err("outcome-mismatch"));
        assert_eq!(judge(&erased, Kind::Withdraw, &london()), Ok(()));
    }

    #[test]
    fn outcomes_fit_their_kinds_and_a_rejection_fits_any() {
        let rejected = Outcome::Rejected { reason: Rejection::ConsentExpired };
        let acked = Outcome::RevocationAcknowledged { credential: credential_id() };
        let erased = Outcome::Erased { consent: consent_id() };
        for kind in [Kind::Offer, Kind::Withdraw, Kind::Revoke] {
            assert!(rejected.fits(kind));
            assert_eq!(received().fits(kind), kind == Kind::Offer);
            assert_eq!(erased.fits(kind), kind == Kind::Withdraw);
            assert_eq!(acked.fits(kind), kind == Kind::Revoke);
        }
    }

    #[test]
    fn outcome_labels() {
        assert_eq!(received().label(), "received");
        assert_eq!(Outcome::Erased { consent: consent_id() }.label(), "erased");
        let acked = Outcome::RevocationAcknowledged { credential: credential_id() };
        assert_eq!(acked.label(), "revocation-acknowledged");
        assert_eq!(Outcome::Rejected { reason: Rejection::ConsentExpired }.label(), "rejected:consent-expired");
    }

    #[test]
    fn a_removed_receiver_still_confirms_erasure() {
        let mut l = london();
        l.push(Change::Remove { org: org("RJ1") });
        let erased = sign(body(Outcome::Erased { consent: consent_id() }, now()), &issuer("RJ1", 0));
        assert_eq!(judge(&erased, Kind::Withdraw, &l), Ok(()));
    }
}
