//! End to end with real nodes in this process (127.0.0.1, temp data dirs):
//! three stewards with threshold 2 create an agreement and add RJZ and
//! RJ1 with the real `staffpass-admin` binary; both nodes see both
//! members and connect; a change with one signature is refused by the
//! node with its reason; and the node-reading commands' `--json` parses.

#![allow(clippy::unwrap_used)] // test helpers outside #[test] fns may unwrap, as tests do

use std::path::Path;

use crate::common::Run;
use serde_json::Value;
use staffpass_node::keys::KeyFiles;
use staffpass_node::node::paths;
use staffpass_protocol::AgreementId;
use staffpass_tests::{TestNode, wait_until};

/// Runs the CLI off the runtime's worker threads, so the nodes keep running.
async fn admin(dir: &Path, args: &[&str]) -> Run {
    let dir = dir.to_path_buf();
    let args: Vec<String> = args.iter().map(|s| s.to_string()).collect();
    tokio::task::spawn_blocking(move || {
        let a: Vec<&str> = args.iter().map(String::as_str).collect();
        crate::common::admin(&dir, &a)
    })
    .await
    .unwrap()
}

/// The flags that reach `node`'s API with its admin certificate.
fn conn(node: &TestNode) -> Vec<String> {
    vec![
        "--data-dir".into(),
        node.config.data_dir.display().to_string(),
        "--node".into(),
        format!("https://127.0.0.1:{}", node.api.port()),
    ]
}

async fn on(dir: &Path, node: &TestNode, args: &[&str]) -> Run {
    let c = conn(node);
    let mut all: Vec<&str> = args.to_vec();
    all.extend(c.iter().map(String::as_str));
    admin(dir, &all).await
}

/// Three stewards, a genesis signed by a and b, saved as chain.json.
async fn agreement(dir: &Path) {
    for k in ["a", "b", "c"] {
        admin(dir, &["key", "gen", "--kind", "steward", "--out", &format!("{k}.key")]).await.ok();
    }
    admin(
        dir,
        &[
            "agreement",
            "init",
            "--id",
            "london-mou",
            "--title",
            "London MOU",
            "--steward",
            "a.key",
            "--steward",
            "b.key",
            "--steward",
            "c.key",
            "--threshold",
            "2",
            "--moves",
            "rotation,secondment",
            "--accepts",
            "all",
            "--lawful-basis",
            "UK GDPR 6(1)(b) and 9(2)(h)",
            "--valid-for",
            "90d",
            "--out",
            "chain.json",
        ],
    )
    .await
    .ok();
    for k in ["a.key", "b.key"] {
        admin(dir, &["roster", "sign", "chain.json", "--key", k, "--yes"]).await.ok();
    }
}

/// Adds `node` to chain.json as the trust's admin and two stewards would:
/// identity from `node status`, proposal, two signatures, append.
async fn add_member(dir: &Path, node: &TestNode, signers: [&str; 2]) {
    let status = on(dir, node, &["node", "status", "--json"]).await.json();
    let org = status["org"].as_str().unwrap().to_owned();
    let out = format!("add-{org}.json");
    let address = node.p2p.to_string();
    admin(
        dir,
        &[
            "roster",
            "propose",
            "add-member",
            "--chain",
            "chain.json",
            "--out",
            &out,
            "--org",
            &org,
            "--name",
            &format!("{org} NHS Trust"),
            "--issuer-key",
            status["issuer_key"].as_str().unwrap(),
            "--node",
            status["peer_id"].as_str().unwrap(),
            "--address",
            &address,
        ],
    )
    .await
    .ok();
    for k in signers {
        admin(dir, &["roster", "sign", &out, "--key", k, "--chain", "chain.json", "--yes"]).await.ok();
    }
    admin(dir, &["roster", "append", "chain.json", &out]).await.ok();
}

fn members(v: &Value) -> Vec<(String, String)> {
    v["state"]["members"]
        .as_object()
        .map(|m| {
            m.values().map(|x| (x["org"].as_str().unwrap().into(), x["status"].as_str().unwrap().into())).collect()
        })
        .unwrap_or_default()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stewards_add_two_trusts_and_both_nodes_see_both() {
    let rjz = TestNode::start_new("RJZ").await.unwrap();
    let rj1 = TestNode::start_new("RJ1").await.unwrap();
    let d = tempfile::tempdir().unwrap();
    let dir = d.path();
    let id: AgreementId = "london-mou".parse().unwrap();

    agreement(dir).await;
    add_member(dir, &rjz, ["a.key", "c.key"]).await;
    add_member(dir, &rj1, ["b.key", "c.key"]).await;
    admin(dir, &["roster", "verify", "chain.json"]).await.ok();

    // Each trust's admin gives their own node the agreement (a node only
    // talks to signatories of agreements it holds).
    for node in [&rjz, &rj1] {
        let sub = on(dir, node, &["roster", "submit", "--json", "chain.json"]).await.json();
        assert_eq!(sub["applied"], 3, "{sub}");
        assert_eq!(sub["seq"], 2, "{sub}");
    }
    for node in [&rjz, &rj1] {
        let shown = on(dir, node, &["agreement", "show", "--json", "london-mou"]).await.json();
        let mut m = members(&shown);
        m.sort();
        assert_eq!(m, vec![("RJ1".into(), "active".into()), ("RJZ".into(), "active".into())], "{shown}");
        let text = on(dir, node, &["agreement", "show", "london-mou"]).await;
        assert!(text.ok().contains("RJZ NHS Trust") && text.stdout.contains("RJ1 NHS Trust"), "{}", text.stdout);
    }
    wait_until("RJZ and RJ1 connected", || async { rjz.connected_to(&rj1.peer_id).await }).await;
    let peers = on(dir, &rjz, &["node", "peers", "--json"]).await.json();
    assert!(peers.as_array().unwrap().iter().any(|p| p["org"] == "RJ1" && p["connected"] == true), "{peers}");

    // Submitting it again changes nothing.
    let again = on(dir, &rj1, &["roster", "submit", "--json", "chain.json"]).await.json();
    assert_eq!(again["applied"], 0, "{again}");

    // A later change submitted to one member node spreads to the other.
    admin(
        dir,
        &[
            "roster",
            "propose",
            "update-member",
            "--chain",
            "chain.json",
            "--out",
            "u.json",
            "--org",
            "RJ1",
            "--name",
            "Guy's and St Thomas'",
        ],
    )
    .await
    .ok();
    for k in ["b.key", "c.key"] {
        admin(dir, &["roster", "sign", "u.json", "--key", k, "--chain", "chain.json", "--yes"]).await.ok();
    }
    on(dir, &rjz, &["roster", "submit", "u.json"]).await.ok();
    admin(dir, &["roster", "append", "chain.json", "u.json"]).await.ok();
    wait_until("RJ1 learns the change from RJZ", || async { rj1.roster_seq(&id) == Some(3) }).await;
    let shown = on(dir, &rj1, &["agreement", "show", "--json", "london-mou"]).await.json();
    assert_eq!(shown["state"]["members"]["RJ1"]["name"], "Guy's and St Thomas'", "{shown}");

    // A change with one of two signatures: the node refuses it with its reason.
    admin(
        dir,
        &["roster", "propose", "suspend", "--chain", "chain.json", "--out", "s.json", "--org", "RJ1", "--reason", "x"],
    )
    .await
    .ok();
    admin(dir, &["roster", "sign", "s.json", "--key", "a.key", "--chain", "chain.json", "--yes"]).await.ok();
    let refused = on(dir, &rjz, &["roster", "submit", "s.json"]).await;
    let err = refused.fails(3);
    assert!(err.contains("below-threshold") && err.contains("2 needed"), "{err}");
    assert_eq!(rjz.roster_seq(&id), Some(3));

    // A steward fetches the chain from the other node: it continues (equals) theirs.
    on(dir, &rj1, &["roster", "fetch", "--agreement", "london-mou", "--out", "fetched.json"]).await.ok();
    let a: Value = serde_json::from_slice(&std::fs::read(dir.join("fetched.json")).unwrap()).unwrap();
    let b: Value = serde_json::from_slice(&std::fs::read(dir.join("chain.json")).unwrap()).unwrap();
    assert_eq!(a, b);
    on(dir, &rj1, &["roster", "fetch", "--agreement", "london-mou", "--out", "chain.json"]).await.ok();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn node_read_commands_print_json_that_parses() {
    let rjz = TestNode::start_new("RJZ").await.unwrap();
    let d = tempfile::tempdir().unwrap();
    let dir = d.path();
    agreement(dir).await;
    add_member(dir, &rjz, ["a.key", "b.key"]).await;
    on(dir, &rjz, &["roster", "submit", "chain.json"]).await.ok();

    let cases: Vec<Vec<&str>> = vec![
        vec!["node", "status"],
        vec!["node", "peers"],
        vec!["node", "outbox"],
        vec!["node", "metrics"],
        vec!["agreement", "list"],
        vec!["agreement", "show", "london-mou"],
        vec!["staff", "list"],
        vec!["consent", "list"],
        vec!["received", "list"],
        vec!["audit", "tail", "-n", "5"],
        vec!["audit", "verify"],
    ];
    for c in &cases {
        let mut args = c.clone();
        args.push("--json");
        let run = on(dir, &rjz, &args).await;
        assert_eq!(run.code, 0, "{c:?}: {}", run.stderr);
        let v = run.json();
        // Round trip: the JSON printed is the JSON the node answered.
        let again: Value = serde_json::from_str(&serde_json::to_string(&v).unwrap()).unwrap();
        assert_eq!(v, again);
        // And the human form works too.
        let text = on(dir, &rjz, c).await;
        assert_eq!(text.code, 0, "{c:?}: {}", text.stderr);
    }
    let status = on(dir, &rjz, &["node", "status", "--json"]).await.json();
    assert_eq!(status["org"], "RJZ");
    let tail = on(dir, &rjz, &["audit", "tail", "--json", "-n", "2"]).await.json();
    assert!(tail.as_array().unwrap().len() <= 2);
    let list = on(dir, &rjz, &["agreement", "list", "--json"]).await.json();
    assert_eq!(list[0]["id"], "london-mou");
    // Not found is an error with the node's message, not a refusal.
    let missing = on(dir, &rjz, &["agreement", "show", "other-mou"]).await;
    assert!(missing.fails(1).contains("not-found"), "{}", missing.stderr);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hr_imports_staff_shares_a_passport_and_the_host_reads_what_is_in_date() {
    let rjz = TestNode::start_new("RJZ").await.unwrap();
    let mut rj1 = TestNode::start_new("RJ1").await.unwrap();
    let d = tempfile::tempdir().unwrap();
    let dir = d.path();
    agreement(dir).await;
    add_member(dir, &rjz, ["a.key", "b.key"]).await;
    add_member(dir, &rj1, ["a.key", "b.key"]).await;
    for node in [&rjz, &rj1] {
        on(dir, node, &["roster", "submit", "chain.json"]).await.ok();
    }
    wait_until("RJZ and RJ1 connected", || async { rjz.connected_to(&rj1.peer_id).await }).await;

    // An import with a bad row is refused whole, with the row and reason.
    let mut csv =
        staffpass_tests::staff_csv(&[("10001", "Alex Example", "ZZ123456A"), ("10002", "Sam Example", "ZZ654321B")]);
    std::fs::write(dir.join("good.csv"), &csv).unwrap();
    csv.push_str(&staffpass_tests::staff_row("10003", "Bad Row", "not-an-ni"));
    csv.push('\n');
    std::fs::write(dir.join("bad.csv"), &csv).unwrap();
    let refused = on(dir, &rjz, &["staff", "import", "bad.csv"]).await;
    assert!(refused.fails(3).contains("--partial"), "{}", refused.stderr);
    assert!(refused.stdout.contains("Nothing imported") && refused.stdout.contains('4'), "{}", refused.stdout);
    let refused = on(dir, &rjz, &["staff", "import", "--json", "bad.csv"]).await;
    assert_eq!(refused.code, 3);
    assert_eq!(refused.json()["rejected"], 1);
    let partial = on(dir, &rjz, &["staff", "import", "--partial", "--json", "bad.csv"]).await.json();
    assert_eq!(partial["imported"], 2, "{partial}");
    let ok = on(dir, &rjz, &["staff", "import", "good.csv"]).await;
    assert!(ok.ok().contains("Imported 2 of 2"), "{}", ok.stdout);

    let list = on(dir, &rjz, &["staff", "list", "--json"]).await.json();
    assert_eq!(list.as_array().unwrap().len(), 2, "{list}");
    let staff = list[0]["staff_ref"].as_str().unwrap().to_owned();
    let shown = on(dir, &rjz, &["staff", "show", &staff]).await;
    assert!(shown.ok().contains("training:fire-safety"), "{}", shown.stdout);
    assert!(!shown.stdout.contains("ZZ123456A") && !shown.stdout.contains("ZZ654321B"), "no NI numbers in tables");
    on(dir, &rjz, &["staff", "show", "--json", &staff]).await.json();

    let cred = on(dir, &rjz, &["credential", "issue", "--json", &staff]).await.json();
    let cred_id = cred["id"].as_str().unwrap().to_owned();
    on(dir, &rjz, &["credential", "show", &cred_id]).await.ok();

    // The wallet copy as an SD-JWT VC, written 0600, verified against the
    // issuer metadata the node publishes.
    let out = on(
        dir,
        &rjz,
        &["credential", "export", "--staff", &staff, "--format", "sd-jwt-vc", "--claims", "dbs", "--out", "alex.sdjwt"],
    )
    .await;
    assert!(out.ok().contains("1 claims: dbs"), "{}", out.stdout);
    let file = dir.join("alex.sdjwt");
    use std::os::unix::fs::PermissionsExt as _;
    assert_eq!(std::fs::metadata(&file).unwrap().permissions().mode() & 0o777, 0o600);
    let token = std::fs::read_to_string(&file).unwrap();
    let again =
        on(dir, &rjz, &["credential", "export", "--staff", &staff, "--format", "sd-jwt-vc", "--out", "alex.sdjwt"])
            .await;
    assert_eq!(again.code, 1, "an existing file is never replaced: {}", again.stderr);
    let meta = on(dir, &rjz, &["node", "issuer-metadata"]).await.json();
    assert_eq!(meta["jwks"]["keys"][0]["kid"], staffpass_protocol::sdjwt::thumbprint(&rjz.issuer));
    let v = staffpass_protocol::sdjwt::verify(token.trim(), &rjz.issuer, staffpass_node::node::now()).unwrap();
    assert_eq!(v.claims.keys().collect::<Vec<_>>(), ["dbs"]);
    assert_eq!(v.payload["iss"], meta["issuer"]);
    let bad = on(dir, &rjz, &["credential", "export", "--staff", &staff, "--format", "json"]).await;
    assert_eq!(bad.code, 2, "{}", bad.stderr);

    // The staff member holds a key and signs their consent.
    admin(dir, &["key", "gen", "--kind", "staff", "--out", "alex.key"]).await.ok();
    let granted = on(
        dir,
        &rjz,
        &[
            "consent",
            "grant",
            "--json",
            "--staff",
            &staff,
            "--to",
            "RJ1",
            "--agreement",
            "london-mou",
            "--move",
            "rotation",
            "--claims",
            "identity,dbs,training:fire-safety",
            "--until",
            "30d",
            "--staff-key",
            "alex.key",
            "--yes",
        ],
    )
    .await;
    let granted = granted.json();
    let consent = granted["consent"]["id"].as_str().unwrap().to_owned();
    assert!(granted["staff_signing_bytes"].is_null(), "signed: {granted}");
    let c = consent.clone();
    wait_until("RJ1 received the passport", || {
        let c = c.clone();
        let rj1 = &rj1;
        async move { on(&std::env::temp_dir(), rj1, &["received", "show", "--json", &c]).await.code == 0 }
    })
    .await;
    let received = on(dir, &rj1, &["received", "show", &consent]).await;
    let text = received.ok();
    assert!(text.contains("training:fire-safety") && text.contains("dbs"), "{text}");
    assert!(text.contains("in date") || text.contains("EXPIRED") || text.contains("expires in"), "{text}");
    assert!(!text.contains("Copies exported"), "{text}");
    // A FHIR copy for the host's workforce systems: listed with the passport.
    on(dir, &rj1, &["received", "export", &consent, "--format", "fhir", "--out", "alex-fhir.json"]).await.ok();
    // And the SD-JWT VC copy RJZ sent with the bundle, as it came.
    let vc =
        on(dir, &rj1, &["received", "export", &consent, "--format", "sd-jwt-vc", "--out", "alex-host.sdjwt"]).await;
    assert!(vc.ok().contains("Wrote the SD-JWT VC"), "{}", vc.stdout);
    let token = std::fs::read_to_string(dir.join("alex-host.sdjwt")).unwrap();
    assert!(token.starts_with("eyJ") && token.trim_end().ends_with('~'), "{token}");
    let shown = on(dir, &rj1, &["received", "show", &consent]).await;
    let text = shown.ok();
    assert!(text.contains("Copies exported") && text.contains("fhir") && text.contains("sd-jwt-vc"), "{text}");
    on(dir, &rj1, &["received", "list"]).await.ok();
    on(dir, &rjz, &["consent", "list"]).await.ok();
    on(dir, &rjz, &["consent", "show", &consent]).await.ok();

    // Withdrawal while the receiver is down: shown as awaiting its
    // erasure, with its standing; then the staff member's activity shows
    // the whole story.
    let none = on(dir, &rjz, &["consent", "list", "--awaiting-erasure"]).await;
    assert!(none.ok().contains("has been confirmed"), "{}", none.stdout);
    rj1.stop().await;
    let w = on(dir, &rjz, &["consent", "withdraw", "--json", &consent]).await.json();
    assert!(w["state"].to_string().contains("withdrawn"), "{w}");
    let waiting = on(dir, &rjz, &["consent", "list", "--awaiting-erasure"]).await;
    let text = waiting.ok();
    assert!(text.contains(&consent) && text.contains("RJ1") && text.contains("active"), "{text}");
    let waiting = on(dir, &rjz, &["consent", "list", "--awaiting-erasure", "--json"]).await.json();
    assert_eq!(waiting.as_array().map(Vec::len), Some(1), "{waiting}");
    let act = on(dir, &rjz, &["staff", "activity", "--json", &staff]).await.json();
    assert!(act.as_array().unwrap().len() >= 3, "{act}");
    on(dir, &rjz, &["staff", "activity", &staff]).await.ok();
    on(dir, &rjz, &["credential", "revoke", &cred_id, "--reason", "training-expiry"]).await.ok();
    let bad = on(dir, &rjz, &["credential", "revoke", &cred_id, "--reason", "bored"]).await;
    assert_eq!(bad.code, 2);
    // Every credential of the person at once: all were revoked just now.
    let all = on(dir, &rjz, &["credential", "revoke", "--staff", &staff, "--reason", "deceased"]).await;
    let all = all.ok();
    assert!(all.contains("already revoked"), "{all}");
    let neither = on(dir, &rjz, &["credential", "revoke", "--reason", "deceased"]).await;
    assert_eq!(neither.code, 2, "an ID or --staff is required");
    // The staff member's key: registered and removed by the admin, audited.
    let set = on(dir, &rjz, &["staff", "set-key", &staff, "--staff-key", "alex.key"]).await;
    assert!(set.ok().contains("registered key is now staff-pk:"), "set-key");
    // The staff member changes it themselves, signing with the old key;
    // the old key cannot sign a second change once replaced.
    admin(dir, &["key", "gen", "--kind", "staff", "--out", "alex-2.key"]).await.ok();
    let changed =
        on(dir, &rjz, &["staff", "change-key", &staff, "--old-key", "alex.key", "--new-key", "alex-2.key"]).await;
    assert!(changed.ok().contains("signed by the old key"), "{}", changed.stdout);
    let replay = on(dir, &rjz, &["staff", "change-key", &staff, "--old-key", "alex.key", "--remove"]).await;
    assert_ne!(replay.code, 0, "the replaced key signed a change: {}", replay.stdout);
    let removed = on(dir, &rjz, &["staff", "set-key", &staff, "--remove"]).await;
    assert!(removed.ok().contains("no registered key"), "set-key --remove");
    // Erasure is final: refused without --yes, then done.
    let unconfirmed = on(dir, &rjz, &["staff", "erase", &staff]).await;
    assert_eq!(unconfirmed.code, 2, "erasing needs --yes");
    assert!(on(dir, &rjz, &["staff", "show", &staff]).await.code == 0, "nothing erased without --yes");
    let erased = on(dir, &rjz, &["staff", "erase", &staff, "--yes"]).await;
    // The one export made above is named: that copy is out of reach.
    let text = erased.ok();
    assert!(text.contains("1 export(s)") && text.contains("sd-jwt-vc") && text.contains(&cred_id), "{text}");
    assert_ne!(on(dir, &rjz, &["staff", "show", &staff]).await.code, 0, "the record is gone");
    on(dir, &rjz, &["audit", "verify"]).await.ok();
}

/// Imports one staff member at `node`, issues a passport and shares it with
/// RJ1 under london-mou; returns the consent id once RJ1 holds it.
async fn share_with_rj1(dir: &Path, node: &TestNode, rj1: &TestNode, assignment: &str) -> String {
    let csv = staffpass_tests::staff_csv(&[(assignment, "Alex Example", "ZZ123456A")]);
    let file = format!("{assignment}.csv");
    std::fs::write(dir.join(&file), csv).unwrap();
    on(dir, node, &["staff", "import", &file]).await.ok();
    let list = on(dir, node, &["staff", "list", "--json"]).await.json();
    let staff = list
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["assignment_number"] == assignment)
        .and_then(|s| s["staff_ref"].as_str())
        .unwrap()
        .to_owned();
    on(dir, node, &["credential", "issue", &staff]).await.ok();
    let granted = on(
        dir,
        node,
        &[
            "consent",
            "grant",
            "--json",
            "--staff",
            &staff,
            "--to",
            "RJ1",
            "--agreement",
            "london-mou",
            "--move",
            "rotation",
            "--claims",
            "identity,dbs",
            "--until",
            "30d",
        ],
    )
    .await
    .json();
    let consent = granted["consent"]["id"].as_str().unwrap().to_owned();
    let c = consent.clone();
    wait_until("RJ1 holds the passport", || {
        let c = c.clone();
        async move { on(&std::env::temp_dir(), rj1, &["received", "show", "--json", &c]).await.code == 0 }
    })
    .await;
    consent
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stewards_rotate_a_trusts_issuer_key_and_passports_keep_flowing() {
    let mut rjz = TestNode::start_new("RJZ").await.unwrap();
    let rj1 = TestNode::start_new("RJ1").await.unwrap();
    let d = tempfile::tempdir().unwrap();
    let dir = d.path();
    let id: AgreementId = "london-mou".parse().unwrap();
    agreement(dir).await;
    add_member(dir, &rjz, ["a.key", "b.key"]).await;
    add_member(dir, &rj1, ["a.key", "b.key"]).await;
    for node in [&rjz, &rj1] {
        on(dir, node, &["roster", "submit", "chain.json"]).await.ok();
    }
    wait_until("RJZ and RJ1 connected", || async { rjz.connected_to(&rj1.peer_id).await }).await;
    let before = share_with_rj1(dir, &rjz, &rj1, "20001").await;

    // The trust prepares a new issuer key while its node runs; a restart
    // before any roster lists it changes nothing: the old key still signs.
    let old_key = on(dir, &rjz, &["node", "status", "--json"]).await.json()["issuer_key"].as_str().unwrap().to_owned();
    let (current, prepared) = KeyFiles::prepare_issuer(&paths::keys(&rjz.config.data_dir)).unwrap();
    assert_eq!(current.to_string(), old_key);
    let new_key = prepared.to_string();
    rjz.restart().await.unwrap();
    let still = on(dir, &rjz, &["node", "status", "--json"]).await.json()["issuer_key"].as_str().unwrap().to_owned();
    assert_eq!(still, old_key, "promoted before the roster lists the new key");

    // The stewards add the new key (the old one stays valid meanwhile),
    // which spreads from RJZ to RJ1...
    admin(
        dir,
        &[
            "roster",
            "propose",
            "rotate-key",
            "--chain",
            "chain.json",
            "--out",
            "rotate.json",
            "--org",
            "RJZ",
            "--add",
            &new_key,
        ],
    )
    .await
    .ok();
    for k in ["b.key", "c.key"] {
        admin(dir, &["roster", "sign", "rotate.json", "--key", k, "--chain", "chain.json", "--yes"]).await.ok();
    }
    on(dir, &rjz, &["roster", "submit", "rotate.json"]).await.ok();
    admin(dir, &["roster", "append", "chain.json", "rotate.json"]).await.ok();
    wait_until("RJ1 applies the rotation", || async { rj1.roster_seq(&id) == Some(3) }).await;
    let shown = on(dir, &rj1, &["agreement", "show", "--json", "london-mou"]).await.json();
    let keys = shown["state"]["members"]["RJZ"]["keys"].as_array().unwrap().clone();
    assert_eq!(keys.len(), 2, "{shown}");

    // ... and at its next start RJZ makes it current (audited), the old
    // secret gone.
    rjz.restart().await.unwrap();
    let now_key = on(dir, &rjz, &["node", "status", "--json"]).await.json()["issuer_key"].as_str().unwrap().to_owned();
    assert_eq!(now_key, new_key);
    assert!(!paths::keys(&rjz.config.data_dir).join("issuer.next.key").exists());
    let audit = on(dir, &rjz, &["audit", "tail", "--json", "-n", "50"]).await.json();
    assert!(audit.to_string().contains("prepared-key-listed"), "{audit}");

    // A new passport, signed with the new key, is accepted; the one signed
    // before the rotation is still held and in force.
    wait_until("RJZ and RJ1 reconnected", || async { rjz.connected_to(&rj1.peer_id).await }).await;
    let after = share_with_rj1(dir, &rjz, &rj1, "20002").await;
    for c in [&before, &after] {
        let r = on(dir, &rj1, &["received", "show", "--json", c]).await.json();
        assert_eq!(r["status"], "active", "{r}");
    }
}
