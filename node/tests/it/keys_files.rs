//! Key files: created 0600 and atomically, never overwritten without
//! force, refused when readable by others, never regenerated on load,
//! never shown in errors or Debug; issuer key rotation keeps the old key.

// Test helpers may unwrap: a failure is the test failing.
#![allow(clippy::unwrap_used)]

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use staffpass_node::keys::{self, DATA_FILE, DataKey, Error, ISSUER_FILE, KeyFiles, NODE_FILE, NodeKey};
use staffpass_protocol::Timestamp;

fn mode(path: &Path) -> u32 {
    fs::metadata(path).unwrap().permissions().mode() & 0o777
}

fn names(dir: &Path) -> Vec<String> {
    let mut v: Vec<_> = fs::read_dir(dir).unwrap().map(|e| e.unwrap().file_name().into_string().unwrap()).collect();
    v.sort();
    v
}

fn secret_hexes(k: &KeyFiles) -> Vec<String> {
    [k.issuer().to_secret_text(), k.node().to_secret_text(), k.data().to_secret_text()]
        .iter()
        .map(|t| t.trim().split_once(':').unwrap().1.to_string())
        .collect()
}

#[test]
fn create_writes_three_private_files_that_load_back() {
    let dir = tempfile::tempdir().unwrap();
    let keydir = dir.path().join("keys");
    let created = KeyFiles::create(&keydir, false).unwrap();
    assert_eq!(mode(&keydir), 0o700);
    assert_eq!(names(&keydir), vec![DATA_FILE, ISSUER_FILE, NODE_FILE], "no temporary files left behind");
    for (file, prefix) in [(ISSUER_FILE, "issuer-sk:"), (NODE_FILE, "node-sk:"), (DATA_FILE, "data-key:")] {
        let path = keydir.join(file);
        assert_eq!(mode(&path), 0o600, "{file}");
        let text = fs::read_to_string(&path).unwrap();
        assert!(text.starts_with(prefix) && text.trim().len() == prefix.len() + 64, "{file}");
    }

    let loaded = KeyFiles::load(&keydir).unwrap();
    assert_eq!(loaded.issuer().public(), created.issuer().public());
    assert_eq!(loaded.node().peer_id(), created.node().peer_id());
    assert_eq!(*loaded.data().to_secret_text(), *created.data().to_secret_text());

    // The libp2p identity is the node key, and the protocol's NodeId agrees.
    let kp = loaded.node().libp2p_keypair();
    assert_eq!(kp.public().to_peer_id(), loaded.node().peer_id());
    assert_eq!(loaded.node().node_id().to_string(), loaded.node().peer_id().to_string());

    // Fresh keys each time.
    let other = KeyFiles::create(&dir.path().join("other"), false).unwrap();
    assert_ne!(other.issuer().public(), created.issuer().public());
    assert_ne!(other.node().peer_id(), created.node().peer_id());
    assert_ne!(*other.data().to_secret_text(), *created.data().to_secret_text());
}

#[test]
fn create_never_overwrites_without_force() {
    let dir = tempfile::tempdir().unwrap();
    let first = KeyFiles::create(dir.path(), false).unwrap();
    let err = KeyFiles::create(dir.path(), false).unwrap_err();
    assert!(matches!(&err, Error::Exists { path } if path.starts_with(dir.path())), "{err}");
    assert!(err.to_string().contains("--force"), "{err}");
    assert_eq!(KeyFiles::load(dir.path()).unwrap().node().peer_id(), first.node().peer_id());

    let forced = KeyFiles::create(dir.path(), true).unwrap();
    assert_ne!(forced.node().peer_id(), first.node().peer_id());
    assert_eq!(KeyFiles::load(dir.path()).unwrap().node().peer_id(), forced.node().peer_id());
    assert_eq!(mode(&dir.path().join(NODE_FILE)), 0o600);
}

#[test]
fn create_refuses_if_any_one_key_file_exists_and_writes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    fs::write(dir.path().join(DATA_FILE), "data-key:00").unwrap();
    let err = KeyFiles::create(dir.path(), false).unwrap_err();
    assert!(matches!(&err, Error::Exists { path } if path.ends_with(DATA_FILE)), "{err}");
    assert_eq!(names(dir.path()), vec![DATA_FILE]);
}

#[test]
fn load_refuses_files_others_can_read_and_says_how_to_fix() {
    let dir = tempfile::tempdir().unwrap();
    KeyFiles::create(dir.path(), false).unwrap();
    for (file, bad) in [(ISSUER_FILE, 0o640), (NODE_FILE, 0o604), (DATA_FILE, 0o660), (NODE_FILE, 0o601)] {
        let path = dir.path().join(file);
        fs::set_permissions(&path, fs::Permissions::from_mode(bad)).unwrap();
        let err = KeyFiles::load(dir.path()).unwrap_err();
        assert!(matches!(&err, Error::Permissions { path: p, mode } if *p == path && *mode == bad), "{err}");
        assert!(err.to_string().contains(&format!("chmod 600 {}", path.display())), "{err}");
        fs::set_permissions(&path, fs::Permissions::from_mode(0o600)).unwrap();
    }
    // 0400 is fine: only the owner can read it.
    fs::set_permissions(dir.path().join(NODE_FILE), fs::Permissions::from_mode(0o400)).unwrap();
    KeyFiles::load(dir.path()).unwrap();
}

#[test]
fn load_never_replaces_a_missing_or_broken_key() {
    let dir = tempfile::tempdir().unwrap();
    let created = KeyFiles::create(dir.path(), false).unwrap();
    let hexes = secret_hexes(&created);

    fs::remove_file(dir.path().join(NODE_FILE)).unwrap();
    let err = KeyFiles::load(dir.path()).unwrap_err();
    assert!(matches!(&err, Error::Missing { path } if path.ends_with(NODE_FILE)), "{err}");
    assert!(!dir.path().join(NODE_FILE).exists(), "load must not create a key");

    // A secret pasted under the wrong prefix, truncated, or not hex.
    let issuer_hex = &hexes[0];
    for bad in [
        format!("node-pk:{issuer_hex}"),
        format!("issuer-sk:{issuer_hex}"),
        format!("node-sk:{}", &issuer_hex[..60]),
        format!("node-sk:{}zz", &issuer_hex[..62]),
        "\u{feff}\u{0}garbage".to_string(),
    ] {
        keys::write_secret_file(&dir.path().join(NODE_FILE), bad.as_bytes(), true).unwrap();
        let err = KeyFiles::load(dir.path()).unwrap_err();
        assert!(matches!(&err, Error::Malformed { kind: "node-sk", .. }), "{err}");
        let shown = format!("{err} {err:?}");
        assert!(!shown.contains(&issuer_hex[..16]), "key material in the error: {shown}");
    }
    assert_eq!(
        fs::read(dir.path().join(NODE_FILE)).unwrap(),
        "\u{feff}\u{0}garbage".as_bytes(),
        "the broken file was left as it was"
    );
}

#[test]
fn secrets_never_show_in_debug() {
    let dir = tempfile::tempdir().unwrap();
    let k = KeyFiles::create(dir.path(), false).unwrap();
    let shown = format!("{k:?}");
    for hex in secret_hexes(&k) {
        assert!(!shown.contains(&hex[..16]), "{shown}");
    }
    assert_eq!(format!("{:?}", k.node()), "NodeKey(..)");
    assert_eq!(format!("{:?}", k.data()), "DataKey(..)");
    assert_eq!(format!("{:?}", DataKey::generate()), "DataKey(..)");
}

#[test]
fn node_and_data_keys_round_trip_through_text() {
    let n = NodeKey::generate();
    let back = NodeKey::from_secret_text(&n.to_secret_text()).unwrap();
    assert_eq!(back.peer_id(), n.peer_id());
    assert!(NodeKey::from_secret_text("data-key:00").is_err());
    let d = DataKey::generate();
    assert_eq!(*DataKey::from_secret_text(&d.to_secret_text()).unwrap().to_secret_text(), *d.to_secret_text());
    assert!(DataKey::from_secret_text(&n.to_secret_text()).is_err());
}

/// F17: rotation keeps no retired secret; copies left by earlier versions
/// are deleted on load, not loaded.
#[test]
fn rotation_deletes_the_old_issuer_secret() {
    let dir = tempfile::tempdir().unwrap();
    let created = KeyFiles::create(dir.path(), false).unwrap();
    let old_text = fs::read(dir.path().join(ISSUER_FILE)).unwrap();
    let t1 = Timestamp::from_unix(1_800_000_000).unwrap();
    let r1 = KeyFiles::rotate_issuer_at(dir.path(), t1).unwrap();
    assert_eq!(r1.old, created.issuer().public());
    assert_ne!(r1.new, r1.old);
    assert_eq!(r1.retired_at, t1);
    assert_eq!(mode(&dir.path().join(ISSUER_FILE)), 0o600);
    let files: Vec<_> = fs::read_dir(dir.path()).unwrap().map(|e| e.unwrap().path()).collect();
    assert!(files.iter().all(|p| fs::read(p).unwrap() != old_text), "the old secret is still on disk: {files:?}");

    let loaded = KeyFiles::load(dir.path()).unwrap();
    assert_eq!(loaded.issuer().public(), r1.new);
    // The node and data keys are untouched.
    assert_eq!(loaded.node().peer_id(), created.node().peer_id());

    // A retired copy an earlier version left behind is deleted on load.
    let leftover = dir.path().join("issuer-1700000000.retired.key");
    keys::write_secret_file(&leftover, &old_text, false).unwrap();
    let loaded = KeyFiles::load(dir.path()).unwrap();
    assert_eq!(loaded.issuer().public(), r1.new);
    assert!(!leftover.exists(), "a retired secret key was left on disk");
    assert_eq!(keys::delete_retired(dir.path()).unwrap(), 0);

    // The wall-clock variant works too.
    let r2 = KeyFiles::rotate_issuer(dir.path()).unwrap();
    assert_eq!(r2.old, r1.new);
    assert_eq!(KeyFiles::load(dir.path()).unwrap().issuer().public(), r2.new);
}

#[test]
fn secret_file_helpers() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("tls.key");
    keys::write_secret_file(&path, b"-----BEGIN PRIVATE KEY-----", false).unwrap();
    assert_eq!(mode(&path), 0o600);
    assert_eq!(&**keys::read_secret_file(&path).unwrap(), b"-----BEGIN PRIVATE KEY-----");

    let err = keys::write_secret_file(&path, b"other", false).unwrap_err();
    assert!(matches!(err, Error::Exists { .. }), "{err}");
    assert_eq!(&**keys::read_secret_file(&path).unwrap(), b"-----BEGIN PRIVATE KEY-----");
    keys::write_secret_file(&path, b"other", true).unwrap();
    assert_eq!(&**keys::read_secret_file(&path).unwrap(), b"other");
    assert_eq!(names(dir.path()), vec!["tls.key"], "no temporary files left behind");

    fs::set_permissions(&path, fs::Permissions::from_mode(0o644)).unwrap();
    assert!(matches!(keys::read_secret_file(&path), Err(Error::Permissions { mode: 0o644, .. })));

    assert!(matches!(keys::read_secret_file(dir.path()), Err(Error::NotAFile { .. })));
    assert!(matches!(keys::read_secret_file(&dir.path().join("none")), Err(Error::Missing { .. })));

    let big = dir.path().join("big.key");
    keys::write_secret_file(&big, &vec![b'x'; keys::MAX_SECRET_FILE as usize + 1], false).unwrap();
    assert!(matches!(keys::read_secret_file(&big), Err(Error::TooLarge { .. })));

    // Writing into a directory that does not exist fails cleanly.
    let err = keys::write_secret_file(&dir.path().join("no/such/dir/k"), b"x", false).unwrap_err();
    assert!(matches!(err, Error::Io { .. }), "{err}");
}
