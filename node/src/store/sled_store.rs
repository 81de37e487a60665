//! [`Store`] on sled 0.34, with encryption at rest and group commit.
//!
//! - One sled tree per [`Tree`]; a [`Batch`] is one sled transaction over
//!   all of them (sled seals a transaction's writes into one atomically
//!   recovered log batch).
//! - **Group commit**: [`Store::apply`] runs the transaction and takes a
//!   ticket (the store's commit count, kept in `Meta` by the same
//!   transaction); [`Store::wait_durable`] wakes a dedicated flusher thread
//!   and sleeps on a condition variable until a flush that began after the
//!   ticket was taken has finished. Commits that arrive while a flush runs
//!   share the next one. A failed flush poisons the store: every later
//!   commit fails with [`Error::NotDurable`].
//! - **Opening** verifies, in order: that the sled files open (a panic in
//!   sled is contained and reported as [`Error::Corrupt`]); that every page
//!   of every tree reads back (a full scan, watched for progress, because
//!   sled 0.34 can loop forever on some damaged pages); the schema version;
//!   the data key fingerprint; and that the store holds at least as many
//!   commits as were known durable at the last checkpoint (a small
//!   watermark file written by the flusher at most once a second and at
//!   close), so a truncated log is reported instead of silently
//!   dropping its tail.
//! - **Backups**: [`SledStore::export_raw`] reads every tree while no batch
//!   can be applied (commits take a shared gate, the export takes it
//!   alone), so a backup holds each batch whole or not at all; values are
//!   exported as stored (sealed). [`RawImport`] writes such an export into
//!   a new store directory.

use std::fs;
use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{RecvTimeoutError, sync_channel};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError, RwLock};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use sled::transaction::{ConflictableTransactionError, TransactionError, Transactional, TransactionalTree};

use super::seal::{self, Sealer};
use super::{Batch, Error, KeyValue, Op, Pending, Store, Tree, show_key};
use crate::keys::{self, DataKey};

/// The schema version this build reads and writes.
/// Version 2 seals the outbox, inbox and audit trees (plaintext in 1);
/// a version-1 store is migrated when it is opened.
pub const SCHEMA_VERSION: u32 = 2;

const META_SCHEMA: &[u8] = b"store/schema";
pub(crate) const META_FINGERPRINT: &[u8] = b"store/data-key-fingerprint";
const META_COMMITS: &[u8] = b"store/commits";

/// sled's main file inside the store directory.
const SLED_DB_FILE: &str = "db";
/// sled's configuration file inside the store directory.
const SLED_CONF_FILE: &str = "conf";
/// The durable-commit watermark, beside sled's files.
const WATERMARK_FILE: &str = "staffpass.watermark";
const WATERMARK_MAGIC: &[u8; 8] = b"SPWMARK1";
const WATERMARK_EVERY: Duration = Duration::from_secs(1);

/// How to open a store directory.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OpenMode {
    /// Create the store if the directory holds none (creating the
    /// directory, mode 0700, if needed); open it if it holds one made with
    /// the same data key. A directory with sled files but no store
    /// metadata is refused as damaged, never re-initialised.
    Create,
    /// Open an existing store; [`Error::NotFound`] if there is none.
    Existing,
}

/// Tuning for [`SledStore::open_with`].
#[derive(Debug, Clone)]
pub struct Config {
    /// How long opening may go without progress before the store is
    /// declared damaged. Default: 60 s.
    pub stall_timeout: Duration,
    /// sled's page cache size in bytes. Default: 256 MiB.
    pub cache_capacity: u64,
    /// How long opening waits for the store's lock to be released (sled
    /// lets go of it asynchronously after its last handle is dropped)
    /// before it is refused as in use. Default: 5 s.
    pub lock_wait: Duration,
}

impl Default for Config {
    fn default() -> Self {
        Config { stall_timeout: Duration::from_secs(60), cache_capacity: 256 << 20, lock_wait: Duration::from_secs(5) }
    }
}

/// The sled-backed store. Dropping it (or [`SledStore::close`]) flushes,
/// stops the flusher thread and releases the directory lock.
pub struct SledStore {
    inner: Arc<Inner>,
    flusher: Option<JoinHandle<()>>,
}

struct Inner {
    path: PathBuf,
    db: sled::Db,
    /// Indexed by [`Tree::index`].
    trees: Vec<sled::Tree>,
    sealer: Sealer,
    group: GroupCommit,
    /// Taken shared by every transaction and alone by
    /// [`SledStore::export_raw`], so an export sees no batch half-applied
    /// (sled's transactions are not isolated from plain reads).
    gate: RwLock<()>,
    /// Declared last, so dropped after `db` and `trees`.
    _release: WaitForRelease,
}

struct GroupCommit {
    state: Mutex<GroupState>,
    /// Wakes the flusher.
    work: Condvar,
    /// Wakes the committers.
    done: Condvar,
}

struct GroupState {
    /// The highest ticket handed out by `apply`.
    applied: u64,
    /// The highest ticket a committer is waiting for.
    requested: u64,
    /// Every ticket up to this one is on disk.
    durable: u64,
    /// Set, for good, when a flush failed.
    failed: Option<String>,
    shutdown: bool,
    /// Flushes done by the flusher.
    flushes: u64,
}

/// Counters for metrics.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Stats {
    /// Commits known to be on disk (the store's commit count).
    pub durable_commits: u64,
    /// Group flushes done since the store was opened.
    pub flushes: u64,
}

impl GroupCommit {
    fn lock(&self) -> MutexGuard<'_, GroupState> {
        // Plain counters: a panic elsewhere cannot leave them inconsistent.
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// What the open thread hands back.
struct Opened {
    db: sled::Db,
    trees: Vec<sled::Tree>,
    schema: Option<sled::IVec>,
    fingerprint: Option<sled::IVec>,
    commits: Option<sled::IVec>,
    /// Declared last, so dropped after `db` and `trees`.
    release: WaitForRelease,
}

/// Dropped after sled's handles, waits until sled has really let go of
/// its files. sled 0.34 finishes queued log writes on its I/O threads after
/// the last handle is dropped, and only then closes the file that carries
/// its lock; without this wait, reopening the store in the same process
/// right after a close (or after a refused open) can fail as locked.
struct WaitForRelease {
    db_file: PathBuf,
}

/// How long a close waits for sled's I/O threads before giving up.
const RELEASE_WAIT: Duration = Duration::from_secs(10);

impl Drop for WaitForRelease {
    fn drop(&mut self) {
        let Ok(file) = fs::File::open(&self.db_file) else { return };
        if fs2::FileExt::try_lock_exclusive(&file).is_ok() {
            let _ = fs2::FileExt::unlock(&file);
            return;
        }
        // Blocking on the lock is waiting for the exact event; do it on a
        // helper thread so that, should another process take the store
        // in between, this close gives up instead of hanging.
        let (tx, rx) = sync_channel(1);
        let spawned = std::thread::Builder::new().name("store-release".into()).spawn(move || {
            if fs2::FileExt::lock_exclusive(&file).is_ok() {
                let _ = fs2::FileExt::unlock(&file);
            }
            let _ = tx.send(());
        });
        if spawned.is_err() || rx.recv_timeout(RELEASE_WAIT).is_err() {
            tracing::warn!(file = %self.db_file.display(), "the store's files were not released in time");
        }
    }
}

enum Prepared {
    Put(Tree, Vec<u8>, Vec<u8>),
    PutNew(Tree, Vec<u8>, Vec<u8>),
    Delete(Tree, Vec<u8>),
}

impl SledStore {
    /// Opens (or with [`OpenMode::Create`] creates) the store in `dir`,
    /// whose personal trees are encrypted under `key`.
    pub fn open(dir: &Path, key: &DataKey, mode: OpenMode) -> Result<SledStore, Error> {
        SledStore::open_with(dir, key, mode, &Config::default())
    }

    /// [`SledStore::open`] with explicit tuning.
    pub fn open_with(dir: &Path, key: &DataKey, mode: OpenMode, config: &Config) -> Result<SledStore, Error> {
        let path = dir.to_path_buf();
        let preexisting = fs::symlink_metadata(dir.join(SLED_DB_FILE)).is_ok();
        let leftovers = [WATERMARK_FILE, SLED_CONF_FILE].iter().any(|f| fs::symlink_metadata(dir.join(f)).is_ok());
        if !preexisting && leftovers {
            // A store was here and lost its main file: never answer that
            // with "no store" (which invites a fresh init over the remains).
            return Err(Error::Corrupt {
                path,
                detail: format!("the store's main file ({SLED_DB_FILE}) is missing but its other files are present"),
            });
        }
        // The store directory is private: created 0700 (tightened if it
        // was made beforehand), and an existing store others can enter is
        // refused until its owner fixes it.
        if let Ok(meta) = fs::metadata(dir)
            && meta.is_dir()
            && meta.permissions().mode() & 0o077 != 0
            && (preexisting || mode == OpenMode::Create)
        {
            if !preexisting {
                fs::set_permissions(dir, fs::Permissions::from_mode(0o700)).map_err(|e| Error::Io {
                    op: "make the store directory private",
                    detail: format!("{}: {e}", dir.display()),
                })?;
            } else {
                return Err(Error::Exposed { path, mode: meta.permissions().mode() & 0o7777 });
            }
        }
        match mode {
            OpenMode::Existing if !dir.is_dir() || !preexisting => return Err(Error::NotFound { path }),
            OpenMode::Existing => {}
            OpenMode::Create => {
                if !dir.is_dir() {
                    fs::DirBuilder::new().recursive(true).mode(0o700).create(dir).map_err(|e| Error::Io {
                        op: "create the store directory",
                        detail: format!("{}: {e}", dir.display()),
                    })?;
                }
            }
        }

        // Any early return below drops `opened`, which waits for sled to
        // release the store before the error reaches the caller.
        let opened = open_watched(&path, config)?;
        let corrupt = |detail: String| Error::Corrupt { path: path.clone(), detail };
        let expected_fp = seal::fingerprint(key);

        let commits = match (&opened.schema, &opened.fingerprint) {
            (None, None) if !preexisting => {
                initialise(&path, &opened.trees, &opened.db, &expected_fp)?;
                write_watermark(&path, 0)?;
                tracing::info!(path = %path.display(), schema = SCHEMA_VERSION, "created a new store");
                0
            }
            (None, None) => {
                return Err(corrupt(
                    "the store metadata is missing (the files were truncated or damaged, or creating the store was interrupted; if this node never ran, delete the directory and run init again)".into(),
                ));
            }
            (Some(found), fp) => {
                let found = <[u8; 4]>::try_from(found.as_ref())
                    .map(u32::from_be_bytes)
                    .map_err(|_| corrupt("the schema version record is damaged".into()))?;
                if found != SCHEMA_VERSION && found != 1 {
                    return Err(Error::SchemaMismatch { path, found, expected: SCHEMA_VERSION });
                }
                let Some(fp) = fp else { return Err(corrupt("the data key fingerprint is missing".into())) };
                if fp.as_ref() != expected_fp.as_slice() {
                    return Err(Error::ForeignDataDir { path });
                }
                if found == 1 {
                    migrate_v1(&path, &opened.trees, &opened.db, &Sealer::new(key))?;
                }
                match &opened.commits {
                    None => 0,
                    Some(c) => decode_u64(c).ok_or_else(|| corrupt("the commit counter is damaged".into()))?,
                }
            }
            (None, Some(_)) => return Err(corrupt("the schema version record is missing".into())),
        };

        check_watermark(&path, commits)?;

        let inner = Arc::new(Inner {
            path,
            db: opened.db,
            trees: opened.trees,
            _release: opened.release,
            sealer: Sealer::new(key),
            gate: RwLock::new(()),
            group: GroupCommit {
                state: Mutex::new(GroupState {
                    applied: commits,
                    requested: commits,
                    durable: commits,
                    failed: None,
                    shutdown: false,
                    flushes: 0,
                }),
                work: Condvar::new(),
                done: Condvar::new(),
            },
        });
        let for_flusher = Arc::clone(&inner);
        let flusher = std::thread::Builder::new()
            .name("store-flusher".into())
            .spawn(move || run_flusher(&for_flusher, commits))
            .map_err(|e| Error::Io { op: "start the flusher thread", detail: e.to_string() })?;
        Ok(SledStore { inner, flusher: Some(flusher) })
    }

    /// The store directory.
    pub fn path(&self) -> &Path {
        &self.inner.path
    }

    /// Flushes, stops the flusher and releases the store, reporting any
    /// failure (dropping the store does the same, logging failures).
    pub fn close(mut self) -> Result<(), Error> {
        self.shutdown()
    }

    fn shutdown(&mut self) -> Result<(), Error> {
        let Some(handle) = self.flusher.take() else { return Ok(()) };
        {
            let mut st = self.inner.group.lock();
            st.shutdown = true;
            self.inner.group.work.notify_all();
        }
        if handle.join().is_err() {
            tracing::warn!(path = %self.inner.path.display(), "the store flusher thread panicked");
        }
        if let Some(detail) = self.inner.group.lock().failed.clone() {
            return Err(Error::NotDurable { detail });
        }
        self.inner.flush_db()?;
        let commits = self.inner.commit_count()?;
        write_watermark(&self.inner.path, commits)
    }

    /// Calls `each` with every entry of every tree, tree by tree in
    /// [`Tree::ALL`] order, values as stored (those of personal trees
    /// sealed under the data key), while no batch can be applied: the
    /// entries are one state of the store, with every batch in it whole or
    /// not at all, and the audit log's head agreeing with the data it
    /// records. Commits wait until it returns, so `each` should be quick
    /// (e.g. write to a local file). Returns how many entries.
    pub fn export_raw<E: From<Error>>(
        &self,
        mut each: impl FnMut(Tree, &[u8], &[u8]) -> Result<(), E>,
    ) -> Result<u64, E> {
        let inner = &self.inner;
        let _alone = inner.gate.write().unwrap_or_else(PoisonError::into_inner);
        let mut n = 0;
        for tree in Tree::ALL {
            for kv in inner.tree(tree).iter() {
                let (k, v) = kv.map_err(|e| from_sled(&inner.path, "export", e))?;
                each(tree, &k, &v)?;
                n += 1;
            }
        }
        Ok(n)
    }

    /// Counters for metrics.
    pub fn stats(&self) -> Stats {
        let st = self.inner.group.lock();
        Stats { durable_commits: st.durable, flushes: st.flushes }
    }

    fn failed(&self) -> Option<String> {
        self.inner.group.lock().failed.clone()
    }
}

impl Drop for SledStore {
    fn drop(&mut self) {
        if let Err(e) = self.shutdown() {
            tracing::warn!(path = %self.inner.path.display(), error = %e, "closing the store failed");
        }
    }
}

impl std::fmt::Debug for SledStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SledStore").field("path", &self.inner.path).finish_non_exhaustive()
    }
}

impl Inner {
    fn tree(&self, tree: Tree) -> &sled::Tree {
        &self.trees[tree.index()]
    }

    /// Runs a sled call, turning a panic into [`Error::Corrupt`].
    fn contain<T>(&self, op: &'static str, f: impl FnOnce() -> sled::Result<T>) -> Result<T, Error> {
        match catch_unwind(AssertUnwindSafe(f)) {
            Ok(r) => r.map_err(|e| from_sled(&self.path, op, e)),
            Err(panic) => Err(Error::Corrupt {
                path: self.path.clone(),
                detail: format!("the storage engine panicked during {op}: {}", panic_message(&panic)),
            }),
        }
    }

    fn unseal(&self, tree: Tree, key: &[u8], value: &[u8]) -> Result<Vec<u8>, Error> {
        if tree.personal() { self.sealer.open(tree, key, value) } else { Ok(value.to_vec()) }
    }

    fn entries(
        &self,
        tree: Tree,
        iter: impl Iterator<Item = sled::Result<(sled::IVec, sled::IVec)>>,
    ) -> Result<Vec<KeyValue>, Error> {
        let raw = self.contain("scan", || iter.collect::<sled::Result<Vec<_>>>())?;
        raw.into_iter()
            .map(|(k, v)| {
                let v = self.unseal(tree, &k, &v)?;
                Ok((k.to_vec(), v))
            })
            .collect()
    }

    fn flush_db(&self) -> Result<(), Error> {
        self.contain("flush", || self.db.flush()).map(|_| ())
    }

    fn commit_count(&self) -> Result<u64, Error> {
        match self.contain("read the commit counter", || self.tree(Tree::Meta).get(META_COMMITS))? {
            None => Ok(0),
            Some(v) => decode_u64(&v).ok_or_else(|| Error::Corrupt {
                path: self.path.clone(),
                detail: "the commit counter is damaged".into(),
            }),
        }
    }
}

impl Store for SledStore {
    fn get(&self, tree: Tree, key: &[u8]) -> Result<Option<Vec<u8>>, Error> {
        let inner = &self.inner;
        match inner.contain("get", || inner.tree(tree).get(key))? {
            None => Ok(None),
            Some(v) => inner.unseal(tree, key, &v).map(Some),
        }
    }

    fn scan_prefix(&self, tree: Tree, prefix: &[u8]) -> Result<Vec<KeyValue>, Error> {
        self.inner.entries(tree, self.inner.tree(tree).scan_prefix(prefix))
    }

    fn range_from(&self, tree: Tree, start: &[u8], limit: usize) -> Result<Vec<KeyValue>, Error> {
        self.inner.entries(tree, self.inner.tree(tree).range(start..).take(limit))
    }

    fn last(&self, tree: Tree) -> Result<Option<KeyValue>, Error> {
        let inner = &self.inner;
        match inner.contain("last", || inner.tree(tree).last())? {
            None => Ok(None),
            Some((k, v)) => {
                let v = inner.unseal(tree, &k, &v)?;
                Ok(Some((k.to_vec(), v)))
            }
        }
    }

    fn apply(&self, batch: Batch) -> Result<Pending, Error> {
        batch.check_reserved()?;
        if let Some(detail) = self.failed() {
            return Err(Error::NotDurable { detail });
        }
        let inner = &self.inner;
        // Seal outside the transaction, which sled may retry.
        let prepared = batch
            .into_ops()
            .into_iter()
            .map(|op| {
                let seal = |tree: Tree, key: &[u8], value: Vec<u8>| {
                    if tree.personal() { inner.sealer.seal(tree, key, &value) } else { Ok(value) }
                };
                Ok(match op {
                    Op::Put { tree, key, value } => {
                        let v = seal(tree, &key, value)?;
                        Prepared::Put(tree, key, v)
                    }
                    Op::PutNew { tree, key, value } => {
                        let v = seal(tree, &key, value)?;
                        Prepared::PutNew(tree, key, v)
                    }
                    Op::Delete { tree, key } => Prepared::Delete(tree, key),
                })
            })
            .collect::<Result<Vec<_>, Error>>()?;

        let run = |tx: &Vec<TransactionalTree>| -> Result<u64, ConflictableTransactionError<Error>> {
            for p in &prepared {
                match p {
                    Prepared::Put(tree, key, value) => {
                        tx[tree.index()].insert(key.as_slice(), value.as_slice())?;
                    }
                    Prepared::PutNew(tree, key, value) => {
                        let t = &tx[tree.index()];
                        if t.get(key.as_slice())?.is_some() {
                            return Err(ConflictableTransactionError::Abort(Error::AlreadyExists {
                                tree: *tree,
                                key: show_key(key),
                            }));
                        }
                        t.insert(key.as_slice(), value.as_slice())?;
                    }
                    Prepared::Delete(tree, key) => {
                        tx[tree.index()].remove(key.as_slice())?;
                    }
                }
            }
            let meta = &tx[Tree::Meta.index()];
            let count = match meta.get(META_COMMITS)? {
                None => 0,
                Some(v) => decode_u64(&v).ok_or_else(|| {
                    ConflictableTransactionError::Abort(Error::Corrupt {
                        path: inner.path.clone(),
                        detail: "the commit counter is damaged".into(),
                    })
                })?,
            };
            let ticket = count + 1;
            meta.insert(META_COMMITS, &ticket.to_be_bytes())?;
            Ok(ticket)
        };
        let outcome = {
            // Nothing to protect but ordering: a poisoned gate is still a gate.
            let _open = inner.gate.read().unwrap_or_else(PoisonError::into_inner);
            catch_unwind(AssertUnwindSafe(|| inner.trees.as_slice().transaction(run)))
        };
        match outcome {
            Ok(Ok(ticket)) => {
                let mut st = inner.group.lock();
                st.applied = st.applied.max(ticket);
                Ok(Pending::new(ticket))
            }
            Ok(Err(TransactionError::Abort(e))) => Err(e),
            Ok(Err(TransactionError::Storage(e))) => Err(from_sled(&inner.path, "commit", e)),
            Err(panic) => Err(Error::Corrupt {
                path: inner.path.clone(),
                detail: format!("the storage engine panicked during commit: {}", panic_message(&panic)),
            }),
        }
    }

    fn wait_durable(&self, pending: Pending) -> Result<(), Error> {
        let ticket = pending.ticket();
        let group = &self.inner.group;
        let mut st = group.lock();
        if ticket > st.applied {
            // Not a ticket of this store: waiting on it could mark commits
            // durable that are not.
            return Err(Error::Io { op: "wait for durability", detail: format!("unknown commit ticket {ticket}") });
        }
        if st.requested < ticket {
            st.requested = ticket;
            group.work.notify_one();
        }
        loop {
            if st.durable >= ticket {
                return Ok(());
            }
            if let Some(detail) = &st.failed {
                return Err(Error::NotDurable { detail: detail.clone() });
            }
            st = group.done.wait(st).unwrap_or_else(PoisonError::into_inner);
        }
    }

    /// Flushes, then records the durable commit count, so a log truncated
    /// after a clean shutdown is caught at the next open.
    fn flush(&self) -> Result<(), Error> {
        self.inner.flush_db()?;
        let commits = self.inner.commit_count()?;
        write_watermark(&self.inner.path, commits)
    }
}

/// A new store directory being filled from a [`SledStore::export_raw`]
/// export (restoring a backup): entries go in as they were stored, then
/// [`RawImport::finish`] flushes and records the durable commit count, so
/// the store opens (under the data key it was sealed with) as the one
/// exported.
pub struct RawImport {
    path: PathBuf,
    db: sled::Db,
    trees: Vec<sled::Tree>,
    /// Declared last, so dropped after `db` and `trees`.
    _release: WaitForRelease,
}

impl RawImport {
    /// Creates the store directory `dir` (mode 0700), which must not exist.
    pub fn create(dir: &Path) -> Result<RawImport, Error> {
        let path = dir.to_path_buf();
        fs::DirBuilder::new()
            .mode(0o700)
            .create(dir)
            .map_err(|e| Error::Io { op: "create the store directory", detail: format!("{}: {e}", dir.display()) })?;
        let db = sled::Config::new().path(dir).create_new(true).open().map_err(|e| from_sled(dir, "create", e))?;
        let release = WaitForRelease { db_file: dir.join(SLED_DB_FILE) };
        let trees = Tree::ALL
            .iter()
            .map(|t| db.open_tree(t.name()).map_err(|e| from_sled(dir, "create a tree", e)))
            .collect::<Result<Vec<_>, _>>()?;
        Ok(RawImport { path, db, trees, _release: release })
    }

    /// Puts one entry, as exported.
    pub fn insert(&self, tree: Tree, key: &[u8], value: &[u8]) -> Result<(), Error> {
        self.trees[tree.index()].insert(key, value).map(drop).map_err(|e| from_sled(&self.path, "import", e))
    }

    /// Flushes, records the commit count as durable, and closes the store.
    /// Returns that count.
    pub fn finish(self) -> Result<u64, Error> {
        self.db.flush().map_err(|e| from_sled(&self.path, "flush", e))?;
        let meta = &self.trees[Tree::Meta.index()];
        let commits = match meta.get(META_COMMITS).map_err(|e| from_sled(&self.path, "read metadata", e))? {
            None => 0,
            Some(v) => decode_u64(&v).ok_or_else(|| Error::Corrupt {
                path: self.path.clone(),
                detail: "the commit counter is damaged".into(),
            })?,
        };
        write_watermark(&self.path, commits)?;
        Ok(commits)
    }
}

/// The flusher: waits for requests, flushes once for all of them, wakes
/// the committers, and now and then records the durable commit count.
fn run_flusher(inner: &Inner, start: u64) {
    let group = &inner.group;
    let mut marked = start;
    let mut last_mark = Instant::now();
    loop {
        let target = {
            let mut st = group.lock();
            loop {
                if st.failed.is_some() {
                    return;
                }
                if st.requested > st.durable {
                    break st.requested;
                }
                if st.shutdown {
                    return;
                }
                st = group.work.wait(st).unwrap_or_else(PoisonError::into_inner);
            }
        };
        // Every ticket <= target was taken after its transaction applied,
        // so this flush covers them all.
        let result = inner.flush_db();
        {
            let mut st = group.lock();
            st.flushes += 1;
            match &result {
                Ok(()) => st.durable = st.durable.max(target),
                Err(e) => {
                    tracing::error!(path = %inner.path.display(), error = %e, "store flush failed; refusing further writes");
                    st.failed = Some(e.to_string());
                }
            }
            group.done.notify_all();
        }
        if result.is_ok() && target > marked && last_mark.elapsed() >= WATERMARK_EVERY {
            match write_watermark(&inner.path, target) {
                Ok(()) => {
                    marked = target;
                    last_mark = Instant::now();
                }
                Err(e) => {
                    tracing::warn!(path = %inner.path.display(), error = %e, "could not record the durable commit count")
                }
            }
        }
    }
}

/// Longest pause between two attempts to take the store's lock.
const LOCK_RETRY_MAX: Duration = Duration::from_millis(100);

/// Opens sled and reads every tree on a separate thread, so that a panic
/// is contained and a stall (sled 0.34 can spin forever on a damaged page)
/// is reported instead of hanging the node. While the store is locked it
/// tries again, with a short growing pause, for up to `config.lock_wait`:
/// a handle closed just before (in this process or another) releases the
/// lock only when sled's I/O threads finish.
fn open_watched(path: &Path, config: &Config) -> Result<Opened, Error> {
    let deadline = Instant::now() + config.lock_wait;
    let mut pause = Duration::from_millis(5);
    loop {
        let cache = config.cache_capacity;
        let thread_path = path.to_path_buf();
        match run_watched(path, config.stall_timeout, move |progress| open_and_scan(&thread_path, cache, progress)) {
            Err(Error::Locked { .. }) => {
                let left = deadline.saturating_duration_since(Instant::now());
                if left.is_zero() {
                    return Err(Error::Locked { path: path.to_path_buf(), waited: config.lock_wait });
                }
                std::thread::sleep(pause.min(left));
                pause = (pause * 2).min(LOCK_RETRY_MAX);
            }
            other => return other,
        }
    }
}

/// Runs `work` on its own thread and waits for it, as long as it keeps
/// bumping its progress counter at least once per `stall`. A panic or a
/// stall becomes [`Error::Corrupt`]; a stalled thread is left behind (it
/// cannot be stopped) and whatever it returns later is dropped.
fn run_watched<T: Send + 'static>(
    path: &Path,
    stall: Duration,
    work: impl FnOnce(&AtomicU64) -> Result<T, Error> + Send + 'static,
) -> Result<T, Error> {
    let progress = Arc::new(AtomicU64::new(0));
    let (tx, rx) = sync_channel(1);
    let thread_path = path.to_path_buf();
    let thread_progress = Arc::clone(&progress);
    std::thread::Builder::new()
        .name("store-open".into())
        .spawn(move || {
            let result = catch_unwind(AssertUnwindSafe(|| work(&thread_progress))).unwrap_or_else(|panic| {
                Err(Error::Corrupt {
                    path: thread_path,
                    detail: format!("the storage engine panicked while opening: {}", panic_message(&panic)),
                })
            });
            // If nobody is listening any more, dropping the result closes sled.
            let _ = tx.send(result);
        })
        .map_err(|e| Error::Io { op: "start the open thread", detail: e.to_string() })?;

    let mut seen = progress.load(Ordering::Relaxed);
    loop {
        match rx.recv_timeout(stall) {
            Ok(result) => return result,
            Err(RecvTimeoutError::Timeout) => {
                let now = progress.load(Ordering::Relaxed);
                if now == seen {
                    return Err(Error::Corrupt {
                        path: path.to_path_buf(),
                        detail: format!(
                            "reading the store made no progress for {:?} (the storage engine is looping over a damaged page)",
                            stall
                        ),
                    });
                }
                seen = now;
            }
            Err(RecvTimeoutError::Disconnected) => {
                return Err(Error::Corrupt {
                    path: path.to_path_buf(),
                    detail: "the storage engine stopped while opening the store".into(),
                });
            }
        }
    }
}

fn open_and_scan(path: &Path, cache: u64, progress: &AtomicU64) -> Result<Opened, Error> {
    let tick = || progress.fetch_add(1, Ordering::Relaxed);
    let db = sled::Config::new().path(path).cache_capacity(cache).open().map_err(|e| from_sled(path, "open", e))?;
    // From here on sled holds the lock: bind the guard before `db`, so that
    // on an early return it drops after it.
    let release = WaitForRelease { db_file: path.join(SLED_DB_FILE) };
    let db = db;
    tick();
    let mut trees = Vec::with_capacity(Tree::ALL.len());
    for t in Tree::ALL {
        trees.push(db.open_tree(t.name()).map_err(|e| from_sled(path, "open a tree", e))?);
        tick();
    }
    // Read every page now, so damage shows here and not mid-flow.
    for (t, tree) in Tree::ALL.iter().zip(&trees) {
        for item in tree.iter() {
            item.map_err(|e| match from_sled(path, "read", e) {
                Error::Io { detail, .. } => Error::Corrupt {
                    path: path.to_path_buf(),
                    detail: format!("reading the {t} tree failed: {detail}"),
                },
                other => other,
            })?;
            tick();
        }
    }
    let meta = &trees[Tree::Meta.index()];
    let read = |k: &[u8]| meta.get(k).map_err(|e| from_sled(path, "read metadata", e));
    let (schema, fingerprint, commits) = (read(META_SCHEMA)?, read(META_FINGERPRINT)?, read(META_COMMITS)?);
    Ok(Opened { db, trees, schema, fingerprint, commits, release })
}

/// Schema 1 → 2: seals every value of the trees that were plaintext, and
/// records the new version, in one transaction (a crash leaves version 1
/// and its plaintext whole, to be migrated at the next start), then
/// flushes. The old plaintext stays in sled's log segments until sled
/// reuses them.
fn migrate_v1(path: &Path, trees: &[sled::Tree], db: &sled::Db, sealer: &Sealer) -> Result<(), Error> {
    let mut sealed: Vec<(Tree, sled::IVec, Vec<u8>)> = Vec::new();
    for tree in Tree::SEALED_SINCE_V2 {
        for kv in trees[tree.index()].iter() {
            let (k, v) = kv.map_err(|e| from_sled(path, "read for migration", e))?;
            let value = sealer.seal(tree, &k, &v)?;
            sealed.push((tree, k, value));
        }
    }
    let n = sealed.len();
    let run = |tx: &Vec<TransactionalTree>| -> Result<(), ConflictableTransactionError<Error>> {
        for (tree, k, v) in &sealed {
            tx[tree.index()].insert(k, v.as_slice())?;
        }
        tx[Tree::Meta.index()].insert(META_SCHEMA, &SCHEMA_VERSION.to_be_bytes())?;
        Ok(())
    };
    match trees.transaction(run) {
        Ok(()) => {}
        Err(TransactionError::Abort(e)) => return Err(e),
        Err(TransactionError::Storage(e)) => return Err(from_sled(path, "migrate", e)),
    }
    db.flush().map_err(|e| from_sled(path, "flush the migration", e))?;
    tracing::info!(path = %path.display(), values = n, "store migrated to schema 2: outbox, inbox and audit sealed");
    Ok(())
}

fn initialise(path: &Path, trees: &[sled::Tree], db: &sled::Db, fp: &[u8; 32]) -> Result<(), Error> {
    let meta = &trees[Tree::Meta.index()];
    let result: Result<(), TransactionError<()>> = meta.transaction(|m| {
        m.insert(META_SCHEMA, &SCHEMA_VERSION.to_be_bytes())?;
        m.insert(META_FINGERPRINT, fp.as_slice())?;
        m.insert(META_COMMITS, &0u64.to_be_bytes())?;
        Ok(())
    });
    match result {
        Ok(()) => {}
        Err(TransactionError::Abort(())) => {
            return Err(Error::Io { op: "initialise the store", detail: "transaction aborted".into() });
        }
        Err(TransactionError::Storage(e)) => return Err(from_sled(path, "initialise the store", e)),
    }
    db.flush().map(|_| ()).map_err(|e| from_sled(path, "flush", e))
}

fn decode_u64(v: &[u8]) -> Option<u64> {
    <[u8; 8]>::try_from(v).ok().map(u64::from_be_bytes)
}

fn write_watermark(path: &Path, commits: u64) -> Result<(), Error> {
    let mut bytes = [0u8; 16];
    bytes[..8].copy_from_slice(WATERMARK_MAGIC);
    bytes[8..].copy_from_slice(&commits.to_be_bytes());
    keys::write_secret_file(&path.join(WATERMARK_FILE), &bytes, true)
        .map_err(|e| Error::Io { op: "record the durable commit count", detail: e.to_string() })
}

fn check_watermark(path: &Path, commits: u64) -> Result<(), Error> {
    let file = path.join(WATERMARK_FILE);
    let bytes = match fs::read(&file) {
        Ok(b) => b,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            tracing::warn!(path = %path.display(), "no durable-commit watermark; cannot check the store for a truncated log");
            return Ok(());
        }
        Err(e) => return Err(Error::Io { op: "read the durable commit count", detail: e.to_string() }),
    };
    let mark = match bytes.split_first_chunk::<8>() {
        Some((magic, rest)) if magic == WATERMARK_MAGIC => decode_u64(rest),
        _ => None,
    };
    let Some(mark) = mark else {
        return Err(Error::Corrupt {
            path: path.to_path_buf(),
            detail: format!(
                "{} is damaged (if only that file is damaged, deleting it skips this check)",
                file.display()
            ),
        });
    };
    if commits < mark {
        return Err(Error::Corrupt {
            path: path.to_path_buf(),
            detail: format!(
                "the store holds {commits} commits but {mark} were on disk at the last checkpoint: the log was truncated or damaged"
            ),
        });
    }
    Ok(())
}

fn from_sled(path: &Path, op: &'static str, e: sled::Error) -> Error {
    match e {
        sled::Error::Corruption { .. } => Error::Corrupt {
            path: path.to_path_buf(),
            detail: format!("the storage engine found damaged data during {op}"),
        },
        sled::Error::Io(io) if io.to_string().contains("could not acquire lock") => {
            Error::Locked { path: path.to_path_buf(), waited: Duration::ZERO }
        }
        other => Error::Io { op, detail: other.to_string() },
    }
}

fn panic_message(panic: &Box<dyn std::any::Any + Send>) -> String {
    let msg = panic
        .downcast_ref::<&str>()
        .map(|s| (*s).to_string())
        .or_else(|| panic.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "unknown panic".into());
    msg.chars().take(200).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn watched_work_returns_its_result() {
        let r = run_watched(Path::new("/x"), Duration::from_secs(5), |p| {
            p.fetch_add(1, Ordering::Relaxed);
            Ok(7)
        });
        assert_eq!(r.unwrap(), 7);
    }

    #[test]
    fn a_panic_in_watched_work_is_corrupt() {
        let r: Result<(), Error> = run_watched(Path::new("/x"), Duration::from_secs(5), |_| panic!("boom"));
        assert!(matches!(&r, Err(Error::Corrupt { detail, .. }) if detail.contains("boom")), "{r:?}");
    }

    #[test]
    fn stalled_work_is_corrupt_not_a_hang() {
        let (release, blocked) = std::sync::mpsc::sync_channel::<()>(0);
        let r: Result<(), Error> = run_watched(Path::new("/x"), Duration::from_millis(200), move |_| {
            // Stuck until the test lets go, as sled is on a damaged page.
            let _ = blocked.recv();
            Ok(())
        });
        assert!(matches!(&r, Err(Error::Corrupt { detail, .. }) if detail.contains("no progress")), "{r:?}");
        drop(release);
    }
}
