//! The `staffpass-node` binary: help, init, client certificates, key rotation.

#![allow(clippy::unwrap_used)] // test code: a failed unwrap is a failed test

use std::os::unix::fs::PermissionsExt;
use std::process::Command;

fn node() -> Command {
    Command::new(env!("CARGO_BIN_EXE_staffpass-node"))
}

fn mode(p: &std::path::Path) -> u32 {
    std::fs::metadata(p).unwrap().permissions().mode() & 0o777
}

#[test]
fn help_renders_for_every_command_and_documents_the_config_keys() {
    let top = node().arg("--help").output().unwrap();
    assert!(top.status.success());
    let text = String::from_utf8(top.stdout).unwrap();
    for key in ["network.anti_entropy_secs", "api.listen", "exchange.retry_max_secs", "STAFFPASS_NETWORK__MDNS"] {
        assert!(text.contains(key), "--help documents {key}");
    }
    for cmd in ["init", "run", "client-cert", "rotate-issuer-key", "show-config"] {
        let out = node().args([cmd, "--help"]).output().unwrap();
        assert!(out.status.success(), "{cmd} --help");
        assert!(!out.stdout.is_empty());
    }
}

#[test]
fn init_makes_a_private_node_and_refuses_to_overwrite_it() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("rjz");
    let init = || {
        node()
            .args(["init", "--org", "RJZ", "--data-dir"])
            .arg(&dir)
            .args(["--listen", "/ip4/127.0.0.1/tcp/0", "--api-listen", "127.0.0.1:0"])
            .output()
            .unwrap()
    };
    let out = init();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let stdout = String::from_utf8(out.stdout).unwrap();
    assert!(stdout.contains("peer id:     12D3KooW"), "{stdout}");
    assert!(stdout.contains("issuer key:  issuer-pk:"), "{stdout}");
    assert!(!stdout.contains("issuer-sk:") && !stdout.contains("node-sk:"), "never prints secrets");
    assert_eq!(mode(&dir), 0o700);
    for f in ["keys/issuer.key", "keys/node.key", "keys/data.key", "tls/ca.key", "tls/admin.key"] {
        assert_eq!(mode(&dir.join(f)), 0o600, "{f}");
    }
    let cfg = std::fs::read_to_string(dir.join("node.toml")).unwrap();
    assert!(cfg.contains("org = \"RJZ\""));

    let again = init();
    assert!(!again.status.success(), "a second init must refuse");
    let err = String::from_utf8(again.stderr).unwrap();
    assert!(err.contains("exists"), "{err}");
    assert_eq!(err.lines().count(), 1, "one-line error: {err}");

    // Effective config from file + environment + flags.
    let shown = node()
        .args(["show-config", "--config"])
        .arg(dir.join("node.toml"))
        .args(["--set", "network.anti_entropy_secs=7"])
        .env("STAFFPASS_NETWORK__MDNS", "true")
        .output()
        .unwrap();
    let shown = String::from_utf8(shown.stdout).unwrap();
    assert!(shown.contains("anti_entropy_secs = 7") && shown.contains("mdns = true"), "{shown}");

    // Client certificates by role.
    let out = node()
        .args(["client-cert", "--data-dir"])
        .arg(&dir)
        .args(["--name", "hr-desk", "--role", "hr"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(mode(&dir.join("tls/clients/hr-desk.key")), 0o600);
    let bad =
        node().args(["client-cert", "--data-dir"]).arg(&dir).args(["--name", "x", "--role", "root"]).output().unwrap();
    assert_eq!(bad.status.code(), Some(2), "an unknown role is a usage error");

    // Issuer key rotation keeps the old key as retired.
    let before = std::fs::read(dir.join("keys/issuer.key")).unwrap();
    let out = node().args(["rotate-issuer-key", "--data-dir"]).arg(&dir).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert_ne!(std::fs::read(dir.join("keys/issuer.key")).unwrap(), before);
    let retired: Vec<_> = std::fs::read_dir(dir.join("keys"))
        .unwrap()
        .filter_map(|e| e.ok())
        .filter(|e| e.file_name().to_string_lossy().ends_with(".retired.key"))
        .collect();
    assert_eq!(retired.len(), 1);
}

#[test]
fn run_with_a_bad_config_says_what_to_fix() {
    let out = node().args(["run", "--set", "org=\"RJZ\"", "--set", "network.anti_entropy_secs=0"]).output().unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8(out.stderr).unwrap();
    assert!(err.contains("network.anti_entropy_secs"), "{err}");
}
