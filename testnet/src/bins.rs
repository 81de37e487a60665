//! Finding the `staffpass-node` and `staffpass-admin` binaries.
//!
//! In order: the environment (`STAFFPASS_NODE_BIN`, `STAFFPASS_ADMIN_BIN`),
//! then the directory of this executable (cargo puts every binary of the
//! workspace in the same `target/<profile>/`). When this program runs under
//! `cargo run` (cargo sets `CARGO`), it first builds the two binaries with
//! the same profile, so a fresh clone needs nothing but
//! `cargo run --release -p staffpass-testnet -- demo`.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};

/// The node daemon.
pub const NODE: &str = "staffpass-node";
/// The admin CLI.
pub const ADMIN: &str = "staffpass-admin";

/// The binaries the testnet runs.
#[derive(Debug, Clone)]
pub struct Bins {
    /// `staffpass-node`.
    pub node: PathBuf,
    /// `staffpass-admin`.
    pub admin: PathBuf,
}

fn env_name(bin: &str) -> &'static str {
    if bin == NODE { "STAFFPASS_NODE_BIN" } else { "STAFFPASS_ADMIN_BIN" }
}

/// The directory this executable is in, skipping cargo's `deps/` for test binaries.
fn exe_dir() -> Result<PathBuf> {
    let exe = std::env::current_exe().context("cannot find the path of this executable")?;
    let mut dir = exe.parent().map(Path::to_path_buf).context("this executable has no directory")?;
    if dir.file_name().is_some_and(|n| n == "deps")
        && let Some(p) = dir.parent()
    {
        dir = p.to_path_buf();
    }
    Ok(dir)
}

/// Builds the companion binaries when running under `cargo run` (unless `no_build`).
fn cargo_build(dir: &Path) -> Result<()> {
    let Some(cargo) = std::env::var_os("CARGO") else { return Ok(()) };
    let workspace = Path::new(env!("CARGO_MANIFEST_DIR")).parent().context("the testnet crate has no workspace")?;
    let mut cmd = std::process::Command::new(cargo);
    cmd.current_dir(workspace).args(["build", "--quiet", "-p", NODE, "-p", ADMIN]);
    if dir.file_name().is_some_and(|n| n == "release") {
        cmd.arg("--release");
    }
    if let Some(target) = dir.parent() {
        cmd.arg("--target-dir").arg(target);
    }
    eprintln!("staffpass-testnet: building {NODE} and {ADMIN} (cargo build -p {NODE} -p {ADMIN}) ...");
    let status = cmd.status().context("cannot run cargo to build the node and admin binaries")?;
    if !status.success() {
        bail!("cargo build of {NODE} and {ADMIN} failed ({status})");
    }
    Ok(())
}

fn locate(bin: &str, dir: &Path) -> Result<PathBuf> {
    if let Some(p) = std::env::var_os(env_name(bin)) {
        let p = PathBuf::from(p);
        if p.is_file() {
            return Ok(p);
        }
        bail!("{} names {}, which is not a file", env_name(bin), p.display());
    }
    let p = dir.join(bin);
    if p.is_file() {
        return Ok(p);
    }
    bail!(
        "cannot find {bin} next to this program (in {}): build it with `cargo build --release -p {bin}`, \
         or name it with {}",
        dir.display(),
        env_name(bin)
    )
}

/// Finds (and under `cargo run`, first builds) both binaries.
pub fn find(no_build: bool) -> Result<Bins> {
    let dir = exe_dir()?;
    let overridden = std::env::var_os(env_name(NODE)).is_some() && std::env::var_os(env_name(ADMIN)).is_some();
    if !no_build && !overridden {
        cargo_build(&dir)?;
    }
    Ok(Bins { node: locate(NODE, &dir)?, admin: locate(ADMIN, &dir)? })
}

/// Finds (and under `cargo run`, first builds) the node binary alone.
#[cfg(feature = "bench")]
pub fn find_node() -> Result<PathBuf> {
    let dir = exe_dir()?;
    if std::env::var_os(env_name(NODE)).is_none() {
        cargo_build(&dir)?;
    }
    locate(NODE, &dir)
}
