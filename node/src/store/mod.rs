//! Storage behind a narrow trait.
//!
//! Everything the node keeps goes through [`Store`]: a handful of named
//! key-value [`Tree`]s, point reads, ordered scans, and atomic multi-tree
//! [`Batch`]es that are durable when [`Store::commit`] returns. The trait
//! is small on purpose, so the backend can be swapped (Conduit had to drop
//! its sled backend); [`SledStore`] is the real one, [`MemStore`] an
//! in-memory one for tests.
//!
//! Rules every caller relies on:
//!
//! - **Keys are stored in clear** in every backend: build them only from
//!   identifiers (staff references, credential and consent ids, sequence
//!   numbers, timestamps), never from names, NI numbers or claim values.
//! - **Values in personal trees** ([`Tree::personal`]) are encrypted at rest
//!   by [`SledStore`] (XChaCha20-Poly1305 under the node's data key, bound
//!   to tree and key); callers read and write plaintext.
//! - A batch is all-or-nothing across trees. [`Store::commit`] returns only
//!   once the batch is on disk: send a receipt or an acknowledgement only
//!   after it returned `Ok`.
//! - The `store/` key prefix in [`Tree::Meta`] is reserved for the store's
//!   own bookkeeping (schema version, data key fingerprint, commit count).
//!
//! The trait is synchronous; from async code call it through
//! [`crate::task::blocking`], since a commit waits for an fsync.

use std::fmt;
use std::path::PathBuf;

mod memory;
pub mod record_keys;
mod seal;
mod sled_store;

pub use memory::MemStore;
pub use record_keys::RecordKeys;

/// Opens a value of a sealed tree with the node's data key, as read raw
/// from the store's files: what anyone holding `data.key` and a copy of
/// the files can do. (Tests use it to show what erasure leaves readable.)
pub fn open_sealed(key: &crate::keys::DataKey, tree: Tree, k: &[u8], sealed: &[u8]) -> Result<Vec<u8>, Error> {
    seal::Sealer::new(key).open(tree, k, sealed)
}
/// Whether `stored`, a store's data key fingerprint as it holds it in
/// [`Tree::Meta`] (key [`DATA_KEY_FINGERPRINT`]), is that of `key`: whether
/// `key` opens that store.
pub fn is_data_key_of(key: &crate::keys::DataKey, stored: &[u8]) -> bool {
    seal::fingerprint(key).as_slice() == stored
}
/// Where a store keeps its data key fingerprint, in [`Tree::Meta`].
pub const DATA_KEY_FINGERPRINT: &[u8] = sled_store::META_FINGERPRINT;
pub use sled_store::{Config, OpenMode, RawImport, SCHEMA_VERSION, SledStore, Stats};

/// The named trees. Each has a stable on-disk name ([`Tree::name`]);
/// renaming one is a schema change.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Tree {
    /// Node-level metadata; the `store/` prefix is reserved.
    Meta,
    /// Staff records loaded by HR (personal).
    Staff,
    /// Issued passport credentials and their disclosures (personal).
    Credentials,
    /// Sharing consents (personal).
    Consents,
    /// Passports received from other trusts (personal).
    Received,
    /// Roster chains, one entry per key.
    Rosters,
    /// Messages that must arrive, kept until their receipt.
    Outbox,
    /// Message ids already handled (receiver idempotency).
    Inbox,
    /// The hash-chained audit log (see [`crate::audit`]).
    Audit,
    /// The audit log's index by staff reference.
    AuditByStaff,
    /// Other secondary indexes (keys built from ids and times only, e.g.
    /// expiry time then consent id); values hold no personal data.
    Index,
}

impl Tree {
    /// Every tree, in a fixed order.
    pub const ALL: [Tree; 11] = [
        Tree::Meta,
        Tree::Staff,
        Tree::Credentials,
        Tree::Consents,
        Tree::Received,
        Tree::Rosters,
        Tree::Outbox,
        Tree::Inbox,
        Tree::Audit,
        Tree::AuditByStaff,
        Tree::Index,
    ];

    /// The stable name of the tree on disk.
    pub const fn name(self) -> &'static str {
        match self {
            Tree::Meta => "meta",
            Tree::Staff => "staff",
            Tree::Credentials => "credentials",
            Tree::Consents => "consents",
            Tree::Received => "received",
            Tree::Rosters => "rosters",
            Tree::Outbox => "outbox",
            Tree::Inbox => "inbox",
            Tree::Audit => "audit",
            Tree::AuditByStaff => "audit-by-staff",
            Tree::Index => "index",
        }
    }

    /// True for the trees whose values may hold personal data (records,
    /// bundles waiting to be sent, stored receipts, audit entries with
    /// their reasons); their values are encrypted at rest. Rosters, the
    /// metadata and the indexes (ids and times only) are not.
    pub const fn personal(self) -> bool {
        matches!(
            self,
            Tree::Staff
                | Tree::Credentials
                | Tree::Consents
                | Tree::Received
                | Tree::Outbox
                | Tree::Inbox
                | Tree::Audit
        )
    }

    /// The trees sealed from schema 2 on, plaintext in a schema-1 store.
    pub(crate) const SEALED_SINCE_V2: [Tree; 3] = [Tree::Outbox, Tree::Inbox, Tree::Audit];

    /// The position of the tree in [`Tree::ALL`].
    pub(crate) const fn index(self) -> usize {
        self as usize
    }
}

impl fmt::Display for Tree {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// The reserved key prefix in [`Tree::Meta`].
pub const RESERVED_META_PREFIX: &[u8] = b"store/";

/// One write in a [`Batch`].
#[derive(Clone, PartialEq, Eq)]
pub enum Op {
    /// Set `key` to `value`.
    Put {
        /// The tree.
        tree: Tree,
        /// The key.
        key: Vec<u8>,
        /// The value (plaintext).
        value: Vec<u8>,
    },
    /// Set `key` to `value`, failing the whole batch with
    /// [`Error::AlreadyExists`] if the key is already there.
    PutNew {
        /// The tree.
        tree: Tree,
        /// The key.
        key: Vec<u8>,
        /// The value (plaintext).
        value: Vec<u8>,
    },
    /// Remove `key` (no error if absent).
    Delete {
        /// The tree.
        tree: Tree,
        /// The key.
        key: Vec<u8>,
    },
}

impl Op {
    /// The tree written.
    pub fn tree(&self) -> Tree {
        match self {
            Op::Put { tree, .. } | Op::PutNew { tree, .. } | Op::Delete { tree, .. } => *tree,
        }
    }

    /// The key written.
    pub fn key(&self) -> &[u8] {
        match self {
            Op::Put { key, .. } | Op::PutNew { key, .. } | Op::Delete { key, .. } => key,
        }
    }
}

impl fmt::Debug for Op {
    // Values may be personal data: never print them.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let kind = match self {
            Op::Put { .. } => "Put",
            Op::PutNew { .. } => "PutNew",
            Op::Delete { .. } => "Delete",
        };
        write!(f, "{kind}({}, {})", self.tree(), show_key(self.key()))
    }
}

/// Writes applied together, in order, atomically across trees. A later
/// write to the same key replaces an earlier one.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Batch {
    ops: Vec<Op>,
}

impl Batch {
    /// An empty batch.
    pub fn new() -> Self {
        Batch::default()
    }

    /// Sets `key` in `tree` to `value`.
    pub fn put(&mut self, tree: Tree, key: impl Into<Vec<u8>>, value: impl Into<Vec<u8>>) -> &mut Self {
        self.ops.push(Op::Put { tree, key: key.into(), value: value.into() });
        self
    }

    /// Sets `key` in `tree` to `value`, and fails the whole batch if the
    /// key already exists (append-only logs, idempotency records).
    pub fn put_new(&mut self, tree: Tree, key: impl Into<Vec<u8>>, value: impl Into<Vec<u8>>) -> &mut Self {
        self.ops.push(Op::PutNew { tree, key: key.into(), value: value.into() });
        self
    }

    /// Removes `key` from `tree`.
    pub fn delete(&mut self, tree: Tree, key: impl Into<Vec<u8>>) -> &mut Self {
        self.ops.push(Op::Delete { tree, key: key.into() });
        self
    }

    /// The writes, in order.
    pub fn ops(&self) -> &[Op] {
        &self.ops
    }

    /// True if there is nothing to write.
    pub fn is_empty(&self) -> bool {
        self.ops.is_empty()
    }

    /// How many writes.
    pub fn len(&self) -> usize {
        self.ops.len()
    }

    /// Refuses writes to the reserved part of [`Tree::Meta`].
    pub(crate) fn check_reserved(&self) -> Result<(), Error> {
        match self.ops.iter().find(|op| op.tree() == Tree::Meta && op.key().starts_with(RESERVED_META_PREFIX)) {
            Some(op) => Err(Error::ReservedKey { key: show_key(op.key()) }),
            None => Ok(()),
        }
    }

    pub(crate) fn into_ops(self) -> Vec<Op> {
        self.ops
    }
}

/// A key and its (plaintext) value, as scans return them.
pub type KeyValue = (Vec<u8>, Vec<u8>);

/// A batch that has been applied but may not be on disk yet; pass it to
/// [`Store::wait_durable`].
#[must_use = "a batch is not durable until wait_durable returns"]
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Pending(u64);

impl Pending {
    /// A ticket, for [`Store`] implementations.
    pub fn new(ticket: u64) -> Self {
        Pending(ticket)
    }

    /// The ticket.
    pub fn ticket(self) -> u64 {
        self.0
    }
}

/// A key-value store with named trees and atomic, durable multi-tree
/// batches.
///
/// Reads return plaintext. Scans return keys in ascending byte order. A
/// value in a personal tree that fails authentication is
/// [`Error::Decrypt`], never a panic.
pub trait Store: Send + Sync + 'static {
    /// The value at `key`, if any.
    fn get(&self, tree: Tree, key: &[u8]) -> Result<Option<Vec<u8>>, Error>;

    /// Every entry whose key starts with `prefix`, in key order.
    fn scan_prefix(&self, tree: Tree, prefix: &[u8]) -> Result<Vec<KeyValue>, Error>;

    /// Up to `limit` entries with keys `>= start`, in key order.
    fn range_from(&self, tree: Tree, start: &[u8], limit: usize) -> Result<Vec<KeyValue>, Error>;

    /// The entry with the greatest key, if any.
    fn last(&self, tree: Tree) -> Result<Option<KeyValue>, Error>;

    /// Applies `batch` atomically across trees: either every write becomes
    /// visible or none does. Batches are applied one after another, and
    /// reach the disk in that order. The result is not yet durable: pass
    /// it to [`Store::wait_durable`]. Most callers want [`Store::commit`];
    /// this split exists for writers that must order their batches under a
    /// lock without holding it through the fsync (the audit log).
    fn apply(&self, batch: Batch) -> Result<Pending, Error>;

    /// Returns once the batch behind `pending`, and every batch applied
    /// before it, is on disk. Concurrent waiters may share one fsync.
    fn wait_durable(&self, pending: Pending) -> Result<(), Error>;

    /// Applies `batch` atomically and returns once it is on disk.
    fn commit(&self, batch: Batch) -> Result<(), Error> {
        let pending = self.apply(batch)?;
        self.wait_durable(pending)
    }

    /// Writes everything applied so far to disk.
    fn flush(&self) -> Result<(), Error>;
}

/// A storage failure. Messages name the tree or path, never a value.
#[derive(Debug, Clone, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// Opening an existing store where there is none.
    #[error(
        "no store at {}: run `staffpass-node init` to create one, or set data_dir to this node's data directory",
        .path.display()
    )]
    NotFound {
        /// The store directory.
        path: PathBuf,
    },
    /// Another process has the store open.
    #[error(
        "the store at {} is in use by another process (still locked after waiting {:?}); stop the other staffpass-node using this data directory",
        .path.display(), .waited
    )]
    Locked {
        /// The store directory.
        path: PathBuf,
        /// How long opening waited for the lock.
        waited: std::time::Duration,
    },
    /// The store directory can be read or entered by group or others.
    #[error(
        "the store directory {} has mode {:o}: group and others must have no access; run `chmod 700 {}`",
        .path.display(), .mode, .path.display()
    )]
    Exposed {
        /// The store directory.
        path: PathBuf,
        /// Its permission bits.
        mode: u32,
    },
    /// The store was created under another data key.
    #[error(
        "the store at {} was created with a different data key; start the node with the data.key that belongs to this data directory (restore it from backup), or point data_dir at this node's own store",
        .path.display()
    )]
    ForeignDataDir {
        /// The store directory.
        path: PathBuf,
    },
    /// The store has another schema version.
    #[error(
        "the store at {} has schema version {found}, but this staffpass-node expects {expected}; run the version that wrote it, or migrate the store",
        .path.display()
    )]
    SchemaMismatch {
        /// The store directory.
        path: PathBuf,
        /// The version on disk.
        found: u32,
        /// The version this build writes.
        expected: u32,
    },
    /// The files are damaged.
    #[error(
        "the store at {} is damaged: {detail}. Stop the node and restore the data directory from a backup; keep the damaged copy (its audit log is evidence)",
        .path.display()
    )]
    Corrupt {
        /// The store directory.
        path: PathBuf,
        /// What was found.
        detail: String,
    },
    /// A sealed value failed authentication.
    #[error(
        "a value in the {tree} tree failed authentication: it was altered, or moved from another key; restore the store from a backup"
    )]
    Decrypt {
        /// The tree.
        tree: Tree,
    },
    /// A [`Batch::put_new`] key already exists; nothing of the batch was
    /// written.
    #[error("{tree} already holds key {key}; nothing in the batch was written")]
    AlreadyExists {
        /// The tree.
        tree: Tree,
        /// The key, printable (keys hold ids only).
        key: String,
    },
    /// A write to the store's own reserved metadata.
    #[error("meta key {key} is reserved for the store itself; use another key prefix")]
    ReservedKey {
        /// The key, printable.
        key: String,
    },
    /// The operating system or the storage engine failed.
    #[error("storage failed during {op}: {detail}")]
    Io {
        /// What was being done.
        op: &'static str,
        /// The cause.
        detail: String,
    },
    /// Writes are no longer reaching the disk.
    #[error(
        "writes are not reaching the disk ({detail}); nothing committed since is durable. Stop the node and check the disk"
    )]
    NotDurable {
        /// The cause.
        detail: String,
    },
}

/// A key as text for messages: printable ASCII as is, anything else as
/// hex, at most 96 characters. Keys hold identifiers only.
pub(crate) fn show_key(key: &[u8]) -> String {
    const MAX: usize = 96;
    let mut s = if key.iter().all(|b| b.is_ascii_graphic()) {
        String::from_utf8_lossy(key).into_owned()
    } else {
        format!("0x{}", hex::encode(key))
    };
    if s.len() > MAX {
        s.truncate(MAX);
        s.push_str("...");
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn trees_are_listed_in_index_order_with_unique_names() {
        for (i, t) in Tree::ALL.iter().enumerate() {
            assert_eq!(t.index(), i, "{t}");
        }
        let mut names: Vec<_> = Tree::ALL.iter().map(|t| t.name()).collect();
        names.sort_unstable();
        names.dedup();
        assert_eq!(names.len(), Tree::ALL.len());
        assert!(names.iter().all(|n| !n.contains('\0')), "names go into the AAD, NUL-separated");
    }

    #[test]
    fn exactly_the_personal_trees_are_personal() {
        let personal: Vec<_> = Tree::ALL.into_iter().filter(|t| t.personal()).collect();
        assert_eq!(
            personal,
            [Tree::Staff, Tree::Credentials, Tree::Consents, Tree::Received, Tree::Outbox, Tree::Inbox, Tree::Audit]
        );
    }

    #[test]
    fn keys_show_as_text_or_hex() {
        assert_eq!(show_key(b"st-0001"), "st-0001");
        assert_eq!(show_key(&[0, 1, 0xff]), "0x0001ff");
        assert!(show_key(&[b'a'; 500]).len() < 110);
        assert_eq!(
            format!("{:?}", Op::Put { tree: Tree::Staff, key: b"k".to_vec(), value: b"secret".to_vec() }),
            "Put(staff, k)"
        );
    }
}
