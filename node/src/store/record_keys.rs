//! Per-record data keys, for crypto-shredding.
//!
//! A received passport is sealed under a key of its own (inside the
//! store's own sealing under the node's data key). The keys live here, in
//! one small file beside the store, not in it: sled keeps old values in
//! its log segments, a file replaced atomically does not.
//!
//! The file is a journal: a magic line, then frames (`u32` length, then
//! the frame sealed under the node's data key, its position in the file
//! bound in as associated data). Frame 0 holds every key there was when
//! the file was last written whole; each later frame holds keys made since.
//! Making a key appends a frame and fsyncs it, and concurrent makers share
//! one fsync (group commit), so a host receiving many passports does not
//! rewrite the whole file per passport. Destroying a key rewrites the
//! file whole without it (temporary file 0600, fsync, rename over the old
//! one, directory fsync), so the record's ciphertext that sled may still
//! hold can no longer be opened by anyone, with `data.key` or without; the
//! file is also rewritten whole when its journal outgrows its first frame.
//!
//! A key is durable before [`RecordKeys::key_for`] or [`RecordKeys::ensure`]
//! returns, so a record sealed under it is committed only after its key.
//! A crash in the middle of an append leaves an incomplete last frame,
//! which is no key anyone was given: it is ignored (and cut off at the next
//! write). Every complete frame must open; anything else is damage
//! ([`Error::Corrupt`]). A file cut short at a frame boundary cannot be told
//! from an older file by itself: the node checks at start that every
//! record it holds has its key (`Exchange::shred_orphaned_keys`).
//!
//! A backup of this file taken before an erasure can still open what was
//! erased, for as long as that backup is kept: back it up apart from the
//! store, with a short retention (README, "Operating it").

use std::collections::BTreeMap;
use std::fs::{File, OpenOptions};
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use rand::Rng as _;
use staffpass_protocol::encoding;

use super::seal::Sealer;
use super::{Error, Tree};
use crate::keys::{self, DataKey};

/// The file's name, in the data directory.
pub const FILE: &str = "record-keys";

/// The largest file read (a corrupt length cannot make it allocate
/// without bound).
const MAX_BYTES: usize = 64 << 20;

/// The AAD label of the whole-file sealing of the first version.
const FILE_LABEL_V1: &[u8] = b"record-keys v1";

/// The first bytes of a journal file.
const MAGIC: &[u8] = b"staffpass record-keys v2\n";

/// The AAD label of a frame (followed by its index).
const FRAME_LABEL: &[u8] = b"record-keys v2 frame";

/// The journal may grow to its first frame's size plus this before the
/// file is rewritten whole (so the rewrites cost O(1) per key, amortised).
const JOURNAL_SLACK: u64 = 256 << 10;

/// One key and the append that made it.
#[derive(Clone, Copy)]
struct Held {
    key: [u8; 32],
    /// The append that wrote it (0: already durable when read).
    ticket: u64,
}

/// The open file, appended to.
struct Journal {
    file: Arc<File>,
    /// Bytes of the file that hold complete frames (what follows, if
    /// anything, is a torn append, cut off before the next one).
    len: u64,
    /// Frames in the file (the next one's index).
    frames: u64,
    /// Bytes of the first frame (the whole set when last rewritten).
    base: u64,
}

struct State {
    keys: BTreeMap<Vec<u8>, Held>,
    /// None: in memory only, or not yet written (no file).
    journal: Option<Journal>,
    /// The file needs rewriting whole before anything is appended (it is
    /// of the first version, or its tail is torn).
    rewrite: bool,
    /// Set, for good, when an fsync failed: what was appended may or may
    /// not be on disk, so no key is handed out any more.
    failed: Option<String>,
}

/// The per-record keys of one node.
pub struct RecordKeys {
    path: Option<PathBuf>,
    master: Sealer,
    state: Mutex<State>,
    /// Appends handed out (tickets).
    written: AtomicU64,
    /// Every append up to this ticket is on disk.
    synced: AtomicU64,
    /// Held by the one thread that fsyncs for everyone waiting.
    syncing: Mutex<()>,
}

impl std::fmt::Debug for RecordKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RecordKeys").field("path", &self.path).field("keys", &self.lock().keys.len()).finish()
    }
}

fn io(op: &'static str, path: &Path, e: impl std::fmt::Display) -> Error {
    Error::Io { op, detail: format!("{}: {e}", path.display()) }
}

fn frame_aad(index: u64) -> Vec<u8> {
    [FRAME_LABEL, &index.to_be_bytes()].concat()
}

/// What [`parse`] found in a file.
struct Parsed {
    keys: BTreeMap<Vec<u8>, [u8; 32]>,
    /// Complete frames and their bytes (None for a first-version file).
    journal: Option<(u64, u64, u64)>,
    torn: bool,
}

fn parse(path: &Path, sealer: &Sealer, bytes: &[u8]) -> Result<Parsed, Error> {
    let corrupt = |detail: String| Error::Corrupt { path: path.to_path_buf(), detail };
    let Some(mut rest) = bytes.strip_prefix(MAGIC) else {
        // The first version: the whole file sealed at once.
        let plain = sealer
            .open(Tree::Meta, FILE_LABEL_V1, bytes)
            .map_err(|_| corrupt("the record key file does not open under this node's data key".into()))?;
        let keys = encoding::from_bytes(&plain, MAX_BYTES, "record keys")
            .map_err(|e| corrupt(format!("the record key file is damaged: {e}")))?;
        return Ok(Parsed { keys, journal: None, torn: false });
    };
    let mut keys = BTreeMap::new();
    let mut frames = 0u64;
    let mut base = 0u64;
    let mut torn = false;
    while !rest.is_empty() {
        let frame = rest
            .get(..4)
            .map(|l| u32::from_le_bytes([l[0], l[1], l[2], l[3]]) as usize)
            .and_then(|n| rest.get(4..4 + n));
        let Some(frame) = frame else {
            if frames == 0 {
                return Err(corrupt("the record key file is cut short in its first frame".into()));
            }
            torn = true;
            break;
        };
        let plain = sealer.open(Tree::Meta, &frame_aad(frames), frame).map_err(|_| {
            corrupt(format!("frame {frames} of the record key file does not open under this node's data key"))
        })?;
        if frames == 0 {
            keys = encoding::from_bytes(&plain, MAX_BYTES, "record keys")
                .map_err(|e| corrupt(format!("the record key file is damaged: {e}")))?;
            base = 4 + frame.len() as u64;
        } else {
            let added: Vec<(Vec<u8>, [u8; 32])> = encoding::from_bytes(&plain, MAX_BYTES, "record keys")
                .map_err(|e| corrupt(format!("frame {frames} of the record key file is damaged: {e}")))?;
            keys.extend(added);
        }
        frames += 1;
        rest = &rest[4 + frame.len()..];
    }
    if frames == 0 {
        return Err(corrupt("the record key file holds no keys frame".into()));
    }
    let len = (bytes.len() - rest.len()) as u64;
    Ok(Parsed { keys, journal: Some((len, frames, base)), torn })
}

impl RecordKeys {
    /// Opens the key file at `path` (none yet: no keys), sealed under
    /// `master`. Reads only: a torn last append is cut off at the next write.
    pub fn open(path: &Path, master: &DataKey) -> Result<RecordKeys, Error> {
        let sealer = Sealer::new(master);
        let mut state = State { keys: BTreeMap::new(), journal: None, rewrite: false, failed: None };
        match std::fs::symlink_metadata(path) {
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(io("read the record keys", path, e)),
            Ok(_) => {
                let bytes = keys::read_secret_file_max(path, MAX_BYTES as u64)
                    .map_err(|e| io("read the record keys", path, e))?;
                let parsed = parse(path, &sealer, &bytes)?;
                if parsed.torn {
                    tracing::warn!(
                        file = %path.display(),
                        "the record key file ends in an incomplete append (a crash while a key was made); it is ignored"
                    );
                }
                state.keys = parsed.keys.into_iter().map(|(id, key)| (id, Held { key, ticket: 0 })).collect();
                state.rewrite = parsed.torn || parsed.journal.is_none();
                if let Some((len, frames, base)) = parsed.journal.filter(|_| !parsed.torn) {
                    let file =
                        OpenOptions::new().append(true).open(path).map_err(|e| io("open the record keys", path, e))?;
                    state.journal = Some(Journal { file: Arc::new(file), len, frames, base });
                }
            }
        }
        Ok(RecordKeys::with(Some(path.to_path_buf()), sealer, state))
    }

    /// Keys held in memory only (tests over the in-memory store).
    pub fn in_memory(master: &DataKey) -> RecordKeys {
        let state = State { keys: BTreeMap::new(), journal: None, rewrite: false, failed: None };
        RecordKeys::with(None, Sealer::new(master), state)
    }

    fn with(path: Option<PathBuf>, master: Sealer, state: State) -> RecordKeys {
        RecordKeys {
            path,
            master,
            state: Mutex::new(state),
            written: AtomicU64::new(0),
            synced: AtomicU64::new(0),
            syncing: Mutex::new(()),
        }
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Writes the whole set out atomically, as a new file of one frame
    /// (under the state lock, so writes are in order). Everything appended
    /// before is in it, so it is durable once this returns.
    fn rewrite(&self, path: &Path, st: &mut State) -> Result<(), Error> {
        let all: BTreeMap<&[u8], [u8; 32]> = st.keys.iter().map(|(id, h)| (id.as_slice(), h.key)).collect();
        let sealed = self.master.seal(Tree::Meta, &frame_aad(0), &encoding::to_bytes(&all))?;
        let len = u32::try_from(sealed.len())
            .ok()
            .filter(|n| (*n as usize) < MAX_BYTES - MAGIC.len() - 4)
            .ok_or_else(|| io("write the record keys", path, "too many keys for one file"))?;
        let bytes = [MAGIC, &len.to_le_bytes(), &sealed].concat();
        keys::write_secret_file(path, &bytes, true).map_err(|e| io("write the record keys", path, e))?;
        let file = OpenOptions::new().append(true).open(path).map_err(|e| io("open the record keys", path, e))?;
        let size = bytes.len() as u64;
        st.journal = Some(Journal { file: Arc::new(file), len: size, frames: 1, base: size - MAGIC.len() as u64 });
        st.rewrite = false;
        self.synced.fetch_max(self.written.load(Ordering::SeqCst), Ordering::SeqCst);
        Ok(())
    }

    /// Appends `added` (keys not yet in `st`) as one frame, or rewrites the
    /// file when it is due; puts them in `st`. Returns the ticket to wait
    /// for. On failure nothing is kept and the file is as it was.
    fn append(&self, st: &mut State, added: Vec<(Vec<u8>, [u8; 32])>) -> Result<u64, Error> {
        if let Some(detail) = &st.failed {
            return Err(Error::NotDurable { detail: detail.clone() });
        }
        let ticket = self.written.fetch_add(1, Ordering::SeqCst) + 1;
        let Some(path) = self.path.clone() else {
            st.keys.extend(added.into_iter().map(|(id, key)| (id, Held { key, ticket: 0 })));
            self.synced.fetch_max(ticket, Ordering::SeqCst);
            return Ok(ticket);
        };
        let due = match &st.journal {
            None => true,
            Some(j) => st.rewrite || j.len - j.base > j.base + JOURNAL_SLACK,
        };
        if due {
            let ids: Vec<Vec<u8>> = added.iter().map(|(id, _)| id.clone()).collect();
            st.keys.extend(added.into_iter().map(|(id, key)| (id, Held { key, ticket })));
            if let Err(e) = self.rewrite(&path, st) {
                for id in ids {
                    st.keys.remove(&id);
                }
                return Err(e);
            }
            return Ok(ticket);
        }
        let Some(j) = st.journal.as_mut() else { unreachable!("checked above") };
        let sealed = self.master.seal(Tree::Meta, &frame_aad(j.frames), &encoding::to_bytes(&added))?;
        let frame = [&(sealed.len() as u32).to_le_bytes()[..], &sealed].concat();
        if let Err(e) = (&*j.file).write_all(&frame) {
            // Cut off what part of the frame was written, so the next
            // append does not follow a torn one; if that fails too, the
            // next key rewrites the file whole.
            if j.file.set_len(j.len).is_err() {
                st.rewrite = true;
            }
            return Err(io("append to the record keys", &path, e));
        }
        j.len += frame.len() as u64;
        j.frames += 1;
        st.keys.extend(added.into_iter().map(|(id, key)| (id, Held { key, ticket })));
        Ok(ticket)
    }

    /// Returns once the append `ticket` is on disk: one thread fsyncs for
    /// every append made before it started.
    fn wait_synced(&self, ticket: u64) -> Result<(), Error> {
        if self.synced.load(Ordering::SeqCst) >= ticket {
            return Ok(());
        }
        let _one = self.syncing.lock().unwrap_or_else(PoisonError::into_inner);
        if self.synced.load(Ordering::SeqCst) >= ticket {
            return Ok(());
        }
        let (file, target) = {
            let st = self.lock();
            if let Some(detail) = &st.failed {
                return Err(Error::NotDurable { detail: detail.clone() });
            }
            (st.journal.as_ref().map(|j| j.file.clone()), self.written.load(Ordering::SeqCst))
        };
        // A rewrite since (which syncs everything) may have done it.
        if self.synced.load(Ordering::SeqCst) >= ticket {
            return Ok(());
        }
        let path = self.path.as_deref().unwrap_or(Path::new(FILE));
        let file = file.ok_or_else(|| io("sync the record keys", path, "no file"))?;
        if let Err(e) = file.sync_data() {
            let detail = format!("{}: fsync failed: {e}", path.display());
            tracing::error!(file = %path.display(), error = %e, "record key file fsync failed; no more keys are made");
            self.lock().failed = Some(detail.clone());
            return Err(Error::NotDurable { detail });
        }
        self.synced.fetch_max(target, Ordering::SeqCst);
        Ok(())
    }

    /// The key of record `id`, made (and made durable) if it has none.
    pub(crate) fn key_for(&self, id: &[u8]) -> Result<Sealer, Error> {
        let (key, ticket) = {
            let mut st = self.lock();
            match st.keys.get(id) {
                Some(h) => (h.key, h.ticket),
                None => {
                    let key = new_key();
                    let ticket = self.append(&mut st, vec![(id.to_vec(), key)])?;
                    (key, ticket)
                }
            }
        };
        self.wait_synced(ticket)?;
        Ok(Sealer::new(&DataKey::from_bytes(key)))
    }

    /// Makes the keys of `ids` that have none, with one append (an import
    /// of thousands of records writes one frame, not one per record), and
    /// returns once they are durable.
    pub fn ensure<'a>(&self, ids: impl IntoIterator<Item = &'a [u8]>) -> Result<(), Error> {
        let ticket = {
            let mut st = self.lock();
            let mut added: BTreeMap<Vec<u8>, [u8; 32]> = BTreeMap::new();
            let mut wait = 0;
            for id in ids {
                match st.keys.get(id) {
                    Some(h) => wait = wait.max(h.ticket),
                    None => {
                        added.entry(id.to_vec()).or_insert_with(new_key);
                    }
                }
            }
            if added.is_empty() { wait } else { self.append(&mut st, added.into_iter().collect())?.max(wait) }
        };
        self.wait_synced(ticket)
    }

    /// The key of record `id`, if it has one.
    pub(crate) fn get(&self, id: &[u8]) -> Option<Sealer> {
        self.lock().keys.get(id).map(|h| Sealer::new(&DataKey::from_bytes(h.key)))
    }

    /// Rewrites the file after keys were taken out of `st`; on failure the
    /// caller puts them back.
    fn persist_removal(&self, st: &mut State) -> Result<(), Error> {
        if let Some(detail) = &st.failed {
            return Err(Error::NotDurable { detail: detail.clone() });
        }
        match self.path.clone() {
            None => Ok(()),
            Some(path) => self.rewrite(&path, st),
        }
    }

    /// Destroys the key of record `id` for good. Returns whether it had one.
    pub fn destroy(&self, id: &[u8]) -> Result<bool, Error> {
        let mut st = self.lock();
        let Some(old) = st.keys.remove(id) else { return Ok(false) };
        if let Err(e) = self.persist_removal(&mut st) {
            st.keys.insert(id.to_vec(), old);
            return Err(e);
        }
        Ok(true)
    }

    /// Destroys every key whose record `keep` no longer wants (after a
    /// crash between an erasure's commit and its key's destruction).
    /// Returns how many.
    pub fn retain(&self, keep: impl Fn(&[u8]) -> bool) -> Result<usize, Error> {
        let mut st = self.lock();
        let gone: Vec<(Vec<u8>, Held)> =
            st.keys.iter().filter(|(id, _)| !keep(id)).map(|(id, h)| (id.clone(), *h)).collect();
        if gone.is_empty() {
            return Ok(0);
        }
        for (id, _) in &gone {
            st.keys.remove(id);
        }
        if let Err(e) = self.persist_removal(&mut st) {
            st.keys.extend(gone);
            return Err(e);
        }
        Ok(gone.len())
    }

    /// The key file, if the keys are kept in one.
    pub fn path(&self) -> Option<&Path> {
        self.path.as_deref()
    }

    /// True if record `id` has a key (it was not erased).
    pub fn holds(&self, id: &[u8]) -> bool {
        self.lock().keys.contains_key(id)
    }

    /// Runs `f` with the key file's path while no key is made or
    /// destroyed, so what `f` reads of the file is the set of keys as it
    /// stands throughout (a backup takes the store's snapshot inside).
    pub(crate) fn frozen<T>(&self, f: impl FnOnce(Option<&Path>) -> T) -> T {
        let _keys = self.lock();
        f(self.path.as_deref())
    }

    /// How many keys are held.
    pub fn len(&self) -> usize {
        self.lock().keys.len()
    }

    /// True if none are.
    pub fn is_empty(&self) -> bool {
        self.lock().keys.is_empty()
    }
}

fn new_key() -> [u8; 32] {
    let mut k = [0u8; 32];
    rand::rng().fill_bytes(&mut k);
    k
}
/// Seals `plain` for record `id` of `tree` under its own key.
pub fn seal_record(keys: &RecordKeys, tree: Tree, id: &[u8], plain: &[u8]) -> Result<Vec<u8>, Error> {
    seal_as(keys, id, tree, id, plain)
}

/// Opens record `id` of `tree`, sealed under its own key; a record whose
/// key was destroyed is gone.
pub fn open_record(keys: &RecordKeys, tree: Tree, id: &[u8], sealed: &[u8]) -> Result<Vec<u8>, Error> {
    open_as(keys, id, tree, id, sealed)
}

/// Seals the value at store key `k` of `tree` under the key `key_id`
/// (one key for several values: e.g. all of one person's records).
pub fn seal_as(keys: &RecordKeys, key_id: &[u8], tree: Tree, k: &[u8], plain: &[u8]) -> Result<Vec<u8>, Error> {
    keys.key_for(key_id)?.seal(tree, k, plain)
}

/// Opens what [`seal_as`] sealed; fails for good once `key_id` was destroyed.
pub fn open_as(keys: &RecordKeys, key_id: &[u8], tree: Tree, k: &[u8], sealed: &[u8]) -> Result<Vec<u8>, Error> {
    let key = keys.get(key_id).ok_or_else(|| Error::Io {
        op: "open a record",
        detail: format!("the key {} is gone (erased)", super::show_key(key_id)),
    })?;
    key.open(tree, k, sealed)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_destroyed_key_is_gone_from_the_file_and_its_record_cannot_be_opened() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(FILE);
        let master = DataKey::from_bytes([7; 32]);
        let keys = RecordKeys::open(&path, &master).unwrap();
        let sealed = seal_record(&keys, Tree::Received, b"p/1", b"Alex Testperson").unwrap();
        let other = seal_record(&keys, Tree::Received, b"p/2", b"Sam Otherperson").unwrap();
        assert_eq!(open_record(&keys, Tree::Received, b"p/1", &sealed).unwrap(), b"Alex Testperson");
        // Reopened from the file: the same keys.
        let again = RecordKeys::open(&path, &master).unwrap();
        assert_eq!(open_record(&again, Tree::Received, b"p/1", &sealed).unwrap(), b"Alex Testperson");
        assert!(again.destroy(b"p/1").unwrap());
        assert!(!again.destroy(b"p/1").unwrap());
        let after = RecordKeys::open(&path, &master).unwrap();
        assert!(open_record(&after, Tree::Received, b"p/1", &sealed).is_err(), "opened after its key was destroyed");
        assert_eq!(open_record(&after, Tree::Received, b"p/2", &other).unwrap(), b"Sam Otherperson");
        // The file is private, and useless under another data key.
        use std::os::unix::fs::PermissionsExt;
        assert_eq!(std::fs::metadata(&path).unwrap().permissions().mode() & 0o777, 0o600);
        assert!(RecordKeys::open(&path, &DataKey::from_bytes([8; 32])).is_err());
        // A key under another record's name does not open it.
        assert!(open_record(&after, Tree::Received, b"p/2", &sealed).is_err());
    }

    /// A node with tens of thousands of records restarts: the file holding
    /// their keys (over a megabyte) reads back.
    #[test]
    fn a_key_file_for_fifty_thousand_records_reads_back() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(FILE);
        let master = DataKey::from_bytes([7; 32]);
        let ids: Vec<Vec<u8>> = (0..50_000u32).map(|i| format!("s/st-{i:032}").into_bytes()).collect();
        RecordKeys::open(&path, &master).unwrap().ensure(ids.iter().map(Vec::as_slice)).unwrap();
        assert!(std::fs::metadata(&path).unwrap().len() > 1 << 20, "over a megabyte");
        assert_eq!(RecordKeys::open(&path, &master).unwrap().len(), 50_000);
    }

    /// Keys made one by one are appended, not rewritten: the file grows by
    /// a frame per key, reads back whole, and is rewritten (to one frame)
    /// when a key is destroyed.
    #[test]
    fn keys_are_appended_and_a_destruction_rewrites_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(FILE);
        let master = DataKey::from_bytes([7; 32]);
        let keys = RecordKeys::open(&path, &master).unwrap();
        let sealed = seal_record(&keys, Tree::Received, b"p/0", b"Alex Testperson").unwrap();
        let first = std::fs::metadata(&path).unwrap().len();
        for i in 1..50u32 {
            keys.key_for(format!("p/{i}").as_bytes()).unwrap();
        }
        let grown = std::fs::metadata(&path).unwrap().len();
        assert!(grown > first + 49 * 64, "49 frames appended: {first} -> {grown}");
        let again = RecordKeys::open(&path, &master).unwrap();
        assert_eq!(again.len(), 50);
        assert_eq!(open_record(&again, Tree::Received, b"p/0", &sealed).unwrap(), b"Alex Testperson");
        assert!(keys.destroy(b"p/0").unwrap());
        let bytes = std::fs::read(&path).unwrap();
        assert!((bytes.len() as u64) < grown, "rewritten as one frame: {} bytes", bytes.len());
        let after = RecordKeys::open(&path, &master).unwrap();
        assert_eq!(after.len(), 49);
        assert!(open_record(&after, Tree::Received, b"p/0", &sealed).is_err(), "the destroyed key came back");
        // Appending after the rewrite still reads back.
        keys.key_for(b"p/50").unwrap();
        assert_eq!(RecordKeys::open(&path, &master).unwrap().len(), 50);
    }

    /// A crash in the middle of an append leaves part of a frame: it was
    /// no key anyone was given, so the file opens with the keys before it,
    /// and the next key rewrites the file without the torn bytes.
    #[test]
    fn a_torn_last_append_is_ignored_and_cut_off_at_the_next_write() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(FILE);
        let master = DataKey::from_bytes([7; 32]);
        let keys = RecordKeys::open(&path, &master).unwrap();
        keys.key_for(b"p/1").unwrap();
        keys.key_for(b"p/2").unwrap();
        drop(keys);
        let good = std::fs::read(&path).unwrap();
        let mut torn = good.clone();
        torn.extend_from_slice(&200u32.to_le_bytes());
        torn.extend_from_slice(&[0xA5; 37]);
        std::fs::write(&path, &torn).unwrap();
        let keys = RecordKeys::open(&path, &master).unwrap();
        assert_eq!(keys.len(), 2, "the complete frames read");
        assert_eq!(std::fs::read(&path).unwrap(), torn, "opening only reads");
        keys.key_for(b"p/3").unwrap();
        let again = RecordKeys::open(&path, &master).unwrap();
        assert_eq!(again.len(), 3);
        assert!(!std::fs::read(&path).unwrap().windows(37).any(|w| w == [0xA5; 37]), "the torn bytes are gone");
        // A complete frame that does not open is damage, not a torn append.
        let mut bad = std::fs::read(&path).unwrap();
        let n = bad.len();
        bad[n - 3] ^= 1;
        std::fs::write(&path, &bad).unwrap();
        assert!(matches!(RecordKeys::open(&path, &master), Err(Error::Corrupt { .. })));
    }

    /// A file of the first version (sealed whole) opens, and is rewritten
    /// in the journal format when the next key is made.
    #[test]
    fn a_first_version_file_opens_and_is_rewritten_as_a_journal() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(FILE);
        let master = DataKey::from_bytes([7; 32]);
        let old: BTreeMap<Vec<u8>, [u8; 32]> = [(b"p/1".to_vec(), [9u8; 32])].into();
        let sealed = Sealer::new(&master).seal(Tree::Meta, FILE_LABEL_V1, &encoding::to_bytes(&old)).unwrap();
        keys::write_secret_file(&path, &sealed, false).unwrap();
        let keys = RecordKeys::open(&path, &master).unwrap();
        let rec = Sealer::new(&DataKey::from_bytes([9; 32])).seal(Tree::Received, b"p/1", b"Alex").unwrap();
        assert_eq!(open_record(&keys, Tree::Received, b"p/1", &rec).unwrap(), b"Alex");
        keys.key_for(b"p/2").unwrap();
        assert!(std::fs::read(&path).unwrap().starts_with(MAGIC));
        let again = RecordKeys::open(&path, &master).unwrap();
        assert_eq!(open_record(&again, Tree::Received, b"p/1", &rec).unwrap(), b"Alex");
        assert_eq!(again.len(), 2);
    }

    /// Many threads making keys at once: every key each was given is in
    /// the file, and the journal is kept near the size of the keys (it is
    /// rewritten whole when it outgrows them).
    #[test]
    fn concurrent_makers_all_find_their_keys_on_disk() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(FILE);
        let master = DataKey::from_bytes([7; 32]);
        let keys = std::sync::Arc::new(RecordKeys::open(&path, &master).unwrap());
        let given: Vec<Vec<(Vec<u8>, Vec<u8>)>> = std::thread::scope(|s| {
            let hs: Vec<_> = (0..8)
                .map(|t| {
                    let keys = keys.clone();
                    s.spawn(move || {
                        (0..500)
                            .map(|i| {
                                let id = format!("p/{t}-{i}").into_bytes();
                                let sealed = seal_record(&keys, Tree::Received, &id, b"x").unwrap();
                                (id, sealed)
                            })
                            .collect()
                    })
                })
                .collect();
            hs.into_iter().map(|h| h.join().unwrap()).collect()
        });
        let again = RecordKeys::open(&path, &master).unwrap();
        assert_eq!(again.len(), 4000);
        for (id, sealed) in given.iter().flatten() {
            assert_eq!(open_record(&again, Tree::Received, id, sealed).unwrap(), b"x");
        }
        let size = std::fs::metadata(&path).unwrap().len();
        assert!(size < 3 * 4000 * 80 + JOURNAL_SLACK, "the journal was compacted: {size} bytes");
    }

    #[test]
    fn retain_destroys_the_keys_of_records_gone() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(FILE);
        let keys = RecordKeys::open(&path, &DataKey::from_bytes([7; 32])).unwrap();
        for id in [b"p/1", b"p/2", b"p/3"] {
            keys.key_for(id).unwrap();
        }
        assert_eq!(keys.retain(|id| id != b"p/2").unwrap(), 1);
        let again = RecordKeys::open(&path, &DataKey::from_bytes([7; 32])).unwrap();
        assert_eq!(again.len(), 2);
        assert!(again.get(b"p/2").is_none());
    }
}
