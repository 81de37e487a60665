//! The audit log's signed checkpoints on a real node (F15): signed at a
//! clean stop, checked by `GET /v1/audit/verify`, and a log whose tail was
//! cut off while the node was down keeps it from starting.

use staffpass_api::audit::Verification;
use staffpass_api::data_dir as paths;
use staffpass_api::staff::{ImportFormat, ImportQuery};
use staffpass_node::audit::{self, Broken, Fault};
use staffpass_node::keys::KeyFiles;
use staffpass_node::node::{Node, StartError};
use staffpass_tests::{TestNode, add_members, now, roster, staff_csv, submit};

async fn import(node: &TestNode, assignment: &str) {
    let csv = staff_csv(&[(assignment, "Alex Testperson", "ZZ123456A")]);
    node.admin().import_staff(ImportFormat::Csv, csv.into_bytes(), ImportQuery::default()).await.unwrap();
}

async fn verified(node: &TestNode) -> staffpass_api::audit::VerifyReport {
    match node.admin().verify_audit().await.unwrap() {
        Verification::Intact { report, .. } => report,
        broken => panic!("{broken:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_signs_its_audit_head_and_refuses_a_log_cut_short() {
    let mut a = TestNode::start_new("RJZ").await.unwrap();
    import(&a, "12345678-1").await;
    let data = a.config.data_dir.clone();
    let file = data.join(audit::CHECKPOINT_FILE);

    // A clean stop signs the head; the restarted node checks it.
    a.stop().await;
    assert!(file.exists(), "the latest checkpoint is kept beside the store");
    a.restart().await.unwrap();
    let report = verified(&a).await;
    let latest = report.latest_checkpoint.expect("a checkpoint");
    assert!(report.checkpoints >= 1);
    assert_eq!((latest.seq, latest.hash), (report.head.seq, report.head.hash));
    assert_eq!(latest.key, a.issuer.to_string());

    // With the node down, its last entry is deleted from the database.
    a.stop().await;
    let head = {
        let db = sled::open(paths::db(&data)).unwrap();
        let tree = db.open_tree("audit").unwrap();
        let (last, _) = tree.last().unwrap().expect("entries");
        tree.remove(&last).unwrap();
        db.flush().unwrap();
        u64::from_be_bytes(last.as_ref().try_into().unwrap())
    };
    let err = Node::start(a.config.clone()).await.err().expect("the node refuses to start");
    let expected = Broken { seq: head, fault: Fault::Truncated { checkpoint: head } };
    assert!(matches!(&err, StartError::Audit(audit::Error::Broken(b)) if *b == expected), "{err}");
    assert!(err.to_string().contains("cut off"), "{err}");
}

/// After `rotate-issuer-key`, the checkpoints signed with the previous key
/// are checked against the roster, which lists that key for the node's
/// organisation; those signed before the organisation joined (the key not
/// yet in any roster then) are accepted too.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn checkpoints_signed_with_the_previous_issuer_key_still_verify() {
    let mut a = TestNode::start_new("RJZ").await.unwrap();
    import(&a, "12345678-1").await;
    a.restart().await.unwrap();
    // It joins an agreement whose roster adds its key after that checkpoint.
    let mut r = roster("london-mou");
    r.clock = now().plus_secs(60);
    submit(&a, &add_members(&mut r, &[&a])).await.unwrap();

    a.stop().await;
    let rotation = KeyFiles::rotate_issuer(&paths::keys(&a.config.data_dir)).unwrap();
    assert_eq!(rotation.old, a.issuer);
    a.restart().await.unwrap();
    let report = verified(&a).await;
    assert_eq!(report.latest_checkpoint.unwrap().key, rotation.old.to_string());

    // The next checkpoint is signed with the new key.
    import(&a, "22222222-1").await;
    a.restart().await.unwrap();
    let report = verified(&a).await;
    assert_eq!(report.latest_checkpoint.as_ref().unwrap().key, rotation.new.to_string());
    assert!(report.checkpoints >= 3, "{report:?}");
}
