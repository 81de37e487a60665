//! The rules for the messages about a record: the agreement's terms for an
//! exchange ([`check_terms`]).
//!
//! As in `verify_bundle.rs`, each case starts from a valid exchange and
//! breaks one thing.

#![allow(clippy::unwrap_used)]

mod common;

use std::collections::{BTreeMap, BTreeSet};

use staffpass_protocol::bundle::{Exchange, check_terms};
use staffpass_protocol::claims::ClaimKind;
use staffpass_protocol::keys::IssuerSecretKey;
use staffpass_protocol::roster::{Chain, Change, MemberSpec, MoveKind};
use staffpass_protocol::testkit::{self, RosterBuilder, agreement, issuer, node, org};
use staffpass_protocol::{AgreementId, NodeId, Rejection, Timestamp};

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
