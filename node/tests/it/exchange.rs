//! The exchange service in memory: trusts on the testkit's manual clock,
//! in-memory stores and a loopback transport. No socket, no disk, no
//! sleep; each test takes milliseconds. One test per branch of the
//! service: the whole move, withdrawal, revocation, updates, expiry, each
//! refusal and each idempotent replay.

use staffpass_node::exchange::outbox::ReceiptError;
use staffpass_node::exchange::records::{ConsentState, OutKind};
use staffpass_node::exchange::{Error, StaffInput, staff};
use staffpass_node::testkit::{Net, Trust};
use staffpass_protocol::bundle::Rejection;
use staffpass_protocol::claims::{Claim, ClaimKind, CstfSubject, Training};
use staffpass_protocol::receipt::Outcome;
use staffpass_protocol::revocation::RevocationReason;
use staffpass_protocol::roster::Change;
use staffpass_protocol::testkit as fixture;
use staffpass_protocol::wire::exchange::Request;
use staffpass_protocol::{ConsentId, OrgId, StaffRef};

/// A home (RJZ) and a host (RJ1), both active members of `london-mou`.
fn pair() -> Net {
    Net::new(&["RJZ", "RJ1"])
}

fn org(code: &str) -> OrgId {
    fixture::org(code)
}

/// Grants a consent from RJZ to RJ1 for a freshly imported member of staff.
fn granted(net: &Net) -> (StaffRef, ConsentId) {
    let home = net.get("RJZ");
    let staff = home.import_staff("12345678-1");
    let c = home.grant(&staff, &org("RJ1")).expect("consent granted");
    (staff, c.signed.consent().id)
}

fn state(t: &Trust, id: &ConsentId) -> ConsentState {
    t.exchange.consent(id).expect("consent stored").state
}

fn received_status(t: &Trust, id: &ConsentId) -> String {
    t.exchange.received_one(id).expect("received passport or tombstone").status
}

/// The one outbox request of `t` (decoded).
fn only_request(t: &Trust) -> Request {
    let items = t.exchange.outbox().expect("outbox");
    assert_eq!(items.len(), 1, "one message in the outbox");
    t.exchange.outbox_request(&items[0]).expect("stored request decodes")
}

/// The queued request of `kind` in `t`'s outbox (decoded).
fn queued(t: &Trust, kind: OutKind) -> Request {
    let item = t.exchange.outbox().expect("outbox").into_iter().find(|i| i.kind == kind).expect("message queued");
    t.exchange.outbox_request(&item).expect("stored request decodes")
}

// ------------------------------------------------------------ the whole move

#[tokio::test]
async fn a_consent_moves_grant_offer_verify_store_receipt_delivered() {
    let net = pair();
    let (home, host) = (net.get("RJZ"), net.get("RJ1"));
    let (staff, id) = granted(&net);
    assert!(matches!(state(home, &id), ConsentState::Pending));
    let mut receipts = home.exchange.receipts_stored();
    assert_eq!(home.deliver().await, 1);

    let passport = host.exchange.received_one(&id).expect("stored at the host");
    assert_eq!(passport.status, "active");
    assert_eq!(passport.issuer, org("RJZ"));
    assert_eq!(passport.subject, Some(staff));
    assert_eq!(passport.claims.len(), 3, "only the consented claims");
    assert!(passport.claims.iter().all(|c| c.value.is_some()), "values shown for one passport");
    assert!(matches!(state(home, &id), ConsentState::Delivered { .. }));
    let record = home.exchange.consent(&id).expect("consent");
    assert_eq!(record.receipts.len(), 1, "the signed receipt is kept");
    assert!(matches!(record.receipts[0].body.outcome, Outcome::Received { .. }));
    assert!(home.exchange.outbox().expect("outbox").is_empty(), "delivered messages leave the outbox");
    assert!(receipts.has_changed().expect("sender alive"));
    assert_eq!(*receipts.borrow_and_update(), 1);
    assert_eq!(net.hub.requests(), 1);
    assert_eq!(home.deliver().await, 0, "nothing left to send");
    home.audit.verify().expect("home audit intact");
    host.audit.verify().expect("host audit intact");
}

#[tokio::test]
async fn a_replayed_offer_gets_the_stored_receipt_and_changes_nothing() {
    let net = pair();
    let (home, host) = (net.get("RJZ"), net.get("RJ1"));
    let (_, id) = granted(&net);
    let request = only_request(home);
    let first = host.exchange.receive(&home.node, request.clone()).expect("answered");
    let entries = host.audit.since(0, 1000).expect("audit").len();
    let again = host.exchange.receive(&home.node, request).expect("answered again");
    assert_eq!(first.encode(), again.encode(), "the same signed receipt");
    assert_eq!(host.audit.since(0, 1000).expect("audit").len(), entries, "a replay adds nothing");
    assert_eq!(received_status(host, &id), "active");
}

#[tokio::test]
async fn a_duplicate_receipt_verifies_again_and_changes_no_state() {
    let net = pair();
    let (home, host) = (net.get("RJZ"), net.get("RJ1"));
    granted(&net);
    let due = home.exchange.outbox_pending().expect("outbox").due.remove(0);
    let request = home.exchange.outbox_request(&due.item).expect("request");
    let resp = host.exchange.receive(&home.node, request).expect("answered");
    home.exchange.accept_receipt(&due, resp.clone()).expect("first receipt accepted");
    assert_eq!(home.exchange.consent(&due.item.consent).expect("consent").receipts.len(), 1);
    let audited = home.audit.since(0, 1000).expect("audit").len();
    // The outbox entry is gone; a late duplicate of the receipt (a delivery
    // started from a scan taken before the first was accepted; found by
    // the crash torture) is verified and changes nothing: no second
    // receipt with the consent, no second audit entry.
    home.exchange.accept_receipt(&due, resp).expect("duplicate receipt verifies");
    assert!(matches!(state(home, &due.item.consent), ConsentState::Delivered { .. }));
    assert_eq!(home.exchange.consent(&due.item.consent).expect("consent").receipts.len(), 1, "recorded twice");
    assert_eq!(home.audit.since(0, 1000).expect("audit").len(), audited, "audited twice");
    assert!(home.exchange.prepare(due).is_none(), "an item no longer in the outbox is not sent again");
}

/// Found by the crash torture: the outbox worker's receipt and an HR
/// action on the same consent both read, change and write its record; a
/// withdrawal committed between the receipt's read and write was undone
/// (the consent went back to `delivered`). Many races, each must end
/// withdrawn.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_receipt_racing_a_withdrawal_never_undoes_it() {
    let net = pair();
    let (home, host) = (net.get("RJZ"), net.get("RJ1"));
    let staff = home.import_staff("12345678-1");
    for _ in 0..200 {
        home.grant(&staff, &org("RJ1")).expect("granted");
    }
    let dues = home.exchange.outbox_pending().expect("outbox").due;
    // Withdrawn in the order the receipts are accepted, so that the two
    // threads meet on the same consents again and again.
    let ids: Vec<_> = dues.iter().map(|d| d.item.consent).collect();
    let mut answered = Vec::new();
    for due in dues {
        let request = home.exchange.outbox_request(&due.item).expect("request");
        answered.push((due, host.exchange.receive(&home.node, request).expect("answered")));
    }
    let ex = home.exchange.clone();
    let receipts = std::thread::spawn(move || {
        for (due, resp) in answered {
            ex.accept_receipt(&due, resp).expect("accepted");
        }
    });
    for id in &ids {
        home.exchange.withdraw_consent(id, "staff").expect("withdrawn");
    }
    receipts.join().expect("receipt thread");
    for id in &ids {
        assert!(matches!(state(home, id), ConsentState::Withdrawn { .. }), "{id}: the withdrawal was undone");
    }
}

// ---------------------------------------------------------------- withdrawal

#[tokio::test]
async fn withdrawal_erases_at_the_host_and_returns_an_erasure_receipt() {
    let net = pair();
    let (home, host) = (net.get("RJZ"), net.get("RJ1"));
    let (_, id) = granted(&net);
    home.deliver().await;
    let rec = home.exchange.withdraw_consent(&id, "staff").expect("withdrawn");
    assert!(matches!(rec.state, ConsentState::Withdrawn { erased: None, .. }));
    assert!(matches!(only_request(home), Request::Withdraw { .. }));
    assert_eq!(home.deliver().await, 1);
    let view = host.exchange.received_one(&id).expect("tombstone");
    assert_eq!(view.status, "erased");
    assert_eq!(view.reason.as_deref(), Some("withdrawn"));
    assert!(view.subject.is_none() && view.claims.is_empty(), "nothing personal is kept");
    assert!(matches!(state(home, &id), ConsentState::Withdrawn { erased: Some(_), .. }));
    let last = home.exchange.consent(&id).expect("consent").receipts.pop().expect("erasure receipt");
    assert!(matches!(last.body.outcome, Outcome::Erased { .. }));
}

#[tokio::test]
async fn a_withdrawal_arriving_before_its_offer_blocks_the_offer() {
    let net = pair();
    let (home, host) = (net.get("RJZ"), net.get("RJ1"));
    let (_, id) = granted(&net);
    let offer = only_request(home);
    home.exchange.withdraw_consent(&id, "staff").expect("withdrawn");
    let withdraw = queued(home, OutKind::Withdraw);
    // The withdrawal arrives first, then the offer: the offer is refused.
    host.exchange.receive(&home.node, withdraw).expect("answered");
    let resp = host.exchange.receive(&home.node, offer).expect("answered");
    assert!(matches!(resp.receipt.body.outcome, Outcome::Rejected { .. }));
    assert!(host.exchange.received().expect("received").iter().all(|v| v.status != "active"));
    assert!(matches!(state(home, &id), ConsentState::Withdrawn { .. }));
}

/// F4(b): an offer still waiting in the outbox when the staff member
/// withdraws is cancelled in the same commit: only the withdrawal is sent,
/// and the receiver never holds the passport.
#[tokio::test]
async fn withdrawing_cancels_the_offer_still_waiting() {
    let net = pair();
    let (home, host) = (net.get("RJZ"), net.get("RJ1"));
    let (_, id) = granted(&net);
    assert!(matches!(only_request(home), Request::PresentedOffer { .. }), "the offer waits");
    home.exchange.withdraw_consent(&id, "staff").expect("withdrawn");
    let kinds: Vec<OutKind> = home.exchange.outbox().expect("outbox").iter().map(|i| i.kind).collect();
    assert_eq!(kinds, vec![OutKind::Withdraw], "the waiting offer is cancelled");
    home.deliver().await;
    assert!(host.exchange.received().expect("received").iter().all(|v| v.status != "active"));
    assert!(matches!(state(home, &id), ConsentState::Withdrawn { erased: Some(_), .. }));
}

#[tokio::test]
async fn withdrawing_twice_is_a_conflict() {
    let net = pair();
    let home = net.get("RJZ");
    let (_, id) = granted(&net);
    home.exchange.withdraw_consent(&id, "staff").expect("withdrawn");
    assert!(matches!(home.exchange.withdraw_consent(&id, "staff"), Err(Error::Conflict(_))));
}

#[tokio::test]
async fn withdrawing_an_unsigned_consent_sends_nothing() {
    let net = pair();
    let home = net.get("RJZ");
    let staff = home.import_staff("12345678-1");
    let mut req = home.request(&staff, &org("RJ1"));
    req.staff_key = Some(fixture::staff("alex").public());
    let c = home.exchange.grant_consent(req, "hr").expect("granted");
    let id = c.signed.consent().id;
    assert!(home.exchange.outbox().expect("outbox").is_empty());
    home.exchange.withdraw_consent(&id, "staff").expect("withdrawn");
    assert!(home.exchange.outbox().expect("outbox").is_empty(), "the receiver never heard of it");
}

#[tokio::test]
async fn a_withdrawal_for_a_passport_not_held_is_acknowledged_as_erased() {
    let net = pair();
    let (home, host) = (net.get("RJZ"), net.get("RJ1"));
    let (_, id) = granted(&net);
    home.exchange.withdraw_consent(&id, "staff").expect("withdrawn");
    let withdraw = queued(home, OutKind::Withdraw);
    let resp = host.exchange.receive(&home.node, withdraw).expect("answered");
    assert!(matches!(resp.receipt.body.outcome, Outcome::Erased { .. }));
}

// ---------------------------------------------------------------- revocation

#[tokio::test]
async fn revocation_reaches_the_host_and_marks_the_passport() {
    let net = pair();
    let (home, host) = (net.get("RJZ"), net.get("RJ1"));
    let (_, id) = granted(&net);
    home.deliver().await;
    let cred = home.exchange.consent(&id).expect("consent").credential;
    let revoked = home.exchange.revoke_credential(&cred, RevocationReason::LeavingOrganisation, "hr").expect("revoked");
    assert!(revoked.revoked.is_some());
    assert!(matches!(only_request(home), Request::Revoke { .. }));
    assert_eq!(home.deliver().await, 1);
    let view = host.exchange.received_one(&id).expect("held");
    assert_eq!(view.status, "revoked");
    assert_eq!(view.reason.as_deref(), Some("leaving-organisation"));
    let last = home.exchange.consent(&id).expect("consent").receipts.pop().expect("receipt");
    assert!(matches!(last.body.outcome, Outcome::RevocationAcknowledged { .. }));
    assert!(home.exchange.outbox().expect("outbox").is_empty());
}

/// F3: re-issuing a credential supersedes the old one at every receiver
/// of a live consent, also one whose consent does not cover the claim that
/// changed: each is re-sent the new credential, so none is left holding
/// the superseded one (which a later revocation would not name).
#[tokio::test]
async fn a_reissue_supersedes_the_old_credential_at_every_receiver() {
    let net = Net::new(&["RJZ", "RJ1", "RV5"]);
    let (home, rj1, rv5) = (net.get("RJZ"), net.get("RJ1"), net.get("RV5"));
    let staff = home.import_staff("12345678-1");
    let mut identity_only = home.request(&staff, &org("RJ1"));
    identity_only.claims = [ClaimKind::Identity].into_iter().collect();
    let c1 = home.exchange.grant_consent(identity_only, "hr").expect("granted").signed.consent().id;
    let c2 = home.grant(&staff, &org("RV5")).expect("granted").signed.consent().id;
    home.deliver().await;
    let renewed = Claim::Training(
        CstfSubject::FireSafety,
        Training { level: 2, completed_on: home.exchange.now().date(), refresher_months: 12 },
    );
    home.exchange.record_claim(&staff, renewed, "hr").expect("recorded");
    home.deliver().await;
    let current = home.exchange.current_credential(&staff).expect("read").expect("issued").signed.body.id;
    assert_eq!(rv5.exchange.received_one(&c2).expect("held").credential, current);
    assert_eq!(rj1.exchange.received_one(&c1).expect("held").credential, current, "RJ1 still holds the superseded one");
    home.exchange.revoke_credential(&current, RevocationReason::Deceased, "hr").expect("revoked");
    home.deliver().await;
    assert_eq!(received_status(rv5, &c2), "revoked");
    assert_eq!(received_status(rj1, &c1), "revoked");
}

/// F3, the race: the revocation of the re-issued credential overtakes the
/// offer that carries it, so the receiver still holds the superseded one
/// when it learns of the revocation. The late offer is refused (its
/// credential is revoked) and, being the issuer's own newer credential
/// for that consent, marks the superseded passport revoked too.
#[tokio::test]
async fn a_revocation_overtaking_the_reissued_offer_still_revokes_the_held_passport() {
    let net = pair();
    let (home, host) = (net.get("RJZ"), net.get("RJ1"));
    let (staff, id) = granted(&net);
    home.deliver().await;
    let renewed = Claim::Training(
        CstfSubject::FireSafety,
        Training { level: 2, completed_on: home.exchange.now().date(), refresher_months: 12 },
    );
    home.exchange.record_claim(&staff, renewed, "hr").expect("recorded");
    let offer = queued(home, OutKind::Offer);
    home.exchange.revoke_staff(&staff, RevocationReason::ProvidedInError, "hr").expect("revoked");
    let revoke = queued(home, OutKind::Revoke);
    host.exchange.receive(&home.node, revoke).expect("answered");
    assert_eq!(received_status(host, &id), "active", "the revocation names a credential the host does not hold yet");
    let resp = host.exchange.receive(&home.node, offer).expect("answered");
    assert!(
        matches!(resp.receipt.body.outcome, Outcome::Rejected { reason: Rejection::CredentialRevoked }),
        "{resp:?}"
    );
    let view = host.exchange.received_one(&id).expect("held");
    assert_eq!(view.status, "revoked", "the superseded passport stayed active");
    assert_eq!(view.reason.as_deref(), Some("provided-in-error"));
}

/// Records a new claim value twice (two re-issues) and returns the offer
/// each queued, oldest first.
fn reissue_twice(home: &Trust, staff: &StaffRef) -> Vec<Request> {
    let mut offers = Vec::new();
    for months in [12, 24] {
        let claim = Claim::Training(
            CstfSubject::FireSafety,
            Training { level: 1, completed_on: home.exchange.now().date(), refresher_months: months },
        );
        let before: Vec<_> = home.exchange.outbox().expect("outbox").into_iter().map(|i| i.id).collect();
        home.exchange.record_claim(staff, claim, "hr").expect("recorded");
        let item =
            home.exchange.outbox().expect("outbox").into_iter().find(|i| !before.contains(&i.id)).expect("queued");
        offers.push(home.exchange.outbox_request(&item).expect("request"));
    }
    offers
}

fn is_revoked_refusal(resp: &staffpass_protocol::wire::exchange::Response) -> bool {
    matches!(resp.receipt.body.outcome, Outcome::Rejected { reason: Rejection::CredentialRevoked })
}

/// Found by the crash torture: two re-issues, then the staff member's
/// credentials revoked. The revocation and the newest offer reach the host
/// first (the older offer waited out a kill of the host), so the host marks
/// the passport it holds revoked, superseded by a revoked credential. The
/// older offer, arriving last, is newer than the passport held and named
/// by no revocation: it must still not bring back an active passport.
#[tokio::test]
async fn a_late_offer_older_than_a_revoked_update_does_not_revive_the_passport() {
    let net = pair();
    let (home, host) = (net.get("RJZ"), net.get("RJ1"));
    let (staff, id) = granted(&net);
    home.deliver().await;
    let mut offers = reissue_twice(home, &staff);
    home.exchange.revoke_staff(&staff, RevocationReason::Deceased, "hr").expect("revoked");
    let revoke = queued(home, OutKind::Revoke);
    let (older, newer) = (offers.remove(0), offers.remove(0));
    host.exchange.receive(&home.node, revoke).expect("answered");
    assert!(is_revoked_refusal(&host.exchange.receive(&home.node, newer).expect("answered")));
    assert_eq!(received_status(host, &id), "revoked");
    let resp = host.exchange.receive(&home.node, older).expect("answered");
    assert_eq!(received_status(host, &id), "revoked", "the older offer revived the passport");
    assert!(is_revoked_refusal(&resp), "{:?}", resp.receipt.body.outcome);
}

/// The same race before anything was held: the first offer and the older
/// update both arrive after the revoked newest one was refused. Neither
/// may leave an active passport.
#[tokio::test]
async fn offers_older_than_a_refused_revoked_one_are_refused_too() {
    let net = pair();
    let (home, host) = (net.get("RJZ"), net.get("RJ1"));
    let (staff, id) = granted(&net);
    let first = only_request(home);
    let mut offers = reissue_twice(home, &staff);
    home.exchange.revoke_staff(&staff, RevocationReason::Deceased, "hr").expect("revoked");
    let revoke = queued(home, OutKind::Revoke);
    let (older, newer) = (offers.remove(0), offers.remove(0));
    host.exchange.receive(&home.node, revoke).expect("answered");
    assert!(is_revoked_refusal(&host.exchange.receive(&home.node, newer).expect("answered")));
    for late in [older, first] {
        let resp = host.exchange.receive(&home.node, late).expect("answered");
        assert!(is_revoked_refusal(&resp), "{:?}", resp.receipt.body.outcome);
        assert!(host.exchange.received_one(&id).is_err(), "an offer older than a revoked one was stored");
    }
}

/// A re-issue cancels the consent's offers still waiting in the outbox:
/// they carry a superseded credential, and only the newest goes out.
#[tokio::test]
async fn a_reissue_cancels_the_consents_waiting_offers() {
    let net = pair();
    let (home, host) = (net.get("RJZ"), net.get("RJ1"));
    let (staff, id) = granted(&net);
    reissue_twice(home, &staff);
    let Request::PresentedOffer { bundle, .. } = only_request(home) else { panic!("an offer") };
    let current = home.exchange.consent(&id).expect("consent").credential;
    assert_eq!(bundle.credential.body.id, current, "the waiting offer is not the newest");
    assert_eq!(home.deliver().await, 1);
    assert_eq!(host.exchange.received_one(&id).expect("held").credential, current);
    assert!(matches!(state(home, &id), ConsentState::Delivered { .. }));
}

/// Found by the docker crash torture: a revocation of the credential a
/// receiver holds and the offer of its successor, handled at the same
/// moment, lost the update: the revocation wrote back the record it had
/// read (the old credential, now revoked) over the newer passport the offer
/// had just stored. Each round races the two on two threads; the newer,
/// unrevoked credential must be what is held.
#[tokio::test]
async fn a_revocation_racing_the_successors_offer_does_not_overwrite_it() {
    let net = pair();
    let (home, host) = (net.get("RJZ"), net.get("RJ1"));
    let staff = home.import_staff("12345678-1");
    for round in 0..40 {
        let id = home.grant(&staff, &org("RJ1")).expect("granted").signed.consent().id;
        home.deliver().await;
        home.exchange.revoke_staff(&staff, RevocationReason::Deceased, "hr").expect("revoked");
        let revoke = queued(home, OutKind::Revoke);
        let offer = reissue_twice(home, &staff).pop().expect("an offer");
        let newest = home.exchange.consent(&id).expect("consent").credential;
        let barrier = std::sync::Barrier::new(2);
        std::thread::scope(|s| {
            for request in [revoke, offer] {
                let (ex, node, barrier) = (&host.exchange, &home.node, &barrier);
                s.spawn(move || {
                    barrier.wait();
                    ex.receive(node, request).expect("answered");
                });
            }
        });
        let held = host.exchange.received_one(&id).expect("held");
        assert_eq!((held.credential, held.status.as_str()), (newest, "active"), "round {round}");
        // The captured messages again (answered from the stored receipts),
        // and a withdrawal, so the next round starts from an empty outbox.
        home.exchange.withdraw_consent(&id, "hr").expect("withdrawn");
        home.deliver().await;
        assert!(home.exchange.outbox().expect("outbox").is_empty());
    }
}

/// Revoking every credential of a member of staff at once (`--staff`).
#[tokio::test]
async fn revoking_by_staff_member_covers_every_credential() {
    let net = pair();
    let (home, host) = (net.get("RJZ"), net.get("RJ1"));
    let (staff, id) = granted(&net);
    home.deliver().await;
    let revoked = home.exchange.revoke_staff(&staff, RevocationReason::LeavingOrganisation, "hr").expect("revoked");
    assert_eq!(revoked.len(), 1);
    home.deliver().await;
    assert_eq!(received_status(host, &id), "revoked");
    assert!(home.exchange.revoke_staff(&staff, RevocationReason::LeavingOrganisation, "hr").expect("again").is_empty());
}

#[tokio::test]
async fn revoking_twice_is_a_conflict() {
    let net = pair();
    let home = net.get("RJZ");
    let (_, id) = granted(&net);
    let cred = home.exchange.consent(&id).expect("consent").credential;
    home.exchange.revoke_credential(&cred, RevocationReason::TrainingExpiry, "hr").expect("revoked");
    let again = home.exchange.revoke_credential(&cred, RevocationReason::TrainingExpiry, "hr");
    assert!(matches!(again, Err(Error::Conflict(_))));
}

#[tokio::test]
async fn an_offer_of_a_revoked_credential_is_refused_at_the_host() {
    let net = pair();
    let (home, host) = (net.get("RJZ"), net.get("RJ1"));
    let (_, id) = granted(&net);
    let offer = only_request(home);
    let cred = home.exchange.consent(&id).expect("consent").credential;
    home.exchange.revoke_credential(&cred, RevocationReason::ProvidedInError, "hr").expect("revoked");
    let revoke = queued(home, OutKind::Revoke);
    let ack = host.exchange.receive(&home.node, revoke).expect("answered");
    assert!(matches!(ack.receipt.body.outcome, Outcome::RevocationAcknowledged { .. }));
    let resp = host.exchange.receive(&home.node, offer).expect("answered");
    assert!(matches!(resp.receipt.body.outcome, Outcome::Rejected { .. }));
    assert!(host.exchange.received_one(&id).is_err(), "nothing of a refused offer is kept");
}

#[tokio::test]
async fn revoking_an_unknown_credential_is_not_found() {
    let net = pair();
    let home = net.get("RJZ");
    let r = home.exchange.revoke_credential(
        &staffpass_protocol::CredentialId::from_bytes([7; 16]),
        RevocationReason::TrainingExpiry,
        "hr",
    );
    assert!(matches!(r, Err(Error::NoCredential(_))));
}

// ------------------------------------------------------------------- updates

#[tokio::test]
async fn renewed_training_is_resent_to_live_consents() {
    let net = pair();
    let (home, host) = (net.get("RJZ"), net.get("RJ1"));
    let (staff, id) = granted(&net);
    home.deliver().await;
    let before = host.exchange.received_one(&id).expect("held").credential;
    let renewed = Claim::Training(
        CstfSubject::FireSafety,
        Training { level: 2, completed_on: home.exchange.now().date(), refresher_months: 12 },
    );
    home.exchange.record_claim(&staff, renewed, "hr").expect("recorded");
    assert!(matches!(only_request(home), Request::PresentedOffer { .. }), "the update goes out as an offer");
    assert_eq!(home.deliver().await, 1);
    let after = host.exchange.received_one(&id).expect("held");
    assert_ne!(after.credential, before, "the re-issued credential replaced the old one");
    assert_eq!(after.status, "active");
    assert_eq!(home.exchange.consent(&id).expect("consent").credential, after.credential);
}

/// F13: a late retry of the first offer, arriving after the update that
/// replaced it, does not roll the host back: the newer credential stays.
#[tokio::test]
async fn a_late_older_offer_does_not_replace_a_newer_update() {
    let net = pair();
    let (home, host) = (net.get("RJZ"), net.get("RJ1"));
    let (staff, id) = granted(&net);
    let first = only_request(home);
    home.deliver().await;
    net.clock.advance_secs(60);
    let renewed = Claim::Training(
        CstfSubject::FireSafety,
        Training { level: 2, completed_on: home.exchange.now().date(), refresher_months: 12 },
    );
    home.exchange.record_claim(&staff, renewed, "hr").expect("recorded");
    home.deliver().await;
    let newer = host.exchange.received_one(&id).expect("held").credential;
    // The first offer again, under a new message id (as a retry by a
    // restored backup would send it).
    let Request::PresentedOffer { bundle, presentation, .. } = first else { panic!("an offer") };
    let again =
        Request::PresentedOffer { id: staffpass_protocol::MessageId::from_bytes([9; 16]), bundle, presentation };
    let resp = host.exchange.receive(&home.node, again).expect("answered");
    assert!(!matches!(resp.receipt.body.outcome, Outcome::Rejected { .. }), "{:?}", resp.receipt.body.outcome);
    assert_eq!(host.exchange.received_one(&id).expect("held").credential, newer, "rolled back to the older credential");
}

/// A change to a claim the consent does not cover still re-issues and
/// re-sends (the new credential supersedes the old one), but discloses
/// only the consented claims: the changed one does not leave.
#[tokio::test]
async fn a_change_to_an_unshared_claim_resends_only_the_consented_claims() {
    let net = pair();
    let home = net.get("RJZ");
    let (staff, id) = granted(&net);
    home.deliver().await;
    let consented = home.exchange.consent(&id).expect("consent").signed.consent().claims.clone();
    assert!(!consented.contains(&ClaimKind::Training(CstfSubject::Resuscitation)));
    let other = Claim::Training(
        CstfSubject::Resuscitation,
        Training { level: 2, completed_on: home.exchange.now().date(), refresher_months: 12 },
    );
    home.exchange.record_claim(&staff, other, "hr").expect("recorded");
    let Request::PresentedOffer { bundle, .. } = only_request(home) else { panic!("an offer") };
    let sent: std::collections::BTreeSet<ClaimKind> = bundle.disclosures.iter().map(|d| d.claim.kind()).collect();
    assert!(sent.is_subset(&consented), "{sent:?} is more than {consented:?}");
    assert!(!sent.contains(&ClaimKind::Training(CstfSubject::Resuscitation)));
}

#[tokio::test]
async fn an_invalid_claim_is_refused() {
    let net = pair();
    let home = net.get("RJZ");
    let staff = home.import_staff("12345678-1");
    let bad = Claim::Training(
        CstfSubject::FireSafety,
        Training { level: 0, completed_on: home.exchange.now().date(), refresher_months: 12 },
    );
    assert!(matches!(home.exchange.record_claim(&staff, bad, "hr"), Err(Error::Invalid(_))));
}

#[tokio::test]
async fn put_staff_replaces_claims_and_refuses_another_assignment() {
    let net = pair();
    let home = net.get("RJZ");
    let staff = home.import_staff("12345678-1");
    let input = |a: &str| StaffInput { assignment_number: a.into(), claims: fixture::sample_claims(), staff_key: None };
    let rec = home.exchange.put_staff(&staff, input("12345678-1"), "hr").expect("replaced");
    assert_eq!(rec.staff_ref, staff);
    assert!(matches!(home.exchange.put_staff(&staff, input("87654321-1"), "hr"), Err(Error::Invalid(_))));
}

// -------------------------------------------------------------------- expiry

#[tokio::test]
async fn the_expiry_sweep_erases_passports_whose_consent_ended() {
    let net = pair();
    let (home, host) = (net.get("RJZ"), net.get("RJ1"));
    let (_, id) = granted(&net);
    home.deliver().await;
    assert_eq!(host.exchange.sweep_expired().expect("sweep"), 0, "still in its window");
    net.clock.advance_secs(31 * 24 * 3600);
    assert_eq!(host.exchange.sweep_expired().expect("sweep"), 1);
    let view = host.exchange.received_one(&id).expect("tombstone");
    assert_eq!(view.status, "erased");
    assert_eq!(view.reason.as_deref(), Some("expired"));
    assert_eq!(host.exchange.sweep_expired().expect("sweep"), 0, "a second sweep finds nothing");
}

/// A receiver keeps a passport no longer than its own limit, whatever the
/// sender's consent says (F14: the sender does not decide retention).
#[tokio::test]
async fn a_receiver_erases_a_passport_kept_longer_than_its_own_limit() {
    let settings = staffpass_node::exchange::Settings { max_keep_days: 10, ..Default::default() };
    let net = Net::with_settings(&["RJZ", "RJ1"], &settings);
    let (home, host) = (net.get("RJZ"), net.get("RJ1"));
    let (_, id) = granted(&net);
    home.deliver().await;
    net.clock.advance_secs(9 * 24 * 3600);
    assert_eq!(host.exchange.sweep_expired().expect("sweep"), 0, "within both");
    net.clock.advance_secs(2 * 24 * 3600);
    assert_eq!(host.exchange.sweep_expired().expect("sweep"), 1, "the consent runs 30 days, the host keeps 10");
    let view = host.exchange.received_one(&id).expect("tombstone");
    assert_eq!((view.status.as_str(), view.reason.as_deref()), ("erased", Some("kept-too-long")));
}

/// The retention sweep racing an offer of a successor under the same
/// consent: the sweep erased (and shredded the key of) what it re-read,
/// the newer passport the offer had just stored. Each round races the two
/// on two threads; the newer passport must be held, active, whichever
/// went first.
#[tokio::test]
async fn the_retention_sweep_racing_a_newer_offer_does_not_erase_it() {
    // Kept one day: each round is a day and an hour (the roster stays in date).
    let settings = staffpass_node::exchange::Settings { max_keep_days: 1, ..Default::default() };
    let net = Net::with_settings(&["RJZ", "RJ1"], &settings);
    let (home, host) = (net.get("RJZ"), net.get("RJ1"));
    let staff = home.import_staff("12345678-1");
    for round in 0..25 {
        let id = home.grant(&staff, &org("RJ1")).expect("granted").signed.consent().id;
        home.deliver().await;
        net.clock.advance_secs(25 * 3600);
        let offer = reissue_twice(home, &staff).pop().expect("an offer");
        let newest = home.exchange.consent(&id).expect("consent").credential;
        let barrier = std::sync::Barrier::new(2);
        std::thread::scope(|s| {
            let (ex, node, barrier) = (&host.exchange, &home.node, &barrier);
            s.spawn(move || {
                barrier.wait();
                ex.sweep_expired().expect("swept");
            });
            s.spawn(move || {
                barrier.wait();
                ex.receive(node, offer).expect("answered");
            });
        });
        let held = host.exchange.received_one(&id).expect("held");
        assert_eq!((held.credential, held.status.as_str()), (newest, "active"), "round {round}");
        home.deliver().await;
        home.exchange.withdraw_consent(&id, "hr").expect("withdrawn");
        home.deliver().await;
    }
}

/// F14: the receipts kept to answer replays do not pile up for ever: past
/// `inbox_keep_days` they are forgotten; a replay within it still gets the
/// stored receipt.
#[tokio::test]
async fn old_receipts_of_handled_messages_are_forgotten() {
    let net = pair();
    let (home, host) = (net.get("RJZ"), net.get("RJ1"));
    let (_, id) = granted(&net);
    let offer = only_request(home);
    let first = host.exchange.receive(&home.node, offer.clone()).expect("answered");
    net.clock.advance_secs(29 * 24 * 3600);
    assert_eq!(host.exchange.prune_inbox().expect("pruned"), 0);
    assert_eq!(host.exchange.receive(&home.node, offer.clone()).expect("replay").encode(), first.encode());
    net.clock.advance_secs(2 * 24 * 3600);
    assert_eq!(host.exchange.prune_inbox().expect("pruned"), 1);
    assert_eq!(host.exchange.prune_inbox().expect("pruned"), 0, "once");
    assert_eq!(received_status(host, &id), "active", "pruning forgets receipts, not passports");
}

#[tokio::test]
async fn the_sweep_worker_stops_when_told() {
    let net = pair();
    let host = net.get("RJ1");
    let (stop, rx) = tokio::sync::watch::channel(false);
    let worker = tokio::spawn(staffpass_node::exchange::sweep_worker::run(
        host.exchange.clone(),
        std::time::Duration::from_secs(3600),
        rx,
    ));
    stop.send(true).expect("worker listening");
    worker.await.expect("worker ended cleanly");
}

// ---------------------------------------------------------- grant refusals

#[tokio::test]
async fn grant_refuses_an_agreement_not_held() {
    let net = pair();
    let home = net.get("RJZ");
    let staff = home.import_staff("12345678-1");
    let mut req = home.request(&staff, &org("RJ1"));
    req.agreement = "one-bromley".parse().expect("agreement id");
    let r = home.exchange.grant_consent(req, "hr");
    assert!(matches!(r, Err(Error::Terms { reason: Rejection::UnknownAgreement, .. })));
}

#[tokio::test]
async fn grant_refuses_a_receiver_that_is_not_a_member() {
    let net = pair();
    let home = net.get("RJZ");
    let staff = home.import_staff("12345678-1");
    let r = home.grant(&staff, &org("RV5"));
    let e = r.expect_err("refused");
    assert!(matches!(e, Error::Terms { reason: Rejection::ReceiverNotMember, .. }));
    assert_eq!(e.code(), "not-active-member");
}

#[tokio::test]
async fn grant_refuses_a_suspended_receiver() {
    let mut net = pair();
    net.change(Change::Suspend { org: org("RJ1"), reason: "audit".into() });
    let home = net.get("RJZ");
    let staff = home.import_staff("12345678-1");
    let r = home.grant(&staff, &org("RJ1"));
    assert!(matches!(r, Err(Error::Terms { reason: Rejection::ReceiverSuspended, .. })));
}

#[tokio::test]
async fn grant_refuses_a_stale_roster() {
    let net = pair();
    let home = net.get("RJZ");
    let staff = home.import_staff("12345678-1");
    net.clock.advance_secs(120 * 24 * 3600);
    let r = home.grant(&staff, &org("RJ1"));
    assert!(matches!(r, Err(Error::Terms { reason: Rejection::RosterStale, .. })));
}

#[tokio::test]
async fn grant_refuses_sharing_with_itself() {
    let net = pair();
    let home = net.get("RJZ");
    let staff = home.import_staff("12345678-1");
    assert!(matches!(home.grant(&staff, &org("RJZ")), Err(Error::Invalid(_))));
}

#[tokio::test]
async fn grant_refuses_a_claim_not_held() {
    let net = pair();
    let home = net.get("RJZ");
    let staff = home.import_staff("12345678-1");
    let mut req = home.request(&staff, &org("RJ1"));
    req.claims.insert(ClaimKind::Training(CstfSubject::PreventingRadicalisation));
    let r = home.exchange.grant_consent(req, "hr");
    assert!(matches!(r, Err(Error::ClaimNotHeld(_))));
}

#[tokio::test]
async fn grant_refuses_no_claims() {
    let net = pair();
    let home = net.get("RJZ");
    let staff = home.import_staff("12345678-1");
    let mut req = home.request(&staff, &org("RJ1"));
    req.claims.clear();
    assert!(matches!(home.exchange.grant_consent(req, "hr"), Err(Error::Invalid(_))));
}

#[tokio::test]
async fn grant_refuses_a_window_in_the_past_or_too_long() {
    let net = pair();
    let home = net.get("RJZ");
    let staff = home.import_staff("12345678-1");
    let mut past = home.request(&staff, &org("RJ1"));
    past.not_after = home.exchange.now().plus_days(-1);
    assert!(matches!(home.exchange.grant_consent(past, "hr"), Err(Error::Invalid(_))));
    let mut long = home.request(&staff, &org("RJ1"));
    long.not_after = home.exchange.now().plus_days(6 * 366);
    assert!(matches!(home.exchange.grant_consent(long, "hr"), Err(Error::Invalid(_))));
}

#[tokio::test]
async fn grant_refuses_unknown_staff() {
    let net = pair();
    let home = net.get("RJZ");
    let nobody = home.exchange.staff_ref_for("00000000-0");
    assert!(matches!(home.grant(&nobody, &org("RJ1")), Err(Error::NoStaff(_))));
}

#[tokio::test]
async fn grant_reuses_a_current_credential_and_reissues_a_revoked_one() {
    let net = pair();
    let home = net.get("RJZ");
    let staff = home.import_staff("12345678-1");
    let a = home.grant(&staff, &org("RJ1")).expect("granted").credential;
    let b = home.grant(&staff, &org("RJ1")).expect("granted").credential;
    assert_eq!(a, b, "a valid credential is reused");
    home.exchange.revoke_credential(&a, RevocationReason::ProvidedInError, "hr").expect("revoked");
    let c = home.grant(&staff, &org("RJ1")).expect("granted").credential;
    assert_ne!(c, a, "a revoked credential is never sent again");
}

// ------------------------------------------------------- staff signatures

#[tokio::test]
async fn a_staff_signed_consent_waits_for_a_valid_signature() {
    let net = pair();
    let (home, host) = (net.get("RJZ"), net.get("RJ1"));
    let staff = home.import_staff("12345678-1");
    let key = fixture::staff("alex");
    let mut req = home.request(&staff, &org("RJ1"));
    req.staff_key = Some(key.public());
    let c = home.exchange.grant_consent(req, "hr").expect("granted");
    let id = c.signed.consent().id;
    assert!(matches!(c.state, ConsentState::AwaitingStaffSignature));
    let wrong = fixture::staff("someone-else").sign(c.signed.consent());
    assert!(matches!(home.exchange.sign_consent(&id, wrong, "staff"), Err(Error::BadStaffSignature)));
    let good = key.sign(c.signed.consent());
    let signed = home.exchange.sign_consent(&id, good, "staff").expect("signed");
    assert!(matches!(signed.state, ConsentState::Pending));
    assert!(matches!(home.exchange.sign_consent(&id, good, "staff"), Err(Error::Conflict(_))));
    home.deliver().await;
    assert_eq!(received_status(host, &id), "active");
}

#[tokio::test]
async fn signing_a_consent_without_a_staff_key_is_refused() {
    let net = pair();
    let home = net.get("RJZ");
    let (_, id) = granted(&net);
    let sig = fixture::staff("alex").sign(home.exchange.consent(&id).expect("consent").signed.consent());
    assert!(matches!(home.exchange.sign_consent(&id, sig, "staff"), Err(Error::Conflict(_))));
    let unknown = ConsentId::from_bytes([9; 16]);
    assert!(matches!(home.exchange.sign_consent(&unknown, sig, "staff"), Err(Error::NoConsent(_))));
}

// ----------------------------------------------------- receiver refusals

#[tokio::test]
async fn an_offer_from_a_node_of_another_org_is_rejected_with_a_receipt() {
    let net = Net::new(&["RJZ", "RJ1", "RV5"]);
    let (home, host, other) = (net.get("RJZ"), net.get("RJ1"), net.get("RV5"));
    let (_, id) = granted(&net);
    let resp = host.exchange.receive(&other.node, only_request(home)).expect("answered");
    assert!(matches!(resp.receipt.body.outcome, Outcome::Rejected { reason: Rejection::SenderNotIssuer }));
    assert!(host.exchange.received_one(&id).is_err(), "nothing of it is kept");
    let audit = host.audit.since(0, 1000).expect("audit");
    assert!(audit.iter().any(|e| e.event.reason.as_deref() == Some("sender-not-issuer")));
}

#[tokio::test]
async fn a_rejection_receipt_marks_the_consent_rejected() {
    let mut net = pair();
    let (_, id) = granted(&net);
    // The host stops counting the home as a member; the home's roster
    // still allows the offer.
    net.roster.push(Change::Suspend { org: org("RJZ"), reason: "audit".into() });
    let entry = net.roster.chain.entries().last().cloned().expect("entry");
    net.get("RJ1").submit(entry);
    let home = net.get("RJZ");
    home.deliver().await;
    assert!(matches!(state(home, &id), ConsentState::Rejected { reason: Rejection::IssuerSuspended, .. }));
    assert!(home.exchange.outbox().expect("outbox").is_empty(), "a rejection is a final answer");
}

#[tokio::test]
async fn an_offer_the_roster_no_longer_allows_is_never_sent() {
    let mut net = pair();
    let (_, id) = granted(&net);
    net.change(Change::Suspend { org: org("RJ1"), reason: "audit".into() });
    let home = net.get("RJZ");
    home.deliver().await;
    assert_eq!(net.hub.requests(), 0, "nothing was sent");
    assert!(matches!(state(home, &id), ConsentState::Rejected { reason: Rejection::ReceiverSuspended, .. }));
    assert!(home.exchange.outbox().expect("outbox").is_empty());
}

// -------------------------------------------------------------- the outbox

#[tokio::test]
async fn an_unreachable_receiver_is_retried_with_backoff_until_it_answers() {
    let net = pair();
    let (home, host) = (net.get("RJZ"), net.get("RJ1"));
    let (_, id) = granted(&net);
    net.hub.cut(&host.node, true);
    assert_eq!(home.deliver().await, 1);
    let item = home.exchange.outbox().expect("outbox").remove(0);
    assert_eq!(item.attempts, 1);
    assert!(item.last_error.as_deref().is_some_and(|e| e.contains("unreachable")));
    assert_eq!(home.deliver().await, 0, "not due again before its backoff");
    net.hub.cut(&host.node, false);
    net.clock.advance_secs(60);
    assert_eq!(home.deliver().await, 1);
    assert!(matches!(state(home, &id), ConsentState::Delivered { .. }));
    assert_eq!(received_status(host, &id), "active");
}

#[tokio::test]
async fn every_failed_attempt_is_counted() {
    let net = pair();
    let (home, host) = (net.get("RJZ"), net.get("RJ1"));
    granted(&net);
    // RJ1 stays unreachable: each attempt is recorded.
    net.hub.cut(&host.node, true);
    home.deliver().await;
    net.clock.advance_secs(3600);
    home.deliver().await;
    let item = home.exchange.outbox().expect("outbox").remove(0);
    assert_eq!(item.attempts, 2);
}

#[tokio::test]
async fn a_receipt_signed_by_another_org_is_not_accepted() {
    let net = Net::new(&["RJZ", "RJ1", "RV5"]);
    let (home, other) = (net.get("RJZ"), net.get("RV5"));
    granted(&net);
    let due = home.exchange.outbox_pending().expect("outbox").due.remove(0);
    let request = home.exchange.outbox_request(&due.item).expect("request");
    // RV5 answers (it rejects the offer, which was not for it).
    let resp = other.exchange.receive(&home.node, request).expect("answered");
    let refused = home.exchange.accept_receipt(&due, resp);
    assert!(matches!(refused, Err(ReceiptError::Refused(_))), "{refused:?}");
    assert_eq!(home.exchange.outbox().expect("outbox").len(), 1, "the message stays until a valid receipt");
}

#[tokio::test]
async fn the_outbox_worker_delivers_what_is_queued_and_stops_when_told() {
    let net = pair();
    let (home, host) = (net.get("RJZ"), net.get("RJ1"));
    let mut receipts = home.exchange.receipts_stored();
    let (stop, rx) = tokio::sync::watch::channel(false);
    let worker =
        tokio::spawn(staffpass_node::exchange::outbox_worker::run(home.exchange.clone(), home.transport.clone(), rx));
    let (_, id) = granted(&net);
    receipts.wait_for(|n| *n >= 1).await.expect("a receipt is stored");
    assert_eq!(received_status(host, &id), "active");
    stop.send(true).expect("worker listening");
    worker.await.expect("worker ended cleanly");
}

// --------------------------------------------------------------- staff

#[tokio::test]
async fn an_import_with_refused_rows_stores_nothing_unless_partial() {
    let net = pair();
    let home = net.get("RJZ");
    let input =
        StaffInput { assignment_number: "12345678-1".into(), claims: fixture::sample_claims(), staff_key: None };
    let refused = staff::RowError { line: 3, column: None, code: "bad".into(), message: "bad row".into() };
    let report =
        home.exchange.import_staff(vec![(2, input.clone())], vec![refused.clone()], false, "hr").expect("report");
    assert!(report.aborted);
    assert!(home.exchange.staff_list(None, 10).expect("list").is_empty());
    let report = home.exchange.import_staff(vec![(2, input.clone())], vec![refused], true, "hr").expect("report");
    assert_eq!((report.imported, report.created, report.rejected), (1, 1, 1));
    let again = home.exchange.import_staff(vec![(2, input)], Vec::new(), false, "hr").expect("report");
    assert_eq!((again.imported, again.created, again.updated), (1, 0, 0), "an unchanged re-import updates nothing");
}

#[tokio::test]
async fn a_deleted_staff_record_is_gone() {
    let net = pair();
    let home = net.get("RJZ");
    let staff = home.import_staff("12345678-1");
    assert_eq!(home.exchange.erase_staff(&staff, "hr").expect("erased"), 0);
    assert!(matches!(home.exchange.staff(&staff), Err(Error::NoStaff(_))));
    assert!(matches!(home.exchange.erase_staff(&staff, "hr"), Err(Error::NoStaff(_))));
}

/// Erasure at the home trust: every live consent is withdrawn (the
/// receiver erases), offers still waiting are cancelled, the record and
/// every credential are gone, and the audit names only the reference.
#[tokio::test]
async fn erasing_a_member_of_staff_withdraws_everywhere_and_deletes_their_records() {
    let net = pair();
    let (home, host) = (net.get("RJZ"), net.get("RJ1"));
    let (staff, delivered) = granted(&net);
    home.deliver().await;
    let waiting = home.grant(&staff, &org("RJ1")).expect("granted").signed.consent().id;
    let cred = home.exchange.consent(&delivered).expect("consent").credential;
    assert_eq!(home.exchange.erase_staff(&staff, "hr").expect("erased"), 2);
    assert!(matches!(home.exchange.staff(&staff), Err(Error::NoStaff(_))));
    assert!(matches!(home.exchange.credential(&cred), Err(Error::NoCredential(_))));
    assert!(home.exchange.current_credential(&staff).expect("read").is_none());
    let kinds: Vec<OutKind> = home.exchange.outbox().expect("outbox").iter().map(|i| i.kind).collect();
    assert_eq!(kinds, vec![OutKind::Withdraw, OutKind::Withdraw], "no offer is sent after the erasure");
    home.deliver().await;
    assert_eq!(received_status(host, &delivered), "erased");
    assert!(host.exchange.received_one(&waiting).is_err() || received_status(host, &waiting) == "erased");
    for id in [delivered, waiting] {
        assert!(matches!(state(home, &id), ConsentState::Withdrawn { erased: Some(_), .. }), "{id}");
    }
    home.audit.verify().expect("audit intact");
    let erased = home
        .audit
        .since(0, 1000)
        .expect("audit")
        .into_iter()
        .rev()
        .find(|e| e.event.object.as_deref().is_some_and(|o| o.starts_with("erased")))
        .expect("the erasure is audited");
    assert_eq!(erased.event.staff.as_ref(), Some(&staff), "by reference only");
}

#[tokio::test]
async fn issuing_replaces_the_current_credential() {
    let net = pair();
    let home = net.get("RJZ");
    let staff = home.import_staff("12345678-1");
    assert!(home.exchange.current_credential(&staff).expect("read").is_none());
    let a = home.exchange.issue_credential(&staff, "hr").expect("issued");
    let b = home.exchange.issue_credential(&staff, "hr").expect("issued");
    assert_ne!(a.signed.body.id, b.signed.body.id);
    let current = home.exchange.current_credential(&staff).expect("read").expect("one");
    assert_eq!(current.signed.body.id, b.signed.body.id);
    assert_eq!(a.signed.body.issued_at, home.exchange.now(), "dated by the injected clock");
    assert!(b.signed.body.issued_at > a.signed.body.issued_at, "a re-issue in the same second is still later");
}

#[tokio::test]
async fn reading_what_does_not_exist_is_not_found() {
    let net = pair();
    let (home, host) = (net.get("RJZ"), net.get("RJ1"));
    let id = ConsentId::from_bytes([3; 16]);
    assert!(matches!(home.exchange.consent(&id), Err(Error::NoConsent(_))));
    assert!(matches!(host.exchange.received_one(&id), Err(Error::NoReceived(_))));
    assert_eq!(Error::NoReceived(id).code(), "not-found");
}

// ------------------------------------------------------------ more branches

#[tokio::test]
async fn a_withdrawal_or_revocation_from_another_org_is_rejected() {
    let net = Net::new(&["RJZ", "RJ1", "RV5"]);
    let (home, host, other) = (net.get("RJZ"), net.get("RJ1"), net.get("RV5"));
    let (_, id) = granted(&net);
    home.deliver().await;
    let cred = home.exchange.consent(&id).expect("consent").credential;
    // Revoked first: a withdrawn consent's receiver is not told of revocations.
    home.exchange.revoke_credential(&cred, RevocationReason::TrainingExpiry, "hr").expect("revoked");
    home.exchange.withdraw_consent(&id, "staff").expect("withdrawn");
    for kind in [OutKind::Withdraw, OutKind::Revoke] {
        let resp = host.exchange.receive(&other.node, queued(home, kind)).expect("answered");
        assert!(matches!(resp.receipt.body.outcome, Outcome::Rejected { .. }), "{kind:?}");
    }
    assert_eq!(received_status(host, &id), "active", "a stranger cannot erase or revoke");
}

#[tokio::test]
async fn a_replayed_withdrawal_gets_the_stored_receipt() {
    let net = pair();
    let (home, host) = (net.get("RJZ"), net.get("RJ1"));
    let (_, id) = granted(&net);
    home.deliver().await;
    home.exchange.withdraw_consent(&id, "staff").expect("withdrawn");
    let withdraw = queued(home, OutKind::Withdraw);
    let first = host.exchange.receive(&home.node, withdraw.clone()).expect("answered");
    let again = host.exchange.receive(&home.node, withdraw).expect("answered");
    assert_eq!(first.encode(), again.encode());
    assert_eq!(received_status(host, &id), "erased");
}

#[tokio::test]
async fn a_rejected_withdrawal_leaves_the_consent_withdrawn() {
    let mut net = pair();
    let (_, id) = granted(&net);
    net.get("RJZ").deliver().await;
    net.get("RJZ").exchange.withdraw_consent(&id, "staff").expect("withdrawn");
    // The host no longer counts the home as a member at all.
    net.roster.push(Change::Remove { org: org("RJZ") });
    let entry = net.roster.chain.entries().last().cloned().expect("entry");
    net.get("RJ1").submit(entry);
    let home = net.get("RJZ");
    home.deliver().await;
    assert!(matches!(state(home, &id), ConsentState::Withdrawn { erased: None, .. }), "no erasure confirmed");
    // Not final (rosters change): kept, re-signed, retried later.
    let items = home.exchange.outbox().expect("outbox");
    assert_eq!(items.len(), 1, "the withdrawal is retried");
    assert_eq!(items[0].last_error.as_deref(), Some("issuer-not-member"));
}

#[tokio::test]
async fn an_undecodable_outbox_item_is_left_in_place_and_nothing_is_sent() {
    let net = pair();
    let home = net.get("RJZ");
    granted(&net);
    let mut item = home.exchange.outbox().expect("outbox").remove(0);
    item.request = vec![0xff; 8];
    let mut batch = staffpass_node::store::Batch::default();
    item.put(&mut batch);
    staffpass_node::store::Store::commit(&*home.store, batch).expect("commit");
    assert_eq!(home.deliver().await, 1);
    assert_eq!(net.hub.requests(), 0, "nothing was sent");
    let left = home.exchange.outbox().expect("outbox").remove(0);
    assert_eq!(left.attempts, 0, "not counted as an attempt");
}

#[tokio::test]
async fn a_reimport_with_changed_claims_resends_to_live_consents() {
    let net = pair();
    let (home, host) = (net.get("RJZ"), net.get("RJ1"));
    let (_, id) = granted(&net);
    home.deliver().await;
    let before = host.exchange.received_one(&id).expect("held").credential;
    let mut claims = fixture::sample_claims();
    for c in &mut claims {
        if let Claim::Training(CstfSubject::FireSafety, t) = c {
            t.completed_on = home.exchange.now().date();
        }
    }
    let input = StaffInput { assignment_number: "12345678-1".into(), claims, staff_key: None };
    let report = home.exchange.import_staff(vec![(2, input)], Vec::new(), false, "hr").expect("report");
    assert_eq!(report.updated, 1);
    assert_eq!(home.deliver().await, 1);
    assert_ne!(host.exchange.received_one(&id).expect("held").credential, before);
}

#[tokio::test]
async fn staff_are_listed_in_pages() {
    let net = pair();
    let home = net.get("RJZ");
    for a in ["10000000-1", "20000000-1", "30000000-1"] {
        home.import_staff(a);
    }
    let first = home.exchange.staff_list(None, 2).expect("page");
    assert_eq!(first.len(), 2);
    let rest = home.exchange.staff_list(Some(&first[1].staff_ref), 2).expect("page");
    assert_eq!(rest.len(), 1);
    assert!(first.iter().all(|r| r.staff_ref != rest[0].staff_ref));
}

/// Records an earlier version stored under the data key alone are sealed
/// under per-record keys once, at start, and read the same afterwards.
#[tokio::test]
async fn records_of_an_earlier_version_are_sealed_under_their_own_keys() {
    use staffpass_node::store::{Batch, Store as _, Tree};
    let net = pair();
    let (home, host) = (net.get("RJZ"), net.get("RJ1"));
    let (staff, id) = granted(&net);
    home.deliver().await;
    let record = home.exchange.staff(&staff).expect("staff");
    let held = host.exchange.received_one(&id).expect("held");
    // As an earlier version wrote them: plain values under the store's sealing only.
    let mut b = Batch::new();
    b.put(Tree::Staff, staff.as_str(), staffpass_protocol::encoding::to_bytes(&record));
    home.store.commit(b).expect("legacy staff row");
    assert!(home.exchange.staff(&staff).is_err(), "a plain record does not open as a sealed one");
    let n = home.exchange.seal_legacy_records().expect("sealed");
    assert_eq!(n, 1);
    assert_eq!(home.exchange.staff(&staff).expect("reads again"), record);
    assert_eq!(home.exchange.seal_legacy_records().expect("once"), 0, "done once");
    assert_eq!(host.exchange.seal_legacy_records().expect("nothing legacy"), 0);
    assert_eq!(host.exchange.received_one(&id).expect("held").credential, held.credential);
}

/// F12: the staff member's key is theirs. Once registered, HR can neither
/// replace nor remove it (by edit or re-import), and a consent cannot name
/// another key; an admin can replace it, audited.
#[tokio::test]
async fn a_registered_staff_key_changes_only_by_an_admin() {
    let net = pair();
    let home = net.get("RJZ");
    let staff = home.import_staff("12345678-1");
    let theirs = fixture::staff("alex").public();
    let other = fixture::staff("mallory").public();
    let mut input = StaffInput {
        assignment_number: "12345678-1".into(),
        claims: fixture::sample_claims(),
        staff_key: Some(theirs),
    };
    home.exchange.put_staff(&staff, input.clone(), "hr").expect("a first key may be registered");
    input.staff_key = Some(other);
    assert!(matches!(home.exchange.put_staff(&staff, input.clone(), "hr"), Err(Error::Conflict(_))), "replaced by HR");
    input.staff_key = None;
    assert!(matches!(home.exchange.put_staff(&staff, input.clone(), "hr"), Err(Error::Conflict(_))), "removed by HR");
    input.staff_key = Some(other);
    let reimport = home.exchange.import_staff(vec![(1, input)], Vec::new(), false, "hr");
    assert!(matches!(reimport, Err(Error::Conflict(_))), "replaced by a re-import");
    assert_eq!(home.exchange.staff(&staff).expect("staff").staff_key, Some(theirs));
    let mut req = home.request(&staff, &org("RJ1"));
    req.staff_key = Some(other);
    assert!(matches!(home.exchange.grant_consent(req, "hr"), Err(Error::Invalid(_))), "a consent naming another key");
    // An admin replaces it, audited.
    let rec = home.exchange.replace_staff_key(&staff, Some(other), "cert:admin").expect("replaced");
    assert_eq!(rec.staff_key, Some(other));
    let last = home.audit.since(0, 1000).expect("audit").pop().expect("entry");
    assert_eq!(last.event.action, staffpass_node::audit::Action::Admin);
    assert_eq!(last.event.reason.as_deref(), Some("staff-key-change"));
}

/// F12: the staff member changes their own key by a change signed with
/// the key it replaces; one signed by anyone else, one signed too long
/// ago, and a replay once the key has changed are refused, and nothing
/// changes.
#[tokio::test]
async fn a_staff_member_changes_their_own_key_by_signing_with_the_old_one() {
    use staffpass_protocol::consent::StaffKeyChange;
    let net = pair();
    let home = net.get("RJZ");
    let staff = home.import_staff("12345678-1");
    let (alex, mallory, next) = (fixture::staff("alex"), fixture::staff("mallory"), fixture::staff("alex-2"));
    let input = StaffInput {
        assignment_number: "12345678-1".into(),
        claims: fixture::sample_claims(),
        staff_key: Some(alex.public()),
    };
    home.exchange.put_staff(&staff, input, "hr").expect("registered");
    let now = home.exchange.now();
    let change =
        |at| StaffKeyChange { staff: staff.clone(), old: alex.public(), new: Some(next.public()), signed_at: at };
    let forged = mallory.sign(&change(now));
    assert!(matches!(
        home.exchange.change_staff_key(&staff, Some(next.public()), now, &forged, "hr"),
        Err(Error::BadStaffSignature)
    ));
    let stale_at = now.plus_secs(-3600);
    let stale = alex.sign(&change(stale_at));
    assert!(matches!(
        home.exchange.change_staff_key(&staff, Some(next.public()), stale_at, &stale, "hr"),
        Err(Error::Invalid(_))
    ));
    assert_eq!(home.exchange.staff(&staff).expect("staff").staff_key, Some(alex.public()), "changed by a refusal");
    let good = alex.sign(&change(now));
    let rec = home.exchange.change_staff_key(&staff, Some(next.public()), now, &good, "hr").expect("changed");
    assert_eq!(rec.staff_key, Some(next.public()));
    let last = home.audit.since(0, 1000).expect("audit").pop().expect("entry");
    assert_eq!(last.event.reason.as_deref(), Some("staff-key-change-signed"));
    // A replay of the same signed change no longer verifies: the old key is not the registered one.
    let back = StaffKeyChange { staff: staff.clone(), old: alex.public(), new: Some(alex.public()), signed_at: now };
    assert!(home.exchange.change_staff_key(&staff, Some(alex.public()), now, &alex.sign(&back), "hr").is_err());
    assert_eq!(home.exchange.staff(&staff).expect("staff").staff_key, Some(next.public()));
}

/// A receipt from RJ1 rejecting `due` for `reason`, signed with RJ1's key
/// (as a host would answer).
fn rejection_from_rj1(
    due: &staffpass_node::exchange::outbox::Due,
    reason: Rejection,
    net: &Net,
) -> staffpass_protocol::wire::exchange::Response {
    let key = fixture::issuer("RJ1", 0);
    let receipt = staffpass_protocol::receipt::Receipt {
        message: due.item.id,
        receiver: org("RJ1"),
        outcome: Outcome::Rejected { reason },
        at: net.get("RJ1").exchange.now(),
        issuer_key: key.public(),
    };
    staffpass_protocol::wire::exchange::Response { receipt: staffpass_protocol::Signed::new(receipt, |b| key.sign(b)) }
}

/// F4(a): a withdrawal the receiver rejects for a reason that can pass
/// (here: the home's key not yet valid there, as after a key rotation the
/// roster has not caught up with) is not dropped: it is re-signed under a
/// new message id and retried with backoff until the receiver erases. A
/// final rejection (the receiver holds another member's passport under
/// that id) is not retried.
#[tokio::test]
async fn a_rejected_withdrawal_is_re_signed_and_retried_until_it_is_erased() {
    let net = pair();
    let (home, host) = (net.get("RJZ"), net.get("RJ1"));
    let (_, id) = granted(&net);
    home.deliver().await;
    home.exchange.withdraw_consent(&id, "staff").expect("withdrawn");
    let due = home.exchange.outbox_pending().expect("outbox").due.remove(0);
    assert_eq!(due.item.kind, OutKind::Withdraw);
    let resp = rejection_from_rj1(&due, Rejection::IssuerKeyNotYetValid, &net);
    home.exchange.accept_receipt(&due, resp).expect("recorded");
    let items = home.exchange.outbox().expect("outbox");
    assert_eq!(items.len(), 1, "the withdrawal is kept");
    let retry = &items[0];
    assert_eq!(retry.kind, OutKind::Withdraw);
    assert_ne!(retry.id, due.item.id, "a new message id: the receiver answers a replay with its stored receipt");
    assert_eq!(retry.last_error.as_deref(), Some("issuer-key-not-yet-valid"));
    assert_eq!(home.deliver().await, 0, "not before its backoff");
    net.clock.advance_secs(3600);
    assert_eq!(home.deliver().await, 1);
    assert_eq!(received_status(host, &id), "erased");
    assert!(matches!(state(home, &id), ConsentState::Withdrawn { erased: Some(_), .. }));
    assert!(home.exchange.outbox().expect("outbox").is_empty());

    // A final rejection is recorded and not retried.
    let (_, other) = {
        let staff = home.import_staff("22345678-1");
        let c = home.grant(&staff, &org("RJ1")).expect("granted");
        (staff, c.signed.consent().id)
    };
    home.deliver().await;
    home.exchange.withdraw_consent(&other, "staff").expect("withdrawn");
    let due = home.exchange.outbox_pending().expect("outbox").due.remove(0);
    let resp = rejection_from_rj1(&due, Rejection::ConsentMismatch, &net);
    home.exchange.accept_receipt(&due, resp).expect("recorded");
    assert!(home.exchange.outbox().expect("outbox").is_empty(), "a final rejection is not retried");
}

/// F4(c): an offer and the withdrawal of the same consent arriving at
/// once, 200 times on two threads: every passport ends erased (or never
/// stored), never active with the home holding an erasure receipt.
#[tokio::test]
async fn racing_offers_and_withdrawals_always_end_without_the_passport() {
    let net = pair();
    let (home, host) = (net.get("RJZ"), net.get("RJ1"));
    let staff = home.import_staff("12345678-1");
    let mut pairs = Vec::new();
    for _ in 0..200 {
        let id = home.grant(&staff, &org("RJ1")).expect("granted").signed.consent().id;
        let offer = home.exchange.outbox().expect("outbox").into_iter().find(|i| i.consent == id).expect("offer");
        let offer = home.exchange.outbox_request(&offer).expect("offer request");
        home.exchange.withdraw_consent(&id, "staff").expect("withdrawn");
        let w = home.exchange.outbox().expect("outbox").into_iter().find(|i| i.consent == id).expect("withdrawal");
        assert_eq!(w.kind, OutKind::Withdraw);
        let withdraw = home.exchange.outbox_request(&w).expect("withdrawal request");
        pairs.push((id, offer, withdraw));
    }
    for (id, offer, withdraw) in pairs {
        let start = std::sync::Arc::new(std::sync::Barrier::new(2));
        let run = |request: Request| {
            let (host, node, start) = (host.exchange.clone(), home.node.clone(), start.clone());
            std::thread::spawn(move || {
                start.wait();
                host.receive(&node, request).expect("answered")
            })
        };
        let (a, b) = (run(offer), run(withdraw));
        a.join().expect("offer thread");
        let erased = b.join().expect("withdrawal thread");
        assert!(matches!(erased.receipt.body.outcome, Outcome::Erased { .. }));
        if let Ok(view) = host.exchange.received_one(&id) {
            assert_ne!(view.status, "active", "consent {id}: the passport outlived its withdrawal");
        }
    }
}

/// Retention at the home: credentials that were revoked and consents whose
/// erasure was confirmed are deleted `home_keep_days` after they ended;
/// a live consent, one still waiting for its erasure receipt, and the
/// credentials they reference are kept. Nothing goes before its time.
#[tokio::test]
async fn the_home_deletes_ended_consents_and_revoked_credentials_after_its_retention() {
    let settings = staffpass_node::exchange::Settings { home_keep_days: 10, ..Default::default() };
    let net = Net::with_settings(&["RJZ", "RJ1"], &settings);
    let home = net.get("RJZ");
    let (ended, live, waiting) =
        (home.import_staff("10000001-1"), home.import_staff("10000002-1"), home.import_staff("10000003-1"));
    let c_ended = home.grant(&ended, &org("RJ1")).expect("granted").signed.consent().id;
    let mut long = home.request(&live, &org("RJ1"));
    long.not_after = home.exchange.now().plus_days(60);
    let c_live = home.exchange.grant_consent(long, "hr").expect("granted").signed.consent().id;
    let c_waiting = home.grant(&waiting, &org("RJ1")).expect("granted").signed.consent().id;
    home.deliver().await;
    home.exchange.withdraw_consent(&c_ended, "hr").expect("withdrawn");
    home.deliver().await;
    assert!(matches!(state(home, &c_ended), ConsentState::Withdrawn { erased: Some(_), .. }));
    home.exchange.revoke_staff(&ended, RevocationReason::LeavingOrganisation, "hr").expect("revoked");
    home.deliver().await;
    let ended_cred = home.exchange.current_credential(&ended).expect("read").expect("issued").signed.body.id;
    // Its withdrawal is never delivered: no erasure receipt comes.
    home.exchange.withdraw_consent(&c_waiting, "hr").expect("withdrawn");

    assert_eq!(home.exchange.apply_retention().expect("retention"), Default::default(), "nothing is due yet");
    net.clock.advance_secs(11 * 86_400);
    let done = home.exchange.apply_retention().expect("retention");
    assert_eq!((done.consents, done.credentials), (1, 1), "{done:?}");
    assert!(matches!(home.exchange.consent(&c_ended), Err(Error::NoConsent(_))));
    assert!(matches!(home.exchange.credential(&ended_cred), Err(Error::NoCredential(_))));
    assert!(home.exchange.current_credential(&ended).expect("read").is_none());
    assert!(home.exchange.consent(&c_live).is_ok(), "a live consent is kept");
    let w = home.exchange.consent(&c_waiting).expect("a withdrawal awaiting its erasure receipt is kept");
    assert!(home.exchange.credential(&w.credential).is_ok(), "with the credential it references");
    let last = home.audit.since(0, 1000).expect("audit").pop().expect("entry");
    assert_eq!(last.event.reason.as_deref(), Some("retention"));
    assert_eq!(last.event.object.as_deref(), Some("credentials=1,consents=1"));
    assert_eq!(home.exchange.apply_retention().expect("again"), Default::default(), "idempotent");
}

/// Every row fault of a staff import has its own code, by line, and a file
/// that cannot be read as a whole is one file error (`TESTING.md`, imports).
#[test]
fn each_bad_import_row_and_file_gets_its_code() {
    let today: staffpass_protocol::Date = "2026-06-01".parse().unwrap();
    let header = "assignment_number,full_name,ni_number,date_of_birth,job_role,assignment_start,\
                  registration_body,registration_number,dbs_level,dbs_certificate,dbs_issued,dbs_update_service,\
                  references_checked,references_count,training:fire-safety/completed,\
                  training:fire-safety/refresher_months,training:fire-safety/level";
    let row = |assignment: &str, edit: &dyn Fn(&mut Vec<String>)| {
        let mut cells: Vec<String> = [
            assignment,
            "Ann Example",
            "ZZ100001A",
            "1990-01-01",
            "Nurse",
            "2024-01-01",
            "NMC",
            "12A3456E",
            "enhanced",
            "001234567890",
            "2024-01-01",
            "yes",
            "2024-01-01",
            "2",
            "2025-01-01",
            "12",
            "1",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        edit(&mut cells);
        cells.join(",")
    };
    let rows = [
        row("10000001-1", &|_| {}),
        row("10000002-1", &|c| c[11] = "maybe".into()),
        row("10000003-1", &|c| c[13] = "two".into()),
        row("10000004-1", &|c| c[6] = "XYZ".into()),
        row("10000005-1", &|c| c[8] = "super".into()),
        row("1000 0006", &|_| {}),
        row("10000007-1", &|c| c[10] = "2099-01-01".into()),
        row("10000008-1", &|c| c[1] = String::new()),
        row("10000009-1", &|c| c.truncate(5)),
        row("10000010-1", &|c| c[16] = "0".into()),
        row("10000011-1", &|c| c[15] = String::new()),
        row("10000012-1", &|c| c[3] = "1905-01-01".into()),
    ];
    let csv = format!("{header}\n{}\n", rows.join("\n"));
    let (good, errors) = staff::parse_csv(csv.as_bytes(), today).expect("the file is readable");
    assert_eq!(good.iter().map(|(line, _)| *line).collect::<Vec<_>>(), [2], "only the first row is good");
    let got: Vec<(u64, &str)> = errors.iter().map(|e| (e.line, e.code.as_str())).collect();
    assert_eq!(
        got,
        [
            (3, "bad-flag"),
            (4, "bad-number"),
            (5, "bad-regulator"),
            (6, "bad-dbs-level"),
            (7, "bad-assignment-number"),
            (8, "future-date"),
            (9, "missing"),
            (10, "bad-csv"),
            (11, "invalid-claim"),
            (12, "missing"),
            (13, "bad-date"),
        ]
    );

    // The same file with other line endings, CRLF and a lone CR (as old Mac
    // spreadsheets write), reports the same lines (found by fuzzing: with a
    // lone CR every row was reported as line 1).
    for eol in ["\r\n", "\r"] {
        let other = csv.replace('\n', eol);
        let (g, e) = staff::parse_csv(other.as_bytes(), today).expect("the file is readable");
        assert_eq!(g.iter().map(|(line, _)| *line).collect::<Vec<_>>(), [2], "{eol:?}");
        assert_eq!(e.iter().map(|e| (e.line, e.code.as_str())).collect::<Vec<_>>(), got, "{eol:?}");
    }

    // The header: a column twice, a required column missing, an empty file.
    for bad in [format!("{header},dbs_level\n"), "assignment_number,full_name\n".to_string(), String::new()] {
        assert!(matches!(staff::parse_csv(bad.as_bytes(), today), Err(staff::FileError::Header(_))), "{bad:?}");
    }

    // JSON: not an array is a file error; a record of the wrong shape, a
    // claim twice and an assignment number seen before are row errors.
    let input = good[0].1.clone();
    let mut twice = serde_json::to_value(&input).unwrap();
    let first = twice["claims"][0].clone();
    twice["claims"].as_array_mut().unwrap().push(first);
    twice["assignment_number"] = "10000013-1".into();
    let body = serde_json::json!([input, {"assignment_number": 7}, twice, input]);
    let (good, errors) = staff::parse_json(&serde_json::to_vec(&body).unwrap(), today).expect("an array");
    assert_eq!(good.len(), 1);
    let got: Vec<(u64, &str)> = errors.iter().map(|e| (e.line, e.code.as_str())).collect();
    assert_eq!(got, [(2, "bad-record"), (3, "duplicate-claim"), (4, "duplicate-assignment")]);
    for bad in [&b"{\"not\": \"an array\"}"[..], b"[", b"\xff\xfe"] {
        assert!(matches!(staff::parse_json(bad, today), Err(staff::FileError::Json(_))));
    }

    // One row more than an import takes, as CSV and as JSON: the whole file is refused.
    let over = staff::MAX_ROWS + 1;
    let csv = format!("{header}\n{}", "x\n".repeat(over));
    assert!(matches!(staff::parse_csv(csv.as_bytes(), today), Err(staff::FileError::TooManyRows { .. })));
    let json = format!("[{}0]", "0,".repeat(over - 1));
    assert!(matches!(staff::parse_json(json.as_bytes(), today), Err(staff::FileError::TooManyRows { .. })));
}

/// Found by the crash torture: two re-issues within one second tied on
/// `issued_at`, so when the older offer arrived last (a retry after a
/// kill) it replaced the newer passport. Each re-issue is now strictly
/// later than the one it replaces, and the receiver keeps the newest
/// whatever the order of arrival.
#[tokio::test]
async fn reissues_within_one_second_keep_their_order_at_the_receiver() {
    let net = pair();
    let (home, host) = (net.get("RJZ"), net.get("RJ1"));
    let (staff, id) = granted(&net);
    home.deliver().await;
    let mut offers = reissue_twice(home, &staff);
    let newest = home.exchange.consent(&id).expect("consent").credential;
    let (older, newer) = (offers.remove(0), offers.remove(0));
    host.exchange.receive(&home.node, newer).expect("answered");
    host.exchange.receive(&home.node, older).expect("answered");
    assert_eq!(host.exchange.received_one(&id).expect("held").credential, newest, "rolled back within one second");
}

/// A large import is stored in chunks, each its own commit and audit entry
/// (what an import holds in memory is bounded), and a row that would
/// replace a registered staff key refuses the whole file before any chunk
/// is written, wherever that row is.
#[tokio::test]
async fn a_large_import_is_stored_in_chunks_and_refused_whole_before_any() {
    let net = pair();
    let home = net.get("RJZ");
    let row = |i: usize, key| {
        let input = StaffInput {
            assignment_number: format!("{:08}-1", 10_000_000 + i),
            claims: fixture::sample_claims(),
            staff_key: key,
        };
        (i as u64 + 2, input)
    };
    let registered = home.import_staff("12345678-1");
    let theirs = fixture::staff("alex").public();
    let mut input = StaffInput {
        assignment_number: "12345678-1".into(),
        claims: fixture::sample_claims(),
        staff_key: Some(theirs),
    };
    home.exchange.put_staff(&registered, input.clone(), "hr").expect("key registered");
    let before = home.audit.head().seq;
    // 4,500 new rows, the last one replacing the registered key.
    let mut rows: Vec<_> = (0..4_500).map(|i| row(i, None)).collect();
    input.staff_key = Some(fixture::staff("mallory").public());
    rows.push((9_999, input));
    let refused = home.exchange.import_staff(rows, Vec::new(), false, "hr");
    assert!(matches!(refused, Err(Error::Conflict(_))), "{refused:?}");
    assert_eq!(home.audit.head().seq, before, "nothing of the refused file was committed");
    assert_eq!(home.exchange.staff_list(None, 10_000).expect("list").len(), 1);

    let rows: Vec<_> = (0..4_500).map(|i| row(i, None)).collect();
    let report = home.exchange.import_staff(rows, Vec::new(), false, "hr").expect("import");
    assert_eq!((report.imported, report.created), (4_500, 4_500));
    assert_eq!(home.exchange.staff_list(None, 10_000).expect("list").len(), 4_501);
    let parts: Vec<String> = home
        .audit
        .since(before + 1, 100)
        .expect("audit")
        .into_iter()
        .filter(|e| e.event.action == staffpass_node::audit::Action::Import)
        .filter_map(|e| e.event.object)
        .collect();
    assert_eq!(parts.len(), 3, "three chunks of at most 2,000 rows: {parts:?}");
    assert!(parts[0].contains("created=2000") && parts[0].ends_with("part=1/3"), "{parts:?}");
    assert!(parts[2].contains("created=500") && parts[2].ends_with("part=3/3"), "{parts:?}");
}
