//! A client key pair made on the client's machine (`staffpass-admin cert
//! request`), a certificate issued from its signing request by the node
//! (`Pki::sign_csr`, as `staffpass-node client-cert sign` does), used
//! against a real node: the node grants the role given to `sign`, not the
//! one the request asks for, and the private key never leaves the client.

#![allow(clippy::unwrap_used)] // test helpers outside #[test] fns may unwrap, as tests do

use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use crate::common::Run;
use staffpass_api::{Client, Role};
use staffpass_node::node::paths;
use staffpass_node::tls::Pki;
use staffpass_tests::TestNode;

async fn admin(dir: &Path, args: &[&str]) -> Run {
    let dir = dir.to_path_buf();
    let args: Vec<String> = args.iter().map(|s| (*s).to_owned()).collect();
    tokio::task::spawn_blocking(move || {
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        crate::common::admin(&dir, &args)
    })
    .await
    .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_certificate_from_the_clients_own_request_has_the_role_the_node_gives() {
    let node = TestNode::start_new("RJZ").await.unwrap();
    let d = tempfile::tempdir().unwrap();
    let dir = d.path();

    // The client asks for admin.
    let made = admin(dir, &["cert", "request", "--json", "--name", "desk-7", "--role", "admin", "--out", "mine"]).await;
    let made = made.json();
    assert_eq!(made["name"], "desk-7");
    assert_eq!(made["role"], "admin");
    let key = dir.join("mine/desk-7.key");
    let csr = dir.join("mine/desk-7.csr");
    assert_eq!(std::fs::metadata(&key).unwrap().permissions().mode() & 0o777, 0o600);
    let key_text = std::fs::read_to_string(&key).unwrap();
    assert!(key_text.contains("PRIVATE KEY"));
    let body = key_text.lines().nth(1).unwrap();
    let text = admin(dir, &["cert", "request", "--name", "desk-8", "--role", "hr", "--out", "mine"]).await;
    assert!(!text.ok().contains("PRIVATE KEY") && !text.stdout.contains(body));
    // Never replaced.
    admin(dir, &["cert", "request", "--name", "desk-7", "--role", "hr", "--out", "mine"]).await.fails(1);
    admin(dir, &["cert", "request", "--name", "../x", "--role", "hr", "--out", "mine"]).await.fails(2);

    // The node admin signs it as read-only.
    let pki = Pki::at(paths::tls(&node.config.data_dir));
    let signed = pki.sign_csr(&std::fs::read(&csr).unwrap(), "desk-7.csr", None, Role::ReadOnly).unwrap();
    assert_eq!((signed.name.as_str(), signed.role), ("desk-7", Role::ReadOnly));
    assert_eq!(signed.cert, pki.client_paths("desk-7").0);
    assert!(!pki.client_paths("desk-7").1.exists(), "the node holds no key for it");

    let client =
        Client::from_files(&format!("https://127.0.0.1:{}", node.api.port()), pki.ca_cert(), &signed.cert, &key)
            .unwrap();
    client.status().await.unwrap();
    let refused = client.get_json::<serde_json::Value>("/v1/staff").await.unwrap_err();
    assert_eq!(refused.code(), Some("forbidden"), "{refused}");
    assert!(refused.to_string().contains("read-only"), "{refused}");

    // The CLI works with it too.
    let url = format!("https://127.0.0.1:{}", node.api.port());
    let ca = pki.ca_cert().display().to_string();
    let cert = signed.cert.display().to_string();
    let status =
        admin(dir, &["node", "status", "--node", &url, "--ca", &ca, "--cert", &cert, "--key", "mine/desk-7.key"]).await;
    status.ok();
}
