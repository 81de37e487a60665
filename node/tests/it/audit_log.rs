//! The audit log: contiguous, atomic with the data it records, verifiable
//! link by link, and listable per staff member.

// Test helpers may unwrap: a failure is the test failing.
#![allow(clippy::unwrap_used)]

use std::sync::Arc;

use staffpass_node::audit::{
    Action, Audit, Broken, CHECKPOINT_FILE, Checkpoint, Checkpoints, Entry, Error, Event, Fault, Head, SignedCheckpoint,
};
use staffpass_node::keys::DataKey;
use staffpass_node::store::{self, Batch, MemStore, OpenMode, SledStore, Store, Tree};
use staffpass_protocol::{Hash, IssuerSecretKey, StaffRef, Timestamp};

fn at(n: i64) -> Timestamp {
    Timestamp::from_unix(1_795_426_200 + n).unwrap()
}

fn staff(s: &str) -> StaffRef {
    s.parse().unwrap()
}

fn sled(dir: &std::path::Path) -> Arc<dyn Store> {
    Arc::new(SledStore::open(dir, &DataKey::from_bytes([9; 32]), OpenMode::Create).unwrap())
}

/// A log of `n` entries, every other one naming a staff member.
fn chain(store: Arc<dyn Store>, n: u64) -> Audit {
    let audit = Audit::open(store).unwrap();
    for i in 0..n {
        let mut e = Event::new("CN=hr-admin,O=RJZ", Action::Issue).object(format!("cred-{i:032x}"));
        if i % 2 == 0 {
            e = e.staff(staff("st-00000001"));
        }
        audit.record(vec![e], at(i as i64)).unwrap();
    }
    audit
}

#[test]
fn appends_are_contiguous_and_verify() {
    let dir = tempfile::tempdir().unwrap();
    let store = sled(dir.path());
    let audit = Audit::open(Arc::clone(&store)).unwrap();
    assert_eq!(audit.head(), Head::default());
    assert_eq!(audit.verify().unwrap().entries, 0);

    let mut batch = Batch::new();
    batch.put(Tree::Staff, "st-00000001", "record");
    let seqs = audit
        .commit(
            batch,
            vec![
                Event::new("CN=hr-admin,O=RJZ", Action::Import).staff(staff("st-00000001")),
                Event::system(Action::Admin).reason("import-finished"),
            ],
            at(0),
        )
        .unwrap();
    assert_eq!(seqs, vec![1, 2]);
    let seqs = audit.record(vec![Event::peer("12D3KooWabc", Action::Receipt).object("msg-1")], at(5)).unwrap();
    assert_eq!(seqs, vec![3]);
    assert_eq!(audit.commit(Batch::new(), vec![], at(6)).unwrap(), Vec::<u64>::new());

    let entries = audit.since(1, 100).unwrap();
    assert_eq!(entries.iter().map(|e| e.seq).collect::<Vec<_>>(), vec![1, 2, 3]);
    assert_eq!(entries[0].prev, Hash::default());
    assert_eq!(entries[1].prev, entries[0].hash);
    assert_eq!(entries[2].prev, entries[1].hash);
    assert!(entries.iter().all(Entry::hash_ok));
    assert_eq!(entries[2].event.actor, "peer:12D3KooWabc");
    assert_eq!(audit.since(2, 1).unwrap()[0].seq, 2);
    assert_eq!(audit.since(4, 10).unwrap(), vec![]);
    assert_eq!(audit.get(3).unwrap().unwrap(), entries[2]);
    assert_eq!(audit.get(4).unwrap(), None);

    let report = audit.verify().unwrap();
    assert_eq!(report.entries, 3);
    assert_eq!(report.head, Head { seq: 3, hash: entries[2].hash });
    assert_eq!(audit.head(), report.head);
    assert_eq!(store.get(Tree::Staff, b"st-00000001").unwrap().unwrap(), b"record");
}

#[test]
fn the_chain_continues_after_reopening() {
    let dir = tempfile::tempdir().unwrap();
    let head = {
        let audit = chain(sled(dir.path()), 5);
        audit.head()
    };
    let audit = Audit::open(sled(dir.path())).unwrap();
    assert_eq!(audit.head(), head);
    assert_eq!(audit.record(vec![Event::system(Action::Expiry)], at(99)).unwrap(), vec![6]);
    assert_eq!(audit.verify().unwrap().entries, 6);
    assert_eq!(audit.get(6).unwrap().unwrap().prev, head.hash);
}

#[test]
fn a_failed_commit_writes_nothing_and_leaves_no_gap() {
    let store: Arc<dyn Store> = Arc::new(MemStore::new());
    let audit = chain(Arc::clone(&store), 2);
    let mut seed = Batch::new();
    seed.put(Tree::Inbox, "msg-1", "");
    store.commit(seed).unwrap();

    // The data part fails (a message already handled): no data, no entry.
    let mut batch = Batch::new();
    batch.put(Tree::Received, "recv-1", "passport");
    batch.put_new(Tree::Inbox, "msg-1", "");
    let err = audit
        .commit(batch, vec![Event::peer("12D3KooWabc", Action::Receipt).staff(staff("st-00000002"))], at(10))
        .unwrap_err();
    assert!(matches!(err, Error::Store(store::Error::AlreadyExists { tree: Tree::Inbox, .. })), "{err}");
    assert_eq!(store.get(Tree::Received, b"recv-1").unwrap(), None);
    assert_eq!(audit.head().seq, 2);
    assert_eq!(audit.since(3, 10).unwrap(), vec![]);
    assert_eq!(audit.for_staff(&staff("st-00000002"), 10).unwrap(), vec![]);

    // An invalid event fails before anything is written.
    let bad = Event::system(Action::Rejection).reason("Consent expired for Jane Smith");
    let err = audit.record(vec![Event::system(Action::Admin), bad], at(11)).unwrap_err();
    assert!(matches!(err, Error::InvalidEvent { field: "reason", .. }), "{err}");
    assert!(!err.to_string().contains("Jane"), "the rejected value is not echoed: {err}");
    assert_eq!(audit.head().seq, 2);

    // The next commit takes the next seq.
    assert_eq!(audit.record(vec![Event::system(Action::Admin)], at(12)).unwrap(), vec![3]);
    assert_eq!(audit.verify().unwrap().entries, 3);
}

#[test]
fn event_formats_are_enforced() {
    let ok = Event::new("CN=Jo Bloggs,OU=HR,O=RJZ", Action::Consent)
        .staff(staff("st-00000001"))
        .org("RJ1".parse().unwrap())
        .object("consent-0123456789abcdef0123456789abcdef")
        .reason("consent-expired");
    ok.validate().unwrap();
    let cases = [
        (Event::new("", Action::Admin), "actor"),
        (Event::new("a".repeat(257), Action::Admin), "actor"),
        (Event::new("x\ny", Action::Admin), "actor"),
        (Event::system(Action::Admin).object("cred 1"), "object"),
        (Event::system(Action::Admin).object(""), "object"),
        (Event::system(Action::Admin).object("x".repeat(129)), "object"),
        (Event::system(Action::Admin).reason("Has Capitals"), "reason"),
        (Event::system(Action::Admin).reason("QQ 12 34 56 C"), "reason"),
        (Event::system(Action::Admin).reason("r".repeat(65)), "reason"),
    ];
    for (event, field) in cases {
        let err = event.validate().unwrap_err();
        assert!(matches!(err, Error::InvalidEvent { field: f, .. } if f == field), "{event:?}: {err}");
    }
}

#[test]
fn concurrent_commits_keep_the_chain_contiguous() {
    let dir = tempfile::tempdir().unwrap();
    let store = sled(dir.path());
    let audit = Arc::new(Audit::open(Arc::clone(&store)).unwrap());
    let threads: Vec<_> = (0..6)
        .map(|t| {
            let audit = Arc::clone(&audit);
            std::thread::spawn(move || {
                let mut mine = Vec::new();
                for i in 0..25 {
                    let mut b = Batch::new();
                    b.put(Tree::Outbox, format!("t{t}/{i}"), "m");
                    mine.extend(audit.commit(b, vec![Event::system(Action::Offer)], at(i)).unwrap());
                }
                mine
            })
        })
        .collect();
    let mut all: Vec<u64> = threads.into_iter().flat_map(|h| h.join().unwrap()).collect();
    all.sort_unstable();
    assert_eq!(all, (1..=150).collect::<Vec<_>>());
    assert_eq!(audit.verify().unwrap().entries, 150);
    assert_eq!(store.scan_prefix(Tree::Outbox, b"t").unwrap().len(), 150);
}

#[test]
fn a_staff_member_sees_their_own_history() {
    let store: Arc<dyn Store> = Arc::new(MemStore::new());
    let audit = Audit::open(store).unwrap();
    let (a, a_longer, b) = (staff("st-00000001"), staff("st-000000010"), staff("st-00000002"));
    for (i, who) in [&a, &b, &a_longer, &a, &b, &a].into_iter().enumerate() {
        audit.record(vec![Event::system(Action::Offer).staff(who.clone())], at(i as i64)).unwrap();
    }
    audit.record(vec![Event::system(Action::Admin)], at(9)).unwrap();
    let seqs = |v: Vec<Entry>| v.into_iter().map(|e| e.seq).collect::<Vec<_>>();
    assert_eq!(seqs(audit.for_staff(&a, 100).unwrap()), vec![1, 4, 6]);
    assert_eq!(seqs(audit.for_staff(&a_longer, 100).unwrap()), vec![3]);
    assert_eq!(seqs(audit.for_staff(&b, 100).unwrap()), vec![2, 5]);
    assert_eq!(seqs(audit.for_staff(&a, 2).unwrap()), vec![1, 4]);
    assert_eq!(seqs(audit.for_staff_since(&a, 5, 2).unwrap()), vec![6]);
    assert_eq!(audit.for_staff(&staff("st-99999999"), 10).unwrap(), vec![]);
    assert!(audit.for_staff(&a, 100).unwrap().iter().all(|e| e.event.staff.as_ref() == Some(&a)));
}

/// Rewrites the raw stored value of entry `seq`.
fn rewrite(store: &dyn Store, seq: u64, value: Vec<u8>) {
    let mut b = Batch::new();
    b.put(Tree::Audit, seq.to_be_bytes(), value);
    store.commit(b).unwrap();
}

fn raw(store: &dyn Store, seq: u64) -> Vec<u8> {
    store.get(Tree::Audit, &seq.to_be_bytes()).unwrap().unwrap()
}

fn encode(e: &Entry) -> Vec<u8> {
    staffpass_protocol::encoding::to_bytes(e)
}

#[test]
fn tampering_with_any_entry_is_reported_at_that_entry() {
    const N: u64 = 6;
    for seq in 1..=N {
        let store: Arc<dyn Store> = Arc::new(MemStore::new());
        let audit = chain(Arc::clone(&store), N);
        let mut e = audit.get(seq).unwrap().unwrap();
        e.event.reason = Some("rewritten".into());
        rewrite(&*store, seq, encode(&e));
        assert_eq!(audit.verify().unwrap_err(), Broken { seq, fault: Fault::HashMismatch }, "entry {seq}");
    }

    // Garbage in place of an entry.
    let store: Arc<dyn Store> = Arc::new(MemStore::new());
    let audit = chain(Arc::clone(&store), N);
    let mut bytes = raw(&*store, 3);
    bytes.truncate(bytes.len() / 2);
    rewrite(&*store, 3, bytes);
    assert!(matches!(audit.verify(), Err(Broken { seq: 3, fault: Fault::Undecodable { .. } })));

    // A flipped byte anywhere in an entry.
    let len = {
        let store: Arc<dyn Store> = Arc::new(MemStore::new());
        chain(Arc::clone(&store), N);
        raw(&*store, 4).len()
    };
    for i in 0..len {
        let store: Arc<dyn Store> = Arc::new(MemStore::new());
        let audit = chain(Arc::clone(&store), N);
        let mut bytes = raw(&*store, 4);
        bytes[i] ^= 0x01;
        rewrite(&*store, 4, bytes);
        let broken = audit.verify().unwrap_err();
        assert_eq!(broken.seq, 4, "byte {i}: {broken}");
    }
}

#[test]
fn rehashed_deleted_and_reordered_entries_are_reported() {
    const N: u64 = 6;

    // Altered and re-hashed: the next link breaks.
    let store: Arc<dyn Store> = Arc::new(MemStore::new());
    let audit = chain(Arc::clone(&store), N);
    let mut e = audit.get(3).unwrap().unwrap();
    e.event.actor = "CN=someone-else".into();
    e.hash = Entry::compute_hash(e.seq, e.at, &e.prev, &e.event);
    rewrite(&*store, 3, encode(&e));
    assert_eq!(audit.verify().unwrap_err(), Broken { seq: 4, fault: Fault::PrevMismatch });

    // The last entry altered and re-hashed: it is not the head we wrote.
    let store: Arc<dyn Store> = Arc::new(MemStore::new());
    let audit = chain(Arc::clone(&store), N);
    let mut e = audit.get(N).unwrap().unwrap();
    e.at = at(-1);
    e.hash = Entry::compute_hash(e.seq, e.at, &e.prev, &e.event);
    rewrite(&*store, N, encode(&e));
    assert_eq!(audit.verify().unwrap_err(), Broken { seq: N, fault: Fault::HeadMismatch });

    // Deleted in the middle, or at the end.
    for gone in [2, N] {
        let store: Arc<dyn Store> = Arc::new(MemStore::new());
        let audit = chain(Arc::clone(&store), N);
        let mut b = Batch::new();
        b.delete(Tree::Audit, gone.to_be_bytes());
        store.commit(b).unwrap();
        assert_eq!(audit.verify().unwrap_err(), Broken { seq: gone, fault: Fault::Missing });
    }

    // Two entries swapped.
    let store: Arc<dyn Store> = Arc::new(MemStore::new());
    let audit = chain(Arc::clone(&store), N);
    let (two, three) = (raw(&*store, 2), raw(&*store, 3));
    rewrite(&*store, 2, three);
    rewrite(&*store, 3, two);
    assert_eq!(audit.verify().unwrap_err(), Broken { seq: 2, fault: Fault::SeqMismatch { found: 3 } });

    // A staff member's index entry removed: their history would miss it.
    let store: Arc<dyn Store> = Arc::new(MemStore::new());
    let audit = chain(Arc::clone(&store), N);
    let mut key = b"st-00000001\0".to_vec();
    key.extend_from_slice(&3u64.to_be_bytes());
    let mut b = Batch::new();
    b.delete(Tree::AuditByStaff, key);
    store.commit(b).unwrap();
    assert_eq!(audit.verify().unwrap_err(), Broken { seq: 3, fault: Fault::IndexMissing });
}

#[test]
fn open_refuses_a_log_whose_head_does_not_verify() {
    let store: Arc<dyn Store> = Arc::new(MemStore::new());
    let audit = chain(Arc::clone(&store), 3);
    let mut e = audit.get(3).unwrap().unwrap();
    e.event.object = Some("cred-other".into());
    rewrite(&*store, 3, encode(&e));
    let err = Audit::open(store).unwrap_err();
    assert!(matches!(err, Error::Broken(Broken { seq: 3, fault: Fault::HashMismatch })), "{err}");
    assert!(err.to_string().contains("backup"), "{err}");
}

/// Golden vectors, cross-checked by hand-encoding postcard in Python:
/// sha256("staffpass\0audit-entry\0" || 00 01 || postcard(seq, at, prev, event)).
/// A change here is a change of the on-disk format: existing logs would
/// stop verifying.
#[test]
fn the_entry_hash_is_pinned() {
    let event = Event::new("CN=hr-admin,O=RJZ", Action::Revocation)
        .staff(staff("st-0000abcd"))
        .org("RJ1".parse().unwrap())
        .object("cred-07070707070707070707070707070707")
        .reason("training-expiry");
    let t: Timestamp = "2026-11-23T09:30:00Z".parse().unwrap();
    let first = Entry::compute_hash(1, t, &Hash::default(), &event);
    assert_eq!(first.to_string(), "704627ffd7f348efa94fead494636b743f91c6b470048cfca20b785bdd3442cd");
    let second = Entry::compute_hash(2, t, &first, &Event::system(Action::KeyRotation));
    assert_eq!(second.to_string(), "1a77cbf1fde3dee6519ca9494fd35a5669c458d6cc182a5e54e764c1e1b1abd0");
    // Each field is covered.
    assert_ne!(Entry::compute_hash(2, t, &Hash::default(), &event), first);
    assert_ne!(Entry::compute_hash(1, t.plus_secs(1), &Hash::default(), &event), first);
    assert_ne!(Entry::compute_hash(1, t, &second, &event), first);
    assert_ne!(Entry::compute_hash(1, t, &Hash::default(), &event.clone().reason("other")), first);
}

#[test]
fn entries_read_as_json_with_kebab_case_actions() {
    let names: Vec<String> = Action::ALL.iter().map(|a| serde_json::to_string(a).unwrap()).collect();
    assert_eq!(
        names,
        [
            "import",
            "staff-update",
            "staff-delete",
            "issue",
            "consent",
            "offer",
            "receipt",
            "rejection",
            "withdrawal",
            "erasure",
            "expiry",
            "revocation",
            "roster-change",
            "admin",
            "key-rotation",
            "export"
        ]
        .map(|s| format!("\"{s}\""))
    );
    for a in Action::ALL {
        assert_eq!(serde_json::to_string(&a).unwrap(), format!("\"{a}\""));
    }
    let store: Arc<dyn Store> = Arc::new(MemStore::new());
    let audit = chain(store, 1);
    let json = serde_json::to_value(audit.get(1).unwrap().unwrap()).unwrap();
    assert_eq!(json["event"]["action"], "issue");
    assert_eq!(json["event"]["staff"], "st-00000001");
    assert_eq!(json["seq"], 1);
    assert_eq!(json["prev"], "0".repeat(64));
}

// ------------------------------------------------------------ checkpoints

fn issuer() -> IssuerSecretKey {
    IssuerSecretKey::from_bytes(&[7; 32])
}

/// The store directory inside `data`, as a node lays it out.
fn db(data: &std::path::Path) -> std::path::PathBuf {
    data.join("db")
}

/// Checkpoints every `every` entries, the latest in `data`'s checkpoint file.
fn checkpoints(data: &std::path::Path, every: u64) -> Checkpoints {
    Checkpoints::new(issuer()).every(every).file(data.join(CHECKPOINT_FILE))
}

/// Opens the log in `data` as a node does at start-up.
fn start(data: &std::path::Path, every: u64, now: i64) -> (Arc<dyn Store>, Audit, Result<(), Error>) {
    let store = sled(&db(data));
    let audit = Audit::open(Arc::clone(&store)).unwrap();
    let started = audit.start_checkpoints(checkpoints(data, every), at(now));
    (store, audit, started)
}

/// Appends `n` entries, one commit each, from time `from` on.
fn append(audit: &Audit, n: u64, from: i64) {
    for i in 0..n {
        let e = Event::system(Action::Expiry).object(format!("consent-{i:032x}")).reason("consent-expired");
        audit.record(vec![e], at(from + i as i64)).unwrap();
    }
}

const CHECKPOINT_KEY: &[u8] = b"audit/checkpoint/";

/// The checkpoints kept in the store, by seq.
fn stored_checkpoints(store: &dyn Store) -> Vec<SignedCheckpoint> {
    store
        .scan_prefix(Tree::Meta, CHECKPOINT_KEY)
        .unwrap()
        .into_iter()
        .map(|(_, v)| staffpass_protocol::encoding::from_bytes(&v, 1024, "checkpoint").unwrap())
        .collect()
}

fn file_checkpoint(data: &std::path::Path) -> SignedCheckpoint {
    serde_json::from_slice(&std::fs::read(data.join(CHECKPOINT_FILE)).unwrap()).unwrap()
}

#[test]
fn checkpoints_are_signed_every_n_entries_and_the_latest_kept_beside_the_store() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path();
    {
        let (store, audit, started) = start(data, 4, 0);
        started.unwrap();
        assert!(stored_checkpoints(&*store).is_empty(), "an empty log is not checkpointed");
        append(&audit, 10, 1);
        let seqs: Vec<u64> = stored_checkpoints(&*store).iter().map(|c| c.body.seq).collect();
        assert_eq!(seqs, vec![4, 8]);
        for c in stored_checkpoints(&*store) {
            assert_eq!(c.body.key, issuer().public());
            assert_eq!(c.body.hash, audit.get(c.body.seq).unwrap().unwrap().hash);
            issuer().public().verify(&c.body, &c.signature).unwrap();
        }
        assert_eq!(file_checkpoint(data), stored_checkpoints(&*store)[1]);
        let mode = std::fs::metadata(data.join(CHECKPOINT_FILE)).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);

        // On request (the timer, a clean shutdown): only if the head moved.
        let c = audit.checkpoint(at(20)).unwrap().unwrap();
        assert_eq!((c.body.seq, c.body.hash, c.body.at), (10, audit.head().hash, at(20)));
        assert_eq!(audit.checkpoint(at(21)).unwrap(), None);
        assert_eq!(file_checkpoint(data).body.seq, 10);
    }
    {
        // At start-up, nothing new if the head did not move ...
        let (store, audit, started) = start(data, 4, 30);
        started.unwrap();
        assert_eq!(stored_checkpoints(&*store).len(), 3);
        append(&audit, 1, 31);
    }
    // ... and one if it did (here: entries appended after the last one).
    let (store, _audit, started) = start(data, 4, 40);
    started.unwrap();
    let seqs: Vec<(u64, Timestamp)> = stored_checkpoints(&*store).iter().map(|c| (c.body.seq, c.body.at)).collect();
    assert_eq!(seqs, vec![(4, at(4)), (8, at(8)), (10, at(20)), (11, at(40))]);
    assert_eq!(file_checkpoint(data).body.seq, 11);
}

#[test]
fn a_missing_checkpoint_file_is_written_again_and_recorded_in_the_log() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path();
    {
        let (_store, audit, started) = start(data, 4, 0);
        started.unwrap();
        append(&audit, 4, 1);
    }
    std::fs::remove_file(data.join(CHECKPOINT_FILE)).unwrap();
    let (store, audit, started) = start(data, 4, 10);
    started.unwrap();
    let last = audit.get(5).unwrap().unwrap();
    assert_eq!(last.event.reason.as_deref(), Some("checkpoint-file-missing"));
    assert_eq!(file_checkpoint(data).body.seq, 5);
    assert_eq!(stored_checkpoints(&*store).iter().map(|c| c.body.seq).collect::<Vec<_>>(), vec![4, 5]);
}

/// Pinned like the entry hash, cross-checked in Python (postcard by hand,
/// ed25519 from RFC 8032): sha256("staffpass\0audit-checkpoint\0" || 00 01
/// || postcard(seq, hash, at, key)) and the signature over those bytes. A
/// change here is a change of what the node signs: every existing
/// checkpoint would stop verifying.
#[test]
fn the_checkpoint_encoding_is_pinned() {
    let t: Timestamp = "2026-11-23T09:30:00Z".parse().unwrap();
    let hash: Hash = "704627ffd7f348efa94fead494636b743f91c6b470048cfca20b785bdd3442cd".parse().unwrap();
    let c = Checkpoint::sign(&issuer(), 256, hash, t);
    assert_eq!(c.version, 1);
    let bytes = staffpass_protocol::Signable::signing_bytes(&c.body);
    assert!(bytes.starts_with(b"staffpass\0audit-checkpoint\0\0\x01"));
    assert_eq!(
        hex::encode(staffpass_protocol::Signable::hash(&c.body).0),
        "936f67db18c541e8d8e2eda101651f6982eef58cc8276ae674698107ea73b4e2"
    );
    assert_eq!(
        hex::encode(c.signature.0),
        "2f88becbefef814961e45d5fc2f00bf23ff344c390dd259f903fc6b4eb7f34fa\
         df2670bec0e1ab6c227c1ee75f0a908320c9bf0b156bac14a43d28fb91e60605"
    );
    // Each field is covered.
    let key = issuer().public();
    key.verify(&c.body, &c.signature).unwrap();
    for changed in [
        Checkpoint { seq: 257, ..c.body.clone() },
        Checkpoint { hash: Hash::default(), ..c.body.clone() },
        Checkpoint { at: t.plus_secs(1), ..c.body.clone() },
        Checkpoint { key: IssuerSecretKey::from_bytes(&[8; 32]).public(), ..c.body.clone() },
    ] {
        assert!(key.verify(&changed, &c.signature).is_err(), "{changed:?}");
    }
}

/// A node's log in `data`: `n` entries, checkpoints every 4, and the
/// checkpoint a clean shutdown signs; then the node is stopped.
fn stopped_node(data: &std::path::Path, n: u64) {
    let (_store, audit, started) = start(data, 4, 0);
    started.unwrap();
    append(&audit, n, 1);
    audit.checkpoint(at(1000)).unwrap();
}

/// With the node stopped: sets entry `seq`'s reason to `reason` and
/// recomputes every later hash, as someone who can write the store can.
fn rewrite_consistently(store: &dyn Store, seq: u64, reason: &str) {
    let decode = |s| staffpass_protocol::encoding::from_bytes::<Entry>(&raw(store, s), 4096, "entry").unwrap();
    let mut prev = if seq == 1 { Hash::default() } else { decode(seq - 1).hash };
    let last = u64::from_be_bytes(store.last(Tree::Audit).unwrap().unwrap().0.try_into().unwrap());
    for s in seq..=last {
        let mut e = decode(s);
        if s == seq {
            e.event.reason = Some(reason.into());
        }
        e.prev = prev;
        e.hash = Entry::compute_hash(e.seq, e.at, &e.prev, &e.event);
        prev = e.hash;
        rewrite(store, s, encode(&e));
    }
}

fn delete_stored_checkpoints(store: &dyn Store, from: u64) {
    let mut b = Batch::new();
    for (k, _) in store.scan_prefix(Tree::Meta, CHECKPOINT_KEY).unwrap() {
        if u64::from_be_bytes(k[CHECKPOINT_KEY.len()..].try_into().unwrap()) >= from {
            b.delete(Tree::Meta, k);
        }
    }
    store.commit(b).unwrap();
}

#[test]
fn a_log_rewritten_consistently_is_reported() {
    for keep_stored_checkpoints in [true, false] {
        let dir = tempfile::tempdir().unwrap();
        let data = dir.path();
        stopped_node(data, 10);
        {
            let store = sled(&db(data));
            rewrite_consistently(&*store, 3, "rewritten");
            if !keep_stored_checkpoints {
                delete_stored_checkpoints(&*store, 0);
            }
        }
        // The chain itself is consistent again ...
        let (_store, audit, started) = start(data, 4, 2000);
        assert_eq!(audit.get(3).unwrap().unwrap().event.reason.as_deref(), Some("rewritten"));
        // ... but not with what the node signed: at the first checkpoint
        // after the change (4 in the store; else 10, the one in the file).
        let seq = if keep_stored_checkpoints { 4 } else { 10 };
        let expected = Broken { seq, fault: Fault::CheckpointMismatch };
        assert!(matches!(started, Err(Error::Broken(ref b)) if *b == expected), "{started:?}");
        assert_eq!(audit.verify().unwrap_err(), expected);
        // Nothing more is signed over the rewritten log.
        append(&audit, 8, 3000);
        assert_eq!(file_checkpoint(data).body.seq, 10);
        assert_eq!(audit.verify().unwrap_err(), expected);
    }
}

#[test]
fn a_truncated_log_is_reported_after_a_restart() {
    for keep_stored_checkpoints in [true, false] {
        let dir = tempfile::tempdir().unwrap();
        let data = dir.path();
        stopped_node(data, 10);
        {
            let store = sled(&db(data));
            let mut b = Batch::new();
            for seq in 7..=10u64 {
                b.delete(Tree::Audit, seq.to_be_bytes());
            }
            store.commit(b).unwrap();
            if !keep_stored_checkpoints {
                delete_stored_checkpoints(&*store, 7);
            }
        }
        let (_store, audit, started) = start(data, 4, 2000);
        assert_eq!(audit.head().seq, 6);
        // The first entry missing, and the first checkpoint past the end (8
        // in the store; else 10, the one in the file).
        let checkpoint = if keep_stored_checkpoints { 8 } else { 10 };
        let expected = Broken { seq: 7, fault: Fault::Truncated { checkpoint } };
        assert!(matches!(started, Err(Error::Broken(ref b)) if *b == expected), "{started:?}");
        assert_eq!(audit.verify().unwrap_err(), expected);
        let err = Error::Broken(expected).to_string();
        assert!(err.contains("cut off") && err.contains("backup"), "{err}");
    }
}

#[test]
fn a_checkpoint_with_a_bad_signature_is_reported() {
    let other = IssuerSecretKey::from_bytes(&[8; 32]);
    let other_key = Fault::CheckpointKey { key: other.public() };
    type Forge = fn(&mut SignedCheckpoint, &IssuerSecretKey);
    let forgeries: [(&str, Forge, Fault); 3] = [
        ("a flipped signature bit", |c, _| c.signature.0[5] ^= 0x10, Fault::CheckpointSignature),
        (
            "another key, named as such",
            |c, other| *c = Checkpoint::sign(other, c.body.seq, c.body.hash, c.body.at),
            other_key,
        ),
        ("another key, naming the node's", |c, other| c.signature = other.sign(&c.body), Fault::CheckpointSignature),
    ];
    for (what, forge, fault) in forgeries {
        for in_file in [false, true] {
            let dir = tempfile::tempdir().unwrap();
            let data = dir.path();
            stopped_node(data, 10);
            if in_file {
                let mut c = file_checkpoint(data);
                forge(&mut c, &other);
                std::fs::write(data.join(CHECKPOINT_FILE), serde_json::to_vec(&c).unwrap()).unwrap();
            } else {
                let store = sled(&db(data));
                let mut c = stored_checkpoints(&*store)[0].clone();
                forge(&mut c, &other);
                let mut b = Batch::new();
                b.put(
                    Tree::Meta,
                    [CHECKPOINT_KEY, &4u64.to_be_bytes()].concat(),
                    staffpass_protocol::encoding::to_bytes(&c),
                );
                store.commit(b).unwrap();
            }
            let (_store, audit, started) = start(data, 4, 2000);
            // The one in the store is at 4, the file holds the last, at 10.
            let expected = Broken { seq: if in_file { 10 } else { 4 }, fault: fault.clone() };
            assert!(
                matches!(started, Err(Error::Broken(ref b)) if *b == expected),
                "{what}, in file {in_file}: {started:?}"
            );
            assert_eq!(audit.verify().unwrap_err(), expected, "{what}, in file {in_file}");
        }
    }
}

#[test]
fn an_honest_log_with_several_checkpoints_verifies() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path();
    stopped_node(data, 10);
    let (store, audit, started) = start(data, 4, 2000);
    started.unwrap();
    append(&audit, 7, 2001);
    audit.checkpoint(at(3000)).unwrap();
    let report = audit.verify().unwrap();
    assert_eq!(report.entries, 17);
    assert_eq!(report.head, audit.head());
    // 4, 8, 10 (the shutdown), 12, 16 and 17.
    let seqs: Vec<u64> = stored_checkpoints(&*store).iter().map(|c| c.body.seq).collect();
    assert_eq!(seqs, vec![4, 8, 10, 12, 16, 17]);
    assert_eq!(report.checkpoints, 6);
    let latest = report.latest_checkpoint.unwrap();
    assert_eq!((latest.seq, latest.hash, latest.at), (17, audit.head().hash, at(3000)));
    assert_eq!(latest.key, issuer().public().to_string());

    // Reopened, as after a clean stop: the same.
    drop((store, audit));
    let (_store, audit, started) = start(data, 4, 4000);
    started.unwrap();
    assert_eq!(audit.verify().unwrap().checkpoints, 6);
}

#[test]
fn checkpoints_signed_before_a_key_rotation_verify_with_the_earlier_key() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path();
    stopped_node(data, 10);
    let new = IssuerSecretKey::from_bytes(&[9; 32]);
    let old = issuer().public();
    let with = |accept_old: bool| {
        let cfg = Checkpoints::new(new.duplicate()).every(4).file(data.join(CHECKPOINT_FILE));
        if accept_old {
            // As the node does: a key its organisation had in a roster then.
            cfg.earlier_keys(Box::new(move |k, t| *k == old && t <= at(1000)))
        } else {
            cfg
        }
    };

    // Not accepted: the first checkpoint, signed by the old key, is reported.
    let audit = Audit::open(sled(&db(data))).unwrap();
    let started = audit.start_checkpoints(with(false), at(2000));
    let expected = Broken { seq: 4, fault: Fault::CheckpointKey { key: old } };
    assert!(matches!(started, Err(Error::Broken(ref b)) if *b == expected), "{started:?}");
    assert_eq!(audit.verify().unwrap_err(), expected);
    drop(audit);

    // Accepted: the log goes on under the new key.
    let audit = Audit::open(sled(&db(data))).unwrap();
    audit.start_checkpoints(with(true), at(2000)).unwrap();
    append(&audit, 2, 2001);
    let report = audit.verify().unwrap();
    assert_eq!(report.checkpoints, 4);
    assert_eq!(report.latest_checkpoint.unwrap().key, new.public().to_string());
}

/// The checkpoint file beside the store, replaced by garbage, cut short,
/// or made readable by others: the log does not start (a typed error, no
/// panic), and the file is left as it was, never silently rewritten.
#[test]
fn a_damaged_checkpoint_file_refuses_to_start_and_is_left_as_it_was() {
    use std::os::unix::fs::PermissionsExt;
    let good = {
        let dir = tempfile::tempdir().unwrap();
        stopped_node(dir.path(), 10);
        std::fs::read(dir.path().join(CHECKPOINT_FILE)).unwrap()
    };
    for (what, bytes, mode) in [
        ("garbage", b"not a checkpoint".to_vec(), 0o600),
        ("cut short", good[..good.len() / 2].to_vec(), 0o600),
        ("readable by others", good.clone(), 0o644),
    ] {
        let dir = tempfile::tempdir().unwrap();
        let data = dir.path();
        stopped_node(data, 10);
        let file = data.join(CHECKPOINT_FILE);
        std::fs::write(&file, &bytes).unwrap();
        std::fs::set_permissions(&file, std::fs::Permissions::from_mode(mode)).unwrap();
        let (_store, _audit, started) = start(data, 4, 2000);
        match started {
            Err(Error::CheckpointFile { path, .. }) => assert_eq!(path, file, "{what}"),
            other => panic!("{what}: expected Error::CheckpointFile, got {other:?}"),
        }
        assert_eq!(std::fs::read(&file).unwrap(), bytes, "{what}: the file was rewritten");
    }
}
