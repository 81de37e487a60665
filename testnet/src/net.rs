//! A running testnet: one `staffpass-node` per trust, as local processes
//! on 127.0.0.1 or as docker containers on a private network, driven from
//! the host through each node's API (mTLS, the admin certificate that
//! `staffpass-node init` made).
//!
//! Everything that waits polls a condition against a deadline. Local
//! processes are killed when the [`Testnet`] is dropped (unless it was
//! started detached by `up`), and its directory is removed unless kept.

use std::collections::BTreeMap;
use std::future::Future;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context, Result, anyhow, bail};
use serde::{Deserialize, Serialize};
use staffpass_api::audit::Verification;
use staffpass_api::status::Status;
use staffpass_api::{Client, data_dir};

use crate::bins::Bins;
use crate::docker::Compose;
use crate::topology::{self, TRUSTS, Trust};

/// How long one step may take.
pub const STEP: Duration = Duration::from_secs(30);

/// Polls `cond` every 100 ms until it returns `Ok(true)`; fails after
/// `timeout` naming `what` (and the last error, if the condition failed).
pub async fn wait_for<F, Fut>(what: &str, timeout: Duration, mut cond: F) -> Result<()>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<bool>>,
{
    let deadline = tokio::time::Instant::now() + timeout;
    let mut last_err = None;
    loop {
        match cond().await {
            Ok(true) => return Ok(()),
            Ok(false) => {}
            Err(e) => last_err = Some(e),
        }
        if tokio::time::Instant::now() >= deadline {
            return Err(match last_err {
                Some(e) => e.context(format!("timed out after {timeout:?} waiting for: {what}")),
                None => anyhow!("timed out after {timeout:?} waiting for: {what}"),
            });
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Fast timers for a testnet, the same in both modes (as `STAFFPASS_*`
/// environment overrides of the node's config).
pub fn tuning() -> Vec<(&'static str, &'static str)> {
    vec![
        ("STAFFPASS_NETWORK__ANTI_ENTROPY_SECS", "2"),
        ("STAFFPASS_NETWORK__REDIAL_MAX_SECS", "2"),
        ("STAFFPASS_EXCHANGE__RETRY_INITIAL_MS", "200"),
        ("STAFFPASS_EXCHANGE__RETRY_MAX_SECS", "2"),
        ("STAFFPASS_EXCHANGE__EXPIRY_SWEEP_SECS", "2"),
    ]
}

/// What is saved in the testnet directory for `down` (and for docker mode).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Saved {
    /// `local` or `docker`.
    pub mode: String,
    /// The nodes.
    pub nodes: Vec<SavedNode>,
}

/// One node in [`Saved`].
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SavedNode {
    /// Organisation.
    pub org: String,
    /// Process id (local mode).
    pub pid: Option<u32>,
    /// API URL from the host.
    pub api: String,
    /// Data directory on the host.
    pub data_dir: PathBuf,
}

/// One node of the testnet.
#[derive(Debug)]
pub struct Node {
    /// Which trust.
    pub trust: &'static Trust,
    /// Data directory on the host.
    pub data_dir: PathBuf,
    /// API URL from the host.
    pub api: String,
    /// Its address hint for the roster.
    pub p2p: String,
    /// PeerId.
    pub peer_id: String,
    /// Current issuer public key.
    pub issuer_key: String,
    /// The admin API client.
    pub client: Client,
    proc: Option<tokio::process::Child>,
}

impl Node {
    /// A node not yet started.
    pub fn new(
        trust: &'static Trust,
        data_dir: PathBuf,
        api: String,
        p2p: String,
        peer_id: String,
        issuer_key: String,
        client: Client,
    ) -> Self {
        Node { trust, data_dir, api, p2p, peer_id, issuer_key, client, proc: None }
    }

    /// Its org id.
    pub fn org(&self) -> &'static str {
        self.trust.org
    }

    /// The process id of its running local process (none in docker or
    /// when stopped).
    pub fn pid(&self) -> Option<u32> {
        self.proc.as_ref().and_then(tokio::process::Child::id)
    }

    /// The admin CLI's flags to talk to this node.
    pub fn admin_args(&self) -> Vec<String> {
        let tls = self.data_dir.join("tls");
        vec![
            "--node".into(),
            self.api.clone(),
            "--ca".into(),
            tls.join("ca.pem").display().to_string(),
            "--cert".into(),
            tls.join("admin.pem").display().to_string(),
            "--key".into(),
            tls.join("admin.key").display().to_string(),
        ]
    }

    /// The node's status.
    pub async fn status(&self) -> Result<Status> {
        self.client.status().await.with_context(|| format!("{}: status", self.org()))
    }

    /// The head seq of `agreement` on this node, if it holds it.
    pub async fn roster_seq(&self, agreement: &str) -> Result<Option<u64>> {
        let s = self.status().await?;
        Ok(s.agreements.iter().find(|a| a.id.as_str() == agreement).map(|a| a.seq))
    }

    /// True if this node has a live connection to `peer_id`.
    pub async fn connected_to(&self, peer_id: &str) -> Result<bool> {
        let peers = self.client.peers().await.with_context(|| format!("{}: peers", self.org()))?;
        Ok(peers.iter().any(|p| p.peer_id == peer_id && p.connected))
    }

    /// A metric's value (sum over its labels), 0 if absent.
    pub async fn metric(&self, name: &str) -> Result<f64> {
        let text = self.client.metrics().await.with_context(|| format!("{}: metrics", self.org()))?;
        Ok(text
            .lines()
            .filter(|l| l.starts_with(name) && l[name.len()..].starts_with([' ', '{']))
            .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
            .sum())
    }

    /// True if its audit log verifies.
    pub async fn audit_ok(&self) -> Result<bool> {
        let verdict =
            self.client.verify_audit().await.with_context(|| format!("{}: verify the audit log", self.org()))?;
        Ok(matches!(verdict, Verification::Intact { ok: true, .. }))
    }
}

/// Where the nodes run.
#[derive(Debug)]
pub enum Mode {
    /// Local processes on 127.0.0.1.
    Local,
    /// Docker containers.
    Docker(Compose),
}

/// A testnet.
#[derive(Debug)]
pub struct Testnet {
    /// Its directory.
    pub root: PathBuf,
    /// Remove `root` on drop.
    pub remove_on_drop: bool,
    /// Leave processes running on drop (`up`).
    pub detached: bool,
    /// Where the nodes run.
    pub mode: Mode,
    /// The binaries.
    pub bins: Bins,
    /// The nodes, by org.
    pub nodes: BTreeMap<&'static str, Node>,
}

/// Two distinct free TCP ports on 127.0.0.1 per trust. The OS picks them;
/// every listener is held until all are picked, so none is handed out
/// twice, and they are very likely still free a moment later.
fn free_ports(n: usize) -> Result<Vec<u16>> {
    let listeners = (0..n)
        .map(|_| std::net::TcpListener::bind("127.0.0.1:0").context("cannot bind a port on 127.0.0.1"))
        .collect::<Result<Vec<_>>>()?;
    listeners.iter().map(|l| Ok(l.local_addr().context("no local address")?.port())).collect()
}

/// The value after `label` on a line of `staffpass-node init`'s output.
fn init_field(out: &str, label: &str) -> Result<String> {
    out.lines()
        .find_map(|l| l.trim().strip_prefix(label).map(|v| v.trim().to_string()))
        .ok_or_else(|| anyhow!("`staffpass-node init` did not print its {label:?} line"))
}

/// Runs `staffpass-node init` for `trust` and returns (peer id, issuer key).
pub fn init_node(bins: &Bins, trust: &Trust, data_dir: &Path, listen: &str, api: &str) -> Result<(String, String)> {
    let mut cmd = std::process::Command::new(&bins.node);
    for (k, _) in std::env::vars_os() {
        if k.to_string_lossy().starts_with("STAFFPASS_") {
            cmd.env_remove(k);
        }
    }
    let out = cmd
        .args(["init", "--org", trust.org, "--listen", listen, "--api-listen", api, "--data-dir"])
        .arg(data_dir)
        .output()
        .with_context(|| format!("cannot run {}", bins.node.display()))?;
    if !out.status.success() {
        bail!("staffpass-node init for {} failed: {}", trust.org, String::from_utf8_lossy(&out.stderr).trim());
    }
    let text = String::from_utf8_lossy(&out.stdout);
    Ok((init_field(&text, "peer id:")?, init_field(&text, "issuer key:")?))
}

/// The admin client for a node's data directory.
pub fn client(data_dir: &Path, api: &str) -> Result<Client> {
    Ok(Client::from_client_files(api, &data_dir::admin_client_files(data_dir))
        .with_context(|| format!("cannot build an API client from {}", data_dir::tls(data_dir).display()))?
        .with_timeout(Duration::from_secs(10)))
}

impl Testnet {
    /// Initialises a local node per trust under `root` (not started).
    pub fn create_local(root: &Path, bins: Bins) -> Result<Self> {
        let mut nodes = BTreeMap::new();
        let ports = free_ports(2 * TRUSTS.len())?;
        for (i, t) in TRUSTS.iter().enumerate() {
            let data_dir = root.join("nodes").join(topology::dir_name(t.org));
            let (p2p_port, api_port) = (ports[2 * i], ports[2 * i + 1]);
            let p2p = format!("/ip4/127.0.0.1/tcp/{p2p_port}");
            let api_addr = format!("127.0.0.1:{api_port}");
            let (peer_id, issuer_key) = init_node(&bins, t, &data_dir, &p2p, &api_addr)?;
            let api = format!("https://{api_addr}");
            let client = client(&data_dir, &api)?;
            nodes.insert(t.org, Node::new(t, data_dir, api, p2p, peer_id, issuer_key, client));
        }
        Ok(Testnet { root: root.to_path_buf(), remove_on_drop: false, detached: false, mode: Mode::Local, bins, nodes })
    }

    /// The node `org`.
    pub fn node(&self, org: &str) -> Result<&Node> {
        self.nodes.get(org).ok_or_else(|| anyhow!("no node {org} in this testnet"))
    }

    fn node_mut(&mut self, org: &str) -> Result<&mut Node> {
        self.nodes.get_mut(org).ok_or_else(|| anyhow!("no node {org} in this testnet"))
    }

    /// Starts every node and waits until each answers ready.
    pub async fn start_all(&mut self) -> Result<()> {
        if let Mode::Docker(c) = &self.mode {
            c.up().await?;
        } else {
            let orgs: Vec<&'static str> = self.nodes.keys().copied().collect();
            for org in orgs {
                self.spawn(org)?;
            }
        }
        let orgs: Vec<&'static str> = self.nodes.keys().copied().collect();
        for org in orgs {
            self.wait_ready(org).await?;
        }
        Ok(())
    }

    fn spawn(&mut self, org: &str) -> Result<()> {
        let detached = self.detached;
        let bin = self.bins.node.clone();
        let node = self.node_mut(org)?;
        let log_path = node.data_dir.with_extension("log");
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&log_path)
            .with_context(|| format!("cannot open {}", log_path.display()))?;
        let log2 = log.try_clone().context("cannot share the log file")?;
        let mut cmd = tokio::process::Command::new(&bin);
        // The node reads every STAFFPASS_* variable as config: pass only ours.
        for (k, _) in std::env::vars_os() {
            if k.to_string_lossy().starts_with("STAFFPASS_") {
                cmd.env_remove(k);
            }
        }
        cmd.arg("run")
            .arg("--config")
            .arg(node.data_dir.join("node.toml"))
            .envs(tuning())
            .env("NO_COLOR", "1")
            .stdin(std::process::Stdio::null())
            .stdout(log)
            .stderr(log2)
            .kill_on_drop(!detached);
        if detached {
            // Its own process group: a Ctrl-C in this terminal later does not reach it.
            cmd.process_group(0);
        }
        let child = cmd.spawn().with_context(|| format!("cannot start {} for {org}", bin.display()))?;
        node.proc = Some(child);
        Ok(())
    }

    /// Waits until `org`'s API answers ready; fails at once, with the end
    /// of its log, if a local node exits.
    pub async fn wait_ready(&mut self, org: &str) -> Result<()> {
        let deadline = tokio::time::Instant::now() + STEP;
        loop {
            let node = self.node_mut(org)?;
            if node.client.ready().await.unwrap_or(false) {
                return Ok(());
            }
            if let Some(child) = node.proc.as_mut()
                && let Ok(Some(status)) = child.try_wait()
            {
                let log = std::fs::read_to_string(node.data_dir.with_extension("log")).unwrap_or_default();
                let tail: Vec<&str> = log.lines().rev().take(5).collect();
                bail!(
                    "{org}'s node exited ({status}) before it was ready: {}",
                    tail.into_iter().rev().collect::<Vec<_>>().join(" | ")
                );
            }
            if tokio::time::Instant::now() >= deadline {
                bail!("timed out after {STEP:?} waiting for {org}'s node to answer ready");
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Starts `org` again (after stop or kill) and waits until it is ready.
    pub async fn start(&mut self, org: &str) -> Result<()> {
        match &self.mode {
            Mode::Local => self.spawn(org)?,
            Mode::Docker(c) => c.start(org).await?,
        }
        self.wait_ready(org).await
    }

    /// Stops `org` cleanly (SIGTERM, then SIGKILL after 15 s).
    pub async fn stop(&mut self, org: &str) -> Result<()> {
        if let Mode::Docker(c) = &self.mode {
            return c.stop(org).await;
        }
        let node = self.node_mut(org)?;
        let Some(mut child) = node.proc.take() else { return Ok(()) };
        if let Some(pid) = child.id() {
            terminate(pid)?;
        }
        match tokio::time::timeout(Duration::from_secs(15), child.wait()).await {
            Ok(r) => {
                r.with_context(|| format!("waiting for {org}'s node to stop"))?;
            }
            Err(_) => {
                child.kill().await.with_context(|| format!("killing {org}'s node"))?;
            }
        }
        Ok(())
    }

    /// Kills `org` with SIGKILL: no chance to flush or say goodbye.
    pub async fn kill(&mut self, org: &str) -> Result<()> {
        if let Mode::Docker(c) = &self.mode {
            return c.kill(org).await;
        }
        let node = self.node_mut(org)?;
        if let Some(mut child) = node.proc.take() {
            child.kill().await.with_context(|| format!("killing {org}'s node"))?;
        }
        Ok(())
    }

    /// Cuts `org` off the network (docker: `network disconnect`; local: stops it).
    pub async fn cut(&mut self, org: &str) -> Result<()> {
        match &self.mode {
            Mode::Docker(c) => c.disconnect(org).await,
            Mode::Local => self.stop(org).await,
        }
    }

    /// Heals a cut (docker: `network connect` at its fixed address; local: starts it).
    pub async fn heal(&mut self, org: &str) -> Result<()> {
        match &self.mode {
            Mode::Docker(c) => c.connect(org).await,
            Mode::Local => self.start(org).await,
        }
    }

    /// How this network is cut: for reports.
    pub fn cut_how(&self) -> &'static str {
        match self.mode {
            Mode::Docker(_) => "docker network disconnect",
            Mode::Local => "node stopped",
        }
    }

    /// Writes `testnet.json` for `down`.
    pub fn save(&self) -> Result<()> {
        let saved = Saved {
            mode: match self.mode {
                Mode::Local => "local".into(),
                Mode::Docker(_) => "docker".into(),
            },
            nodes: self
                .nodes
                .values()
                .map(|n| SavedNode {
                    org: n.org().into(),
                    pid: n.proc.as_ref().and_then(|c| c.id()),
                    api: n.api.clone(),
                    data_dir: n.data_dir.clone(),
                })
                .collect(),
        };
        let path = self.root.join("testnet.json");
        let text = serde_json::to_string_pretty(&saved).context("cannot encode testnet.json")?;
        std::fs::write(&path, text).with_context(|| format!("cannot write {}", path.display()))
    }
}

/// Sends SIGTERM to `pid`.
pub fn terminate(pid: u32) -> Result<()> {
    let status = std::process::Command::new("kill")
        .args(["-TERM", &pid.to_string()])
        .stderr(std::process::Stdio::null())
        .status()
        .context("cannot run kill")?;
    if !status.success() {
        bail!("process {pid} is not running");
    }
    Ok(())
}

impl Drop for Testnet {
    fn drop(&mut self) {
        if !self.detached {
            // Local children are killed by kill_on_drop as `nodes` drops;
            // make it explicit and synchronous so the directory can go.
            for n in self.nodes.values_mut() {
                if let Some(mut c) = n.proc.take() {
                    let _ = c.start_kill();
                    // Reap it (deadline 2 s) so its files are closed before the directory goes.
                    let deadline = std::time::Instant::now() + Duration::from_secs(2);
                    while matches!(c.try_wait(), Ok(None)) && std::time::Instant::now() < deadline {
                        std::thread::sleep(Duration::from_millis(10));
                    }
                }
            }
            if let Mode::Docker(c) = &self.mode {
                c.down_blocking();
            }
        }
        if self.remove_on_drop {
            let _ = std::fs::remove_dir_all(&self.root);
        }
    }
}
