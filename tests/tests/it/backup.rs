//! Backup and restore (issue 15): a running node is backed up through its
//! API (`GET /v1/backup`, as `staffpass-node backup` does), restored into a
//! fresh directory, started, and must serve the same staff, consents,
//! received passports and rosters, with an audit log that verifies.

use std::io::Write;
use std::path::Path;

use staffpass_api::audit::{AuditQuery, Verification};
use staffpass_api::consents::ConsentRequest;
use staffpass_api::staff::{ImportFormat, ImportQuery, PageQuery};
use staffpass_api::{Client, data_dir as paths};
use staffpass_node::backup::{self, KeySet};
use staffpass_node::config::Config;
use staffpass_node::node::Node;
use staffpass_protocol::claims::ClaimKind;
use staffpass_protocol::roster::MoveKind;
use staffpass_protocol::{ConsentId, StaffRef};
use staffpass_tests::{TestNode, connected_pair, now, staff_csv, wait_until};

const ALEX: (&str, &str, &str) = ("12345678-1", "Alex Testperson", "ZZ123456A");
const BO: (&str, &str, &str) = ("22222222-1", "Bo Example", "ZZ654321B");
const CAM: (&str, &str, &str) = ("33333333-1", "Cam Sample", "ZZ111111C");

async fn import(node: &TestNode, rows: &[(&str, &str, &str)]) -> Vec<StaffRef> {
    let admin = node.admin();
    admin.import_staff(ImportFormat::Csv, staff_csv(rows).into_bytes(), ImportQuery::default()).await.unwrap();
    admin.staff_list(&PageQuery::default()).await.unwrap().into_iter().map(|s| s.staff_ref).collect()
}

/// Grants `staff`'s consent to share two claims with `to`, and waits until
/// it is delivered.
async fn share(node: &TestNode, staff: &StaffRef, to: &str) -> ConsentId {
    let admin = node.admin();
    let request = ConsentRequest {
        staff: staff.clone(),
        receiver: to.parse().unwrap(),
        agreement: "london-mou".parse().unwrap(),
        move_kind: MoveKind::Rotation,
        claims: ["identity", "dbs"].iter().map(|c| c.parse::<ClaimKind>().unwrap()).collect(),
        not_before: None,
        not_after: now().plus_days(30),
        staff_key: None,
    };
    let id = admin.grant_consent(&request).await.unwrap().consent.id;
    wait_until("the consent is delivered", || {
        let admin = admin.clone();
        async move { admin.consent(&id).await.map(|v| v.state.name() == "delivered").unwrap_or(false) }
    })
    .await;
    id
}

/// Takes a data backup of `node` through its API into `out`, and its key
/// backup into `keys_out`, as `staffpass-node backup --keys-out` does.
async fn take_backup(node: &TestNode, out: &Path, keys_out: &Path) -> backup::Summary {
    let mut download = node.admin().backup().await.unwrap();
    let mut file = std::fs::File::create(out).unwrap();
    while let Some(chunk) = download.chunk().await.unwrap() {
        file.write_all(&chunk).unwrap();
    }
    drop(file);
    let summary = backup::check(out).unwrap();
    let keys = KeySet::read(&node.config.data_dir).unwrap();
    assert_eq!(keys.record_keys_digest(), summary.header.record_keys, "the record keys are the snapshot's");
    keys.write(std::fs::File::create(keys_out).unwrap(), node.org.clone(), summary.header.created).unwrap();
    summary
}

fn json<T: serde::Serialize + ?Sized>(v: &T) -> serde_json::Value {
    serde_json::to_value(v).unwrap()
}

/// What a node serves, for comparison: staff, consents, received
/// passports (each with its claim values) and rosters (id, seq, head).
async fn served(c: &Client) -> serde_json::Value {
    let received = c.received().await.unwrap();
    let mut one = Vec::new();
    for r in &received {
        one.push(json(&c.received_one(&r.consent).await.unwrap()));
    }
    let rosters: Vec<_> =
        c.agreements().await.unwrap().into_iter().map(|a| (a.id.to_string(), a.seq, a.head)).collect();
    serde_json::json!({
        "staff": json(&c.staff_list(&PageQuery::default()).await.unwrap()),
        "consents": json(&c.consents().await.unwrap()),
        "received": json(&received),
        "received_one": one,
        "rosters": json(&rosters),
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_running_node_restored_from_its_backup_serves_the_same_data_and_its_audit_verifies() {
    let (mut a, b, _r) = connected_pair("RJZ", "RJ1").await;
    let home = import(&a, &[ALEX, BO]).await;
    let (alex, bo) = (home[0].clone(), home[1].clone());
    let cam = import(&b, &[CAM]).await.remove(0);
    share(&a, &alex, "RJ1").await;
    let incoming = share(&b, &cam, "RJZ").await;
    // Bo is erased before the backup: their key must not be in it.
    a.admin().delete_staff(&bo).await.unwrap();
    // A clean restart signs an audit checkpoint, which must travel with the store.
    a.restart().await.unwrap();

    let dir = tempfile::tempdir().unwrap();
    let (data_file, keys_file) = (dir.path().join("rjz.backup"), dir.path().join("rjz.keys"));
    let summary = take_backup(&a, &data_file, &keys_file).await;
    assert!(summary.files.iter().any(|f| f == "audit-checkpoint"), "{:?}", summary.files);
    assert!(summary.files.iter().all(|f| !f.ends_with(".key")), "no key in the data backup: {:?}", summary.files);
    let data_bytes = std::fs::read(&data_file).unwrap();
    assert!(
        !data_bytes.windows(ALEX.1.len()).any(|w| w == ALEX.1.as_bytes()),
        "no personal data in clear in the data backup"
    );
    let before = served(&a.admin()).await;
    assert_eq!(before["received"].as_array().unwrap().len(), 1, "{before}");
    let log_before = a.admin().audit(AuditQuery { since: 0, limit: 10_000 }).await.unwrap();

    let target = dir.path().join("restored");
    let restored = backup::restore(&data_file, &keys_file, &target).unwrap();
    assert!(!restored.record_keys_differ);
    assert!(restored.audit_entries > 0);
    use std::os::unix::fs::PermissionsExt;
    assert_eq!(std::fs::metadata(&target).unwrap().permissions().mode() & 0o777, 0o700);
    for f in ["keys/data.key", "keys/issuer.key", "keys/node.key", "record-keys", "tls/admin.key"] {
        assert_eq!(std::fs::metadata(target.join(f)).unwrap().permissions().mode() & 0o777, 0o600, "{f}");
    }
    // The erasure holds in the backup: Bo's record key is not in it.
    let keys = staffpass_node::keys::KeyFiles::load(&paths::keys(&target)).unwrap();
    let record_keys =
        staffpass_node::store::RecordKeys::open(&target.join(staffpass_node::store::record_keys::FILE), keys.data())
            .unwrap();
    assert!(record_keys.holds(format!("s/{alex}").as_bytes()), "control: Alex's key is restored");
    assert!(!record_keys.holds(format!("s/{bo}").as_bytes()), "the erased record's key came back");

    // The same identity: the original stops before the copy starts.
    a.stop().await;
    let mut config = Config::load(Some(&paths::config(&target)), Vec::new(), &[]).unwrap();
    assert_eq!(config.data_dir, target, "node.toml points at the restored directory");
    config.api.listen = "127.0.0.1:0".parse().unwrap();
    config.network.listen = vec!["/ip4/127.0.0.1/tcp/0".into()];
    let running = Node::start(config).await.unwrap();
    let tls = paths::tls(&target);
    let client = Client::from_files(
        &format!("https://127.0.0.1:{}", running.api_addr().port()),
        tls.join(paths::CA_CERT),
        tls.join(paths::ADMIN_CERT),
        tls.join(paths::ADMIN_KEY),
    )
    .unwrap();
    let after = served(&client).await;
    assert_eq!(after, before, "the restored node serves what the original did");
    assert!(client.received_one(&incoming).await.is_ok());
    assert!(client.staff(&bo).await.is_err(), "the erased record stays erased");

    let v = client.verify_audit().await.unwrap();
    let Verification::Intact { report, .. } = v else { panic!("the restored audit log is broken: {v:?}") };
    assert!(report.entries >= restored.audit_entries);
    assert!(report.checkpoints >= 1, "the checkpoint restored is checked: {report:?}");
    let log_after = client.audit(AuditQuery { since: 0, limit: 10_000 }).await.unwrap();
    let n = restored.audit_entries as usize;
    assert!(log_before.len() >= n, "the backup is not ahead of the original");
    assert_eq!(json(&log_after[..n]), json(&log_before[..n]), "the same log, entry for entry");
    assert!(
        log_after[..n].iter().any(|e| e.event.action == "admin" && e.event.reason.as_deref() == Some("backup")),
        "the backup recorded its own taking"
    );
    running.shutdown().await;
    drop(b);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_damaged_backup_wrong_keys_or_a_used_directory_are_refused_and_nothing_is_made() {
    let a = TestNode::start_new("RJZ").await.unwrap();
    let other = TestNode::start_new("RJZ").await.unwrap();
    import(&a, &[ALEX]).await;
    let dir = tempfile::tempdir().unwrap();
    let (data_file, keys_file) = (dir.path().join("a.backup"), dir.path().join("a.keys"));
    take_backup(&a, &data_file, &keys_file).await;
    let other_keys = dir.path().join("other.keys");
    take_backup(&other, &dir.path().join("other.backup"), &other_keys).await;
    let good = std::fs::read(&data_file).unwrap();
    let target = dir.path().join("restored");
    let nothing_made = |what: &str| {
        let left: Vec<_> = std::fs::read_dir(dir.path()).unwrap().map(|e| e.unwrap().file_name()).collect();
        assert!(!target.exists(), "{what}: the target was made");
        assert_eq!(left.len(), 4, "{what}: something was left beside it: {left:?}");
    };

    let cut = dir.path().join("cut.backup");
    std::fs::write(&cut, &good[..good.len() * 2 / 3]).unwrap();
    let r = backup::restore(&cut, &keys_file, &target);
    assert!(matches!(r, Err(backup::Error::Truncated { .. })), "{r:?}");
    assert!(r.unwrap_err().to_string().contains("cut short"));
    std::fs::remove_file(&cut).unwrap();
    nothing_made("a truncated backup");

    let mut bad = good.clone();
    let at = bad.len() - 100;
    bad[at] ^= 0x40;
    let flipped = dir.path().join("flipped.backup");
    std::fs::write(&flipped, &bad).unwrap();
    let r = backup::restore(&flipped, &keys_file, &target);
    assert!(matches!(r, Err(backup::Error::Corrupt { .. } | backup::Error::Truncated { .. })), "{r:?}");
    std::fs::remove_file(&flipped).unwrap();
    nothing_made("a damaged backup");

    let r = backup::restore(&data_file, &other_keys, &target);
    assert!(matches!(r, Err(backup::Error::KeysDoNotOpenData { .. })), "{r:?}");
    nothing_made("another node's keys");
    let r = backup::restore(&keys_file, &data_file, &target);
    assert!(matches!(r, Err(backup::Error::NotABackup { other_kind: true, .. })), "{r:?}");
    nothing_made("the files swapped");

    std::fs::create_dir(&target).unwrap();
    std::fs::write(target.join("notes.txt"), b"keep me").unwrap();
    let r = backup::restore(&data_file, &keys_file, &target);
    assert!(matches!(r, Err(backup::Error::TargetNotEmpty { .. })), "{r:?}");
    assert_eq!(std::fs::read(target.join("notes.txt")).unwrap(), b"keep me");
    assert_eq!(std::fs::read_dir(&target).unwrap().count(), 1, "nothing added to the used directory");
    std::fs::remove_dir_all(&target).unwrap();

    // An empty directory may be restored into.
    std::fs::create_dir(&target).unwrap();
    backup::restore(&data_file, &keys_file, &target).unwrap();
    assert!(target.join("db").is_dir());
}
