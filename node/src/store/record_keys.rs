//! Per-record data keys, for crypto-shredding.
//!
//! A received passport is sealed under a key of its own (inside the
//! store's own sealing under the node's data key). The keys live here, in
//! one small file beside the store, not in it: sled keeps old values in
//! its log segments, a file replaced atomically does not. Destroying a
//! record's key rewrites the file without it (temporary file 0600, fsync,
//! rename over the old one, directory fsync), so the record's ciphertext
//! that sled may still hold can no longer be opened by anyone, with
//! `data.key` or without. The file itself is sealed under the node's data
//! key.
//!
//! A backup of this file taken before an erasure can still open what was
//! erased, for as long as that backup is kept: back it up apart from the
//! store, with a short retention (README, "Operating it").

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::{Mutex, MutexGuard, PoisonError};

use rand::Rng as _;
use staffpass_protocol::encoding;

use super::seal::Sealer;
use super::{Error, Tree};
use crate::keys::{self, DataKey};

/// The file's name, in the data directory.
pub const FILE: &str = "record-keys";

/// The most keys the file may hold (a corrupt length cannot make it
/// allocate without bound).
const MAX_BYTES: usize = 64 << 20;

/// The AAD label of the file's sealing.
const FILE_LABEL: &[u8] = b"record-keys v1";

/// The per-record keys of one node.
pub struct RecordKeys {
    path: Option<PathBuf>,
    master: Sealer,
    keys: Mutex<BTreeMap<Vec<u8>, [u8; 32]>>,
}

impl std::fmt::Debug for RecordKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RecordKeys").field("path", &self.path).field("keys", &self.lock().len()).finish()
    }
}

fn io(op: &'static str, path: &Path, e: impl std::fmt::Display) -> Error {
    Error::Io { op, detail: format!("{}: {e}", path.display()) }
}

impl RecordKeys {
    /// Opens the key file at `path` (none yet: no keys), sealed under `master`.
    pub fn open(path: &Path, master: &DataKey) -> Result<RecordKeys, Error> {
        let sealer = Sealer::new(master);
        let keys = match std::fs::symlink_metadata(path) {
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => BTreeMap::new(),
            Err(e) => return Err(io("read the record keys", path, e)),
            Ok(_) => {
                let sealed = keys::read_secret_file_max(path, MAX_BYTES as u64 + 1024)
                    .map_err(|e| io("read the record keys", path, e))?;
                let plain = sealer.open(Tree::Meta, FILE_LABEL, &sealed).map_err(|_| Error::Corrupt {
                    path: path.to_path_buf(),
                    detail: "the record key file does not open under this node's data key".into(),
                })?;
                encoding::from_bytes(&plain, MAX_BYTES, "record keys").map_err(|e| Error::Corrupt {
                    path: path.to_path_buf(),
                    detail: format!("the record key file is damaged: {e}"),
                })?
            }
        };
        Ok(RecordKeys { path: Some(path.to_path_buf()), master: sealer, keys: Mutex::new(keys) })
    }

    /// Keys held in memory only (tests over the in-memory store).
    pub fn in_memory(master: &DataKey) -> RecordKeys {
        RecordKeys { path: None, master: Sealer::new(master), keys: Mutex::new(BTreeMap::new()) }
    }

    fn lock(&self) -> MutexGuard<'_, BTreeMap<Vec<u8>, [u8; 32]>> {
        self.keys.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Writes the whole set out atomically (under the lock, so writes are
    /// in order).
    fn persist(&self, keys: &BTreeMap<Vec<u8>, [u8; 32]>) -> Result<(), Error> {
        let Some(path) = &self.path else { return Ok(()) };
        let sealed = self.master.seal(Tree::Meta, FILE_LABEL, &encoding::to_bytes(keys))?;
        keys::write_secret_file(path, &sealed, true).map_err(|e| io("write the record keys", path, e))
    }

    /// The key of record `id`, made (and made durable) if it has none.
    pub(crate) fn key_for(&self, id: &[u8]) -> Result<Sealer, Error> {
        let mut keys = self.lock();
        self.insert_missing(&mut keys, [id])?;
        let k = keys.get(id).ok_or_else(|| Error::Io { op: "make a record key", detail: "not kept".into() })?;
        Ok(Sealer::new(&DataKey::from_bytes(*k)))
    }

    /// Makes the keys of `ids` that have none, with one write of the file
    /// (an import of thousands of records writes it once, not per record).
    pub fn ensure<'a>(&self, ids: impl IntoIterator<Item = &'a [u8]>) -> Result<(), Error> {
        let mut keys = self.lock();
        self.insert_missing(&mut keys, ids)
    }

    /// Makes the keys of `ids` missing from `keys` and writes the file
    /// once; on failure, takes them out again.
    fn insert_missing<'a>(
        &self,
        keys: &mut BTreeMap<Vec<u8>, [u8; 32]>,
        ids: impl IntoIterator<Item = &'a [u8]>,
    ) -> Result<(), Error> {
        let mut made = Vec::new();
        for id in ids {
            if !keys.contains_key(id) {
                let mut k = [0u8; 32];
                rand::rng().fill_bytes(&mut k);
                keys.insert(id.to_vec(), k);
                made.push(id.to_vec());
            }
        }
        if made.is_empty() {
            return Ok(());
        }
        if let Err(e) = self.persist(keys) {
            for id in made {
                keys.remove(&id);
            }
            return Err(e);
        }
        Ok(())
    }

    /// The key of record `id`, if it has one.
    pub(crate) fn get(&self, id: &[u8]) -> Option<Sealer> {
        self.lock().get(id).map(|k| Sealer::new(&DataKey::from_bytes(*k)))
    }

    /// Destroys the key of record `id` for good. Returns whether it had one.
    pub fn destroy(&self, id: &[u8]) -> Result<bool, Error> {
        let mut keys = self.lock();
        let Some(old) = keys.remove(id) else { return Ok(false) };
        if let Err(e) = self.persist(&keys) {
            keys.insert(id.to_vec(), old);
            return Err(e);
        }
        Ok(true)
    }

    /// Destroys every key whose record `keep` no longer wants (after a
    /// crash between an erasure's commit and its key's destruction).
    /// Returns how many.
    pub fn retain(&self, keep: impl Fn(&[u8]) -> bool) -> Result<usize, Error> {
        let mut keys = self.lock();
        let before = keys.clone();
        keys.retain(|id, _| keep(id));
        let gone = before.len() - keys.len();
        if gone > 0
            && let Err(e) = self.persist(&keys)
        {
            *keys = before;
            return Err(e);
        }
        Ok(gone)
    }

    /// True if record `id` has a key (it was not erased).
    pub fn holds(&self, id: &[u8]) -> bool {
        self.lock().contains_key(id)
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
        self.lock().len()
    }

    /// True if none are.
    pub fn is_empty(&self) -> bool {
        self.lock().is_empty()
    }
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
