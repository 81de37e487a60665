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
    for cmd in [
        &["init"][..],
        &["run"],
        &["client-cert"],
        &["client-cert", "sign"],
        &["client-cert", "revoke"],
        &["rotate-api-ca"],
        &["rotate-issuer-key"],
        &["backup"],
        &["restore"],
        &["show-config"],
    ] {
        let out = node().args(cmd).arg("--help").output().unwrap();
        assert!(out.status.success(), "{cmd:?} --help");
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

    // Issuer key rotation, the safe way: a key is prepared (0600) and
    // printed, the current one is untouched; asking again prints the same.
    let before = std::fs::read(dir.join("keys/issuer.key")).unwrap();
    let out = node().args(["rotate-issuer-key", "--data-dir"]).arg(&dir).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(std::fs::read(dir.join("keys/issuer.key")).unwrap(), before, "the current key still signs");
    assert_eq!(mode(&dir.join("keys/issuer.next.key")), 0o600);
    let prepared = String::from_utf8(out.stdout).unwrap();
    assert!(prepared.contains("rotate-key --org <your org> --add issuer-pk:"), "{prepared}");
    let again = node().args(["rotate-issuer-key", "--data-dir"]).arg(&dir).output().unwrap();
    assert_eq!(String::from_utf8(again.stdout).unwrap(), prepared, "the same key is prepared once");
    // --immediate (a key feared compromised) replaces the key now and
    // keeps no copy of the old secret.
    let out = node().args(["rotate-issuer-key", "--immediate", "--data-dir"]).arg(&dir).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert_ne!(std::fs::read(dir.join("keys/issuer.key")).unwrap(), before);
    let retired: Vec<_> = std::fs::read_dir(dir.join("keys"))
        .unwrap()
        .filter_map(|e| e.ok())
        .filter(|e| e.file_name().to_string_lossy().ends_with(".retired.key"))
        .collect();
    assert!(retired.is_empty(), "no retired secret key is left on disk");
    assert!(
        !std::fs::read_dir(dir.join("keys"))
            .unwrap()
            .any(|e| { std::fs::read(e.unwrap().path()).is_ok_and(|b| b == before) }),
        "the old issuer secret is nowhere in the key directory"
    );
}

#[test]
fn client_certificates_are_revoked_signed_and_the_api_ca_rotated_from_the_command_line() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("rjz");
    let run = |args: &[&str]| {
        let out = node().args(args).arg("--data-dir").arg(&dir).output().unwrap();
        (out.status.code(), String::from_utf8(out.stdout).unwrap(), String::from_utf8(out.stderr).unwrap())
    };
    let (code, _, err) = run(&["init", "--org", "RJZ", "--listen", "/ip4/127.0.0.1/tcp/0"]);
    assert_eq!(code, Some(0), "{err}");
    let keys_before = std::fs::read(dir.join("keys/node.key")).unwrap();
    run(&["client-cert", "--name", "desk", "--role", "hr"]);

    // Revoke by name: the list is written, the files kept aside.
    let (code, out, err) = run(&["client-cert", "revoke", "desk"]);
    assert_eq!(code, Some(0), "{err}");
    assert!(out.contains("Revoked the certificate of desk") && out.contains("no restart needed"), "{out}");
    assert_eq!(mode(&dir.join("tls/crl.pem")), 0o644);
    assert!(!dir.join("tls/clients/desk.key").exists());
    let (code, _, err) = run(&["client-cert", "revoke", "desk"]);
    assert_eq!(code, Some(1));
    assert_eq!(err.lines().count(), 1, "{err}");
    let (code, _, _) = run(&["client-cert", "revoke"]);
    assert_eq!(code, Some(2), "a name or --serial is needed");

    // Sign a request: the role given here.
    let key = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap();
    let mut params = rcgen::CertificateParams::default();
    params.distinguished_name.push(rcgen::DnType::OrganizationalUnitName, "admin");
    params.distinguished_name.push(rcgen::DnType::CommonName, "viewer");
    let csr = tmp.path().join("viewer.csr");
    std::fs::write(&csr, params.serialize_request(&key).unwrap().pem().unwrap()).unwrap();
    let (code, out, err) = run(&["client-cert", "sign", "--csr", csr.to_str().unwrap(), "--role", "read-only"]);
    assert_eq!(code, Some(0), "{err}");
    assert!(out.contains("Issued a read-only certificate for viewer"), "{out}");
    assert!(!dir.join("tls/clients/viewer.key").exists());

    // Rotate the API CA: the identity stays.
    let (code, out, err) = run(&["rotate-api-ca"]);
    assert_eq!(code, Some(0), "{err}");
    assert!(out.contains("Restart the node") && out.contains("Issue new certificates for: viewer"), "{out}");
    assert!(!out.contains("PRIVATE KEY"), "{out}");
    assert_eq!(std::fs::read(dir.join("keys/node.key")).unwrap(), keys_before);
    assert_eq!(mode(&dir.join("tls/ca.key")), 0o600);
}

#[test]
fn run_with_a_bad_config_says_what_to_fix() {
    let out = node().args(["run", "--set", "org=\"RJZ\"", "--set", "network.anti_entropy_secs=0"]).output().unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8(out.stderr).unwrap();
    assert!(err.contains("network.anti_entropy_secs"), "{err}");
}

/// Every configuration value out of its range is refused with its key
/// named (the ones `config::tests` does not already cover), and a config
/// file that cannot be read or is not TOML is a typed error naming it.
#[test]
fn every_out_of_range_config_value_is_refused_with_its_key() {
    use staffpass_node::config::{Config, Error};
    let env = || vec![("STAFFPASS_ORG".to_string(), "RJZ".to_string())];
    for (set, key) in [
        ("network.listen=[]", "network.listen"),
        ("network.external_addresses=[\"not-a-multiaddr\"]", "network.listen"),
        ("network.idle_timeout_secs=0", "network.idle_timeout_secs"),
        ("network.request_timeout_secs=601", "network.request_timeout_secs"),
        ("network.redial_max_secs=0", "network.redial_max_secs"),
        ("network.max_concurrent_streams=1025", "network.max_concurrent_streams"),
        ("network.max_connections=63;network.max_connections_per_peer=64", "network.max_connections"),
        ("api.body_limit_bytes=1023", "api.body_limit_bytes"),
        ("api.import_limit_bytes=2000000000", "api.import_limit_bytes"),
        ("exchange.inbox_keep_days=0", "exchange.inbox_keep_days"),
        ("exchange.home_keep_days=3651", "exchange.home_keep_days"),
        ("exchange.max_keep_days=0", "exchange.max_keep_days"),
        ("exchange.credential_validity_days=0", "exchange.credential_validity_days"),
        ("exchange.retry_initial_ms=0", "exchange.retry_initial_ms"),
        ("exchange.retry_max_secs=86401", "exchange.retry_max_secs"),
        ("exchange.expiry_sweep_secs=0", "exchange.expiry_sweep_secs"),
        ("storage.cache_mb=3", "storage.cache_mb"),
    ] {
        let overrides: Vec<String> = set.split(';').map(str::to_string).collect();
        match Config::load(None, env(), &overrides) {
            Err(e @ Error::Invalid { .. }) => assert!(e.to_string().contains(key), "{set}: {e}"),
            other => panic!("{set}: expected Invalid naming {key}, got {other:?}"),
        }
    }
    // A negative number where a count belongs, and a string where a number does.
    for set in ["network.max_connections=-1", "api.max_connections=\"many\""] {
        assert!(matches!(Config::load(None, env(), &[set.into()]), Err(Error::Parse { .. })), "{set}");
    }

    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("absent.toml");
    assert!(matches!(Config::load(Some(&missing), env(), &[]), Err(Error::Read { path, .. }) if path == missing));
    let garbage = dir.path().join("node.toml");
    std::fs::write(&garbage, "org = \"RJZ\"\n[network\nlisten = 7\n").unwrap();
    match Config::load(Some(&garbage), Vec::new(), &[]) {
        Err(e @ Error::Parse { .. }) => assert!(e.to_string().contains("node.toml"), "{e}"),
        other => panic!("expected Parse naming the file, got {other:?}"),
    }
    std::fs::write(&garbage, "org = \"RJZ\"\nunknown_key = 1\n").unwrap();
    match Config::load(Some(&garbage), Vec::new(), &[]) {
        Err(e @ Error::Parse { .. }) => assert!(e.to_string().contains("unknown_key"), "{e}"),
        other => panic!("expected Parse naming the key, got {other:?}"),
    }
}

/// `backup` against a running node, then `restore` into a new directory;
/// the refusals (an existing output, a used directory, a damaged backup)
/// are one-line errors that leave nothing behind.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn backup_of_a_running_node_and_restore_from_the_command_line() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("rjz");
    let out = node()
        .args(["init", "--org", "RJZ", "--data-dir"])
        .arg(&dir)
        .args(["--listen", "/ip4/127.0.0.1/tcp/0", "--api-listen", "127.0.0.1:0"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let cfg = staffpass_node::config::Config::load(Some(&dir.join("node.toml")), Vec::new(), &[]).unwrap();
    let running = staffpass_node::node::Node::start(cfg).await.unwrap();
    let api = format!("api.listen=\"{}\"", running.api_addr());
    let run = move |args: Vec<std::ffi::OsString>| {
        tokio::task::spawn_blocking(move || {
            let out = node().args(args).output().unwrap();
            (out.status.code(), String::from_utf8(out.stdout).unwrap(), String::from_utf8(out.stderr).unwrap())
        })
    };
    let (data, keys) = (tmp.path().join("rjz.backup"), tmp.path().join("rjz.keys"));
    let backup_args = vec![
        "backup".into(),
        "--data-dir".into(),
        dir.clone().into_os_string(),
        "--set".into(),
        api.clone().into(),
        "--out".into(),
        data.clone().into_os_string(),
        "--keys-out".into(),
        keys.clone().into_os_string(),
    ];
    let (code, stdout, err) = run(backup_args.clone()).await.unwrap();
    assert_eq!(code, Some(0), "{err}");
    assert!(stdout.contains("Keep the key backup apart"), "{stdout}");
    assert!(!stdout.contains("data-key:") && !stdout.contains("node-sk:"), "never prints secrets: {stdout}");
    assert_eq!(mode(&data), 0o600);
    assert_eq!(mode(&keys), 0o600);
    let (code, _, err) = run(backup_args).await.unwrap();
    assert_eq!(code, Some(1), "an existing backup is not overwritten");
    assert!(err.contains("already exists") && err.lines().count() == 1, "{err}");
    running.shutdown().await;

    let new = tmp.path().join("restored");
    let restore = |from: &std::path::Path, to: &std::path::Path| {
        vec![
            "restore".into(),
            "--from".into(),
            from.as_os_str().to_owned(),
            "--keys".into(),
            keys.clone().into_os_string(),
            "--data-dir".into(),
            to.as_os_str().to_owned(),
        ]
    };
    let (code, stdout, err) = run(restore(&data, &new)).await.unwrap();
    assert_eq!(code, Some(0), "{err}");
    assert!(stdout.contains("entries, verified"), "{stdout}");
    assert_eq!(mode(&new), 0o700);
    assert_eq!(mode(&new.join("keys/data.key")), 0o600);
    let (code, _, err) = run(restore(&data, &new)).await.unwrap();
    assert_eq!(code, Some(1));
    assert!(err.contains("not empty") && err.lines().count() == 1, "{err}");

    let damaged = tmp.path().join("damaged.backup");
    let bytes = std::fs::read(&data).unwrap();
    std::fs::write(&damaged, &bytes[..bytes.len() - 7]).unwrap();
    let other = tmp.path().join("other");
    let (code, _, err) = run(restore(&damaged, &other)).await.unwrap();
    assert_eq!(code, Some(1));
    assert!(err.contains("cut short") && err.lines().count() == 1, "{err}");
    assert!(!other.exists(), "nothing is made from a damaged backup");
}
