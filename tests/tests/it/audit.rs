//! The audit log's signed checkpoints on a real node (F15): signed at a
//! clean stop, checked by `GET /v1/audit/verify`, and a log whose tail was
//! cut off while the node was down keeps it from starting.

use staffpass_api::audit::Verification;
use staffpass_api::data_dir as paths;
use staffpass_api::staff::{ImportFormat, ImportQuery};
use staffpass_node::audit::{self, Broken, Fault};
use staffpass_node::node::{Node, StartError};
use staffpass_tests::{TestNode, staff_csv};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_signs_its_audit_head_and_refuses_a_log_cut_short() {
    let mut a = TestNode::start_new("RJZ").await.unwrap();
    let csv = staff_csv(&[("12345678-1", "Alex Testperson", "ZZ123456A")]);
    a.admin().import_staff(ImportFormat::Csv, csv.into_bytes(), ImportQuery::default()).await.unwrap();
    let data = a.config.data_dir.clone();
    let file = data.join(audit::CHECKPOINT_FILE);

    // A clean stop signs the head; the restarted node checks it.
    a.stop().await;
    assert!(file.exists(), "the latest checkpoint is kept beside the store");
    a.restart().await.unwrap();
    let report = match a.admin().verify_audit().await.unwrap() {
        Verification::Intact { report, .. } => report,
        broken => panic!("{broken:?}"),
    };
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
