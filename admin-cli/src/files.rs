//! Reading and writing the files the commands take and make: bounded
//! reads, key files created 0600 with O_EXCL, and atomic replacement
//! (write a temporary file beside the target, then rename), so a file is
//! either the old one or the new one, never half written.

use std::fs::{self, OpenOptions};
use std::io::Write;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use serde::Serialize;
use serde::de::DeserializeOwned;
use zeroize::Zeroizing;

use crate::error::{Error, Result, What};

/// Largest roster, change or key file read.
pub const MAX_FILE: u64 = 64 * 1024 * 1024;

/// Reads a whole file, refusing one over `max` bytes.
pub fn read(path: &Path, max: u64, what: What) -> Result<Vec<u8>> {
    let meta = fs::metadata(path).map_err(|source| Error::Read { path: path.into(), source })?;
    if meta.len() > max {
        return Err(Error::TooLarge { path: path.into(), len: meta.len(), max, what });
    }
    fs::read(path).map_err(|source| Error::Read { path: path.into(), source })
}

/// Reads a secret (key) file into zeroizing memory.
pub fn read_secret(path: &Path) -> Result<Zeroizing<String>> {
    let bytes = Zeroizing::new(read(path, 4096, "key file")?);
    let text = std::str::from_utf8(&bytes).map_err(|_| Error::BadValue {
        what: "key file",
        input: path.display().to_string(),
        reason: "it is not text; a staffpass key file holds one line like steward-sk:<hex>".into(),
    })?;
    Ok(Zeroizing::new(text.to_owned()))
}

/// True if a key file can be read by others than its owner.
pub fn too_open(path: &Path) -> bool {
    fs::metadata(path).map(|m| m.permissions().mode() & 0o077 != 0).unwrap_or(false)
}

/// Parses JSON, with a message that names the file and where it broke.
pub fn parse_json<T: DeserializeOwned>(path: &Path, bytes: &[u8], what: What) -> Result<T> {
    serde_json::from_slice(bytes).map_err(|source| {
        let hint = if source.is_eof() {
            " (the file ends early: was it truncated while copying?)"
        } else if source.is_syntax() {
            " (is this the right file?)"
        } else {
            ""
        };
        Error::Json { path: path.into(), what, source, hint }
    })
}

/// Reads a JSON file.
pub fn read_json<T: DeserializeOwned>(path: &Path, what: What) -> Result<T> {
    let bytes = read(path, MAX_FILE, what)?;
    parse_json(path, &bytes, what)
}

/// Creates `path` with mode 0600, refusing to replace an existing file.
pub fn create_secret(path: &Path, contents: &[u8]) -> Result<()> {
    let mut f = OpenOptions::new().write(true).create_new(true).mode(0o600).open(path).map_err(|source| {
        if source.kind() == std::io::ErrorKind::AlreadyExists {
            Error::Exists { path: path.into() }
        } else {
            Error::Write { path: path.into(), source }
        }
    })?;
    let write = f.write_all(contents).and_then(|()| f.sync_all());
    if let Err(source) = write {
        drop(f);
        let _ = fs::remove_file(path);
        return Err(Error::Write { path: path.into(), source });
    }
    Ok(())
}

/// Pretty JSON with a final newline.
pub fn to_json_bytes<T: Serialize + ?Sized>(value: &T) -> Vec<u8> {
    // Serialising our own types to a Vec cannot fail (no maps with non-string keys).
    let mut out = serde_json::to_vec_pretty(value).unwrap_or_default();
    out.push(b'\n');
    out
}

/// Writes `contents` to `path`, replacing it atomically if it exists.
pub fn replace(path: &Path, contents: &[u8]) -> Result<()> {
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
        _ => PathBuf::from("."),
    };
    let name = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_else(|| "out".into());
    let tmp = dir.join(format!(".{name}.{}.tmp", std::process::id()));
    let werr = |source| Error::Write { path: path.into(), source };
    let result = (|| {
        let mut f = OpenOptions::new().write(true).create_new(true).mode(0o644).open(&tmp)?;
        f.write_all(contents)?;
        f.sync_all()?;
        fs::rename(&tmp, path)
    })();
    if let Err(e) = result {
        let _ = fs::remove_file(&tmp);
        return Err(werr(e));
    }
    Ok(())
}

/// Writes a new file, refusing to replace an existing one.
pub fn create(path: &Path, contents: &[u8]) -> Result<()> {
    let mut f = OpenOptions::new().write(true).create_new(true).mode(0o644).open(path).map_err(|source| {
        if source.kind() == std::io::ErrorKind::AlreadyExists {
            Error::Exists { path: path.into() }
        } else {
            Error::Write { path: path.into(), source }
        }
    })?;
    f.write_all(contents).and_then(|()| f.sync_all()).map_err(|source| Error::Write { path: path.into(), source })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_are_private_and_never_replaced() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("k");
        create_secret(&p, b"one").unwrap();
        assert_eq!(fs::metadata(&p).unwrap().permissions().mode() & 0o777, 0o600);
        assert!(matches!(create_secret(&p, b"two"), Err(Error::Exists { .. })));
        assert_eq!(fs::read(&p).unwrap(), b"one");
    }

    #[test]
    fn replace_is_whole() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("c.json");
        replace(&p, b"[1]").unwrap();
        replace(&p, b"[2]").unwrap();
        assert_eq!(fs::read(&p).unwrap(), b"[2]");
        assert_eq!(fs::read_dir(dir.path()).unwrap().count(), 1);
    }

    #[test]
    fn truncated_json_says_so() {
        let e = parse_json::<serde_json::Value>(Path::new("x.json"), b"{\"a\": [1,", "change").unwrap_err();
        assert!(e.to_string().contains("truncated"), "{e}");
    }
}
