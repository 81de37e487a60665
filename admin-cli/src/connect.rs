//! Finding the node and the client certificate for its API.
//!
//! Each setting is taken from the first place that gives it:
//!
//! 1. a flag (`--node`, `--ca`, `--cert`, `--key`) or its environment
//!    variable (`STAFFPASS_NODE`, `STAFFPASS_CA`, `STAFFPASS_CERT`,
//!    `STAFFPASS_KEY`);
//! 2. `--data-dir` (or `STAFFPASS_DATA_DIR`) of a node on this machine: its
//!    `tls/ca.pem`, `tls/admin.pem`, `tls/admin.key`, and the `[api]
//!    listen` address in its `node.toml`;
//! 3. the config file (`--config` or `STAFFPASS_ADMIN_CONFIG`), a TOML file
//!    with `node`, `ca`, `cert`, `key` and `data_dir` (all optional; paths
//!    relative to the file);
//! 4. the node URL defaults to `https://127.0.0.1:7443`.

use std::future::Future;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use clap::Args;
use serde::Deserialize;
use staffpass_api::{Client, data_dir};

use crate::error::{Error, Result};

/// The node URL used when nothing else names one.
pub const DEFAULT_NODE: &str = "https://127.0.0.1:7443";

/// Where the node's API is and how to authenticate to it.
#[derive(Debug, Clone, Default, Args)]
#[command(next_help_heading = "Node connection")]
pub struct NodeArgs {
    /// The node's API URL [default: from --data-dir's node.toml, else https://127.0.0.1:7443].
    #[arg(long, value_name = "URL", env = "STAFFPASS_NODE", hide_env_values = true)]
    pub node: Option<String>,
    /// The node's CA certificate (PEM) [default: DATA_DIR/tls/ca.pem].
    #[arg(long, value_name = "FILE", env = "STAFFPASS_CA", hide_env_values = true)]
    pub ca: Option<PathBuf>,
    /// The client certificate (PEM) [default: DATA_DIR/tls/admin.pem].
    #[arg(long, value_name = "FILE", env = "STAFFPASS_CERT", hide_env_values = true)]
    pub cert: Option<PathBuf>,
    /// The client certificate's private key (PEM) [default: DATA_DIR/tls/admin.key].
    #[arg(long, value_name = "FILE", env = "STAFFPASS_KEY", hide_env_values = true)]
    pub key: Option<PathBuf>,
    /// The data directory of a node on this machine (made by `staffpass-node init`).
    #[arg(long, value_name = "DIR", env = "STAFFPASS_DATA_DIR", hide_env_values = true)]
    pub data_dir: Option<PathBuf>,
    /// A TOML file with node, ca, cert, key and/or data_dir.
    #[arg(long, value_name = "FILE", env = "STAFFPASS_ADMIN_CONFIG", hide_env_values = true)]
    pub config: Option<PathBuf>,
}

/// The admin config file.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct ConfigFile {
    node: Option<String>,
    ca: Option<PathBuf>,
    cert: Option<PathBuf>,
    key: Option<PathBuf>,
    data_dir: Option<PathBuf>,
}

/// The settings once resolved.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Resolved {
    /// API URL.
    pub url: String,
    /// CA file.
    pub ca: PathBuf,
    /// Client certificate file.
    pub cert: PathBuf,
    /// Client key file.
    pub key: PathBuf,
}

/// The three TLS files of a node data directory.
fn tls_files(dir: &Path) -> (PathBuf, PathBuf, PathBuf) {
    let f = data_dir::admin_client_files(dir);
    (f.ca, f.cert, f.key)
}

/// The API URL from a data directory's `node.toml`, if it names one.
fn url_from_data_dir(dir: &Path) -> Result<Option<String>> {
    let path = data_dir::config(dir);
    let text = match std::fs::read_to_string(&path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(source) => return Err(Error::Read { path, source }),
    };
    let table: toml::Table =
        toml::from_str(&text).map_err(|e| Error::Config { path: path.clone(), message: e.message().to_owned() })?;
    let Some(listen) = table.get("api").and_then(|a| a.get("listen")) else { return Ok(None) };
    let addr: SocketAddr = listen.as_str().and_then(|s| s.parse().ok()).ok_or_else(|| Error::Config {
        path: path.clone(),
        message: "[api] listen is not an address such as \"127.0.0.1:7443\"".into(),
    })?;
    Ok(Some(url_for(addr)))
}

/// The URL to reach an API listening on `addr` from this machine.
pub fn url_for(addr: SocketAddr) -> String {
    let ip = if addr.ip().is_unspecified() {
        if addr.is_ipv4() { "127.0.0.1".to_string() } else { "[::1]".to_string() }
    } else if addr.is_ipv6() {
        format!("[{}]", addr.ip())
    } else {
        addr.ip().to_string()
    };
    format!("https://{ip}:{}", addr.port())
}

impl NodeArgs {
    /// Resolves the settings (see the module docs for the order).
    pub fn resolve(&self) -> Result<Resolved> {
        let file = match &self.config {
            Some(path) => {
                let text =
                    std::fs::read_to_string(path).map_err(|source| Error::Read { path: path.clone(), source })?;
                let mut cfg: ConfigFile = toml::from_str(&text)
                    .map_err(|e| Error::Config { path: path.clone(), message: e.message().to_owned() })?;
                let base = path.parent().map(Path::to_path_buf).unwrap_or_default();
                for p in [&mut cfg.ca, &mut cfg.cert, &mut cfg.key, &mut cfg.data_dir].into_iter().flatten() {
                    if p.is_relative() {
                        *p = base.join(&*p);
                    }
                }
                cfg
            }
            None => ConfigFile::default(),
        };
        let dir_files = self.data_dir.as_deref().map(tls_files);
        let cfg_dir_files = file.data_dir.as_deref().map(tls_files);
        let pick = |flag: &Option<PathBuf>, i: usize, from_file: &Option<PathBuf>| -> Option<PathBuf> {
            let nth = |f: &(PathBuf, PathBuf, PathBuf)| [&f.0, &f.1, &f.2][i].clone();
            flag.clone()
                .or_else(|| dir_files.as_ref().map(nth))
                .or_else(|| from_file.clone())
                .or_else(|| cfg_dir_files.as_ref().map(nth))
        };
        let ca = pick(&self.ca, 0, &file.ca);
        let cert = pick(&self.cert, 1, &file.cert);
        let key = pick(&self.key, 2, &file.key);
        let url = match &self.node {
            Some(u) => u.clone(),
            None => {
                let from_dir = self.data_dir.as_deref().map(url_from_data_dir).transpose()?.flatten();
                let from_cfg_dir = || file.data_dir.as_deref().map(url_from_data_dir).transpose();
                match from_dir.or(file.node.clone()) {
                    Some(u) => u,
                    None => from_cfg_dir()?.flatten().unwrap_or_else(|| DEFAULT_NODE.to_owned()),
                }
            }
        };
        match (ca, cert, key) {
            (Some(ca), Some(cert), Some(key)) => Ok(Resolved { url, ca, cert, key }),
            _ => Err(Error::NoCredentials),
        }
    }

    /// An API client for the resolved node.
    pub fn client(&self) -> Result<Client> {
        let r = self.resolve()?;
        Ok(Client::from_files(&r.url, &r.ca, &r.cert, &r.key)?)
    }
}

/// Runs `f` on a single-threaded runtime (the CLI makes one request at a time).
pub fn block_on<F: Future<Output = Result<T>>, T>(f: F) -> Result<T> {
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().map_err(Error::Runtime)?;
    rt.block_on(f)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn data_dir_gives_files_and_url() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("node.toml"), "org = \"RJZ\"\n[api]\nlisten = \"0.0.0.0:9443\"\n").unwrap();
        let args = NodeArgs { data_dir: Some(dir.path().into()), ..Default::default() };
        let r = args.resolve().unwrap();
        assert_eq!(r.url, "https://127.0.0.1:9443");
        assert_eq!(r.cert, dir.path().join("tls/admin.pem"));
        // A flag beats the data dir.
        let args = NodeArgs { node: Some("https://10.0.0.1:1".into()), cert: Some("c.pem".into()), ..args };
        let r = args.resolve().unwrap();
        assert_eq!(r.url, "https://10.0.0.1:1");
        assert_eq!(r.cert, PathBuf::from("c.pem"));
        assert_eq!(r.key, dir.path().join("tls/admin.key"));
    }

    #[test]
    fn config_file_paths_are_relative_to_it() {
        let dir = tempfile::tempdir().unwrap();
        let cfg = dir.path().join("admin.toml");
        std::fs::write(&cfg, "node = \"https://127.0.0.1:1234\"\nca = \"ca.pem\"\ncert = \"a.pem\"\nkey = \"a.key\"\n")
            .unwrap();
        let r = NodeArgs { config: Some(cfg.clone()), ..Default::default() }.resolve().unwrap();
        assert_eq!(r.url, "https://127.0.0.1:1234");
        assert_eq!(r.ca, dir.path().join("ca.pem"));
        std::fs::write(&cfg, "nod = 1\n").unwrap();
        let e = NodeArgs { config: Some(cfg), ..Default::default() }.resolve().unwrap_err();
        assert!(matches!(e, Error::Config { .. }), "{e}");
    }

    #[test]
    fn nothing_given_says_what_to_give() {
        let e = NodeArgs::default().resolve().unwrap_err();
        assert!(e.to_string().contains("--data-dir"), "{e}");
    }

    #[test]
    fn urls() {
        assert_eq!(url_for("[::]:7443".parse().unwrap()), "https://[::1]:7443");
        assert_eq!(url_for("[::1]:7443".parse().unwrap()), "https://[::1]:7443");
    }
}
