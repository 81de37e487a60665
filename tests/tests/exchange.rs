//! Passport exchange end to end (issue 5): home trust RJZ, host trust RJ1
//! (and RV5), real nodes on real sockets, the API as HR uses it.

#![allow(clippy::unwrap_used)] // test code: a failed unwrap is a failed test

use serde_json::{Value, json};
use staffpass_node::node::paths;
use staffpass_protocol::bundle::Rejection;
use staffpass_protocol::roster::Change;
use staffpass_protocol::testkit::{self, RosterBuilder};
use staffpass_protocol::wire::exchange;
use staffpass_protocol::{MessageId, Timestamp};
use staffpass_tests::raw::RawPeer;
use staffpass_tests::{
    TestNode, add_members, any_file_contains, now, raw_member, roster, staff_csv, submit, submit_entry, wait_until,
};

const ALEX: (&str, &str, &str) = ("12345678-1", "Alex Testperson", "ZZ123456A");

async fn pair() -> (TestNode, TestNode, RosterBuilder) {
    let a = TestNode::start_new("RJZ").await.unwrap();
    let b = TestNode::start_new("RJ1").await.unwrap();
    let mut r = roster("london-mou");
    let chain = add_members(&mut r, &[&a, &b]);
    submit(&a, &chain).await.unwrap();
    submit(&b, &chain).await.unwrap();
    let p = b.peer_id;
    wait_until("home and host connect", || async { a.connected_to(&p).await }).await;
    (a, b, r)
}

async fn import(node: &TestNode, csv: &str) -> Value {
    node.admin().post_bytes("/v1/staff/import", "text/csv", csv.as_bytes().to_vec()).await.unwrap()
}

async fn staff_refs(node: &TestNode) -> Vec<String> {
    let list: Vec<Value> = node.admin().get_json("/v1/staff").await.unwrap();
    list.iter().map(|s| s["staff_ref"].as_str().unwrap().to_string()).collect()
}

async fn grant(a: &TestNode, staff: &str, to: &str, claims: &[&str], until: Timestamp) -> Value {
    a.admin()
        .post_json(
            "/v1/consents",
            &json!({"staff": staff, "receiver": to, "agreement": "london-mou", "move_kind": "rotation",
                    "claims": claims, "not_after": until}),
        )
        .await
        .unwrap()
}

async fn consent_state(a: &TestNode, id: &str) -> Value {
    a.admin().get_json::<Value>(&format!("/v1/consents/{id}")).await.unwrap()
}

async fn wait_state(a: &TestNode, id: &str, state: &str) -> Value {
    let path = format!("/v1/consents/{id}");
    let admin = a.admin();
    wait_until(&format!("consent {id} is {state}"), || {
        let (admin, path) = (admin.clone(), path.clone());
        async move { admin.get_json::<Value>(&path).await.map(|v| v["state"]["state"] == state).unwrap_or(false) }
    })
    .await;
    consent_state(a, id).await
}

async fn received(b: &TestNode) -> Vec<Value> {
    b.admin().get_json("/v1/received").await.unwrap()
}

fn consent_id(v: &Value) -> String {
    v["consent"]["id"].as_str().unwrap().to_string()
}

fn audit_has(entries: &[Value], action: &str, object_part: &str) -> usize {
    entries
        .iter()
        .filter(|e| {
            e["event"]["action"] == action && e["event"]["object"].as_str().is_some_and(|o| o.contains(object_part))
        })
        .count()
}

async fn audit(node: &TestNode) -> Vec<Value> {
    node.admin().get_json("/v1/audit?limit=10000").await.unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_passport_moves_with_exactly_the_consented_claims() {
    let (a, b, _r) = pair().await;
    let report = import(&a, &staff_csv(&[ALEX])).await;
    assert_eq!(report["imported"], 1, "{report}");
    let staff = staff_refs(&a).await.remove(0);
    let cred: Value = a.admin().post_json(&format!("/v1/staff/{staff}/credentials"), &json!({})).await.unwrap();
    assert_eq!(cred["claims"].as_array().unwrap().len(), 14);

    let claims = ["identity", "dbs", "training:fire-safety"];
    let c = grant(&a, &staff, "RJ1", &claims, now().plus_days(30)).await;
    let id = consent_id(&c);
    let done = wait_state(&a, &id, "delivered").await;

    // The host sees exactly the three consented claims, verified.
    let list = received(&b).await;
    assert_eq!(list.len(), 1);
    let one: Value = b.admin().get_json(&format!("/v1/received/{id}")).await.unwrap();
    let mut got: Vec<&str> = one["claims"].as_array().unwrap().iter().map(|c| c["claim"].as_str().unwrap()).collect();
    got.sort();
    assert_eq!(got, ["dbs", "identity", "training:fire-safety"]);
    assert_eq!(one["issuer"], "RJZ");
    assert_eq!(one["status"], "active");
    let text = one.to_string();
    assert!(text.contains("Alex Testperson"), "the host reads the disclosed identity");
    assert!(!text.contains("7654321"), "undisclosed registration number must not travel");

    // The home holds a receipt signed by the host's issuer key.
    let receipts = done["receipts"].as_array().unwrap();
    assert_eq!(receipts.len(), 1);
    let receipt: staffpass_protocol::Signed<staffpass_protocol::receipt::Receipt> =
        serde_json::from_value(receipts[0].clone()).unwrap();
    assert_eq!(receipt.body.receiver.to_string(), "RJ1");
    b.issuer.verify(&receipt.body, &receipt.signature).expect("receipt signed by RJ1");

    // Both audit logs record it and verify.
    assert!(audit_has(&audit(&a).await, "receipt", &id) >= 1);
    assert_eq!(audit_has(&audit(&b).await, "receipt", &id), 1);
    for n in [&a, &b] {
        let v: Value = n.admin().get_json("/v1/audit/verify").await.unwrap();
        assert_eq!(v["ok"], true, "{v}");
    }
    // The staff member's own history shows where their data went.
    let activity: Vec<Value> = a.admin().get_json(&format!("/v1/staff/{staff}/activity")).await.unwrap();
    for action in ["import", "issue", "consent", "offer", "receipt"] {
        assert!(
            activity.iter().any(|e| e["event"]["action"] == action) || action == "import",
            "{action} in {activity:?}"
        );
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
            let items: Vec<Value> = a2.get_json("/v1/outbox").await.unwrap_or_default();
            items.first().is_some_and(|i| i["attempts"].as_u64().unwrap_or(0) >= 1)
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
    let out: Vec<Value> = a.admin().get_json("/v1/outbox").await.unwrap();
    assert!(out.is_empty(), "outbox drained: {out:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn withdrawal_erases_at_the_receiver_and_returns_an_erasure_receipt() {
    let (mut a, mut b, _r) = pair().await;
    import(&a, &staff_csv(&[ALEX])).await;
    let staff = staff_refs(&a).await.remove(0);
    let id = consent_id(&grant(&a, &staff, "RJ1", &["identity", "dbs"], now().plus_days(30)).await);
    wait_state(&a, &id, "delivered").await;

    let w: Value = a.admin().delete_json(&format!("/v1/consents/{id}")).await.unwrap();
    assert_eq!(w["state"]["state"], "withdrawn");
    let admin = a.admin();
    let path = format!("/v1/consents/{id}");
    wait_until("the erasure receipt comes back", || {
        let (admin, path) = (admin.clone(), path.clone());
        async move { admin.get_json::<Value>(&path).await.map(|v| !v["state"]["erased"].is_null()).unwrap_or(false) }
    })
    .await;
    let done = consent_state(&a, &id).await;
    assert!(
        done["receipts"].as_array().unwrap().iter().any(|r| r["body"]["outcome"].get("erased").is_some()),
        "{done}"
    );
    let one: Value = b.admin().get_json(&format!("/v1/received/{id}")).await.unwrap();
    assert_eq!(one["status"], "erased");
    assert!(one["claims"].as_array().unwrap().is_empty());

    // Nothing personal in the receiver's files; the scan itself works.
    a.stop().await;
    b.stop().await;
    let db = paths::db(&b.config.data_dir);
    assert!(any_file_contains(&db, b"london-mou"), "control: the raw scan finds plain roster data");
    for needle in [&b"Alex Testperson"[..], b"ZZ123456A", b"001234567890"] {
        assert!(!any_file_contains(&db, needle), "personal data found in the receiver's files");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_receiver_erases_by_itself_when_the_consent_ends() {
    let (a, b, _r) = pair().await;
    import(&a, &staff_csv(&[ALEX])).await;
    let staff = staff_refs(&a).await.remove(0);
    let id = consent_id(&grant(&a, &staff, "RJ1", &["identity"], now().plus_secs(3)).await);
    wait_state(&a, &id, "delivered").await;
    let path = format!("/v1/received/{id}");
    let admin = b.admin();
    wait_until("the host erases the passport when the consent ends", || {
        let (admin, path) = (admin.clone(), path.clone());
        async move { admin.get_json::<Value>(&path).await.map(|v| v["status"] == "erased").unwrap_or(false) }
    })
    .await;
    let one: Value = b.admin().get_json(&path).await.unwrap();
    assert_eq!(one["reason"], "expired");
    assert_eq!(audit(&b).await.iter().filter(|e| e["event"]["action"] == "expiry").count(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn revocation_with_every_reason_reaches_every_receiver() {
    let a = TestNode::start_new("RJZ").await.unwrap();
    let b = TestNode::start_new("RJ1").await.unwrap();
    let c = TestNode::start_new("RV5").await.unwrap();
    let mut r = roster("london-mou");
    let chain = add_members(&mut r, &[&a, &b, &c]);
    for n in [&a, &b, &c] {
        submit(n, &chain).await.unwrap();
    }
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
        let cred = consent_state(&a, &consents[refs.iter().position(|x| x == s).unwrap() * 2]).await["credential"]
            .as_str()
            .unwrap()
            .to_string();
        let _: Value =
            a.admin().post_json(&format!("/v1/credentials/{cred}/revoke"), &json!({"reason": reason})).await.unwrap();
    }
    for n in [&b, &c] {
        let admin = n.admin();
        wait_until("every receiver marks every passport revoked with its reason", || {
            let admin = admin.clone();
            async move {
                let list: Vec<Value> = admin.get_json("/v1/received").await.unwrap_or_default();
                let mut got: Vec<String> = list
                    .iter()
                    .filter(|v| v["status"] == "revoked")
                    .filter_map(|v| v["reason"].as_str().map(str::to_string))
                    .collect();
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

/// A valid bundle from `org` (the raw peer's trust) to `to`, on the real clock.
fn parts(org: &str, to: &str) -> testkit::BundleParts {
    let mut p = testkit::bundle_parts();
    let t = now().plus_secs(-60);
    p.credential.issuer = org.parse().unwrap();
    p.credential.issued_at = t;
    p.credential.expires_at = t.plus_days(365);
    p.consent.home = org.parse().unwrap();
    p.consent.receiver = to.parse().unwrap();
    p.consent.issued_at = t;
    p.consent.not_before = t;
    p.consent.not_after = t.plus_days(30);
    p
}

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
        b.node().rosters.read().values().any(|c| c.state().status(&"RJ2".parse().unwrap()).is_some())
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
        assert!(audit(&b).await.iter().any(|e| e["event"]["reason"] == want.code()), "rejection audited");
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
        .post_json::<_, Value>(
            "/v1/consents",
            &json!({"staff": staff, "receiver": "RJ1", "agreement": "london-mou", "move_kind": "rotation",
                    "claims": ["identity", "dbs"], "not_after": now().plus_days(3)}),
        )
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
    assert_eq!(v["state"]["reason"], "receiver-suspended");
    let out: Vec<Value> = a.admin().get_json("/v1/outbox").await.unwrap();
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
    assert_eq!(v["state"]["reason"], "roster-stale");
    b.restart().await.unwrap();
    let err = a
        .admin()
        .post_json::<_, Value>(
            "/v1/consents",
            &json!({"staff": staff, "receiver": "RJ1", "agreement": "london-mou", "move_kind": "rotation",
                    "claims": ["identity"], "not_after": now().plus_days(3)}),
        )
        .await
        .unwrap_err();
    assert_eq!(err.code(), Some("roster-stale"), "{err}");
    let status: Value = b.admin().get_json("/v1/status").await.unwrap();
    assert_eq!(status["agreements"][0]["fresh"], false);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn renewed_training_is_resent_to_live_receivers() {
    let (a, b, _r) = pair().await;
    import(&a, &staff_csv(&[ALEX])).await;
    let staff = staff_refs(&a).await.remove(0);
    let id = consent_id(&grant(&a, &staff, "RJ1", &["identity", "training:fire-safety"], now().plus_days(30)).await);
    let first = wait_state(&a, &id, "delivered").await;
    let renewed =
        json!({"training": ["fire-safety", {"level": 1, "completed_on": now().date(), "refresher_months": 12}]});
    let _: Value = a.admin().post_json(&format!("/v1/staff/{staff}/claims"), &renewed).await.unwrap();
    let path = format!("/v1/received/{id}");
    let admin = b.admin();
    let old = first["credential"].as_str().unwrap().to_string();
    wait_until("the host holds the renewed credential", || {
        let (admin, path, old) = (admin.clone(), path.clone(), old.clone());
        async move { admin.get_json::<Value>(&path).await.map(|v| v["credential"] != old.as_str()).unwrap_or(false) }
    })
    .await;
    let one: Value = b.admin().get_json(&path).await.unwrap();
    let fire = one["claims"].as_array().unwrap().iter().find(|c| c["claim"] == "training:fire-safety").unwrap().clone();
    assert_eq!(fire["value"]["training"][1]["completed_on"], now().date().to_string());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_staff_held_key_must_sign_the_consent() {
    let (a, b, _r) = pair().await;
    import(&a, &staff_csv(&[ALEX])).await;
    let staff = staff_refs(&a).await.remove(0);
    let key = testkit::staff("alex");
    let c: Value = a
        .admin()
        .post_json(
            "/v1/consents",
            &json!({"staff": staff, "receiver": "RJ1", "agreement": "london-mou", "move_kind": "secondment",
                    "claims": ["identity"], "not_after": now().plus_days(30), "staff_key": key.public()}),
        )
        .await
        .unwrap();
    assert_eq!(c["state"]["state"], "awaiting-staff-signature");
    let id = consent_id(&c);
    let consent: staffpass_protocol::consent::Consent = serde_json::from_value(c["consent"].clone()).unwrap();
    let wrong = testkit::staff("mallory").sign(&consent);
    let err = a
        .admin()
        .post_json::<_, Value>(&format!("/v1/consents/{id}/staff-signature"), &json!({"signature": wrong}))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Some("bad-staff-signature"));
    let _: Value = a
        .admin()
        .post_json(&format!("/v1/consents/{id}/staff-signature"), &json!({"signature": key.sign(&consent)}))
        .await
        .unwrap();
    wait_state(&a, &id, "delivered").await;
    assert_eq!(received(&b).await.len(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bad_import_changes_nothing_and_reports_every_bad_row() {
    let a = TestNode::start_new("RJZ").await.unwrap();
    import(&a, &staff_csv(&[ALEX])).await;
    let before: Vec<Value> = a.admin().get_json("/v1/staff").await.unwrap();
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
    let err = a.admin().post_bytes::<Value>("/v1/staff/import", "text/csv", body.clone()).await.unwrap_err();
    assert_eq!(err.status().map(|s| s.as_u16()), Some(422), "{err}");
    let after: Vec<Value> = a.admin().get_json("/v1/staff").await.unwrap();
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
    let err = a.admin().post_bytes::<Value>("/v1/staff/import", "text/csv", unknown.into_bytes()).await.unwrap_err();
    assert_eq!(err.code(), Some("bad-file"));

    // Partial mode keeps the good row; a re-import updates, never duplicates.
    let kept: Value = a.admin().post_bytes("/v1/staff/import?partial=true", "text/csv", body).await.unwrap();
    assert_eq!(kept["imported"], 1);
    let again: Value =
        a.admin().post_bytes("/v1/staff/import", "text/csv", staff_csv(&[ALEX]).into_bytes()).await.unwrap();
    assert_eq!((again["created"].as_u64(), again["updated"].as_u64()), (Some(0), Some(0)));
    assert_eq!(a.admin().get_json::<Vec<Value>>("/v1/staff").await.unwrap().len(), 2);
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
        b.node().rosters.read().values().any(|c| c.state().status(&"RJ2".parse().unwrap()).is_some())
    })
    .await;
    import(&a, &staff_csv(&[ALEX])).await;
    let staff = staff_refs(&a).await.remove(0);
    let c = consent_id(&grant(&a, &staff, "RJ1", &["identity"], now().plus_days(30)).await);
    let first = wait_state(&a, &c, "delivered").await;
    let k: staffpass_protocol::CredentialId = first["credential"].as_str().unwrap().parse().unwrap();
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
    let one: Value = b.admin().get_json(&format!("/v1/received/{c}")).await.unwrap();
    assert_eq!(one["status"], "active", "RJZ's passport is not revoked by RJ2: {one}");
    let again = consent_id(&grant(&a, &staff, "RJ1", &["identity"], now().plus_days(30)).await);
    let path = format!("/v1/consents/{again}");
    let admin = a.admin();
    wait_until("the second consent is answered", || {
        let (admin, path) = (admin.clone(), path.clone());
        async move { admin.get_json::<Value>(&path).await.map(|v| v["state"]["state"] != "pending").unwrap_or(false) }
    })
    .await;
    let second = consent_state(&a, &again).await;
    assert_eq!(second["credential"], first["credential"], "the second consent reuses K");
    assert_eq!(second["state"]["state"], "delivered", "{second}");

    // RJ2 offers a valid passport of its own under C: refused, RJZ's kept.
    let mut own = parts("RJ2", "RJ1");
    own.consent.id = c.parse().unwrap();
    let id = MessageId::random(&mut rand::rng());
    let resp = raw.exchange(peer, exchange::Request::Offer { id, bundle: Box::new(own.build(&key)) }).await.unwrap();
    assert_eq!(rejection(&resp), Some(Rejection::ConsentMismatch), "{resp:?}");
    let one: Value = b.admin().get_json(&format!("/v1/received/{c}")).await.unwrap();
    assert_eq!(one["issuer"], "RJZ", "{one}");

    // RJ2 withdraws C, signed as itself: refused, nothing erased.
    let withdrawal = staffpass_protocol::consent::Withdrawal {
        consent: c.parse().unwrap(),
        subject: staff.parse().unwrap(),
        home: "RJ2".parse().unwrap(),
        receiver: "RJ1".parse().unwrap(),
        withdrawn_at: now(),
        issuer_key: key.public(),
    };
    let withdrawal = staffpass_protocol::Signed::new(withdrawal, |b| key.sign(b));
    let id = MessageId::random(&mut rand::rng());
    let resp = raw.exchange(peer, exchange::Request::Withdraw { id, withdrawal }).await.unwrap();
    assert_eq!(rejection(&resp), Some(Rejection::ConsentMismatch), "{resp:?}");
    let one: Value = b.admin().get_json(&format!("/v1/received/{c}")).await.unwrap();
    assert_eq!(one["status"], "active", "RJZ's passport is not erased by RJ2: {one}");
}
