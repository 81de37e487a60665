//! Backups of a running node, and restoring one into a new data directory.
//!
//! A backup is two files, kept apart:
//!
//! - the **data backup** ([`DATA_MAGIC`]), taken by the running node
//!   (`GET /v1/backup`, admin): every tree of the store as stored (the
//!   values of personal trees sealed under `data.key`, staff records and
//!   received passports also under their own record keys), the latest
//!   audit checkpoint (`audit-checkpoint`), `node.toml` and the API
//!   certificates (`tls/`, without private keys). It holds no key and no
//!   personal data in clear.
//! - the **key backup** ([`KEYS_MAGIC`]), read from the data directory by
//!   `staffpass-node backup --keys-out` on the node's host (never served
//!   by the API): `keys/*.key`, `record-keys` and the API private keys
//!   (`tls/**/*.key`). Whoever holds both can read everything the node
//!   held, and `record-keys` from before an erasure can open what was
//!   erased: keep it apart and for a short time.
//!
//! **Consistency.** The store commits a change and its audit entry in one
//! batch, but sled's transactions are not isolated from plain reads, and
//! reading tree after tree while commits go on could take a staff record
//! from before a batch and its audit entry from after it. So the snapshot
//! is taken by [`SledStore::export_raw`], which holds the store's commit
//! gate alone while it copies every tree: each batch is in the backup
//! whole or not at all. It copies into a local spool file (commits wait
//! for that copy, not for the client), and the spool is then streamed. The
//! per-record key file is held still meanwhile (no record key is made or
//! destroyed), and the backup's header carries its SHA-256: the key backup
//! is read right after, and `staffpass-node backup` takes the snapshot
//! again if the file changed in between, so the two files agree (every
//! record in the data backup has its key, and no key of a record erased
//! before the snapshot is in the key backup). `audit-checkpoint` is read
//! just before the snapshot: it only ever names a checkpoint already in
//! the store, so it cannot be ahead of the snapshot (a file behind the
//! store is written again at start). The store's watermark file is not
//! copied: a restored store gets its own, from its own commit count.
//!
//! **Format** (both files): the magic (8 bytes), the format version (u16,
//! big-endian; a reader refuses a version it does not know), then frames,
//! each a u32 big-endian length and the postcard bytes of one [`Item`]: a
//! [`Header`] first, then files and trees, and last [`Item::End`] with the
//! number of items before it and the SHA-256 of every byte before its
//! frame. A file cut short, or with any byte changed, is refused.

use std::collections::BTreeMap;
use std::fs::{self, File, OpenOptions};
use std::io::{self, BufReader, BufWriter, Read, Write};
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
use std::path::{Component, Path, PathBuf};
use std::sync::Arc;

use rand::Rng as _;
use serde::{Deserialize, Serialize};
use sha2::{Digest as _, Sha256};
use staffpass_protocol::{OrgId, Timestamp, encoding};
use zeroize::Zeroizing;

use crate::audit::{self, Audit};
use crate::keys::{self, DataKey};
use crate::node::paths;
use crate::store::{self, RecordKeys, SledStore, Store, Tree};

/// The first bytes of a data backup.
pub const DATA_MAGIC: &[u8; 8] = b"SPBACKUP";
/// The first bytes of a key backup.
pub const KEYS_MAGIC: &[u8; 8] = b"SPBAKKEY";
/// The format version this build writes and reads.
pub const FORMAT_VERSION: u16 = 1;
/// The largest frame read (the record key file may be 64 MiB).
const MAX_FRAME: usize = 80 << 20;
/// The most files taken from `tls/`.
const MAX_TLS_FILES: usize = 10_000;
/// How a file in the backup is named in messages about it.
const DATA_KIND: &str = "data backup";
const KEYS_KIND: &str = "key backup";

/// What a backup says about itself.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Header {
    /// The organisation of the node backed up.
    pub org: OrgId,
    /// When the backup was taken.
    pub created: Timestamp,
    /// The store's schema version (data backup; 0 in a key backup).
    pub schema: u32,
    /// SHA-256 of the per-record key file as it stood at the snapshot
    /// (`None`: there was none).
    pub record_keys: Option<[u8; 32]>,
}

/// One framed item.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
enum Item {
    /// Always first.
    Header(Header),
    /// A file, by its path relative to the data directory (`/`-separated).
    File { path: String, bytes: Vec<u8> },
    /// The entries that follow are of this tree (by its name on disk).
    Tree(String),
    /// One entry, as stored.
    Entry { key: Vec<u8>, value: Vec<u8> },
    /// Always last: how many items came before, and the SHA-256 of every
    /// byte before this frame.
    End { items: u64, sha256: [u8; 32] },
}

/// Why a backup could not be taken or restored. Never holds key material
/// or stored values.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// Not a backup of this kind.
    #[error("{} is not a staffpass {expected}{}", .path.display(), if *.other_kind { " (it is the other file of a backup: give the data backup with --from and the key backup with --keys)" } else { "" })]
    NotABackup {
        /// The file.
        path: PathBuf,
        /// What it should have been.
        expected: &'static str,
        /// True if it is the other kind of backup file.
        other_kind: bool,
    },
    /// Written in a format version this build does not read.
    #[error(
        "{} is a backup in format version {found}; this staffpass-node reads version {supported}: restore it with the version that wrote it",
        .path.display()
    )]
    UnsupportedVersion {
        /// The file.
        path: PathBuf,
        /// Its version.
        found: u16,
        /// The version read here.
        supported: u16,
    },
    /// The file ends early.
    #[error("{} is cut short (it ends before its last item): the copy is incomplete; take or fetch it again", .path.display())]
    Truncated {
        /// The file.
        path: PathBuf,
    },
    /// The file is damaged.
    #[error("{} is damaged: {detail}; it cannot be restored", .path.display())]
    Corrupt {
        /// The file.
        path: PathBuf,
        /// What was found.
        detail: String,
    },
    /// The key backup lacks a key the node needs.
    #[error("{} holds no {file}: it is not a complete key backup", .path.display())]
    MissingKey {
        /// The key backup.
        path: PathBuf,
        /// The file missing from it.
        file: &'static str,
    },
    /// The key backup's data key is not the one the data was sealed with.
    #[error(
        "the data key in {} does not open the data in {}: give the key backup taken with this data backup",
        .keys.display(), .data.display()
    )]
    KeysDoNotOpenData {
        /// The key backup.
        keys: PathBuf,
        /// The data backup.
        data: PathBuf,
    },
    /// The two files are of different organisations.
    #[error("the data backup is of {data_org} but the key backup of {keys_org}: give both files of one node")]
    OtherNode {
        /// The data backup's organisation.
        data_org: OrgId,
        /// The key backup's organisation.
        keys_org: OrgId,
    },
    /// Restoring over something.
    #[error("{} is not empty: restore into a new or empty directory", .path.display())]
    TargetNotEmpty {
        /// The directory.
        path: PathBuf,
    },
    /// Refusing to overwrite an output file.
    #[error("{} already exists; give a new file name", .path.display())]
    Exists {
        /// The file.
        path: PathBuf,
    },
    /// The record key file kept changing while the backup was taken.
    #[error(
        "the record key file changed after each of {attempts} snapshots (the node is making or erasing records very fast); try again"
    )]
    KeysMoving {
        /// How many snapshots were taken.
        attempts: u32,
    },
    /// A file could not be read or written.
    #[error("cannot {op} {}: {source}", .path.display())]
    Io {
        /// What was being done.
        op: &'static str,
        /// The file.
        path: PathBuf,
        /// Why.
        source: io::Error,
    },
    /// A key file.
    #[error(transparent)]
    Keys(#[from] keys::Error),
    /// The store, taking the snapshot or checking the one restored.
    #[error(transparent)]
    Store(#[from] store::Error),
    /// The restored audit log.
    #[error("the restored audit log does not verify: {0}")]
    Audit(#[from] audit::Broken),
    /// Opening the restored audit log.
    #[error("cannot open the restored audit log: {0}")]
    AuditOpen(#[from] audit::Error),
    /// The configuration in the backup.
    #[error("the node.toml in the backup: {0}")]
    Config(#[from] crate::config::Error),
}

fn io_err<'a>(op: &'static str, path: &'a Path) -> impl FnOnce(io::Error) -> Error + 'a {
    move |source| Error::Io { op, path: path.to_path_buf(), source }
}

// ------------------------------------------------------------- framing

/// Writes frames, hashing every byte.
struct Writer<W: Write> {
    out: W,
    hash: Sha256,
    items: u64,
}

impl<W: Write> Writer<W> {
    fn new(mut out: W, magic: &[u8; 8], header: &Header) -> io::Result<Self> {
        let mut hash = Sha256::new();
        let mut prefix = magic.to_vec();
        prefix.extend_from_slice(&FORMAT_VERSION.to_be_bytes());
        out.write_all(&prefix)?;
        hash.update(&prefix);
        let mut w = Writer { out, hash, items: 0 };
        w.item(&Item::Header(header.clone()))?;
        Ok(w)
    }

    fn item(&mut self, item: &Item) -> io::Result<()> {
        let body = Zeroizing::new(encoding::to_bytes(item));
        let len = u32::try_from(body.len())
            .ok()
            .filter(|l| *l as usize <= MAX_FRAME)
            .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "an item is too large for a backup frame"))?;
        let len = len.to_be_bytes();
        self.out.write_all(&len)?;
        self.out.write_all(&body)?;
        self.hash.update(len);
        self.hash.update(&body);
        self.items += 1;
        Ok(())
    }

    fn finish(mut self) -> io::Result<W> {
        let sha256: [u8; 32] = self.hash.clone().finalize().into();
        let end = encoding::to_bytes(&Item::End { items: self.items, sha256 });
        self.out.write_all(&(end.len() as u32).to_be_bytes())?;
        self.out.write_all(&end)?;
        self.out.flush()?;
        Ok(self.out)
    }
}

/// Reads and checks frames.
struct Reader<R: Read> {
    input: R,
    path: PathBuf,
    hash: Sha256,
    items: u64,
    done: bool,
}

impl<R: Read> Reader<R> {
    /// Checks the magic and version, and reads the header.
    fn open(mut input: R, path: &Path, magic: &[u8; 8], kind: &'static str) -> Result<(Self, Header), Error> {
        let mut prefix = [0u8; 10];
        let n = read_full(&mut input, &mut prefix).map_err(io_err("read", path))?;
        let not_backup = |other_kind| Error::NotABackup { path: path.to_path_buf(), expected: kind, other_kind };
        if n < 8 || (&prefix[..8] != magic && &prefix[..8] != DATA_MAGIC && &prefix[..8] != KEYS_MAGIC) {
            return Err(not_backup(false));
        }
        if &prefix[..8] != magic {
            return Err(not_backup(true));
        }
        if n < 10 {
            return Err(Error::Truncated { path: path.to_path_buf() });
        }
        let found = u16::from_be_bytes([prefix[8], prefix[9]]);
        if found != FORMAT_VERSION {
            return Err(Error::UnsupportedVersion { path: path.to_path_buf(), found, supported: FORMAT_VERSION });
        }
        let mut hash = Sha256::new();
        hash.update(prefix);
        let mut r = Reader { input, path: path.to_path_buf(), hash, items: 0, done: false };
        match r.next()? {
            Some(Item::Header(h)) => Ok((r, h)),
            _ => Err(r.corrupt("it does not start with a header")),
        }
    }

    fn corrupt(&self, detail: impl Into<String>) -> Error {
        Error::Corrupt { path: self.path.clone(), detail: detail.into() }
    }

    /// The next item; `None` once the end was read and checked.
    fn next(&mut self) -> Result<Option<Item>, Error> {
        if self.done {
            return Ok(None);
        }
        let truncated = || Error::Truncated { path: self.path.clone() };
        let mut len = [0u8; 4];
        if read_full(&mut self.input, &mut len).map_err(io_err("read", &self.path))? < 4 {
            return Err(truncated());
        }
        let n = u32::from_be_bytes(len) as usize;
        if n > MAX_FRAME {
            return Err(self.corrupt(format!("an item claims {n} bytes, more than the {MAX_FRAME} allowed")));
        }
        let mut body = Zeroizing::new(vec![0u8; n]);
        if read_full(&mut self.input, &mut body).map_err(io_err("read", &self.path))? < n {
            return Err(truncated());
        }
        let item: Item = encoding::from_bytes(&body, MAX_FRAME, "backup item")
            .map_err(|e| self.corrupt(format!("item {} does not decode ({e})", self.items + 1)))?;
        if let Item::End { items, sha256 } = &item {
            let expected: [u8; 32] = self.hash.clone().finalize().into();
            if *items != self.items || *sha256 != expected {
                return Err(self.corrupt("its checksum does not match its contents"));
            }
            let mut extra = [0u8; 1];
            if read_full(&mut self.input, &mut extra).map_err(io_err("read", &self.path))? != 0 {
                return Err(self.corrupt("there are bytes after its end"));
            }
            self.done = true;
            return Ok(None);
        }
        if self.items > 0 && matches!(item, Item::Header(_)) {
            return Err(self.corrupt("a second header"));
        }
        self.hash.update(len);
        self.hash.update(&body);
        self.items += 1;
        Ok(Some(item))
    }
}

/// Reads until `buf` is full or the input ends; returns how many bytes.
fn read_full(input: &mut impl Read, buf: &mut [u8]) -> io::Result<usize> {
    let mut n = 0;
    while n < buf.len() {
        match input.read(&mut buf[n..]) {
            Ok(0) => break,
            Ok(k) => n += k,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(n)
}

// ---------------------------------------------------------- file names

/// Which files go in which backup.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Data,
    Keys,
}

/// Checks a path from a backup: relative, plain components only, and one
/// of the files its kind may hold (nothing else can be written by a
/// restore).
fn allowed(path: &str, kind: Kind) -> bool {
    let p = Path::new(path);
    let plain = !path.is_empty()
        && p.components().count() <= 6
        && p.components().all(|c| matches!(c, Component::Normal(s) if s.to_str().is_some_and(|s| !s.starts_with('.'))));
    if !plain {
        return false;
    }
    let secret = path.ends_with(".key");
    match kind {
        Kind::Data => path == audit::CHECKPOINT_FILE || path == "node.toml" || (path.starts_with("tls/") && !secret),
        Kind::Keys => {
            path == store::record_keys::FILE
                || (path.starts_with("keys/") && p.components().count() == 2 && secret)
                || (path.starts_with("tls/") && secret)
        }
    }
}

/// Every regular file under `data/tls`, by relative path.
fn tls_files(data: &Path) -> Result<Vec<String>, Error> {
    fn walk(base: &Path, dir: &Path, out: &mut Vec<String>) -> Result<(), Error> {
        let entries = match fs::read_dir(dir) {
            Ok(e) => e,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
            Err(e) => return Err(io_err("list", dir)(e)),
        };
        for entry in entries {
            let entry = entry.map_err(io_err("list", dir))?;
            let path = entry.path();
            let ty = entry.file_type().map_err(io_err("read metadata of", &path))?;
            if ty.is_dir() {
                walk(base, &path, out)?;
            } else if ty.is_file()
                && let Some(rel) = path.strip_prefix(base).ok().and_then(Path::to_str)
            {
                out.push(rel.to_owned());
            }
            if out.len() > MAX_TLS_FILES {
                return Err(Error::Io {
                    op: "back up",
                    path: dir.to_path_buf(),
                    source: io::Error::other(format!("more than {MAX_TLS_FILES} files under tls/")),
                });
            }
        }
        Ok(())
    }
    let mut out = Vec::new();
    walk(data, &paths::tls(data), &mut out)?;
    out.sort();
    Ok(out)
}

/// Reads a file of the data directory (at most [`keys::MAX_SECRET_FILE`]
/// bytes, or `max`); `None` if there is none.
fn read_optional(path: &Path, max: u64) -> Result<Option<Zeroizing<Vec<u8>>>, Error> {
    match fs::symlink_metadata(path) {
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(io_err("read", path)(e)),
        Ok(_) => Ok(Some(keys::read_secret_file_max(path, max).or_else(|e| match e {
            // Certificates and the config may be readable by others: only
            // the size and kind checks matter for them.
            keys::Error::Permissions { .. } => read_public(path, max),
            other => Err(Error::Keys(other)),
        })?)),
    }
}

fn read_public(path: &Path, max: u64) -> Result<Zeroizing<Vec<u8>>, Error> {
    let mut bytes = Zeroizing::new(Vec::new());
    File::open(path).and_then(|f| f.take(max + 1).read_to_end(&mut bytes)).map_err(io_err("read", path))?;
    if bytes.len() as u64 > max {
        return Err(Error::Keys(keys::Error::TooLarge { path: path.to_path_buf(), max }));
    }
    Ok(bytes)
}

// ------------------------------------------------------------ taking one

/// What a running node backs up: its store, its record keys and its data
/// directory. Built by the composition root for a node on its own store.
pub struct Source {
    /// The store.
    pub store: Arc<SledStore>,
    /// The per-record keys.
    pub record_keys: Arc<RecordKeys>,
    /// The data directory.
    pub data_dir: PathBuf,
    /// The node's organisation.
    pub org: OrgId,
}

/// What a data backup holds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Summary {
    /// Its header.
    pub header: Header,
    /// Store entries.
    pub entries: u64,
    /// Files.
    pub files: Vec<String>,
}

impl Source {
    /// Writes a data backup of the node as it stands to `out` (see the
    /// module docs for what makes it consistent).
    pub fn write(&self, out: impl Write, now: Timestamp) -> Result<Summary, Error> {
        let data = &self.data_dir;
        let mut files: Vec<(String, Zeroizing<Vec<u8>>)> = Vec::new();
        let config = paths::config(data);
        if let Some(bytes) = read_optional(&config, keys::MAX_SECRET_FILE)? {
            files.push(("node.toml".into(), bytes));
        }
        for rel in tls_files(data)?.into_iter().filter(|p| allowed(p, Kind::Data)) {
            if let Some(bytes) = read_optional(&data.join(&rel), keys::MAX_SECRET_FILE)? {
                files.push((rel, bytes));
            }
        }
        // Before the trees: the file never names a checkpoint the store lacks.
        if let Some(bytes) = read_optional(&data.join(audit::CHECKPOINT_FILE), keys::MAX_SECRET_FILE)? {
            files.push((audit::CHECKPOINT_FILE.into(), bytes));
        }
        self.record_keys.frozen(|rk_path| {
            let record_keys = match rk_path {
                Some(p) => read_optional(p, MAX_FRAME as u64)?.map(|b| Sha256::digest(&b).into()),
                None => None,
            };
            let header = Header { org: self.org.clone(), created: now, schema: store::SCHEMA_VERSION, record_keys };
            let mut w = Writer::new(BufWriter::new(out), DATA_MAGIC, &header).map_err(io_err("write", data))?;
            for (path, bytes) in &files {
                w.item(&Item::File { path: path.clone(), bytes: bytes.to_vec() }).map_err(io_err("write", data))?;
            }
            let mut current: Option<Tree> = None;
            let entries = self.store.export_raw(|tree, key, value| {
                if current != Some(tree) {
                    w.item(&Item::Tree(tree.name().into())).map_err(io_err("write", data))?;
                    current = Some(tree);
                }
                w.item(&Item::Entry { key: key.to_vec(), value: value.to_vec() }).map_err(io_err("write", data))
            })?;
            w.finish().map_err(io_err("write", data))?;
            Ok(Summary { header, entries, files: files.iter().map(|(p, _)| p.clone()).collect() })
        })
    }
}

/// The secret files of a data directory, as a key backup holds them.
pub struct KeySet {
    files: BTreeMap<String, Zeroizing<Vec<u8>>>,
}

impl std::fmt::Debug for KeySet {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KeySet").field("files", &self.files.keys().collect::<Vec<_>>()).finish()
    }
}

impl KeySet {
    /// Reads `keys/*.key`, `record-keys` and `tls/**/*.key` from the data
    /// directory `data` (each must be private to its owner).
    pub fn read(data: &Path) -> Result<KeySet, Error> {
        let mut files = BTreeMap::new();
        let dir = paths::keys(data);
        let mut names = Vec::new();
        for entry in fs::read_dir(&dir).map_err(io_err("list", &dir))? {
            let entry = entry.map_err(io_err("list", &dir))?;
            if let Some(name) = entry.file_name().to_str() {
                names.push(format!("keys/{name}"));
            }
        }
        names.extend(tls_files(data)?);
        names.push(store::record_keys::FILE.into());
        for rel in names.into_iter().filter(|p| allowed(p, Kind::Keys)) {
            let path = data.join(&rel);
            if fs::symlink_metadata(&path).is_err() {
                continue;
            }
            let max = if rel == store::record_keys::FILE { MAX_FRAME as u64 } else { keys::MAX_SECRET_FILE };
            files.insert(rel, keys::read_secret_file_max(&path, max)?);
        }
        Ok(KeySet { files })
    }

    /// SHA-256 of the record key file held, as in [`Header::record_keys`].
    pub fn record_keys_digest(&self) -> Option<[u8; 32]> {
        self.files.get(store::record_keys::FILE).map(|b| Sha256::digest(b.as_slice()).into())
    }

    /// The files held, by path (no contents).
    pub fn paths(&self) -> Vec<String> {
        self.files.keys().cloned().collect()
    }

    /// Writes the key backup to `out`.
    pub fn write(&self, out: impl Write, org: OrgId, now: Timestamp) -> Result<(), Error> {
        let header = Header { org, created: now, schema: 0, record_keys: self.record_keys_digest() };
        let here = Path::new("key backup");
        let mut w = Writer::new(BufWriter::new(out), KEYS_MAGIC, &header).map_err(io_err("write", here))?;
        for (path, bytes) in &self.files {
            w.item(&Item::File { path: path.clone(), bytes: bytes.to_vec() }).map_err(io_err("write", here))?;
        }
        w.finish().map_err(io_err("write", here))?;
        Ok(())
    }

    /// Reads a key backup.
    pub fn from_backup(path: &Path) -> Result<(Header, KeySet), Error> {
        let file = File::open(path).map_err(io_err("open", path))?;
        let (mut r, header) = Reader::open(BufReader::new(file), path, KEYS_MAGIC, KEYS_KIND)?;
        let mut files = BTreeMap::new();
        while let Some(item) = r.next()? {
            match item {
                Item::File { path: rel, bytes } if allowed(&rel, Kind::Keys) => {
                    files.insert(rel, Zeroizing::new(bytes));
                }
                Item::File { path: rel, .. } => {
                    return Err(r.corrupt(format!("it names a file it may not hold ({rel})")));
                }
                _ => return Err(r.corrupt("it holds an item a key backup does not")),
            }
        }
        Ok((header, KeySet { files }))
    }

    fn data_key(&self, path: &Path) -> Result<DataKey, Error> {
        for file in [keys::ISSUER_FILE, keys::NODE_FILE, keys::DATA_FILE] {
            if !self.files.contains_key(&format!("keys/{file}")) {
                return Err(Error::MissingKey { path: path.to_path_buf(), file });
            }
        }
        let text = self.files.get(&format!("keys/{}", keys::DATA_FILE)).map(|b| std::str::from_utf8(b));
        match text {
            Some(Ok(t)) => DataKey::from_secret_text(t).map_err(|reason| {
                Error::Keys(keys::Error::Malformed { path: path.to_path_buf(), kind: "data-key", reason })
            }),
            _ => Err(Error::Keys(keys::Error::Malformed {
                path: path.to_path_buf(),
                kind: "data-key",
                reason: "not UTF-8 text",
            })),
        }
    }
}

/// Checks a whole data backup (every frame and its checksum). Returns its
/// summary and the data key fingerprint its store holds.
pub fn check(path: &Path) -> Result<Summary, Error> {
    check_with_fingerprint(path).map(|(s, _)| s)
}

fn check_with_fingerprint(path: &Path) -> Result<(Summary, Option<Vec<u8>>), Error> {
    let file = File::open(path).map_err(io_err("open", path))?;
    let (mut r, header) = Reader::open(BufReader::new(file), path, DATA_MAGIC, DATA_KIND)?;
    let mut summary = Summary { header, entries: 0, files: Vec::new() };
    let mut fingerprint = None;
    let mut tree = None;
    while let Some(item) = r.next()? {
        match item {
            Item::File { path: rel, .. } if allowed(&rel, Kind::Data) => summary.files.push(rel),
            Item::File { path: rel, .. } => return Err(r.corrupt(format!("it names a file it may not hold ({rel})"))),
            Item::Tree(name) => {
                tree = Some(tree_named(&r, &name)?);
            }
            Item::Entry { key, value } => {
                let Some(t) = tree else { return Err(r.corrupt("an entry before any tree")) };
                if t == Tree::Meta && key == store::DATA_KEY_FINGERPRINT {
                    fingerprint = Some(value);
                }
                summary.entries += 1;
            }
            Item::Header(_) | Item::End { .. } => return Err(r.corrupt("an item out of place")),
        }
    }
    Ok((summary, fingerprint))
}

fn tree_named<R: Read>(r: &Reader<R>, name: &str) -> Result<Tree, Error> {
    Tree::ALL.into_iter().find(|t| t.name() == name).ok_or_else(|| r.corrupt(format!("an unknown tree ({name})")))
}

// ------------------------------------------------------------ output files

/// A new private file, written under a temporary name beside its final
/// one and moved there only by [`NewFile::persist`] (after an fsync);
/// removed if dropped before. Never replaces an existing file.
pub struct NewFile {
    tmp: PathBuf,
    path: PathBuf,
    file: File,
}

impl NewFile {
    /// Starts `path` (refused if it exists).
    pub fn create(path: &Path) -> Result<NewFile, Error> {
        if fs::symlink_metadata(path).is_ok() {
            return Err(Error::Exists { path: path.to_path_buf() });
        }
        let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("backup");
        let mut nonce = [0u8; 8];
        rand::rng().fill_bytes(&mut nonce);
        let tmp = parent_of(path).join(format!(".{name}.{}.tmp", hex::encode(nonce)));
        let file =
            OpenOptions::new().write(true).create_new(true).mode(0o600).open(&tmp).map_err(io_err("create", &tmp))?;
        file.set_permissions(fs::Permissions::from_mode(0o600)).map_err(io_err("set permissions on", &tmp))?;
        Ok(NewFile { tmp, path: path.to_path_buf(), file })
    }

    /// The file being written.
    pub fn file(&mut self) -> &mut File {
        &mut self.file
    }

    /// The temporary file's path (to read it back before persisting).
    pub fn tmp_path(&self) -> &Path {
        &self.tmp
    }

    /// Flushes it to disk and moves it to its name (the temporary name is
    /// removed when `self` drops).
    pub fn persist(self) -> Result<PathBuf, Error> {
        self.file.sync_all().map_err(io_err("fsync", &self.tmp))?;
        match fs::hard_link(&self.tmp, &self.path) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {
                return Err(Error::Exists { path: self.path.clone() });
            }
            // A filesystem without hard links.
            Err(_) => fs::rename(&self.tmp, &self.path).map_err(io_err("rename into place", &self.path))?,
        }
        sync_dir(parent_of(&self.path))?;
        Ok(self.path.clone())
    }
}

impl Drop for NewFile {
    fn drop(&mut self) {
        let _ = fs::remove_file(&self.tmp);
    }
}

fn parent_of(path: &Path) -> &Path {
    match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    }
}

fn sync_dir(dir: &Path) -> Result<(), Error> {
    File::open(dir).and_then(|d| d.sync_all()).map_err(io_err("fsync", dir))
}

// ------------------------------------------------------------- restoring

/// What a restore made.
#[derive(Debug, Clone)]
pub struct Restored {
    /// The new data directory.
    pub data_dir: PathBuf,
    /// The data backup's header.
    pub header: Header,
    /// Store entries restored.
    pub entries: u64,
    /// Audit log entries, verified.
    pub audit_entries: u64,
    /// Per-record keys restored.
    pub record_keys: usize,
    /// True if the key backup's record key file is not the one of the
    /// data backup's snapshot (records made after the key backup cannot
    /// be opened; keys of records erased since are gone).
    pub record_keys_differ: bool,
}

/// Removes a half-made directory unless disarmed.
struct Staging {
    dir: PathBuf,
    armed: bool,
}

impl Drop for Staging {
    fn drop(&mut self) {
        if self.armed {
            let _ = fs::remove_dir_all(&self.dir);
        }
    }
}

/// Restores the data backup `from` with the key backup `keys` into the
/// new data directory `target` (which must not exist or be empty; created
/// 0700). Both files are checked whole first; the directory is built
/// beside `target` under a temporary name, checked (the store opens under
/// the restored data key, the record keys open, the audit log verifies)
/// and only then moved to `target`, so a failure leaves nothing.
/// `node.toml` is restored with `data_dir` set to `target`.
pub fn restore(from: &Path, keys_path: &Path, target: &Path) -> Result<Restored, Error> {
    let target = std::path::absolute(target).map_err(io_err("resolve", target))?;
    match fs::symlink_metadata(&target) {
        Err(e) if e.kind() == io::ErrorKind::NotFound => {}
        Err(e) => return Err(io_err("read", &target)(e)),
        Ok(m) => {
            let empty = m.is_dir() && fs::read_dir(&target).map_err(io_err("list", &target))?.next().is_none();
            if !empty {
                return Err(Error::TargetNotEmpty { path: target });
            }
        }
    }
    let (key_header, key_set) = KeySet::from_backup(keys_path)?;
    let data_key = key_set.data_key(keys_path)?;
    let (summary, fingerprint) = check_with_fingerprint(from)?;
    if summary.header.org != key_header.org {
        return Err(Error::OtherNode { data_org: summary.header.org, keys_org: key_header.org });
    }
    let Some(fingerprint) = fingerprint else {
        return Err(Error::Corrupt {
            path: from.to_path_buf(),
            detail: "its store has no data key fingerprint".into(),
        });
    };
    if !store::is_data_key_of(&data_key, &fingerprint) {
        return Err(Error::KeysDoNotOpenData { keys: keys_path.to_path_buf(), data: from.to_path_buf() });
    }

    let parent = parent_of(&target);
    let name = target.file_name().and_then(|n| n.to_str()).unwrap_or("data");
    let mut nonce = [0u8; 8];
    rand::rng().fill_bytes(&mut nonce);
    let dir = parent.join(format!(".{name}.restoring-{}", hex::encode(nonce)));
    fs::DirBuilder::new().mode(0o700).create(&dir).map_err(io_err("create", &dir))?;
    let mut staging = Staging { dir: dir.clone(), armed: true };

    for (rel, bytes) in &key_set.files {
        write_private(&dir, rel, bytes)?;
    }
    let (entries, has_config) = import_data(from, &dir)?;
    let config = paths::config(&dir);
    let mut cfg = if has_config {
        crate::config::Config::load(Some(&config), Vec::new(), &[])?
    } else {
        crate::config::Config::new(summary.header.org.clone())
    };
    cfg.data_dir = target.clone();
    keys::write_secret_file(&config, cfg.example().as_bytes(), true)?;

    // The restored directory must work as a node's before it is moved in.
    keys::KeyFiles::load(&paths::keys(&dir))?;
    let st = Arc::new(SledStore::open(&paths::db(&dir), &data_key, store::OpenMode::Existing)?);
    let record_keys = RecordKeys::open(&dir.join(store::record_keys::FILE), &data_key)?;
    let report = {
        let log = Audit::open(st.clone() as Arc<dyn Store>)?;
        log.verify()?
    };
    match Arc::try_unwrap(st) {
        Ok(st) => st.close()?,
        Err(_) => {
            return Err(Error::Io {
                op: "close the restored store in",
                path: dir.clone(),
                source: io::Error::other("still in use"),
            });
        }
    }
    sync_dir(&dir)?;
    fs::rename(&dir, &target).map_err(io_err("move the restored directory to", &target))?;
    staging.armed = false;
    sync_dir(parent)?;
    Ok(Restored {
        data_dir: target,
        record_keys_differ: summary.header.record_keys != key_header.record_keys,
        header: summary.header,
        entries,
        audit_entries: report.entries,
        record_keys: record_keys.len(),
    })
}

/// Writes the store and files of the data backup `from` into `dir`.
/// Returns the entries written and whether it held a `node.toml`.
fn import_data(from: &Path, dir: &Path) -> Result<(u64, bool), Error> {
    let file = File::open(from).map_err(io_err("open", from))?;
    let (mut r, _) = Reader::open(BufReader::new(file), from, DATA_MAGIC, DATA_KIND)?;
    let import = store::RawImport::create(&paths::db(dir))?;
    let (mut tree, mut entries, mut has_config) = (None, 0u64, false);
    while let Some(item) = r.next()? {
        match item {
            Item::File { path: rel, bytes } if allowed(&rel, Kind::Data) => {
                has_config |= rel == "node.toml";
                write_private(dir, &rel, &bytes)?;
            }
            Item::Tree(name) => tree = Some(tree_named(&r, &name)?),
            Item::Entry { key, value } => {
                let Some(t) = tree else { return Err(r.corrupt("an entry before any tree")) };
                import.insert(t, &key, &value)?;
                entries += 1;
            }
            _ => return Err(r.corrupt("an item out of place")),
        }
    }
    import.finish()?;
    Ok((entries, has_config))
}

/// Writes `bytes` to `dir/rel` (0600; directories 0700).
fn write_private(dir: &Path, rel: &str, bytes: &[u8]) -> Result<(), Error> {
    let path = dir.join(rel);
    let parent = parent_of(&path);
    fs::DirBuilder::new().recursive(true).mode(0o700).create(parent).map_err(io_err("create", parent))?;
    keys::write_secret_file(&path, bytes, false)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn header() -> Header {
        Header {
            org: "RJZ".parse().unwrap(),
            created: Timestamp::from_unix(1_700_000_000).unwrap(),
            schema: 2,
            record_keys: None,
        }
    }

    fn sample() -> Vec<u8> {
        let mut w = Writer::new(Vec::new(), DATA_MAGIC, &header()).unwrap();
        w.item(&Item::File { path: "node.toml".into(), bytes: b"org = \"RJZ\"\n".to_vec() }).unwrap();
        w.item(&Item::Tree("meta".into())).unwrap();
        w.item(&Item::Entry { key: b"k".to_vec(), value: b"v".to_vec() }).unwrap();
        w.finish().unwrap()
    }

    /// Every item, the header first (itself checked only at the end).
    fn read_all(bytes: &[u8]) -> Result<Vec<Item>, Error> {
        let (mut r, h) = Reader::open(bytes, Path::new("b"), DATA_MAGIC, DATA_KIND)?;
        let mut items = vec![Item::Header(h)];
        while let Some(i) = r.next()? {
            items.push(i);
        }
        Ok(items)
    }

    #[test]
    fn a_backup_reads_back() {
        let items = read_all(&sample()).unwrap();
        assert_eq!(items.len(), 4);
        assert_eq!(items[0], Item::Header(header()));
        assert_eq!(items[3], Item::Entry { key: b"k".to_vec(), value: b"v".to_vec() });
    }

    #[test]
    fn every_cut_and_every_changed_byte_is_refused() {
        let good = sample();
        for len in 0..good.len() {
            let r = read_all(&good[..len]);
            assert!(r.is_err(), "cut at {len} was read");
            if len >= 10 {
                assert!(matches!(r, Err(Error::Truncated { .. })), "cut at {len}: {r:?}");
            }
        }
        for i in 0..good.len() {
            let mut bad = good.clone();
            bad[i] ^= 0x01;
            assert!(read_all(&bad).is_err(), "flip at {i} was read");
        }
        let mut longer = good.clone();
        longer.push(0);
        assert!(matches!(read_all(&longer), Err(Error::Corrupt { .. })));
    }

    #[test]
    fn another_version_or_kind_is_refused_clearly() {
        let mut v2 = sample();
        v2[9] = 2;
        assert!(matches!(read_all(&v2), Err(Error::UnsupportedVersion { found: 2, supported: 1, .. })));
        let mut keys = sample();
        keys[..8].copy_from_slice(KEYS_MAGIC);
        assert!(matches!(read_all(&keys), Err(Error::NotABackup { other_kind: true, .. })));
        assert!(matches!(read_all(b"hello world, not a backup"), Err(Error::NotABackup { other_kind: false, .. })));
    }

    #[test]
    fn only_the_files_of_its_kind_may_be_restored() {
        for ok in ["audit-checkpoint", "node.toml", "tls/ca.pem", "tls/clients/alex.pem", "tls/crl.pem"] {
            assert!(allowed(ok, Kind::Data), "{ok}");
            assert!(!allowed(ok, Kind::Keys), "{ok}");
        }
        for ok in ["keys/data.key", "keys/issuer.next.key", "record-keys", "tls/ca.key", "tls/clients/alex.key"] {
            assert!(allowed(ok, Kind::Keys), "{ok}");
            assert!(!allowed(ok, Kind::Data), "{ok}");
        }
        for bad in ["../x", "/etc/passwd", "tls/../../x.pem", "db/db", "keys/sub/x.key", "", "tls/.hidden", "keys/data"]
        {
            assert!(!allowed(bad, Kind::Data) && !allowed(bad, Kind::Keys), "{bad}");
        }
    }
}
