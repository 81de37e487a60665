//! The sled store: semantics shared with the in-memory store, atomic
//! batches, reopening, refusing a foreign key or another schema,
//! durability across a crash, and group commit.

// Test helpers may unwrap: a failure is the test failing.
#![allow(clippy::unwrap_used)]

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use staffpass_node::keys::DataKey;
use staffpass_node::store::{Batch, Config, Error, MemStore, OpenMode, Pending, SledStore, Store, Tree};

fn key() -> DataKey {
    DataKey::from_bytes([0x5a; 32])
}

fn open(dir: &Path) -> SledStore {
    SledStore::open(dir, &key(), OpenMode::Create).unwrap()
}

fn kv(k: &str, v: &str) -> (Vec<u8>, Vec<u8>) {
    (k.as_bytes().to_vec(), v.as_bytes().to_vec())
}

/// The behaviour every `Store` must have.
fn exercise(store: &dyn Store) {
    for tree in [Tree::Staff, Tree::Outbox] {
        let mut b = Batch::new();
        b.put(tree, "a/1", "one").put(tree, "a/2", "two").put(tree, "b/1", "three").put(tree, "a/3", "x");
        b.delete(tree, "a/3");
        store.commit(b).unwrap();

        assert_eq!(store.get(tree, b"a/1").unwrap().as_deref(), Some(&b"one"[..]));
        assert_eq!(store.get(tree, b"a/3").unwrap(), None);
        assert_eq!(store.get(tree, b"zzz").unwrap(), None);
        assert_eq!(store.scan_prefix(tree, b"a/").unwrap(), vec![kv("a/1", "one"), kv("a/2", "two")]);
        assert_eq!(store.scan_prefix(tree, b"c/").unwrap(), vec![]);
        assert_eq!(store.range_from(tree, b"a/2", 10).unwrap(), vec![kv("a/2", "two"), kv("b/1", "three")]);
        assert_eq!(store.range_from(tree, b"", 1).unwrap(), vec![kv("a/1", "one")]);
        assert_eq!(store.last(tree).unwrap(), Some(kv("b/1", "three")));
    }
    assert_eq!(store.last(Tree::Rosters).unwrap(), None);

    // put_new refuses an existing key...
    let mut b = Batch::new();
    b.put_new(Tree::Inbox, "msg-1", "");
    store.commit(b.clone()).unwrap();
    let err = store.commit(b).unwrap_err();
    assert!(matches!(&err, Error::AlreadyExists { tree: Tree::Inbox, key } if key == "msg-1"), "{err}");

    // ...and a batch failing half-way leaves nothing, in any tree.
    let mut b = Batch::new();
    b.put(Tree::Staff, "half/1", "v").put(Tree::Outbox, "half/2", "v").delete(Tree::Staff, "a/1");
    b.put_new(Tree::Inbox, "msg-1", "again");
    b.put(Tree::Consents, "half/3", "v");
    assert!(matches!(store.commit(b), Err(Error::AlreadyExists { .. })));
    assert_eq!(store.get(Tree::Staff, b"half/1").unwrap(), None);
    assert_eq!(store.get(Tree::Outbox, b"half/2").unwrap(), None);
    assert_eq!(store.get(Tree::Consents, b"half/3").unwrap(), None);
    assert!(store.get(Tree::Staff, b"a/1").unwrap().is_some(), "the delete was applied");
    assert_eq!(store.get(Tree::Inbox, b"msg-1").unwrap().as_deref(), Some(&b""[..]));

    // A key put earlier in the same batch counts for put_new.
    let mut b = Batch::new();
    b.put(Tree::Index, "dup", "1").put_new(Tree::Index, "dup", "2");
    assert!(matches!(store.commit(b), Err(Error::AlreadyExists { .. })));
    assert_eq!(store.get(Tree::Index, b"dup").unwrap(), None);

    // The store's own metadata cannot be written by callers.
    let mut b = Batch::new();
    b.put(Tree::Meta, "store/schema", "9");
    assert!(matches!(store.commit(b), Err(Error::ReservedKey { .. })));
    let mut b = Batch::new();
    b.put(Tree::Meta, "node/name", "RJZ");
    store.commit(b).unwrap();

    // apply + wait_durable is the same as commit, in order.
    let mut b1 = Batch::new();
    b1.put(Tree::Outbox, "p/1", "1");
    let p1 = store.apply(b1).unwrap();
    let mut b2 = Batch::new();
    b2.put(Tree::Outbox, "p/2", "2");
    let p2 = store.apply(b2).unwrap();
    assert!(p1 < p2);
    store.wait_durable(p2).unwrap();
    store.wait_durable(p1).unwrap();
    store.flush().unwrap();
    assert_eq!(store.scan_prefix(Tree::Outbox, b"p/").unwrap().len(), 2);
}

#[test]
fn mem_store_semantics() {
    exercise(&MemStore::new());
}

#[test]
fn sled_store_semantics() {
    let dir = tempfile::tempdir().unwrap();
    exercise(&open(dir.path()));
}

#[test]
fn data_survives_reopen() {
    let dir = tempfile::tempdir().unwrap();
    {
        let store = open(dir.path());
        let mut b = Batch::new();
        b.put(Tree::Staff, "st-00000001", "record").put(Tree::Rosters, "london-mou/0", "genesis");
        store.commit(b).unwrap();
        let mut b = Batch::new();
        b.put(Tree::Staff, "half", "v").put_new(Tree::Rosters, "london-mou/0", "again");
        assert!(store.commit(b).is_err());
        store.close().unwrap();
    }
    for mode in [OpenMode::Existing, OpenMode::Create] {
        let store = SledStore::open(dir.path(), &key(), mode).unwrap();
        assert_eq!(store.get(Tree::Staff, b"st-00000001").unwrap().as_deref(), Some(&b"record"[..]));
        assert_eq!(store.get(Tree::Rosters, b"london-mou/0").unwrap().as_deref(), Some(&b"genesis"[..]));
        assert_eq!(store.get(Tree::Staff, b"half").unwrap(), None);
        assert_eq!(store.stats().durable_commits, 1, "the failed batch did not count");
        // Dropping (not close) also releases the store.
    }
}

#[test]
fn existing_mode_needs_a_store() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("nope");
    let err = SledStore::open(&missing, &key(), OpenMode::Existing).unwrap_err();
    assert!(matches!(&err, Error::NotFound { path } if *path == missing), "{err}");
    assert!(!missing.exists(), "opening an existing store must not create one");
    assert!(err.to_string().contains("staffpass-node init"), "{err}");

    let err = SledStore::open(dir.path(), &key(), OpenMode::Existing).unwrap_err();
    assert!(matches!(err, Error::NotFound { .. }), "an empty directory holds no store: {err}");
    assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0, "nothing was created");
}

#[test]
fn create_makes_a_private_directory() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("a/store");
    drop(SledStore::open(&path, &key(), OpenMode::Create).unwrap());
    let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o700);
    SledStore::open(&path, &key(), OpenMode::Existing).unwrap();
}

#[test]
fn a_foreign_data_key_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    drop(open(dir.path()));
    let other = DataKey::from_bytes([0x5b; 32]);
    for mode in [OpenMode::Existing, OpenMode::Create] {
        let err = SledStore::open(dir.path(), &other, mode).unwrap_err();
        assert!(matches!(err, Error::ForeignDataDir { .. }), "{err}");
        assert!(err.to_string().contains("data.key"), "{err}");
    }
    // Refusing changed nothing.
    SledStore::open(dir.path(), &key(), OpenMode::Existing).unwrap();
}

#[test]
fn another_schema_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    drop(open(dir.path()));
    {
        let db = sled::open(dir.path()).unwrap();
        db.open_tree("meta").unwrap().insert("store/schema", &99u32.to_be_bytes()).unwrap();
        db.flush().unwrap();
    }
    let err = SledStore::open(dir.path(), &key(), OpenMode::Existing).unwrap_err();
    assert!(matches!(err, Error::SchemaMismatch { found: 99, expected: 2, .. }), "{err}");
}

/// A schema-1 store (outbox, inbox and audit in clear) is migrated when
/// opened: the same values read back, each now sealed on disk.
#[test]
fn a_schema_1_store_is_migrated_to_sealed_trees() {
    let dir = tempfile::tempdir().unwrap();
    drop(open(dir.path()));
    let plain =
        [("outbox", "msg-1", "offer for Alex Testperson"), ("inbox", "in-1", "r"), ("audit", "a-1", "deceased")];
    {
        let db = sled::open(dir.path()).unwrap();
        db.open_tree("meta").unwrap().insert("store/schema", &1u32.to_be_bytes()).unwrap();
        for (tree, k, v) in plain {
            db.open_tree(tree).unwrap().insert(k, v).unwrap();
        }
        db.flush().unwrap();
    }
    let store = SledStore::open(dir.path(), &key(), OpenMode::Existing).unwrap();
    for (tree, k, v) in [(Tree::Outbox, plain[0].1, plain[0].2), (Tree::Inbox, plain[1].1, plain[1].2)] {
        assert_eq!(store.get(tree, k.as_bytes()).unwrap().unwrap(), v.as_bytes());
    }
    assert_eq!(store.get(Tree::Audit, b"a-1").unwrap().unwrap(), b"deceased");
    drop(store);
    let db = sled::open(dir.path()).unwrap();
    let raw = db.open_tree("outbox").unwrap().get("msg-1").unwrap().unwrap();
    assert_ne!(raw.as_ref(), plain[0].2.as_bytes(), "still in clear after the migration");
    assert_eq!(db.open_tree("meta").unwrap().get("store/schema").unwrap().unwrap().as_ref(), 2u32.to_be_bytes());
    drop(db);
    // Opened again: already version 2, nothing sealed twice.
    let store = SledStore::open(dir.path(), &key(), OpenMode::Existing).unwrap();
    assert_eq!(store.get(Tree::Outbox, b"msg-1").unwrap().unwrap(), plain[0].2.as_bytes());
}

/// Opening waits at most this long for the lock in these tests.
fn short_lock_wait() -> Config {
    Config { lock_wait: Duration::from_millis(300), ..Config::default() }
}

#[test]
fn a_store_in_use_is_refused_once_the_wait_for_its_lock_runs_out() {
    let dir = tempfile::tempdir().unwrap();
    let first = open(dir.path());
    let started = Instant::now();
    let err = SledStore::open_with(dir.path(), &key(), OpenMode::Existing, &short_lock_wait()).unwrap_err();
    assert!(started.elapsed() >= Duration::from_millis(300), "gave up after {:?}", started.elapsed());
    assert!(matches!(err, Error::Locked { waited, .. } if waited == Duration::from_millis(300)), "{err}");
    assert!(err.to_string().contains("still locked after waiting 300ms"), "{err}");
    drop(first);
    SledStore::open(dir.path(), &key(), OpenMode::Existing).unwrap();
}

#[test]
fn opening_waits_for_a_lock_released_while_it_waits() {
    let dir = tempfile::tempdir().unwrap();
    let first = open(dir.path());
    // The store is locked when the second open starts; it is closed a
    // little later on another thread (the late release this wait is for).
    let closer = std::thread::spawn(move || {
        std::thread::sleep(Duration::from_millis(200));
        drop(first);
    });
    let second = SledStore::open(dir.path(), &key(), OpenMode::Existing);
    closer.join().unwrap();
    assert!(second.is_ok(), "{:?}", second.err());
}

#[test]
fn tampered_or_moved_ciphertext_is_a_typed_error() {
    let dir = tempfile::tempdir().unwrap();
    {
        let store = open(dir.path());
        let mut b = Batch::new();
        b.put(Tree::Staff, "st-a", "alpha").put(Tree::Staff, "st-b", "beta").put(Tree::Consents, "c-1", "gamma");
        store.commit(b).unwrap();
    }
    {
        let db = sled::open(dir.path()).unwrap();
        let staff = db.open_tree("staff").unwrap();
        let consents = db.open_tree("consents").unwrap();
        let sealed_a = staff.get("st-a").unwrap().unwrap();
        // Moved to another key, and to another tree.
        staff.insert("st-b", sealed_a.clone()).unwrap();
        consents.insert("st-a", sealed_a.clone()).unwrap();
        // A flipped bit.
        let mut bad = sealed_a.to_vec();
        let last = bad.len() - 1;
        bad[last] ^= 1;
        staff.insert("st-a", bad).unwrap();
        // Garbage that is too short to be sealed.
        consents.insert("c-1", &b"xx"[..]).unwrap();
        db.flush().unwrap();
    }
    let store = SledStore::open(dir.path(), &key(), OpenMode::Existing).unwrap();
    for (tree, k) in [(Tree::Staff, "st-a"), (Tree::Staff, "st-b"), (Tree::Consents, "st-a"), (Tree::Consents, "c-1")] {
        let err = store.get(tree, k.as_bytes()).unwrap_err();
        assert!(matches!(err, Error::Decrypt { tree: t } if t == tree), "{tree}/{k}: {err}");
    }
    assert!(matches!(store.scan_prefix(Tree::Staff, b"").unwrap_err(), Error::Decrypt { .. }));
    assert!(matches!(store.last(Tree::Consents).unwrap_err(), Error::Decrypt { .. }));
}

#[test]
fn concurrent_commits_share_flushes_and_all_persist() {
    const THREADS: usize = 8;
    const EACH: usize = 40;
    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(open(dir.path()));
    let handles: Vec<_> = (0..THREADS)
        .map(|t| {
            let store = Arc::clone(&store);
            std::thread::spawn(move || {
                for i in 0..EACH {
                    let mut b = Batch::new();
                    b.put(Tree::Outbox, format!("t{t}/{i:03}"), vec![1u8; 64]);
                    b.put(Tree::Staff, format!("t{t}/{i:03}"), vec![2u8; 64]);
                    store.commit(b).unwrap();
                }
            })
        })
        .collect();
    for h in handles {
        h.join().unwrap();
    }
    let stats = store.stats();
    assert_eq!(stats.durable_commits, (THREADS * EACH) as u64);
    assert!(stats.flushes >= 1);
    // Committers that arrive during a flush wait for the next one
    // together, so there are fewer flushes than commits.
    assert!(stats.flushes < stats.durable_commits, "{stats:?}");
    drop(store);

    let store = SledStore::open(dir.path(), &key(), OpenMode::Existing).unwrap();
    assert_eq!(store.scan_prefix(Tree::Outbox, b"t").unwrap().len(), THREADS * EACH);
    assert_eq!(store.scan_prefix(Tree::Staff, b"t").unwrap().len(), THREADS * EACH);
}

/// A commit that returned is on disk: a child process commits, then
/// aborts at once (no destructors, no final flush); the parent reopens.
#[test]
fn a_returned_commit_survives_a_crash() {
    const CHILD: &str = "STAFFPASS_STORE_CRASH_CHILD";
    if let Ok(dir) = std::env::var(CHILD) {
        let store = SledStore::open(Path::new(&dir), &key(), OpenMode::Existing).unwrap();
        for i in 0..20u32 {
            let mut b = Batch::new();
            b.put(Tree::Outbox, format!("crash/{i:02}"), vec![7u8; 100]).put(Tree::Staff, format!("crash/{i:02}"), "s");
            store.commit(b).unwrap();
        }
        std::process::abort();
    }
    let dir = tempfile::tempdir().unwrap();
    drop(open(dir.path()));
    // This test's name inside the test binary (`<module>::<fn>`, without
    // the binary's own crate name), so the child runs it and nothing else.
    let module = module_path!().split_once("::").map_or("", |(_, m)| m);
    let name = format!("{module}::a_returned_commit_survives_a_crash");
    let status = std::process::Command::new(std::env::current_exe().unwrap())
        .args(["--exact", &name, "--nocapture", "--test-threads=1"])
        .env(CHILD, dir.path())
        .status()
        .unwrap();
    assert!(!status.success(), "the child must have aborted (it ran no test if it exited cleanly)");
    let store = SledStore::open(dir.path(), &key(), OpenMode::Existing).unwrap();
    assert_eq!(store.scan_prefix(Tree::Outbox, b"crash/").unwrap().len(), 20);
    assert_eq!(store.scan_prefix(Tree::Staff, b"crash/").unwrap().len(), 20);
}

#[test]
fn a_ticket_from_elsewhere_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path());
    let err = store.wait_durable(Pending::new(1_000)).unwrap_err();
    assert!(matches!(err, Error::Io { .. }), "{err}");
    // It did not mark anything durable: the next commit still waits for
    // its own flush.
    let mut b = Batch::new();
    b.put(Tree::Outbox, "k", "v");
    store.commit(b).unwrap();
    assert_eq!(store.stats().durable_commits, 1);
    assert_eq!(store.stats().flushes, 1);
}

/// The store directory must be private: one others can enter is refused
/// with what to do, and nothing is opened.
#[test]
fn a_store_directory_others_can_read_is_refused() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("db");
    drop(open(&db));
    assert_eq!(std::fs::metadata(&db).unwrap().permissions().mode() & 0o777, 0o700, "created private");
    std::fs::set_permissions(&db, std::fs::Permissions::from_mode(0o755)).unwrap();
    let err = SledStore::open(&db, &key(), OpenMode::Existing).unwrap_err();
    assert!(matches!(err, Error::Exposed { mode: 0o755, .. }), "{err}");
    assert!(err.to_string().contains("chmod 700"), "{err}");
    std::fs::set_permissions(&db, std::fs::Permissions::from_mode(0o700)).unwrap();
    drop(SledStore::open(&db, &key(), OpenMode::Existing).unwrap());
}
