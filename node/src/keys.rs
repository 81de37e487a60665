//! Key files in a node's data directory.
//!
//! A node holds three secrets, each in its own text file, mode `0600`:
//!
//! | file | what | text |
//! | --- | --- | --- |
//! | `issuer.key` | the organisation's current issuer key (signs passports, consents, receipts) | `issuer-sk:<64 hex>` |
//! | `node.key` | the libp2p ed25519 transport identity (the node's PeerId) | `node-sk:<64 hex>` |
//! | `data.key` | 32 random bytes that encrypt personal data at rest | `data-key:<64 hex>` |
//!
//! A retired issuer key's secret is not kept: what it signed before its
//! retirement verifies against the public key in the roster, and a secret
//! left on disk could sign backdated objects if it leaked. Rotation
//! replaces `issuer.key` and keeps nothing of the old one; copies left by
//! earlier versions (`issuer-<unix seconds>.retired.key`) are deleted when
//! the keys are loaded.
//!
//! Rules, as for ssh keys: a key file that group or others can access is
//! refused (`chmod 600 <path>`); a missing, unreadable or malformed key file
//! is an error and is **never** replaced by a new key (that would silently
//! change the node's identity or make its store unreadable); key material
//! never appears in errors, logs or `Debug` output. Files are written
//! atomically: a temporary file created `0600` in the same directory,
//! written, fsynced, renamed into place, then the directory fsynced.
//!
//! [`write_secret_file`] and [`read_secret_file`] are the same primitives
//! for any other secret (e.g. TLS private keys).

use std::fmt;
use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Write};
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

use libp2p::identity;
use rand::Rng as _;
use staffpass_protocol::{IssuerPublicKey, IssuerSecretKey, NodeId, Timestamp};
use zeroize::Zeroizing;

/// The current issuer key's file name.
pub const ISSUER_FILE: &str = "issuer.key";
/// A prepared issuer key, waiting for the rosters to list it
/// ([`KeyFiles::prepare_issuer`]); the node signs nothing with it until
/// they do and it is promoted ([`KeyFiles::promote_prepared`]).
pub const NEXT_ISSUER_FILE: &str = "issuer.next.key";
/// The node (transport identity) key's file name.
pub const NODE_FILE: &str = "node.key";
/// The data (at-rest encryption) key's file name.
pub const DATA_FILE: &str = "data.key";

const RETIRED_PREFIX: &str = "issuer-";
const RETIRED_SUFFIX: &str = ".retired.key";
const NODE_PREFIX: &str = "node-sk";
const DATA_PREFIX: &str = "data-key";

/// The largest secret file [`read_secret_file`] accepts. Keys are tens of
/// bytes and TLS keys a few KiB: anything bigger is the wrong file.
pub const MAX_SECRET_FILE: u64 = 1 << 20;

/// A key file that could not be written or read.
///
/// No variant ever holds key material: only paths, modes and fixed reasons.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// Refusing to overwrite an existing key file.
    #[error(
        "{} already exists; refusing to overwrite a key file (back it up, then pass --force to replace it)",
        .path.display()
    )]
    Exists {
        /// The file.
        path: PathBuf,
    },
    /// A key file is not there.
    #[error(
        "key file {} is missing; restore it from backup (a lost key is never regenerated: that would change the node's identity)",
        .path.display()
    )]
    Missing {
        /// The file.
        path: PathBuf,
    },
    /// A key file that group or others can access.
    #[error(
        "key file {} is accessible by group or others (mode {mode:04o}); run `chmod 600 {}`",
        .path.display(),
        .path.display()
    )]
    Permissions {
        /// The file.
        path: PathBuf,
        /// Its permission bits.
        mode: u32,
    },
    /// Not a regular file (a directory, a device, ...).
    #[error("{} is not a regular file; point the node at its key file", .path.display())]
    NotAFile {
        /// The path.
        path: PathBuf,
    },
    /// Far too large to be a key.
    #[error("{} is larger than {max} bytes, too large for a key file; is it the right file?", .path.display())]
    TooLarge {
        /// The file.
        path: PathBuf,
        /// The bound.
        max: u64,
    },
    /// The content is not a key of the expected kind.
    #[error("key file {} is not a valid {kind} key ({reason}); restore it from backup", .path.display())]
    Malformed {
        /// The file.
        path: PathBuf,
        /// The kind of key expected (`issuer-sk`, `node-sk`, `data-key`).
        kind: &'static str,
        /// What is wrong, as a fixed phrase (never the content).
        reason: &'static str,
    },
    /// The operating system refused.
    #[error("could not {action} {}: {source}", .path.display())]
    Io {
        /// What was being done.
        action: &'static str,
        /// The path.
        path: PathBuf,
        /// The cause.
        #[source]
        source: io::Error,
    },
}

fn io_err<'a>(action: &'static str, path: &'a Path) -> impl FnOnce(io::Error) -> Error + 'a {
    move |source| Error::Io { action, path: path.to_path_buf(), source }
}

/// Parses `<prefix>:<64 hex>` into 32 secret bytes, with fixed error reasons.
fn parse_hex32(text: &str, prefix: &str) -> Result<Zeroizing<[u8; 32]>, &'static str> {
    let text = text.trim();
    let Some((p, hexpart)) = text.split_once(':') else {
        return Err("expected <kind>:<64 hex digits>");
    };
    if p != prefix {
        return Err("wrong key kind prefix");
    }
    let mut out = Zeroizing::new([0u8; 32]);
    if hexpart.len() != 64 || hex::decode_to_slice(hexpart, &mut *out).is_err() {
        return Err("expected 64 hex digits after the prefix");
    }
    Ok(out)
}

/// `<prefix>:<hex>\n` without leaving unzeroized copies behind.
fn hex_text(prefix: &str, bytes: &[u8]) -> Zeroizing<String> {
    let mut s = Zeroizing::new(String::with_capacity(prefix.len() + 2 + bytes.len() * 2));
    s.push_str(prefix);
    s.push(':');
    const HEX: &[u8; 16] = b"0123456789abcdef";
    for b in bytes {
        s.push(char::from(HEX[usize::from(b >> 4)]));
        s.push(char::from(HEX[usize::from(b & 0x0f)]));
    }
    s.push('\n');
    s
}

/// The node's transport identity: an ed25519 key whose public half is the
/// node's libp2p PeerId. Zeroized on drop; prints as `NodeKey(..)`.
#[derive(Clone)]
pub struct NodeKey {
    secret: Zeroizing<[u8; 32]>,
    // dalek's signing key inside zeroizes itself on drop.
    keypair: identity::ed25519::Keypair,
}

impl NodeKey {
    /// A fresh key from a CSPRNG (libp2p's generator, seeded by the OS).
    pub fn generate() -> Self {
        let keypair = identity::ed25519::Keypair::generate();
        let mut secret = Zeroizing::new([0u8; 32]);
        secret.copy_from_slice(keypair.secret().as_ref());
        NodeKey { secret, keypair }
    }

    /// From the 32 secret bytes. The error is a fixed phrase, never the key.
    pub fn from_bytes(bytes: &[u8; 32]) -> Result<Self, &'static str> {
        let secret = Zeroizing::new(*bytes);
        let mut copy = Zeroizing::new(*bytes);
        // libp2p zeroizes `copy` on success; Zeroizing covers the failure.
        let sk = identity::ed25519::SecretKey::try_from_bytes(&mut *copy).map_err(|_| "not an ed25519 secret key")?;
        Ok(NodeKey { secret, keypair: identity::ed25519::Keypair::from(sk) })
    }

    /// Reads `node-sk:<64 hex>`. The error never holds the text.
    pub fn from_secret_text(text: &str) -> Result<Self, &'static str> {
        let b = parse_hex32(text, NODE_PREFIX)?;
        NodeKey::from_bytes(&b)
    }

    /// The key as text (`node-sk:<hex>`), for a 0600 file. Never log it.
    pub fn to_secret_text(&self) -> Zeroizing<String> {
        hex_text(NODE_PREFIX, &*self.secret)
    }

    /// The libp2p identity keypair for the swarm.
    pub fn libp2p_keypair(&self) -> identity::Keypair {
        identity::Keypair::from(self.keypair.clone())
    }

    /// The node's PeerId.
    pub fn peer_id(&self) -> libp2p::PeerId {
        identity::PublicKey::from(self.keypair.public()).to_peer_id()
    }

    /// The node's id as the protocol names it (the same PeerId).
    pub fn node_id(&self) -> NodeId {
        NodeId::from_ed25519_public(&self.keypair.public().to_bytes())
    }
}

impl fmt::Debug for NodeKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("NodeKey(..)")
    }
}

/// The key that encrypts personal data at rest (32 random bytes).
/// Zeroized on drop; prints as `DataKey(..)`.
#[derive(Clone)]
pub struct DataKey(Zeroizing<[u8; 32]>);

impl DataKey {
    /// A fresh key from a CSPRNG.
    pub fn generate() -> Self {
        let mut b = Zeroizing::new([0u8; 32]);
        rand::rng().fill_bytes(&mut *b);
        DataKey(b)
    }

    /// From 32 bytes (tests and restores).
    pub fn from_bytes(bytes: [u8; 32]) -> Self {
        DataKey(Zeroizing::new(bytes))
    }

    /// Reads `data-key:<64 hex>`. The error never holds the text.
    pub fn from_secret_text(text: &str) -> Result<Self, &'static str> {
        parse_hex32(text, DATA_PREFIX).map(DataKey)
    }

    /// The key as text (`data-key:<hex>`), for a 0600 file. Never log it.
    pub fn to_secret_text(&self) -> Zeroizing<String> {
        hex_text(DATA_PREFIX, &*self.0)
    }

    /// The raw key, for the store's cipher only.
    pub(crate) fn expose(&self) -> &[u8; 32] {
        &self.0
    }
}

impl fmt::Debug for DataKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("DataKey(..)")
    }
}

/// The outcome of [`KeyFiles::rotate_issuer`].
#[derive(Debug, Clone)]
pub struct Rotation {
    /// The key that was current and is now retired.
    pub old: IssuerPublicKey,
    /// The new current key.
    pub new: IssuerPublicKey,
    /// When the old key was retired.
    pub retired_at: Timestamp,
}

/// The node's keys, as loaded from (or written to) its key directory.
#[derive(Debug)]
pub struct KeyFiles {
    issuer: IssuerSecretKey,
    node: NodeKey,
    data: DataKey,
}

impl KeyFiles {
    /// Generates an issuer, a node and a data key with a CSPRNG and writes
    /// them to `dir` (created `0700` if missing), each `0600`, atomically.
    ///
    /// Refuses to overwrite any existing key file unless `force`; without
    /// `force`, a failure part-way removes the files this call wrote. With
    /// `force`, the old keys are replaced: the node gets a new identity, and a store encrypted
    /// under the old data key can no longer be opened.
    pub fn create(dir: &Path, force: bool) -> Result<KeyFiles, Error> {
        create_dir_private(dir)?;
        let paths = [dir.join(ISSUER_FILE), dir.join(NODE_FILE), dir.join(DATA_FILE)];
        if let Some(p) = paths.iter().find(|p| !force && fs::symlink_metadata(p).is_ok()) {
            return Err(Error::Exists { path: p.clone() });
        }
        let keys = KeyFiles {
            issuer: IssuerSecretKey::generate(&mut rand::rng()),
            node: NodeKey::generate(),
            data: DataKey::generate(),
        };
        let texts = [keys.issuer.to_secret_text(), keys.node.to_secret_text(), keys.data.to_secret_text()];
        let mut written: Vec<&Path> = Vec::new();
        for (path, text) in paths.iter().zip(texts.iter()) {
            if let Err(e) = write_secret_file(path, text.as_bytes(), force) {
                if !force {
                    for w in written {
                        let _ = fs::remove_file(w);
                    }
                }
                return Err(e);
            }
            written.push(path);
        }
        delete_retired(dir)?;
        Ok(keys)
    }

    /// Reads the keys in `dir`. Any missing, group/other-accessible or
    /// malformed key file is an error; nothing is ever generated here.
    pub fn load(dir: &Path) -> Result<KeyFiles, Error> {
        let issuer = read_issuer(&dir.join(ISSUER_FILE))?;
        let node_path = dir.join(NODE_FILE);
        let node = parse_secret_file(&node_path, NODE_PREFIX, NodeKey::from_secret_text)?;
        let data_path = dir.join(DATA_FILE);
        let data = parse_secret_file(&data_path, DATA_PREFIX, DataKey::from_secret_text)?;
        delete_retired(dir)?;
        Ok(KeyFiles { issuer, node, data })
    }

    /// Prepares the next issuer key in `dir` (`issuer.next.key`, 0600),
    /// or returns the one already prepared: the node keeps signing with
    /// the current key until the rosters list this one, then promotes it
    /// at its next start ([`Self::promote_prepared`]). Returns the
    /// current and the prepared public keys.
    pub fn prepare_issuer(dir: &Path) -> Result<(IssuerPublicKey, IssuerPublicKey), Error> {
        let current = read_issuer(&dir.join(ISSUER_FILE))?;
        let next = match Self::prepared_issuer(dir)? {
            Some(k) => k,
            None => {
                let k = IssuerSecretKey::generate(&mut rand::rng());
                write_secret_file(&dir.join(NEXT_ISSUER_FILE), k.to_secret_text().as_bytes(), false)?;
                k
            }
        };
        Ok((current.public(), next.public()))
    }

    /// The prepared issuer key in `dir`, if there is one.
    pub fn prepared_issuer(dir: &Path) -> Result<Option<IssuerSecretKey>, Error> {
        let path = dir.join(NEXT_ISSUER_FILE);
        if fs::symlink_metadata(&path).is_err() {
            return Ok(None);
        }
        read_issuer(&path).map(Some)
    }

    /// Makes the prepared issuer key current (atomically; the old secret
    /// is gone) and removes the prepared file. A crash between the two
    /// leaves the prepared key both current and prepared, which the next
    /// promotion finishes.
    pub fn promote_prepared(dir: &Path, at: Timestamp) -> Result<Option<Rotation>, Error> {
        let Some(next) = Self::prepared_issuer(dir)? else { return Ok(None) };
        let current_path = dir.join(ISSUER_FILE);
        let old = read_issuer(&current_path)?;
        if old.public() != next.public() {
            write_secret_file(&current_path, next.to_secret_text().as_bytes(), true)?;
        }
        let prepared = dir.join(NEXT_ISSUER_FILE);
        fs::remove_file(&prepared).map_err(io_err("remove", &prepared))?;
        sync_dir(dir)?;
        tracing::info!(old = %old.public(), new = %next.public(), "prepared issuer key promoted; the old secret is deleted");
        Ok(Some(Rotation { old: old.public(), new: next.public(), retired_at: at }))
    }

    /// Makes a new current issuer key in `dir`; the old secret is gone
    /// (its public key, in the roster, still verifies what it signed).
    pub fn rotate_issuer(dir: &Path) -> Result<Rotation, Error> {
        let secs = SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0);
        let now = Timestamp::from_unix(i64::try_from(secs).unwrap_or(i64::MAX)).unwrap_or(Timestamp::MAX);
        Self::rotate_issuer_at(dir, now)
    }

    /// [`Self::rotate_issuer`] with the retirement time given.
    ///
    /// The new key replaces the current one atomically: a crash leaves
    /// either the old key or the new one current, never neither.
    pub fn rotate_issuer_at(dir: &Path, at: Timestamp) -> Result<Rotation, Error> {
        let current_path = dir.join(ISSUER_FILE);
        let old = read_issuer(&current_path)?;
        let new = IssuerSecretKey::generate(&mut rand::rng());
        write_secret_file(&current_path, new.to_secret_text().as_bytes(), true)?;
        tracing::info!(old = %old.public(), new = %new.public(), "issuer key rotated; the old secret is deleted");
        Ok(Rotation { old: old.public(), new: new.public(), retired_at: at })
    }

    /// The current issuer key.
    pub fn issuer(&self) -> &IssuerSecretKey {
        &self.issuer
    }

    /// The node's transport identity.
    pub fn node(&self) -> &NodeKey {
        &self.node
    }

    /// The at-rest data key.
    pub fn data(&self) -> &DataKey {
        &self.data
    }
}

fn read_issuer(path: &Path) -> Result<IssuerSecretKey, Error> {
    parse_secret_file(path, IssuerSecretKey::PREFIX, |t| {
        IssuerSecretKey::from_secret_text(t).map_err(|_| "expected issuer-sk:<64 hex digits>")
    })
}

fn parse_secret_file<T>(
    path: &Path,
    kind: &'static str,
    parse: impl FnOnce(&str) -> Result<T, &'static str>,
) -> Result<T, Error> {
    let bytes = read_secret_file(path)?;
    let malformed = |reason| Error::Malformed { path: path.to_path_buf(), kind, reason };
    let text = std::str::from_utf8(&bytes).map_err(|_| malformed("not UTF-8 text"))?;
    parse(text).map_err(malformed)
}

/// Deletes retired issuer secret keys left in `dir` by earlier versions
/// (`issuer-<unix seconds>.retired.key`): nothing uses them, and a leaked
/// one could sign objects backdated to before its retirement. Returns how
/// many were deleted.
pub fn delete_retired(dir: &Path) -> Result<usize, Error> {
    let entries = fs::read_dir(dir).map_err(io_err("list", dir))?;
    let mut deleted = 0;
    for entry in entries {
        let entry = entry.map_err(io_err("list", dir))?;
        let name = entry.file_name();
        let Some(name) = name.to_str() else { continue };
        if name.starts_with(RETIRED_PREFIX) && name.ends_with(RETIRED_SUFFIX) {
            let path = entry.path();
            fs::remove_file(&path).map_err(io_err("delete", &path))?;
            deleted += 1;
        }
    }
    if deleted > 0 {
        sync_dir(dir)?;
        tracing::info!(
            deleted,
            "deleted retired issuer secret keys (they are never used; their public keys stay in the roster)"
        );
    }
    Ok(deleted)
}

fn create_dir_private(dir: &Path) -> Result<(), Error> {
    if dir.is_dir() {
        return Ok(());
    }
    fs::DirBuilder::new().recursive(true).mode(0o700).create(dir).map_err(io_err("create directory", dir))
}

fn parent_dir(path: &Path) -> &Path {
    match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    }
}

fn sync_dir(dir: &Path) -> Result<(), Error> {
    File::open(dir).and_then(|d| d.sync_all()).map_err(io_err("fsync directory", dir))
}

/// Writes a secret file with mode `0600`, atomically: a temporary file is
/// created `0600` in the same directory, written, fsynced and renamed into
/// place, then the directory is fsynced. Without `force`, an existing file
/// is never overwritten ([`Error::Exists`]), even if it appears meanwhile.
pub fn write_secret_file(path: &Path, bytes: &[u8], force: bool) -> Result<(), Error> {
    let dir = parent_dir(path);
    let Some(name) = path.file_name().and_then(|n| n.to_str()) else {
        return Err(Error::NotAFile { path: path.to_path_buf() });
    };
    if !force && fs::symlink_metadata(path).is_ok() {
        return Err(Error::Exists { path: path.to_path_buf() });
    }
    let mut nonce = [0u8; 8];
    rand::rng().fill_bytes(&mut nonce);
    let tmp = dir.join(format!(".{name}.{}.tmp", hex::encode(nonce)));
    let result = write_then_move(&tmp, path, bytes, force);
    if result.is_err() {
        let _ = fs::remove_file(&tmp);
    }
    result?;
    sync_dir(dir)
}

fn write_then_move(tmp: &Path, path: &Path, bytes: &[u8], force: bool) -> Result<(), Error> {
    let mut f = OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(tmp)
        .map_err(io_err("create temporary file", tmp))?;
    // The umask can only have removed bits; make the mode exactly 0600.
    f.set_permissions(fs::Permissions::from_mode(0o600)).map_err(io_err("set permissions on", tmp))?;
    f.write_all(bytes).map_err(io_err("write", tmp))?;
    f.sync_all().map_err(io_err("fsync", tmp))?;
    drop(f);
    if force {
        return fs::rename(tmp, path).map_err(io_err("rename into place", path));
    }
    // A hard link never replaces an existing file, so the no-overwrite
    // promise holds even against a race.
    match fs::hard_link(tmp, path) {
        Ok(()) => fs::remove_file(tmp).map_err(io_err("remove temporary file", tmp)),
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => Err(Error::Exists { path: path.to_path_buf() }),
        // A filesystem without hard links: check, then rename.
        Err(_) => {
            if fs::symlink_metadata(path).is_ok() {
                return Err(Error::Exists { path: path.to_path_buf() });
            }
            fs::rename(tmp, path).map_err(io_err("rename into place", path))
        }
    }
}

/// Reads a secret file, refusing it if group or others can access it
/// (like ssh: fix with `chmod 600 <path>`), if it is not a regular file or
/// if it is larger than [`MAX_SECRET_FILE`]. The bytes are zeroized when
/// dropped.
pub fn read_secret_file(path: &Path) -> Result<Zeroizing<Vec<u8>>, Error> {
    read_secret_file_max(path, MAX_SECRET_FILE)
}

/// [`read_secret_file`] for a larger secret file (at most `max` bytes),
/// such as the per-record key file.
pub fn read_secret_file_max(path: &Path, max: u64) -> Result<Zeroizing<Vec<u8>>, Error> {
    // Check the kind before opening, so a FIFO cannot block us.
    match fs::metadata(path) {
        Ok(m) if !m.is_file() => return Err(Error::NotAFile { path: path.to_path_buf() }),
        Ok(_) => {}
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Err(Error::Missing { path: path.to_path_buf() }),
        Err(source) => return Err(Error::Io { action: "read metadata of", path: path.to_path_buf(), source }),
    }
    let f = File::open(path).map_err(|source| match source.kind() {
        io::ErrorKind::NotFound => Error::Missing { path: path.to_path_buf() },
        _ => Error::Io { action: "open", path: path.to_path_buf(), source },
    })?;
    // Check the file we opened, not the path, against a swap in between.
    let meta = f.metadata().map_err(io_err("read metadata of", path))?;
    if !meta.is_file() {
        return Err(Error::NotAFile { path: path.to_path_buf() });
    }
    let mode = meta.permissions().mode() & 0o7777;
    if mode & 0o077 != 0 {
        return Err(Error::Permissions { path: path.to_path_buf(), mode });
    }
    if meta.len() > max {
        return Err(Error::TooLarge { path: path.to_path_buf(), max });
    }
    let cap = usize::try_from(meta.len()).unwrap_or(0).saturating_add(1);
    let mut buf = Zeroizing::new(Vec::with_capacity(cap));
    f.take(max + 1).read_to_end(&mut buf).map_err(io_err("read", path))?;
    if buf.len() as u64 > max {
        return Err(Error::TooLarge { path: path.to_path_buf(), max });
    }
    Ok(buf)
}
