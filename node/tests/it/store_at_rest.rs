//! Personal data never reaches the disk in clear: a staff record with a
//! known name and NI number is written, flushed and closed, then every
//! byte of every file under the store directory is searched for them.
//! A control marker in a non-personal tree proves the search finds what
//! is there, in the log and in sled's blob files alike.

// Test helpers may unwrap: a failure is the test failing.
#![allow(clippy::unwrap_used)]

use std::path::{Path, PathBuf};

use staffpass_node::keys::DataKey;
use staffpass_node::store::{Batch, OpenMode, SledStore, Store, Tree};

const NAME: &str = "Adaeze Fitzgerald-Okonkwo";
const NI: &str = "QQ123456C";
const MARKER: &str = "CONTROL-MARKER-not-personal-7f3a9c";
const BLOB_MARKER: &str = "BLOB-CONTROL-MARKER-e41d07";

fn files_under(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).unwrap() {
        let e = e.unwrap();
        if e.file_type().unwrap().is_dir() {
            out.extend(files_under(&e.path()));
        } else {
            out.push(e.path());
        }
    }
    out
}

/// The files under `dir` that contain `needle`.
fn find(dir: &Path, needle: &str) -> Vec<PathBuf> {
    files_under(dir)
        .into_iter()
        .filter(|f| std::fs::read(f).unwrap().windows(needle.len()).any(|w| w == needle.as_bytes()))
        .collect()
}

#[test]
fn personal_values_are_encrypted_on_disk() {
    let dir = tempfile::tempdir().unwrap();
    let key = DataKey::from_bytes([0x11; 32]);
    let record = serde_json::json!({
        "staff": "st-0000abcd",
        "name": NAME,
        "ni_number": NI,
        "role": "Staff Nurse",
    })
    .to_string();
    // Big enough for sled to keep it in a separate blob file.
    let big_record = format!("{record} {}", format!("{NAME} {NI} ").repeat(20_000));

    {
        let store = SledStore::open(dir.path(), &key, OpenMode::Create).unwrap();
        let mut b = Batch::new();
        b.put(Tree::Staff, "st-0000abcd", record.clone());
        b.put(Tree::Credentials, "cred-01", format!("disclosure for {NAME} {NI}"));
        b.put(Tree::Consents, "consent-01", format!("consent by {NAME}"));
        b.put(Tree::Received, "recv-01", big_record.clone());
        b.put(Tree::Outbox, "msg-00", format!("offer for {NAME} {NI}"));
        b.put(Tree::Inbox, "in-00", format!("receipt about {NAME}"));
        b.put(Tree::Audit, "au-00", format!("revoked for {NAME}: deceased"));
        // Controls in a tree that is not sealed (rosters hold no personal data).
        b.put(Tree::Rosters, "msg-01", MARKER);
        b.put(Tree::Rosters, "msg-02", format!("{BLOB_MARKER} {}", "x".repeat(200_000)));
        store.commit(b).unwrap();
        // Overwrite once, so older versions sit in the log too.
        let mut b = Batch::new();
        b.put(Tree::Staff, "st-0000abcd", format!("{record} updated"));
        store.commit(b).unwrap();
        // Reads give the plaintext back.
        assert_eq!(store.get(Tree::Received, b"recv-01").unwrap().unwrap(), big_record.as_bytes());
        store.flush().unwrap();
        store.close().unwrap();
    }

    let files = files_under(dir.path());
    assert!(files.len() >= 3, "{files:?}");
    // The control: the search does find clear text, in the log and in blobs.
    assert!(!find(dir.path(), MARKER).is_empty(), "the search missed a marker that is on disk");
    let blob_hits = find(dir.path(), BLOB_MARKER);
    assert!(!blob_hits.is_empty(), "the search missed the blob marker");
    assert!(
        blob_hits.iter().any(|f| f.components().any(|c| c.as_os_str() == "blobs")),
        "expected the large value in sled's blobs directory: {blob_hits:?}"
    );

    for needle in [NAME, NI, "Fitzgerald", "123456"] {
        let hits = find(dir.path(), needle);
        assert!(hits.is_empty(), "{needle:?} found in clear in {hits:?}");
    }

    // And reopening gives it all back.
    let store = SledStore::open(dir.path(), &key, OpenMode::Existing).unwrap();
    let staff = store.get(Tree::Staff, b"st-0000abcd").unwrap().unwrap();
    assert!(String::from_utf8(staff).unwrap().contains(NI));
}
