//! Docker mode: the same seven nodes as containers of a `FROM scratch`
//! image (the statically linked `staffpass-node`), run by
//! `testnet/docker-compose.yml` on private networks with fixed addresses.
//!
//! Node init happens on the host: `staffpass-node init` writes each data
//! directory (keys, TLS, node.toml) under `<dir>/nodes/<org>`, which compose
//! bind-mounts at `/data`. The API is published on 127.0.0.1:174xx only; the
//! host seeds and drives everything through it, as in local mode.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};

use crate::bins::Bins;
use crate::net::{self, Mode, Node, Testnet};
use crate::topology::{self, TRUSTS};

/// The p2p network's prefix (see docker-compose.yml).
pub const P2P_NET: &str = "172.29.60";
/// The p2p network's docker name.
pub const P2P_NAME: &str = "staffpass-testnet-p2p";
/// The compose project.
pub const PROJECT: &str = "staffpass-testnet";
/// The image.
pub const IMAGE: &str = "staffpass-node:testnet";

/// The static build's target triple.
pub const TARGET: &str = "x86_64-unknown-linux-gnu";

fn testnet_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// The compose service of `org`.
pub fn service(org: &str) -> String {
    let d = topology::dir_name(org).to_ascii_lowercase();
    if d.starts_with("ext-") { "hospice".into() } else { d }
}

/// docker-compose for the testnet.
#[derive(Debug, Clone)]
pub struct Compose {
    nodes_dir: PathBuf,
    uid: u32,
    gid: u32,
}

async fn run(cmd: &mut tokio::process::Command, what: &str) -> Result<String> {
    let out = cmd.stdin(std::process::Stdio::null()).output().await.with_context(|| format!("cannot run {what}"))?;
    if !out.status.success() {
        bail!("{what} failed: {}", String::from_utf8_lossy(&out.stderr).trim());
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

impl Compose {
    fn command(&self) -> tokio::process::Command {
        let mut c = tokio::process::Command::new("docker-compose");
        c.arg("-p")
            .arg(PROJECT)
            .arg("-f")
            .arg(testnet_dir().join("docker-compose.yml"))
            .env("STAFFPASS_TESTNET_NODES", &self.nodes_dir)
            .env("STAFFPASS_UID", self.uid.to_string())
            .env("STAFFPASS_GID", self.gid.to_string());
        c
    }

    async fn compose(&self, args: &[&str]) -> Result<String> {
        let mut c = self.command();
        c.args(args);
        run(&mut c, &format!("docker-compose {}", args.join(" "))).await
    }

    /// Starts every container.
    pub async fn up(&self) -> Result<()> {
        self.compose(&["up", "-d", "--no-build"]).await.map(drop)
    }

    /// Starts `org`'s container again.
    pub async fn start(&self, org: &str) -> Result<()> {
        self.compose(&["start", &service(org)]).await.map(drop)
    }

    /// Stops `org`'s container (SIGTERM, then SIGKILL after 10 s).
    pub async fn stop(&self, org: &str) -> Result<()> {
        self.compose(&["stop", "-t", "10", &service(org)]).await.map(drop)
    }

    /// Kills `org`'s container with SIGKILL.
    pub async fn kill(&self, org: &str) -> Result<()> {
        self.compose(&["kill", "-s", "SIGKILL", &service(org)]).await.map(drop)
    }

    /// Disconnects `org` from the p2p network.
    pub async fn disconnect(&self, org: &str) -> Result<()> {
        let container = format!("staffpass-{}", service(org));
        run(
            tokio::process::Command::new("docker").args(["network", "disconnect", P2P_NAME, &container]),
            "docker network disconnect",
        )
        .await
        .map(drop)
    }

    /// Reconnects `org` to the p2p network at its fixed address.
    pub async fn connect(&self, org: &str) -> Result<()> {
        let container = format!("staffpass-{}", service(org));
        let octet = topology::trust(org).map(|t| t.octet).unwrap_or_default();
        let ip = format!("{P2P_NET}.{octet}");
        run(
            tokio::process::Command::new("docker").args(["network", "connect", "--ip", &ip, P2P_NAME, &container]),
            "docker network connect",
        )
        .await
        .map(drop)
    }

    /// Removes the containers and networks (blocking; for drop and `down`).
    pub fn down_blocking(&self) {
        let mut c = std::process::Command::new("docker-compose");
        c.arg("-p")
            .arg(PROJECT)
            .arg("-f")
            .arg(testnet_dir().join("docker-compose.yml"))
            .env("STAFFPASS_TESTNET_NODES", &self.nodes_dir)
            .args(["down", "-t", "5"])
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null());
        let _ = c.status();
    }
}

/// True if a docker engine answers (`docker info`), else why not.
pub fn available() -> std::result::Result<(), String> {
    match std::process::Command::new("docker")
        .arg("info")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .status()
    {
        Ok(s) if s.success() => Ok(()),
        Ok(s) => Err(format!("`docker info` failed ({s}): no docker engine answers")),
        Err(e) => Err(format!("cannot run docker: {e}")),
    }
}

/// Builds the static `staffpass-node` and the image `staffpass-node:testnet`.
pub async fn build_image(workspace_build: bool) -> Result<()> {
    let workspace = testnet_dir().parent().map(Path::to_path_buf).context("the testnet crate has no workspace")?;
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let bin = workspace.join("target").join(TARGET).join("release").join("staffpass-node");
    if workspace_build {
        eprintln!("staffpass-testnet: building the static staffpass-node (release, {TARGET}, crt-static) ...");
        let mut c = tokio::process::Command::new(cargo);
        c.current_dir(&workspace)
            .args(["build", "--release", "--target", TARGET, "-p", "staffpass-node"])
            .env("RUSTFLAGS", "-C target-feature=+crt-static --cfg getrandom_backend=\"linux_getrandom\"")
            .env("CARGO_TARGET_DIR", workspace.join("target"));
        let status = c.status().await.context("cannot run cargo")?;
        if !status.success() {
            bail!("the static build of staffpass-node failed ({status})");
        }
    }
    if !bin.is_file() {
        bail!("no static staffpass-node at {}: run `staffpass-testnet docker up` without --no-build", bin.display());
    }
    let context = std::env::temp_dir().join(format!("staffpass-image-{}", std::process::id()));
    std::fs::create_dir_all(&context).with_context(|| format!("cannot create {}", context.display()))?;
    std::fs::copy(&bin, context.join("staffpass-node")).context("cannot copy the binary into the build context")?;
    let r = run(
        tokio::process::Command::new("docker")
            .args(["build", "-q", "-t", IMAGE, "-f"])
            .arg(testnet_dir().join("Dockerfile"))
            .arg(&context),
        "docker build",
    )
    .await;
    let _ = std::fs::remove_dir_all(&context);
    r.map(drop)
}

/// Initialises the data directories on the host and returns the testnet (not started).
pub async fn create(root: &Path, bins: Bins) -> Result<Testnet> {
    use std::os::unix::fs::MetadataExt;
    let nodes_dir = root.join("nodes");
    std::fs::create_dir_all(&nodes_dir).with_context(|| format!("cannot create {}", nodes_dir.display()))?;
    let meta = std::fs::metadata(&nodes_dir).context("cannot read the nodes directory")?;
    let compose = Compose { nodes_dir: nodes_dir.clone(), uid: meta.uid(), gid: meta.gid() };
    compose.down_blocking();
    let mut nodes = std::collections::BTreeMap::new();
    for t in TRUSTS {
        let data_dir = nodes_dir.join(topology::dir_name(t.org));
        let p2p = format!("/ip4/{P2P_NET}.{}/tcp/7400", t.octet);
        let (peer_id, issuer_key) = net::init_node(&bins, t, &data_dir, &p2p, "0.0.0.0:7443")?;
        let api = format!("https://127.0.0.1:174{}", t.octet);
        let client = net::client(&data_dir, &api)?;
        nodes.insert(t.org, Node::new(t, data_dir, api, p2p, peer_id, issuer_key, client));
    }
    Ok(Testnet {
        root: root.to_path_buf(),
        remove_on_drop: false,
        detached: false,
        mode: Mode::Docker(compose),
        bins,
        nodes,
    })
}

/// The compose handle for a saved docker testnet in `root` (for `down`).
pub fn compose_at(root: &Path) -> Compose {
    Compose { nodes_dir: root.join("nodes"), uid: 0, gid: 0 }
}
