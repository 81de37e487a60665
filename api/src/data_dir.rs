//! The layout of a node's data directory (made by `staffpass-node init`),
//! so that a client on the same machine finds the API certificates and
//! address without the node.

use std::path::{Path, PathBuf};

/// File name of the node CA certificate, in [`tls`].
pub const CA_CERT: &str = "ca.pem";
/// File name of the node CA private key, in [`tls`].
pub const CA_KEY: &str = "ca.key";
/// File name of the API server certificate, in [`tls`].
pub const SERVER_CERT: &str = "server.pem";
/// File name of the API server private key, in [`tls`].
pub const SERVER_KEY: &str = "server.key";
/// File name of the first admin client certificate, in [`tls`].
pub const ADMIN_CERT: &str = "admin.pem";
/// File name of the first admin client private key, in [`tls`].
pub const ADMIN_KEY: &str = "admin.key";
/// Directory of further client certificates, in [`tls`].
pub const CLIENTS_DIR: &str = "clients";

/// The key files.
pub fn keys(data: &Path) -> PathBuf {
    data.join("keys")
}

/// The local PKI (CA, server and client certificates).
pub fn tls(data: &Path) -> PathBuf {
    data.join("tls")
}

/// The database.
pub fn db(data: &Path) -> PathBuf {
    data.join("db")
}

/// The config file written by `init` (its `[api] listen` is the API address).
pub fn config(data: &Path) -> PathBuf {
    data.join("node.toml")
}

/// The files a client of the node in `data` uses: the CA certificate, the
/// admin client certificate and its key.
pub fn admin_client_files(data: &Path) -> ClientFiles {
    let tls = tls(data);
    ClientFiles { ca: tls.join(CA_CERT), cert: tls.join(ADMIN_CERT), key: tls.join(ADMIN_KEY) }
}

/// The three PEM files an API client needs.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ClientFiles {
    /// The node CA certificate (the only trust anchor).
    pub ca: PathBuf,
    /// The client certificate.
    pub cert: PathBuf,
    /// The client certificate's private key.
    pub key: PathBuf,
}
