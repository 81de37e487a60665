//! Damaged sled files give `Error::Corrupt` at open: never a panic, never
//! a hang, never a store that silently lost data.

// Test helpers may unwrap: a failure is the test failing.
#![allow(clippy::unwrap_used)]

use std::fs::{self, OpenOptions};
use std::io::{Seek, SeekFrom, Write};
use std::path::Path;
use std::time::Duration;

use staffpass_node::keys::DataKey;
use staffpass_node::store::{Batch, Config, Error, OpenMode, SledStore, Store, Tree};

const RECORDS: u32 = 300;

fn key() -> DataKey {
    DataKey::from_bytes([3; 32])
}

fn config() -> Config {
    Config { stall_timeout: Duration::from_secs(5), ..Config::default() }
}

/// A store with one commit per record, so the log spans many flushes.
fn healthy_store() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let store = SledStore::open(dir.path(), &key(), OpenMode::Create).unwrap();
    for i in 0..RECORDS {
        let mut b = Batch::new();
        b.put(Tree::Staff, format!("st-{i:08}"), format!("record {i}").repeat(20));
        b.put(Tree::Audit, u64::from(i).to_be_bytes(), vec![b'a'; 150]);
        b.put(Tree::Outbox, format!("msg-{i:08}"), vec![b'o'; 100]);
        store.commit(b).unwrap();
    }
    store.close().unwrap();
    dir
}

fn copy_of(base: &Path) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    // A store directory is private (the node refuses one others can enter).
    fs::set_permissions(dir.path(), std::os::unix::fs::PermissionsExt::from_mode(0o700)).unwrap();
    for e in fs::read_dir(base).unwrap() {
        let e = e.unwrap();
        if e.file_type().unwrap().is_dir() {
            fs::create_dir(dir.path().join(e.file_name())).unwrap();
        } else {
            fs::copy(e.path(), dir.path().join(e.file_name())).unwrap();
        }
    }
    dir
}

fn db_len(dir: &Path) -> u64 {
    fs::metadata(dir.join("db")).unwrap().len()
}

fn truncate(dir: &Path, len: u64) {
    OpenOptions::new().write(true).open(dir.join("db")).unwrap().set_len(len).unwrap();
}

fn overwrite(dir: &Path, file: &str, at: u64, bytes: &[u8]) {
    let mut f = OpenOptions::new().write(true).open(dir.join(file)).unwrap();
    f.seek(SeekFrom::Start(at)).unwrap();
    f.write_all(bytes).unwrap();
}

/// Opening must either fail with `Corrupt`, or give back every record.
/// Returns true for `Corrupt`.
fn corrupt_or_intact(dir: &Path, case: &str) -> bool {
    match SledStore::open_with(dir, &key(), OpenMode::Existing, &config()) {
        Err(Error::Corrupt { path, detail }) => {
            assert_eq!(path, dir, "{case}");
            assert!(!detail.is_empty(), "{case}");
            true
        }
        Err(other) => panic!("{case}: expected Corrupt, got {other:?}"),
        Ok(store) => {
            let staff = store.scan_prefix(Tree::Staff, b"").unwrap_or_else(|e| panic!("{case}: {e}"));
            assert_eq!(staff.len(), RECORDS as usize, "{case}: opened with records missing");
            for (i, (_, v)) in staff.iter().enumerate() {
                assert_eq!(*v, format!("record {i}").repeat(20).into_bytes(), "{case}");
            }
            assert_eq!(store.range_from(Tree::Audit, b"", 1000).unwrap().len(), RECORDS as usize, "{case}");
            assert_eq!(store.scan_prefix(Tree::Outbox, b"").unwrap().len(), RECORDS as usize, "{case}");
            false
        }
    }
}

#[test]
fn the_healthy_store_opens_intact() {
    let base = healthy_store();
    assert!(!corrupt_or_intact(copy_of(base.path()).path(), "untouched"));
}

#[test]
fn truncated_files_are_reported() {
    let base = healthy_store();
    let len = db_len(base.path());
    for (case, new_len) in [
        ("to zero", 0),
        ("to 100 bytes", 100),
        ("to half", len / 2),
        ("by 1000 bytes", len - 1000),
        ("by 20 KB", len - 20_000),
    ] {
        let dir = copy_of(base.path());
        truncate(dir.path(), new_len);
        assert!(corrupt_or_intact(dir.path(), case), "truncated {case}: opened as if nothing happened");
    }
}

#[test]
fn overwritten_bytes_are_reported() {
    let base = healthy_store();
    let len = db_len(base.path());
    let mut reported = 0;
    for tenth in 1..10u64 {
        let dir = copy_of(base.path());
        overwrite(dir.path(), "db", len * tenth / 10, &[0xAA; 4096]);
        if corrupt_or_intact(dir.path(), &format!("4 KiB at {tenth}/10")) {
            reported += 1;
        }
    }
    // Old, dead log space may be overwritten harmlessly; live data may not.
    assert!(reported >= 5, "only {reported} of 9 overwrites were reported");

    for (case, byte) in [("all zeros", 0x00u8), ("all ones", 0xFF)] {
        let dir = copy_of(base.path());
        overwrite(dir.path(), "db", 0, &vec![byte; len as usize]);
        assert!(corrupt_or_intact(dir.path(), case), "{case}");
    }

    let dir = copy_of(base.path());
    let mut o = 17;
    while o < len {
        overwrite(dir.path(), "db", o, &[0x55; 8]);
        o += 4096;
    }
    assert!(corrupt_or_intact(dir.path(), "8 bytes every 4 KiB"));

    let dir = copy_of(base.path());
    fs::write(dir.path().join("conf"), b"this is not a sled configuration file at all").unwrap();
    assert!(corrupt_or_intact(dir.path(), "conf overwritten"));
}

#[test]
fn the_watermark_file_is_checked() {
    let base = healthy_store();

    // Missing: nothing to compare with, so the store opens (with a warning).
    let dir = copy_of(base.path());
    fs::remove_file(dir.path().join("staffpass.watermark")).unwrap();
    assert!(!corrupt_or_intact(dir.path(), "watermark missing"));

    // Damaged: reported, and the message says how to get past it.
    let dir = copy_of(base.path());
    fs::write(dir.path().join("staffpass.watermark"), b"junk").unwrap();
    let err = SledStore::open_with(dir.path(), &key(), OpenMode::Existing, &config()).unwrap_err();
    assert!(matches!(&err, Error::Corrupt { detail, .. } if detail.contains("deleting it")), "{err}");

    // Claiming more commits than the store holds: the log lost its tail.
    let dir = copy_of(base.path());
    let mut mark = b"SPWMARK1".to_vec();
    mark.extend_from_slice(&u64::from(RECORDS + 1).to_be_bytes());
    fs::write(dir.path().join("staffpass.watermark"), &mark).unwrap();
    let err = SledStore::open_with(dir.path(), &key(), OpenMode::Existing, &config()).unwrap_err();
    assert!(matches!(&err, Error::Corrupt { detail, .. } if detail.contains("truncated")), "{err}");
}

#[test]
fn a_store_without_metadata_is_never_reinitialised() {
    let base = healthy_store();
    let dir = copy_of(base.path());
    truncate(dir.path(), 0);
    for mode in [OpenMode::Create, OpenMode::Existing] {
        let err = SledStore::open_with(dir.path(), &key(), mode, &config()).unwrap_err();
        assert!(matches!(err, Error::Corrupt { .. }), "{mode:?}: {err}");
    }

    // sled files with no store metadata in them (e.g. an interrupted init,
    // or someone else's sled database).
    let dir = tempfile::tempdir().unwrap();
    fs::set_permissions(dir.path(), std::os::unix::fs::PermissionsExt::from_mode(0o700)).unwrap();
    {
        let db = sled::open(dir.path()).unwrap();
        db.open_tree("outbox").unwrap().insert("k", "v").unwrap();
        db.flush().unwrap();
    }
    let err = SledStore::open_with(dir.path(), &key(), OpenMode::Create, &config()).unwrap_err();
    assert!(matches!(&err, Error::Corrupt { detail, .. } if detail.contains("metadata is missing")), "{err}");
}

#[test]
fn a_lost_main_file_is_damage_not_an_empty_directory() {
    let base = healthy_store();
    let dir = copy_of(base.path());
    fs::remove_file(dir.path().join("db")).unwrap();
    for mode in [OpenMode::Existing, OpenMode::Create] {
        let err = SledStore::open_with(dir.path(), &key(), mode, &config()).unwrap_err();
        assert!(matches!(&err, Error::Corrupt { detail, .. } if detail.contains("missing")), "{mode:?}: {err}");
    }
    assert!(!dir.path().join("db").exists(), "no fresh store was made over the remains");
}

/// The record-keys file beside the store (`record-keys`): changed, cut
/// short, emptied, replaced by garbage or sealed under another data key,
/// it is `Error::Corrupt` at open, never read as an empty set of keys
/// (which would shred every record it holds keys for), and it is left as
/// it was; readable by others, it is refused with the fix named.
#[test]
fn a_damaged_record_keys_file_is_corrupt_never_an_empty_set() {
    use staffpass_node::store::RecordKeys;
    use staffpass_node::store::record_keys::FILE;
    use std::os::unix::fs::PermissionsExt;

    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join(FILE);
    let keys = RecordKeys::open(&path, &key()).unwrap();
    keys.ensure([&b"p/1"[..], b"p/2"]).unwrap();
    drop(keys);
    assert_eq!(RecordKeys::open(&path, &key()).unwrap().len(), 2, "the healthy file reads back");
    let good = fs::read(&path).unwrap();
    let mut flipped = good.clone();
    let mid = flipped.len() / 2;
    flipped[mid] ^= 0x01;
    for (case, bytes) in [
        ("one byte changed", flipped),
        ("cut short", good[..good.len() / 2].to_vec()),
        ("emptied", Vec::new()),
        ("garbage", b"not a record key file".to_vec()),
    ] {
        fs::write(&path, &bytes).unwrap();
        match RecordKeys::open(&path, &key()) {
            Err(e @ Error::Corrupt { .. }) => assert!(e.to_string().contains(FILE), "{case}: {e}"),
            other => panic!("{case}: expected Corrupt, got {other:?}"),
        }
        assert_eq!(fs::read(&path).unwrap(), bytes, "{case}: the file was left as it was");
    }
    fs::write(&path, &good).unwrap();
    let foreign = DataKey::from_bytes([4; 32]);
    assert!(matches!(RecordKeys::open(&path, &foreign), Err(Error::Corrupt { .. })), "another node's data key");
    fs::set_permissions(&path, fs::Permissions::from_mode(0o644)).unwrap();
    let err = RecordKeys::open(&path, &key()).unwrap_err();
    assert!(err.to_string().contains("chmod 600"), "{err}");
}
