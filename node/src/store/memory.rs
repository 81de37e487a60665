//! An in-memory [`Store`] for tests of the modules above storage.
//!
//! Same semantics as [`super::SledStore`] (atomic batches, `put_new`
//! conflicts, reserved meta keys), with no disk and no encryption: never
//! use it for real data.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Mutex, MutexGuard, PoisonError};

use super::{Batch, Error, KeyValue, Op, Pending, Store, Tree, show_key};

type Map = BTreeMap<Vec<u8>, Vec<u8>>;

/// An in-memory store.
#[derive(Debug, Default)]
pub struct MemStore {
    trees: Mutex<(u64, HashMap<Tree, Map>)>,
}

impl MemStore {
    /// An empty store.
    pub fn new() -> Self {
        MemStore::default()
    }

    fn lock(&self) -> MutexGuard<'_, (u64, HashMap<Tree, Map>)> {
        // A panic while holding the lock cannot leave a half-applied batch
        // (batches are applied after validation, without failing), so the
        // data is still consistent.
        self.trees.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

impl Store for MemStore {
    fn get(&self, tree: Tree, key: &[u8]) -> Result<Option<Vec<u8>>, Error> {
        Ok(self.lock().1.get(&tree).and_then(|t| t.get(key).cloned()))
    }

    fn scan_prefix(&self, tree: Tree, prefix: &[u8]) -> Result<Vec<KeyValue>, Error> {
        let g = self.lock();
        let Some(t) = g.1.get(&tree) else { return Ok(Vec::new()) };
        Ok(t.range(prefix.to_vec()..)
            .take_while(|(k, _)| k.starts_with(prefix))
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect())
    }

    fn range_from(&self, tree: Tree, start: &[u8], limit: usize) -> Result<Vec<KeyValue>, Error> {
        let g = self.lock();
        let Some(t) = g.1.get(&tree) else { return Ok(Vec::new()) };
        Ok(t.range(start.to_vec()..).take(limit).map(|(k, v)| (k.clone(), v.clone())).collect())
    }

    fn last(&self, tree: Tree) -> Result<Option<KeyValue>, Error> {
        Ok(self.lock().1.get(&tree).and_then(|t| t.last_key_value()).map(|(k, v)| (k.clone(), v.clone())))
    }

    fn apply(&self, batch: Batch) -> Result<Pending, Error> {
        batch.check_reserved()?;
        let mut g = self.lock();
        // Validate against the store as the batch would see it, then apply.
        let mut overlay: HashMap<(Tree, &[u8]), bool> = HashMap::new();
        for op in batch.ops() {
            let present = |tree: Tree, key: &[u8]| {
                overlay
                    .get(&(tree, key))
                    .copied()
                    .unwrap_or_else(|| g.1.get(&tree).is_some_and(|t| t.contains_key(key)))
            };
            match op {
                Op::PutNew { tree, key, .. } if present(*tree, key) => {
                    return Err(Error::AlreadyExists { tree: *tree, key: show_key(key) });
                }
                Op::Put { tree, key, .. } | Op::PutNew { tree, key, .. } => {
                    overlay.insert((*tree, key), true);
                }
                Op::Delete { tree, key } => {
                    overlay.insert((*tree, key), false);
                }
            }
        }
        drop(overlay);
        for op in batch.into_ops() {
            match op {
                Op::Put { tree, key, value } | Op::PutNew { tree, key, value } => {
                    g.1.entry(tree).or_default().insert(key, value);
                }
                Op::Delete { tree, key } => {
                    g.1.entry(tree).or_default().remove(&key);
                }
            }
        }
        g.0 += 1;
        Ok(Pending::new(g.0))
    }

    fn wait_durable(&self, _pending: Pending) -> Result<(), Error> {
        Ok(())
    }

    fn flush(&self) -> Result<(), Error> {
        Ok(())
    }
}
