//! Passport exchange end to end (issue 5): home trust RJZ, host trust RJ1
//! (and RV5), real nodes on real sockets, the API as HR uses it.

#![allow(clippy::unwrap_used)] // test code: a failed unwrap is a failed test

use serde_json::{Value, json};
use staffpass_api::audit::{self, AuditQuery, Verification};
use staffpass_api::consents::{ConsentRequest, ConsentState, ConsentView};
use staffpass_api::credentials::RevokeRequest;
use staffpass_api::data_dir as paths;
use staffpass_api::received::ReceivedView;
use staffpass_api::staff::{ImportFormat, ImportQuery, ImportReport, PageQuery};
use staffpass_protocol::bundle::Rejection;
use staffpass_protocol::claims::ClaimKind;
use staffpass_protocol::revocation::RevocationReason;
use staffpass_protocol::roster::Change;
use staffpass_protocol::roster::MoveKind;
use staffpass_protocol::testkit::{self, RosterBuilder};
use staffpass_protocol::wire::exchange;
use staffpass_protocol::{ConsentId, StaffRef};
use staffpass_protocol::{MessageId, Timestamp};
use staffpass_tests::raw::RawPeer;
use staffpass_tests::{
    TestNode, add_members, any_file_contains, now, raw_member, staff_csv, submit, submit_entry, wait_until,
};

const ALEX: (&str, &str, &str) = ("12345678-1", "Alex Testperson", "ZZ123456A");

async fn pair() -> (TestNode, TestNode, RosterBuilder) {
    staffpass_tests::connected_pair("RJZ", "RJ1").await
}

async fn import(node: &TestNode, csv: &str) -> ImportReport {
    node.admin().import_staff(ImportFormat::Csv, csv.as_bytes().to_vec(), ImportQuery::default()).await.unwrap()
}

async fn staff_refs(node: &TestNode) -> Vec<StaffRef> {
    let list = node.admin().staff_list(&PageQuery::default()).await.unwrap();
    list.into_iter().map(|s| s.staff_ref).collect()
}

/// A consent request for `staff` to share `claims` with `to` under london-mou.
fn consent_request(staff: &StaffRef, to: &str, claims: &[&str], until: Timestamp) -> ConsentRequest {
    ConsentRequest {
        staff: staff.clone(),
        receiver: to.parse().unwrap(),
        agreement: "london-mou".parse().unwrap(),
        move_kind: MoveKind::Rotation,
        claims: claims.iter().map(|c| c.parse::<ClaimKind>().unwrap()).collect(),
        not_before: None,
        not_after: until,
        staff_key: None,
    }
}

async fn grant(a: &TestNode, staff: &StaffRef, to: &str, claims: &[&str], until: Timestamp) -> ConsentView {
    a.admin().grant_consent(&consent_request(staff, to, claims, until)).await.unwrap()
}

/// Waits until `a` holds the erasure receipt of its withdrawn consent `id`.
async fn wait_erased(a: &TestNode, id: &ConsentId) {
    let admin = a.admin();
    wait_until("the erasure receipt comes back", || {
        let admin = admin.clone();
        async move {
            admin
                .consent(id)
                .await
                .map(|v| matches!(v.state, ConsentState::Withdrawn { erased: Some(_), .. }))
                .unwrap_or(false)
        }
    })
    .await;
}

async fn consent_state(a: &TestNode, id: &ConsentId) -> ConsentView {
    a.admin().consent(id).await.unwrap()
}

async fn wait_state(a: &TestNode, id: &ConsentId, state: &str) -> ConsentView {
    let admin = a.admin();
    wait_until(&format!("consent {id} is {state}"), || {
        let admin = admin.clone();
        async move { admin.consent(id).await.map(|v| v.state.name() == state).unwrap_or(false) }
    })
    .await;
    consent_state(a, id).await
}

async fn received(b: &TestNode) -> Vec<ReceivedView> {
    b.admin().received().await.unwrap()
}

fn consent_id(v: &ConsentView) -> ConsentId {
    v.consent.id
}

fn audit_has(entries: &[audit::Entry], action: &str, object_part: &impl ToString) -> usize {
    let part = object_part.to_string();
    entries
        .iter()
        .filter(|e| e.event.action == action && e.event.object.as_deref().is_some_and(|o| o.contains(&part)))
        .count()
}

async fn audit(node: &TestNode) -> Vec<audit::Entry> {
    node.admin().audit(AuditQuery { since: 0, limit: 10_000 }).await.unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_passport_moves_with_exactly_the_consented_claims() {
    let (a, b, _r) = pair().await;
    let report = import(&a, &staff_csv(&[ALEX])).await;
    assert_eq!(report.imported, 1, "{report:?}");
    let staff = staff_refs(&a).await.remove(0);
    let cred = a.admin().issue_credential(&staff).await.unwrap();
    assert_eq!(cred.claims.len(), 14);

    let claims = ["identity", "dbs", "training:fire-safety"];
    let c = grant(&a, &staff, "RJ1", &claims, now().plus_days(30)).await;
    let id = consent_id(&c);
    let done = wait_state(&a, &id, "delivered").await;

    // The host sees exactly the three consented claims, verified.
    let list = received(&b).await;
    assert_eq!(list.len(), 1);
    let one = b.admin().received_one(&id).await.unwrap();
    let mut got: Vec<&str> = one.claims.iter().map(|c| c.claim.as_str()).collect();
    got.sort();
    assert_eq!(got, ["dbs", "identity", "training:fire-safety"]);
    assert_eq!(one.issuer.to_string(), "RJZ");
    assert_eq!(one.status, "active");
    let text = serde_json::to_string(&one).unwrap();
    assert!(text.contains("Alex Testperson"), "the host reads the disclosed identity");
    assert!(!text.contains("7654321"), "undisclosed registration number must not travel");

    // The home holds a receipt signed by the host's issuer key.
    assert_eq!(done.receipts.len(), 1);
    let receipt = &done.receipts[0];
    assert_eq!(receipt.body.receiver.to_string(), "RJ1");
    b.issuer.verify(&receipt.body, &receipt.signature).expect("receipt signed by RJ1");

    // Both audit logs record it and verify.
    assert!(audit_has(&audit(&a).await, "receipt", &id) >= 1);
    assert_eq!(audit_has(&audit(&b).await, "receipt", &id), 1);
    for n in [&a, &b] {
        let v = n.admin().verify_audit().await.unwrap();
        assert!(matches!(v, Verification::Intact { ok: true, .. }), "{v:?}");
    }
    // The staff member's own history shows where their data went.
    let activity = a.admin().activity(&staff).await.unwrap();
    for action in ["import", "issue", "consent", "offer", "receipt"] {
        assert!(activity.iter().any(|e| e.event.action == action) || action == "import", "{action} in {activity:?}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn offers_wait_in_the_outbox_and_arrive_exactly_once() {
    let (mut a, mut b, _r) = pair().await;
    import(&a, &staff_csv(&[ALEX, ("22222222-1", "Bo Example", "ZZ654321B")])).await;
    let refs = staff_refs(&a).await;

    // The receiver is down when consent is granted.
    b.stop().await;
    let first = consent_id(&grant(&a, &refs[0], "RJ1", &["identity"], now().plus_days(30)).await);
    let a2 = a.admin();
    wait_until("the offer is retried while the receiver is down", || {
        let a2 = a2.clone();
        async move {
            let items = a2.outbox().await.unwrap_or_default();
            items.first().is_some_and(|i| i.attempts >= 1)
        }
    })
    .await;
    b.restart().await.unwrap();
    wait_state(&a, &first, "delivered").await;

    // The sender goes down after writing the outbox, before it could send.
    b.stop().await;
    let second = consent_id(&grant(&a, &refs[1], "RJ1", &["identity", "dbs"], now().plus_days(30)).await);
    a.stop().await;
    b.restart().await.unwrap();
    a.restart().await.unwrap();
    wait_state(&a, &second, "delivered").await;

    let list = received(&b).await;
    assert_eq!(list.len(), 2, "each passport stored once: {list:?}");
    let log = audit(&b).await;
    assert_eq!(audit_has(&log, "receipt", &first), 1, "first delivered exactly once");
    assert_eq!(audit_has(&log, "receipt", &second), 1, "second delivered exactly once");
    let out = a.admin().outbox().await.unwrap();
    assert!(out.is_empty(), "outbox drained: {out:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn withdrawal_erases_at_the_receiver_and_returns_an_erasure_receipt() {
    let (mut a, mut b, _r) = pair().await;
    import(&a, &staff_csv(&[ALEX])).await;
    let staff = staff_refs(&a).await.remove(0);
    let id = consent_id(&grant(&a, &staff, "RJ1", &["identity", "dbs"], now().plus_days(30)).await);
    wait_state(&a, &id, "delivered").await;

    let w = a.admin().withdraw_consent(&id).await.unwrap();
    assert_eq!(w.state.name(), "withdrawn");
    wait_erased(&a, &id).await;
    let done = consent_state(&a, &id).await;
    assert!(
        done.receipts.iter().any(|r| matches!(r.body.outcome, staffpass_protocol::receipt::Outcome::Erased { .. })),
        "{done:?}"
    );
    let one = b.admin().received_one(&id).await.unwrap();
    assert_eq!(one.status, "erased");
    assert!(one.claims.is_empty());

    // Nothing personal in the receiver's files; the scan itself works.
    a.stop().await;
    b.stop().await;
    let db = paths::db(&b.config.data_dir);
    assert!(any_file_contains(&db, b"london-mou"), "control: the raw scan finds plain roster data");
    for needle in [&b"Alex Testperson"[..], b"ZZ123456A", b"001234567890"] {
        assert!(!any_file_contains(&db, needle), "personal data found in the receiver's files");
    }
}

/// The test's personal data, as it could appear in raw files.
const PERSONAL: [&[u8]; 3] = [b"Alex Testperson", b"ZZ123456A", b"001234567890"];

/// Stops `nodes`, scans each one's whole data directory for the test's
/// personal data (with a control that the scan finds plain data), and
/// starts them again.
async fn scan_clean(nodes: &mut [&mut TestNode], when: &str) {
    for n in nodes.iter_mut() {
        n.stop().await;
    }
    for n in nodes.iter() {
        let dir = &n.config.data_dir;
        assert!(any_file_contains(dir, b"london-mou"), "control: the raw scan finds plain roster data");
        for needle in PERSONAL {
            assert!(
                !any_file_contains(dir, needle),
                "{when}: {} found in clear in {}'s files",
                String::from_utf8_lossy(needle),
                n.org
            );
        }
    }
    for n in nodes.iter_mut() {
        n.restart().await.unwrap();
    }
}

/// F2: no personal data in clear at either node at any moment: while an
/// offer waits at the home (receiver down), after delivery, after
/// withdrawal and erasure.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_personal_data_in_clear_at_either_node_at_any_moment() {
    let (mut a, mut b, _r) = pair().await;
    b.stop().await;
    import(&a, &staff_csv(&[ALEX])).await;
    let staff = staff_refs(&a).await.remove(0);
    let id = consent_id(&grant(&a, &staff, "RJ1", &["identity", "dbs"], now().plus_days(30)).await);
    assert!(!a.admin().outbox().await.unwrap().is_empty(), "the offer waits for the receiver");
    scan_clean(&mut [&mut a], "offer waiting at the home").await;
    b.restart().await.unwrap();
    wait_state(&a, &id, "delivered").await;
    scan_clean(&mut [&mut a, &mut b], "after delivery").await;
    a.admin().withdraw_consent(&id).await.unwrap();
    wait_erased(&a, &id).await;
    scan_clean(&mut [&mut a, &mut b], "after withdrawal").await;
}

/// The received passport's raw value in the receiver's store (read with
/// sled itself, the node stopped): its store key and sealed bytes.
fn raw_received(node: &TestNode) -> (Vec<u8>, Vec<u8>) {
    let db = sled::open(paths::db(&node.config.data_dir)).unwrap();
    let (k, v) = db.open_tree("received").unwrap().scan_prefix(b"p/").next().expect("a held passport").unwrap();
    (k.to_vec(), v.to_vec())
}

/// F5: erasure is crypto-shredding. Once the receiver erased a passport,
/// its old ciphertext (as sled may keep it in its log) opens with nothing
/// the node still holds: `data.key` opens the store's layer, but the
/// passport's own key is gone from the record-key file. The control: the
/// copy of that file taken before the erasure (a backup) still opens it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_erased_passport_cannot_be_recovered_with_any_key_the_node_still_holds() {
    use staffpass_node::store::{RecordKeys, Tree, open_sealed, record_keys};
    let (a, mut b, _r) = pair().await;
    import(&a, &staff_csv(&[ALEX])).await;
    let staff = staff_refs(&a).await.remove(0);
    let id = consent_id(&grant(&a, &staff, "RJ1", &["identity", "dbs"], now().plus_days(30)).await);
    wait_state(&a, &id, "delivered").await;
    b.stop().await;
    let (k, sealed) = raw_received(&b);
    let keys_file = b.config.data_dir.join(record_keys::FILE);
    let backup = b.config.data_dir.join("record-keys.backup");
    std::fs::copy(&keys_file, &backup).unwrap();
    b.restart().await.unwrap();

    a.admin().withdraw_consent(&id).await.unwrap();
    wait_erased(&a, &id).await;
    b.stop().await;

    let data_key = staffpass_node::keys::KeyFiles::load(&paths::keys(&b.config.data_dir)).unwrap();
    let inner = open_sealed(data_key.data(), Tree::Received, &k, &sealed).expect("data.key opens the store's layer");
    let now_held = RecordKeys::open(&keys_file, data_key.data()).unwrap();
    assert!(
        record_keys::open_record(&now_held, Tree::Received, &k, &inner).is_err(),
        "the erased passport opened with the keys the node still holds"
    );
    // Control: the keys as they were before the erasure do open it.
    let before = RecordKeys::open(&backup, data_key.data()).unwrap();
    let plain = record_keys::open_record(&before, Tree::Received, &k, &inner).expect("the backup opens it");
    assert!(plain.windows(PERSONAL[0].len()).any(|w| w == PERSONAL[0]), "the record holds the name");
}

/// The record-key file is a journal, appended to per key: a copy of it
/// from before a passport arrived (an older backup put back, or the file
/// cut at a frame boundary) opens by itself, but lacks the key of a
/// passport the store holds, so the node refuses to start (naming the
/// file) instead of treating that passport as erased; the current file
/// put back, it starts and shows both.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_record_key_file_missing_a_held_passports_key_refuses_to_start() {
    use staffpass_node::store::record_keys;
    let (a, mut b, _r) = pair().await;
    let sam = ("12345679-1", "Sam Otherperson", "ZZ123457B");
    import(&a, &staff_csv(&[ALEX, sam])).await;
    let staff = staff_refs(&a).await;
    let first = consent_id(&grant(&a, &staff[0], "RJ1", &["identity"], now().plus_days(30)).await);
    wait_state(&a, &first, "delivered").await;
    b.stop().await;
    let keys_file = b.config.data_dir.join(record_keys::FILE);
    let older = std::fs::read(&keys_file).unwrap();
    b.restart().await.unwrap();
    let second = consent_id(&grant(&a, &staff[1], "RJ1", &["identity"], now().plus_days(30)).await);
    wait_state(&a, &second, "delivered").await;
    b.stop().await;
    let current = std::fs::read(&keys_file).unwrap();
    assert!(current.starts_with(&older), "the second key was appended to the file");

    std::fs::write(&keys_file, &older).unwrap();
    let err = match staffpass_node::node::Node::start(b.config.clone()).await {
        Ok(_) => panic!("a node whose key file lacks a held passport's key started"),
        Err(e) => e.to_string(),
    };
    assert!(err.contains("record-keys") && err.contains("lacks the keys of 1 records"), "{err}");
    std::fs::write(&keys_file, &current).unwrap();
    b.restart().await.unwrap();
    for id in [&first, &second] {
        assert_eq!(b.admin().received_one(id).await.unwrap().status, "active");
    }
}

/// Erasure at the home trust (`DELETE /v1/staff/{ref}`): the receiver is
/// told and erases; the home's own copy of the staff record, as sled may
/// keep it in its log, opens with nothing the home still holds. Control:
/// the record-key file as it was before the erasure opens it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn erasing_a_member_of_staff_at_home_shreds_their_records() {
    use staffpass_node::store::{RecordKeys, Tree, open_sealed, record_keys};
    let (mut a, b, _r) = pair().await;
    import(&a, &staff_csv(&[ALEX])).await;
    let staff = staff_refs(&a).await.remove(0);
    let id = consent_id(&grant(&a, &staff, "RJ1", &["identity", "dbs"], now().plus_days(30)).await);
    wait_state(&a, &id, "delivered").await;
    a.stop().await;
    let (k, sealed) = {
        let db = sled::open(paths::db(&a.config.data_dir)).unwrap();
        let (k, v) = db.open_tree("staff").unwrap().iter().next().expect("the staff record").unwrap();
        (k.to_vec(), v.to_vec())
    };
    let keys_file = a.config.data_dir.join(record_keys::FILE);
    let backup = a.config.data_dir.join("record-keys.backup");
    std::fs::copy(&keys_file, &backup).unwrap();
    a.restart().await.unwrap();

    a.admin().delete_staff(&staff).await.unwrap();
    assert!(a.admin().staff(&staff).await.is_err(), "the record is gone");
    let host = b.admin();
    wait_until("the receiver erases", || {
        let host = host.clone();
        async move { host.received_one(&id).await.map(|v| v.status == "erased").unwrap_or(false) }
    })
    .await;
    a.stop().await;
    let keys = staffpass_node::keys::KeyFiles::load(&paths::keys(&a.config.data_dir)).unwrap();
    let inner = open_sealed(keys.data(), Tree::Staff, &k, &sealed).expect("data.key opens the store's layer");
    let key_id = format!("s/{staff}").into_bytes();
    let held = RecordKeys::open(&keys_file, keys.data()).unwrap();
    assert!(record_keys::open_as(&held, &key_id, Tree::Staff, &k, &inner).is_err(), "the erased record opened");
    let before = RecordKeys::open(&backup, keys.data()).unwrap();
    let plain = record_keys::open_as(&before, &key_id, Tree::Staff, &k, &inner).expect("the backup opens it");
    assert!(plain.windows(PERSONAL[0].len()).any(|w| w == PERSONAL[0]), "the record holds the name");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_receiver_erases_by_itself_when_the_consent_ends() {
    let (a, b, _r) = pair().await;
    import(&a, &staff_csv(&[ALEX])).await;
    let staff = staff_refs(&a).await.remove(0);
    let id = consent_id(&grant(&a, &staff, "RJ1", &["identity"], now().plus_secs(3)).await);
    wait_state(&a, &id, "delivered").await;
    let admin = b.admin();
    wait_until("the host erases the passport when the consent ends", || {
        let admin = admin.clone();
        async move { admin.received_one(&id).await.map(|v| v.status == "erased").unwrap_or(false) }
    })
    .await;
    let one = b.admin().received_one(&id).await.unwrap();
    assert_eq!(one.reason.as_deref(), Some("expired"));
    assert_eq!(audit(&b).await.iter().filter(|e| e.event.action == "expiry").count(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn revocation_with_every_reason_reaches_every_receiver() {
    let (a, b, c, _r) = staffpass_tests::trio().await;
    let reasons = staffpass_protocol::revocation::RevocationReason::ALL;
    let people: Vec<(String, String, String)> =
        (0..reasons.len()).map(|i| (format!("3000000{i}-1"), format!("Person {i}"), format!("ZZ10000{i}A"))).collect();
    let rows: Vec<(&str, &str, &str)> = people.iter().map(|(a, n, ni)| (a.as_str(), n.as_str(), ni.as_str())).collect();
    import(&a, &staff_csv(&rows)).await;
    let refs = staff_refs(&a).await;
    let mut consents = Vec::new();
    for s in &refs {
        for to in ["RJ1", "RV5"] {
            consents
                .push(consent_id(&grant(&a, s, to, &["identity", "training:fire-safety"], now().plus_days(30)).await));
        }
    }
    for id in &consents {
        wait_state(&a, id, "delivered").await;
    }
    for (s, reason) in refs.iter().zip(reasons) {
        let cred = consent_state(&a, &consents[refs.iter().position(|x| x == s).unwrap() * 2]).await.credential;
        a.admin().revoke_credential(&cred, &RevokeRequest { reason: *reason }).await.unwrap();
    }
    for n in [&b, &c] {
        let admin = n.admin();
        wait_until("every receiver marks every passport revoked with its reason", || {
            let admin = admin.clone();
            async move {
                let list = admin.received().await.unwrap_or_default();
                let mut got: Vec<String> =
                    list.into_iter().filter(|v| v.status == "revoked").filter_map(|v| v.reason).collect();
                got.sort();
                let mut want: Vec<String> = reasons.iter().map(|r| r.to_string()).collect();
                want.sort();
                got == want
            }
        })
        .await;
    }
    // The home counts each acknowledged revocation as delivered, not as a rejection.
    let admin = a.admin();
    wait_until("every revocation is acknowledged", || {
        let admin = admin.clone();
        async move { admin.get_json::<Vec<Value>>("/v1/outbox").await.map(|o| o.is_empty()).unwrap_or(false) }
    })
    .await;
    let text = a.admin().get_text("/metrics").await.unwrap();
    let revokes: Vec<&str> = text.lines().filter(|l| l.contains("kind=\"revoke\"")).collect();
    assert!(revokes.iter().any(|l| l.contains("outcome=\"delivered\"")), "{revokes:?}");
    assert!(!revokes.iter().any(|l| l.contains("rejected")), "{revokes:?}");
}

use staffpass_tests::bundle_parts as parts;

async fn send(raw: &mut RawPeer, to: &TestNode, bundle: staffpass_protocol::Bundle) -> (MessageId, exchange::Response) {
    let peer = raw.connect(&to.p2p).await.expect("member admitted");
    let id = MessageId::random(&mut rand::rng());
    let resp = raw.exchange(peer, exchange::Request::Offer { id, bundle: Box::new(bundle) }).await.expect("a receipt");
    (id, resp)
}

fn rejection(resp: &exchange::Response) -> Option<Rejection> {
    match &resp.receipt.body.outcome {
        staffpass_protocol::receipt::Outcome::Rejected { reason } => Some(*reason),
        _ => None,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_bundles_are_rejected_with_their_reason_and_nothing_is_kept() {
    let (a, b, mut r) = pair().await;
    let mut raw = raw_member(&a, &mut r, "RJ2").await;
    let key = testkit::issuer("RJ2", 0);
    let rj1 = b.peer_id;
    wait_until("the host learns of RJ2", || async {
        b.node().rosters().read().values().any(|c| c.state().status(&"RJ2".parse().unwrap()).is_some())
    })
    .await;

    // A valid bundle is received; a replay of the same message gets the same receipt and stores nothing twice.
    let good = parts("RJ2", "RJ1").build(&key);
    let (id, first) = send(&mut raw, &b, good.clone()).await;
    assert_eq!(rejection(&first), None, "{first:?}");
    let again = raw.exchange(rj1, exchange::Request::Offer { id, bundle: Box::new(good) }).await.unwrap();
    assert_eq!(again, first, "idempotent by message id");
    assert_eq!(received(&b).await.len(), 1);

    // Each broken bundle: rejected with its reason, nothing stored, audited.
    let mut tampered = parts("RJ2", "RJ1");
    tampered.consent.id = staffpass_protocol::ConsentId::from_bytes([9; 16]);
    let mut t = tampered.build(&key);
    if let staffpass_protocol::Claim::Identity(i) = &mut t.disclosures[0].claim {
        i.full_name = "Someone Else".into();
    }
    let mut other_receiver = parts("RJ2", "RV5");
    other_receiver.consent.id = staffpass_protocol::ConsentId::from_bytes([10; 16]);
    for (bundle, want) in
        [(t, Rejection::DisclosureDigestMismatch), (other_receiver.build(&key), Rejection::ConsentForOtherReceiver)]
    {
        let (_, resp) = send(&mut raw, &b, bundle).await;
        assert_eq!(rejection(&resp), Some(want));
        b.issuer.verify(&resp.receipt.body, &resp.receipt.signature).expect("signed rejection");
        assert_eq!(received(&b).await.len(), 1, "nothing stored for a rejected bundle");
        assert!(audit(&b).await.iter().any(|e| e.event.reason.as_deref() == Some(want.code())), "rejection audited");
    }

    // A claim outside the agreement's terms: refused at the home's API, and by a receiver.
    let mut terms = testkit::terms();
    terms.accepts.remove(&staffpass_protocol::ClaimKind::Dbs);
    let e = r.entry(Change::SetTerms(terms), 2);
    r.chain.append(e.clone()).unwrap();
    submit_entry(&a, &e).await.unwrap();
    let seq = e.body.seq;
    wait_until("the host applies the new terms", || async {
        b.roster_seq(&"london-mou".parse().unwrap()) == Some(seq)
    })
    .await;
    import(&a, &staff_csv(&[ALEX])).await;
    let staff = staff_refs(&a).await.remove(0);
    let err = a
        .admin()
        .grant_consent(&consent_request(&staff, "RJ1", &["identity", "dbs"], now().plus_days(3)))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Some("claim-not-accepted"), "{err}");
    let mut dbs = parts("RJ2", "RJ1");
    dbs.consent.id = staffpass_protocol::ConsentId::from_bytes([11; 16]);
    let (_, resp) = send(&mut raw, &b, dbs.build(&key)).await;
    assert_eq!(rejection(&resp), Some(Rejection::ClaimNotAccepted));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_receiver_suspended_before_delivery_is_not_sent_to_and_the_sender_shows_why() {
    let (a, mut b, r) = pair().await;
    import(&a, &staff_csv(&[ALEX])).await;
    let staff = staff_refs(&a).await.remove(0);
    b.stop().await;
    let id = consent_id(&grant(&a, &staff, "RJ1", &["identity"], now().plus_days(30)).await);
    let e = r.entry(Change::Suspend { org: b.org.clone(), reason: "under review".into() }, 2);
    submit_entry(&a, &e).await.unwrap();
    let v = wait_state(&a, &id, "rejected").await;
    assert!(matches!(v.state, ConsentState::Rejected { reason: Rejection::ReceiverSuspended, .. }), "{v:?}");
    let out = a.admin().outbox().await.unwrap();
    assert!(out.is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stale_roster_stops_exchanges_on_both_sides() {
    let a = TestNode::start_new("RJZ").await.unwrap();
    let mut b = TestNode::start_new("RJ1").await.unwrap();
    let mut r = staffpass_tests::roster_valid_until("london-mou", now().plus_secs(4));
    let chain = add_members(&mut r, &[&a, &b]);
    submit(&a, &chain).await.unwrap();
    submit(&b, &chain).await.unwrap();
    import(&a, &staff_csv(&[ALEX])).await;
    let staff = staff_refs(&a).await.remove(0);
    b.stop().await;
    let id = consent_id(&grant(&a, &staff, "RJ1", &["identity"], now().plus_days(30)).await);
    let v = wait_state(&a, &id, "rejected").await;
    assert!(matches!(v.state, ConsentState::Rejected { reason: Rejection::RosterStale, .. }), "{v:?}");
    b.restart().await.unwrap();
    let err =
        a.admin().grant_consent(&consent_request(&staff, "RJ1", &["identity"], now().plus_days(3))).await.unwrap_err();
    assert_eq!(err.code(), Some("roster-stale"), "{err}");
    let status = b.admin().status().await.unwrap();
    assert!(!status.agreements[0].fresh);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn renewed_training_is_resent_to_live_receivers() {
    let (a, b, _r) = pair().await;
    import(&a, &staff_csv(&[ALEX])).await;
    let staff = staff_refs(&a).await.remove(0);
    let id = consent_id(&grant(&a, &staff, "RJ1", &["identity", "training:fire-safety"], now().plus_days(30)).await);
    let first = wait_state(&a, &id, "delivered").await;
    let renewed: staffpass_protocol::Claim = serde_json::from_value(
        json!({"training": ["fire-safety", {"level": 1, "completed_on": now().date(), "refresher_months": 12}]}),
    )
    .unwrap();
    a.admin().record_claim(&staff, &renewed).await.unwrap();
    let admin = b.admin();
    let old = first.credential;
    wait_until("the host holds the renewed credential", || {
        let admin = admin.clone();
        async move { admin.received_one(&id).await.map(|v| v.credential != old).unwrap_or(false) }
    })
    .await;
    let one = b.admin().received_one(&id).await.unwrap();
    let fire = one.claims.iter().find(|c| c.claim == "training:fire-safety").unwrap();
    let value: Value = serde_json::to_value(&fire.value).unwrap();
    assert_eq!(value["training"][1]["completed_on"], now().date().to_string());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_staff_held_key_must_sign_the_consent() {
    let (a, b, _r) = pair().await;
    import(&a, &staff_csv(&[ALEX])).await;
    let staff = staff_refs(&a).await.remove(0);
    let key = testkit::staff("alex");
    let request = ConsentRequest {
        move_kind: MoveKind::Secondment,
        staff_key: Some(key.public()),
        ..consent_request(&staff, "RJ1", &["identity"], now().plus_days(30))
    };
    let c = a.admin().grant_consent(&request).await.unwrap();
    assert_eq!(c.state.name(), "awaiting-staff-signature");
    let id = consent_id(&c);
    let wrong = testkit::staff("mallory").sign(&c.consent);
    let err = a.admin().sign_consent(&id, wrong).await.unwrap_err();
    assert_eq!(err.code(), Some("bad-staff-signature"));
    a.admin().sign_consent(&id, key.sign(&c.consent)).await.unwrap();
    wait_state(&a, &id, "delivered").await;
    assert_eq!(received(&b).await.len(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bad_import_changes_nothing_and_reports_every_bad_row() {
    let a = TestNode::start_new("RJZ").await.unwrap();
    import(&a, &staff_csv(&[ALEX])).await;
    let before = a.admin().staff_list(&PageQuery::default()).await.unwrap();
    let good = staffpass_tests::staff_row("40000000-1", "Cy Example", "ZZ200000C");
    let bad_ni = staffpass_tests::staff_row("40000001-1", "Di Example", "QQ123456C");
    let bad_date =
        staffpass_tests::staff_row("40000002-1", "Ed Example", "ZZ200002C").replace("1990-04-01", "1990-02-31");
    let dup = good.clone();
    let huge = staffpass_tests::staff_row("40000003-1", &"x".repeat(10 * 1024 * 1024), "ZZ200003C");
    let mut body =
        format!("{}\n{good}\n{bad_ni}\n{bad_date}\n{dup}\n{huge}\n", staffpass_tests::CSV_HEADER).into_bytes();
    body.extend(b"40000004-1,");
    body.extend([0xc3, 0x28]);
    body.extend(&staffpass_tests::staff_row("", "", "ZZ200004C").as_bytes()[1..]);
    body.push(b'\n');
    let err = a.admin().import_staff(ImportFormat::Csv, body.clone(), ImportQuery::default()).await.unwrap_err();
    assert_eq!(err.status().map(|s| s.as_u16()), Some(422), "{err}");
    let after = a.admin().staff_list(&PageQuery::default()).await.unwrap();
    assert_eq!(before, after, "all-or-nothing: nothing changed");
    let report = err.details().cloned().unwrap_or_default();
    let lines: Vec<(u64, String)> = report["errors"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| (e["line"].as_u64().unwrap(), e["code"].as_str().unwrap().to_string()))
        .collect();
    assert_eq!(
        lines,
        [
            (3, "bad-ni-number".to_string()),
            (4, "bad-date".to_string()),
            (5, "duplicate-assignment".to_string()),
            (6, "field-too-long".to_string()),
            (7, "bad-encoding".to_string())
        ]
    );
    assert!(!report.to_string().contains("Di Example"), "no row contents in the report");

    // An unknown claim column refuses the whole file.
    let unknown = format!("{},training:knitting/completed\n", staffpass_tests::CSV_HEADER);
    let err =
        a.admin().import_staff(ImportFormat::Csv, unknown.into_bytes(), ImportQuery::default()).await.unwrap_err();
    assert_eq!(err.code(), Some("bad-file"));

    // Partial mode keeps the good row; a re-import updates, never duplicates.
    let kept = a.admin().import_staff(ImportFormat::Csv, body, ImportQuery { partial: true }).await.unwrap();
    assert_eq!(kept.imported, 1);
    let again = import(&a, &staff_csv(&[ALEX])).await;
    assert_eq!((again.created, again.updated), (0, 0));
    assert_eq!(a.admin().staff_list(&PageQuery::default()).await.unwrap().len(), 2);
}

/// Security finding F6: a member can neither revoke, replace nor withdraw
/// another member's passport. RJ2 (a raw member) learns the consent C and
/// the credential K that RJZ shared with RJ1, and signs, as itself, a
/// revocation of K, an offer under C and a withdrawal of C.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_member_cannot_withdraw_or_revoke_another_members_passport() {
    let (a, b, mut r) = pair().await;
    let mut raw = raw_member(&a, &mut r, "RJ2").await;
    let key = testkit::issuer("RJ2", 0);
    wait_until("the host learns of RJ2", || async {
        b.node().rosters().read().values().any(|c| c.state().status(&"RJ2".parse().unwrap()).is_some())
    })
    .await;
    import(&a, &staff_csv(&[ALEX])).await;
    let staff = staff_refs(&a).await.remove(0);
    let c = consent_id(&grant(&a, &staff, "RJ1", &["identity"], now().plus_days(30)).await);
    let first = wait_state(&a, &c, "delivered").await;
    let k = first.credential;
    let peer = raw.connect(&b.p2p).await.expect("member admitted");

    // RJ2 revokes K as its own credential: acknowledged (it blocks only
    // RJ2's own K), but RJZ's K stays usable.
    let revocation = staffpass_protocol::revocation::Revocation {
        credential: k,
        issuer: "RJ2".parse().unwrap(),
        reason: staffpass_protocol::revocation::RevocationReason::ProvidedInError,
        revoked_at: now(),
        issuer_key: key.public(),
    };
    let revocation = staffpass_protocol::Signed::new(revocation, |b| key.sign(b));
    let id = MessageId::random(&mut rand::rng());
    let resp = raw.exchange(peer, exchange::Request::Revoke { id, revocation }).await.unwrap();
    assert_eq!(rejection(&resp), None, "{resp:?}");
    let one = b.admin().received_one(&c).await.unwrap();
    assert_eq!(one.status, "active", "RJZ's passport is not revoked by RJ2: {one:?}");
    let again = consent_id(&grant(&a, &staff, "RJ1", &["identity"], now().plus_days(30)).await);
    let admin = a.admin();
    wait_until("the second consent is answered", || {
        let admin = admin.clone();
        async move { admin.consent(&again).await.map(|v| v.state.name() != "pending").unwrap_or(false) }
    })
    .await;
    let second = consent_state(&a, &again).await;
    assert_eq!(second.credential, first.credential, "the second consent reuses K");
    assert_eq!(second.state.name(), "delivered", "{second:?}");

    // RJ2 offers a valid passport of its own under C: refused, RJZ's kept.
    let mut own = parts("RJ2", "RJ1");
    own.consent.id = c;
    let id = MessageId::random(&mut rand::rng());
    let resp = raw.exchange(peer, exchange::Request::Offer { id, bundle: Box::new(own.build(&key)) }).await.unwrap();
    assert_eq!(rejection(&resp), Some(Rejection::ConsentMismatch), "{resp:?}");
    let one = b.admin().received_one(&c).await.unwrap();
    assert_eq!(one.issuer.to_string(), "RJZ", "{one:?}");

    // RJ2 withdraws C, signed as itself: refused, nothing erased.
    let withdrawal = staffpass_protocol::consent::Withdrawal {
        consent: c,
        subject: staff.clone(),
        home: "RJ2".parse().unwrap(),
        receiver: "RJ1".parse().unwrap(),
        withdrawn_at: now(),
        issuer_key: key.public(),
    };
    let withdrawal = staffpass_protocol::Signed::new(withdrawal, |b| key.sign(b));
    let id = MessageId::random(&mut rand::rng());
    let resp = raw.exchange(peer, exchange::Request::Withdraw { id, withdrawal }).await.unwrap();
    assert_eq!(rejection(&resp), Some(Rejection::ConsentMismatch), "{resp:?}");
    let one = b.admin().received_one(&c).await.unwrap();
    assert_eq!(one.status, "active", "RJZ's passport is not erased by RJ2: {one:?}");
}

/// F5: a receiver suspended, then another removed, after delivery is still
/// told to erase and to mark a revocation: the home dials it for those two
/// messages only (a narrow exception at both gates), and its erasure
/// receipt comes back.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_suspended_or_removed_receiver_still_erases_and_revokes() {
    let (a, b, c, mut r) = staffpass_tests::trio().await;
    import(&a, &staff_csv(&[ALEX, ("87654321-1", "Sam Otherperson", "ZZ654321B")])).await;
    let refs = staff_refs(&a).await;
    let (alex, sam) = (&refs[0], &refs[1]);
    let to_b = consent_id(&grant(&a, alex, "RJ1", &["identity"], now().plus_days(30)).await);
    let to_c = consent_id(&grant(&a, alex, "RV5", &["identity"], now().plus_days(30)).await);
    let sam_b = consent_id(&grant(&a, sam, "RJ1", &["identity"], now().plus_days(30)).await);
    for id in [&to_b, &to_c, &sam_b] {
        wait_state(&a, id, "delivered").await;
    }
    let suspend = r.entry(Change::Suspend { org: b.org.clone(), reason: "under review".into() }, 2);
    r.chain.append(suspend.clone()).unwrap();
    let remove = r.entry(Change::Remove { org: c.org.clone() }, 2);
    r.chain.append(remove.clone()).unwrap();
    for n in [&a, &b, &c] {
        submit(n, &[suspend.clone(), remove.clone()]).await.unwrap();
    }
    let (pb, pc) = (b.peer_id, c.peer_id);
    wait_until("the home drops the suspended and the removed node", || async {
        !a.connected_to(&pb).await && !a.connected_to(&pc).await
    })
    .await;

    a.admin().withdraw_consent(&to_b).await.unwrap();
    a.admin().withdraw_consent(&to_c).await.unwrap();
    let cred = consent_state(&a, &sam_b).await.credential;
    a.admin().revoke_credential(&cred, &RevokeRequest { reason: RevocationReason::LeavingOrganisation }).await.unwrap();
    wait_erased(&a, &to_b).await;
    wait_erased(&a, &to_c).await;
    assert_eq!(b.admin().received_one(&to_b).await.unwrap().status, "erased");
    assert_eq!(c.admin().received_one(&to_c).await.unwrap().status, "erased");
    let admin = b.admin();
    wait_until("the suspended receiver marks the revocation", || {
        let admin = admin.clone();
        let id = sam_b;
        async move { admin.received_one(&id).await.map(|v| v.status == "revoked").unwrap_or(false) }
    })
    .await;
    // Audited at both ends as the gate's exception.
    let reasons =
        |entries: Vec<audit::Entry>| -> Vec<String> { entries.into_iter().filter_map(|e| e.event.reason).collect() };
    let home = reasons(audit(&a).await);
    for want in ["receiver-suspended", "receiver-removed", "revocation-acknowledged:receiver-suspended"] {
        assert!(home.iter().any(|r| r == want), "{want} not in the home's audit: {home:?}");
    }
    assert!(reasons(audit(&b).await).iter().any(|r| r == "withdrawn:while-suspended"));
    assert!(reasons(audit(&b).await).iter().any(|r| r == "leaving-organisation:while-suspended"));
    assert!(reasons(audit(&c).await).iter().any(|r| r == "withdrawn:while-removed"));
    // Nothing else gets through: once nothing is owed, the home lets them go.
    wait_until("the home lets them go once nothing is owed", || async {
        !a.connected_to(&pb).await && !a.connected_to(&pc).await
    })
    .await;
    assert!(a.admin().outbox().await.unwrap().is_empty());
}
