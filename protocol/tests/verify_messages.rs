//! The rules for the messages about a record: the agreement's terms for an
//! exchange ([`check_terms`]) and receipts ([`verify_receipt`]).
//!
//! As in `verify_bundle.rs`, each case starts from a valid exchange and
//! breaks one thing.

#![allow(clippy::unwrap_used)]

mod common;

use std::collections::{BTreeMap, BTreeSet};

use staffpass_protocol::bundle::{Exchange, MAX_CLOCK_SKEW_SECS, check_terms};
use staffpass_protocol::claims::ClaimKind;
use staffpass_protocol::keys::IssuerSecretKey;
use staffpass_protocol::receipt::{self, Expected, Outcome, Receipt, verify_receipt};
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
        let other = common::conflicting(&r.chain, r.chain.seq(), &r.stewards[..2]);
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
    fn a_removed_receiver_still_confirms_erasure() {
        let mut l = london();
        l.push(Change::Remove { org: org("RJ1") });
        let erased = sign(body(Outcome::Erased { consent: consent_id() }, now()), &issuer("RJ1", 0));
        assert_eq!(judge(&erased, Kind::Withdraw, &l), Ok(()));
    }
}
