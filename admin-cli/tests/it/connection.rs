//! Reaching a node: missing, unreadable or wrong credentials and a node
//! that is down each give one line and the documented exit code. No node
//! needs to run for these.

#![allow(clippy::unwrap_used)] // test helpers outside #[test] fns may unwrap, as tests do

use std::net::TcpListener;
use std::path::Path;

use crate::common::admin;
use staffpass_node::tls::Pki;

/// A node data directory with a real PKI (as `staffpass-node init` makes)
/// whose API would listen on `port`.
fn data_dir(root: &Path, port: u16) -> std::path::PathBuf {
    let dir = root.join("node");
    std::fs::create_dir_all(&dir).unwrap();
    Pki::init(dir.join("tls"), "RJZ", &["localhost".into(), "127.0.0.1".into()], false).unwrap();
    std::fs::write(dir.join("node.toml"), format!("org = \"RJZ\"\n\n[api]\nlisten = \"127.0.0.1:{port}\"\n")).unwrap();
    dir
}

/// A local port with nothing listening on it.
fn closed_port() -> u16 {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = l.local_addr().unwrap().port();
    drop(l);
    port
}

#[test]
fn without_credentials_it_says_where_to_get_them() {
    let d = tempfile::tempdir().unwrap();
    let run = admin(d.path(), &["node", "status"]);
    assert!(run.fails(2).contains("--data-dir"), "{}", run.stderr);
}

#[test]
fn a_node_that_is_down_is_one_line() {
    let d = tempfile::tempdir().unwrap();
    let port = closed_port();
    let dir = data_dir(d.path(), port);
    let dir = dir.to_str().unwrap();
    for args in [
        &["node", "status", "--data-dir", dir][..],
        &["agreement", "list", "--data-dir", dir][..],
        &["staff", "list", "--data-dir", dir][..],
        &["audit", "tail", "--data-dir", dir][..],
    ] {
        let run = admin(d.path(), args);
        let err = run.fails(1);
        assert!(err.contains(&format!("127.0.0.1:{port}")) && err.contains("is staffpass-node running"), "{err}");
    }
    // The URL from the flag beats node.toml.
    let run = admin(d.path(), &["node", "status", "--data-dir", dir, "--node", &format!("https://127.0.0.1:{port}")]);
    run.fails(1);
    let run = admin(d.path(), &["node", "status", "--data-dir", dir, "--node", "http://127.0.0.1:1"]);
    assert!(run.fails(2).contains("https"), "{}", run.stderr);
}

#[test]
fn unreadable_or_wrong_cert_files_are_one_line() {
    let d = tempfile::tempdir().unwrap();
    let dir = data_dir(d.path(), closed_port());
    let tls = dir.join("tls");
    let s = |p: &Path| p.to_str().unwrap().to_owned();
    let missing = s(&d.path().join("nope.pem"));
    let run = admin(
        d.path(),
        &["node", "status", "--ca", &s(&tls.join("ca.pem")), "--cert", &missing, "--key", &s(&tls.join("admin.key"))],
    );
    assert!(run.fails(1).contains("nope.pem"), "{}", run.stderr);

    // A directory where a file should be.
    let run = admin(d.path(), &["node", "status", "--data-dir", &s(&dir), "--cert", &s(&tls)]);
    run.fails(1);

    // Garbage in the certificate file.
    std::fs::write(d.path().join("bad.pem"), "not a certificate").unwrap();
    let run = admin(d.path(), &["node", "status", "--data-dir", &s(&dir), "--cert", &s(&d.path().join("bad.pem"))]);
    run.fails(1);

    // The environment is read too.
    let run = std::process::Command::new(crate::common::BIN)
        .args(["node", "status"])
        .env("STAFFPASS_CA", &missing)
        .env("STAFFPASS_CERT", s(&tls.join("admin.pem")))
        .env("STAFFPASS_KEY", s(&tls.join("admin.key")))
        .env("STAFFPASS_NODE", "https://127.0.0.1:1")
        .output()
        .unwrap();
    assert_eq!(run.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&run.stderr).contains("nope.pem"));
}

#[test]
fn a_config_file_names_the_node() {
    let d = tempfile::tempdir().unwrap();
    let port = closed_port();
    let dir = data_dir(d.path(), port);
    std::fs::write(d.path().join("admin.toml"), "data_dir = \"node\"\n").unwrap();
    let run = admin(d.path(), &["node", "status", "--config", "admin.toml"]);
    assert!(run.fails(1).contains(&format!("127.0.0.1:{port}")), "{}", run.stderr);
    std::fs::write(d.path().join("admin.toml"), "data_dir = \"node\"\nport = 1\n").unwrap();
    let run = admin(d.path(), &["node", "status", "--config", "admin.toml"]);
    assert!(run.fails(2).contains("admin.toml"), "{}", run.stderr);
    drop(dir);
}
