//! Managing the local API's client certificates, over real TLS on
//! 127.0.0.1: revocation (a CRL the running verifier reloads), rotating the
//! API CA without touching the node identity, keys or data, and
//! certificates issued from a client's signing request (F11).

// Test helpers are outside `#[test]` functions, where clippy's
// `allow-unwrap-in-tests` does not reach; a panic is the right failure here.
#![allow(clippy::unwrap_used)]

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::routing::get;
use sha2::{Digest, Sha256};
use staffpass_api::Client;
use staffpass_node::api::server;
use staffpass_node::api::{Caller, Json, Role};
use staffpass_node::config::Config;
use staffpass_node::keys::KeyFiles;
use staffpass_node::node::{self, paths};
use staffpass_node::tls::{self, Pki, RevokeTarget};
use tokio::net::TcpListener;
use tokio::sync::oneshot;

/// Every wait in these tests is bounded by this.
const STEP: Duration = Duration::from_secs(15);

fn names() -> Vec<String> {
    vec!["localhost".to_owned(), "127.0.0.1".to_owned()]
}

/// An HTTPS server over the PKI in `dir` answering `/status` with the caller.
struct Server {
    addr: SocketAddr,
    stop: Option<oneshot::Sender<()>>,
    handle: tokio::task::JoinHandle<Result<(), server::Error>>,
}

impl Server {
    async fn start(dir: &Path) -> Self {
        async fn whoami(caller: Caller) -> Json<Caller> {
            Json(caller)
        }
        let config = tls::server_config(dir).expect("server config");
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (tx, rx) = oneshot::channel::<()>();
        let shutdown = async move {
            let _ = rx.await;
        };
        let router = Router::new().route("/status", get(whoami));
        let handle = tokio::spawn(server::serve(listener, config, router, shutdown));
        Server { addr, stop: Some(tx), handle }
    }

    /// A new client (so a new connection and a new TLS handshake).
    fn client(&self, ca: &Path, cert: &Path, key: &Path) -> Client {
        Client::from_files(&format!("https://127.0.0.1:{}", self.addr.port()), ca, cert, key).unwrap()
    }

    async fn stop(mut self) {
        if let Some(tx) = self.stop.take() {
            let _ = tx.send(());
        }
        tokio::time::timeout(STEP, &mut self.handle).await.unwrap().unwrap().unwrap();
    }
}

/// `/status` as `client`: the caller on success, `None` if refused.
async fn whoami(client: &Client) -> Option<Caller> {
    tokio::time::timeout(STEP, client.get_json::<Caller>("/status")).await.expect("request hung").ok()
}

#[tokio::test]
async fn a_revoked_certificate_is_refused_while_others_keep_working() {
    let dir = tempfile::tempdir().unwrap();
    let pki = Pki::init(dir.path(), "RJZ", &names(), false).unwrap();
    let (alice_cert, alice_key) = Pki::issue_client(pki.dir(), "alice", Role::Hr).unwrap();
    let (bob_cert, bob_key) = Pki::issue_client(pki.dir(), "bob", Role::Hr).unwrap();
    let server = Server::start(pki.dir()).await;

    let alice = || server.client(&pki.ca_cert(), &alice_cert, &alice_key);
    let bob = || server.client(&pki.ca_cert(), &bob_cert, &bob_key);
    assert_eq!(whoami(&alice()).await.unwrap().name, "alice");
    assert_eq!(whoami(&bob()).await.unwrap().name, "bob");

    // Revoked while the server runs: the next handshake is refused.
    let revoked = pki.revoke(&RevokeTarget::Name("alice".into())).unwrap();
    assert_eq!(revoked.name.as_deref(), Some("alice"));
    assert_eq!(revoked.total, 1);
    assert_eq!(revoked.crl, pki.crl());
    assert_eq!(std::fs::metadata(pki.crl()).unwrap().permissions().mode() & 0o777, 0o644);
    // The files are kept aside, not deleted; the key stays 0600.
    assert!(!alice_cert.exists() && !alice_key.exists());
    let aside: Vec<PathBuf> = revoked.moved.clone();
    assert_eq!(aside.len(), 2);
    for path in &aside {
        assert!(path.exists(), "{}", path.display());
        if path.extension().is_some_and(|e| e == "key") {
            assert_eq!(std::fs::metadata(path).unwrap().permissions().mode() & 0o777, 0o600);
        }
    }
    let alice_cert = aside.iter().find(|p| p.extension().is_some_and(|e| e == "pem")).unwrap().clone();
    let alice_key = aside.iter().find(|p| p.extension().is_some_and(|e| e == "key")).unwrap().clone();
    let alice = || server.client(&pki.ca_cert(), &alice_cert, &alice_key);
    assert_eq!(whoami(&alice()).await, None, "revoked certificate accepted by the running node");
    assert_eq!(whoami(&bob()).await.unwrap().name, "bob");
    assert_eq!(
        whoami(&server.client(&pki.ca_cert(), &pki.admin_cert(), &pki.admin_key())).await.unwrap().role,
        Role::Admin
    );

    // Revoking by serial adds to the same list; revoking twice is refused.
    let bob_serial = {
        let der = tls::certs(&std::fs::read(&bob_cert).unwrap(), "bob").unwrap().remove(0);
        hex::encode(x509_parser::parse_x509_certificate(der.as_ref()).unwrap().1.raw_serial())
    };
    let by_serial = pki.revoke(&RevokeTarget::Serial(bob_serial.clone())).unwrap();
    assert_eq!((by_serial.name.as_deref(), by_serial.total), (Some("bob"), 2));
    assert!(matches!(pki.revoke(&RevokeTarget::Serial(bob_serial)), Err(tls::Error::AlreadyRevoked { .. })));
    assert!(matches!(pki.revoke(&RevokeTarget::Name("alice".into())), Err(tls::Error::UnknownClient { .. })));
    assert!(matches!(pki.revoke(&RevokeTarget::Serial("zz".into())), Err(tls::Error::InvalidSerial { .. })));
    server.stop().await;

    // After a restart the list is loaded at start: still refused.
    let server = Server::start(pki.dir()).await;
    assert_eq!(whoami(&server.client(&pki.ca_cert(), &alice_cert, &alice_key)).await, None);
    assert_eq!(
        whoami(&server.client(&pki.ca_cert(), &pki.admin_cert(), &pki.admin_key())).await.unwrap().name,
        "admin"
    );
    // The name can be issued again, and the new certificate works.
    let (cert, key) = Pki::issue_client(pki.dir(), "alice", Role::Hr).unwrap();
    assert_eq!(whoami(&server.client(&pki.ca_cert(), &cert, &key)).await.unwrap().name, "alice");
    server.stop().await;
}

#[tokio::test]
async fn an_unusable_revocation_list_refuses_everyone_and_a_removed_one_still_revokes() {
    let dir = tempfile::tempdir().unwrap();
    let pki = Pki::init(dir.path(), "RJZ", &names(), false).unwrap();
    let (cert, key) = Pki::issue_client(pki.dir(), "gone", Role::Hr).unwrap();
    let (cert, key) = (dir.path().join("gone.pem"), {
        std::fs::copy(&cert, dir.path().join("gone.pem")).unwrap();
        let kept = dir.path().join("gone.key");
        std::fs::copy(&key, &kept).unwrap();
        kept
    });
    let server = Server::start(pki.dir()).await;
    let admin = || server.client(&pki.ca_cert(), &pki.admin_cert(), &pki.admin_key());
    let gone = || server.client(&pki.ca_cert(), &cert, &key);
    assert!(whoami(&admin()).await.is_some());
    pki.revoke(&RevokeTarget::Name("gone".into())).unwrap();
    assert_eq!(whoami(&gone()).await, None);
    let good = std::fs::read(pki.crl()).unwrap();

    // A CRL that does not parse: fail closed on the running node, and at start.
    std::fs::write(pki.crl(), b"-----BEGIN X509 CRL-----\nAAAA\n-----END X509 CRL-----\n").unwrap();
    assert_eq!(whoami(&admin()).await, None);
    assert!(matches!(tls::server_config(pki.dir()), Err(tls::Error::BadCrl { .. })));
    // A CRL signed by another CA is refused by `revoke` as well.
    let other = tempfile::tempdir().unwrap();
    let other = Pki::init(other.path(), "RJZ", &names(), false).unwrap();
    Pki::issue_client(other.dir(), "x", Role::Hr).unwrap();
    other.revoke(&RevokeTarget::Name("x".into())).unwrap();
    std::fs::copy(other.crl(), pki.crl()).unwrap();
    assert!(matches!(pki.revoke(&RevokeTarget::Serial("01".into())), Err(tls::Error::BadCrl { .. })));

    // Restored: accepted again without a restart, and the revoked one still refused.
    std::fs::write(pki.crl(), &good).unwrap();
    assert!(whoami(&admin()).await.is_some());
    assert_eq!(whoami(&gone()).await, None);
    // Removed: the running node keeps the last list it loaded.
    std::fs::remove_file(pki.crl()).unwrap();
    assert!(whoami(&admin()).await.is_some());
    assert_eq!(whoami(&gone()).await, None, "removing the list un-revoked a certificate");
    server.stop().await;
}

/// `GET /status` over one new TLS connection made with `config` (shared
/// across calls, so the client offers to resume its last session): the
/// HTTP answer, or `None` if the connection was refused.
async fn raw_status(addr: SocketAddr, config: Arc<rustls::ClientConfig>) -> Option<String> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let attempt = async {
        let tcp = tokio::net::TcpStream::connect(addr).await?;
        let name = rustls_pki_types::ServerName::try_from("localhost").unwrap();
        let mut stream = tokio_rustls::TlsConnector::from(config).connect(name, tcp).await?;
        stream.write_all(b"GET /status HTTP/1.1\r\nhost: localhost\r\nconnection: close\r\n\r\n").await?;
        let mut answer = Vec::new();
        stream.read_to_end(&mut answer).await?;
        std::io::Result::Ok(String::from_utf8_lossy(&answer).into_owned())
    };
    match tokio::time::timeout(STEP, attempt).await.expect("raw TLS exchange hung") {
        Ok(answer) if answer.starts_with("HTTP/1.1 200") => Some(answer),
        _ => None,
    }
}

#[tokio::test]
async fn a_revoked_certificate_cannot_resume_an_earlier_session() {
    let dir = tempfile::tempdir().unwrap();
    let pki = Pki::init(dir.path(), "RJZ", &names(), false).unwrap();
    let (cert, key) = Pki::issue_client(pki.dir(), "laptop", Role::Hr).unwrap();
    let config = Arc::new(
        tls::client_config(&std::fs::read(pki.ca_cert()).unwrap(), &std::fs::read(&cert).unwrap(), &{
            std::fs::read(&key).unwrap()
        })
        .unwrap(),
    );
    let server = Server::start(pki.dir()).await;
    assert!(raw_status(server.addr, config.clone()).await.is_some());
    assert!(raw_status(server.addr, config.clone()).await.is_some(), "a second connection works");
    pki.revoke(&RevokeTarget::Name("laptop".into())).unwrap();
    assert_eq!(raw_status(server.addr, config.clone()).await, None, "a resumed session skipped revocation");
    server.stop().await;
}

/// SHA-256 of every file under `dir`, by relative path.
fn digests(dir: &Path, skip: &Path) -> BTreeMap<PathBuf, String> {
    let mut out = BTreeMap::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for entry in std::fs::read_dir(&d).unwrap() {
            let path = entry.unwrap().path();
            if path.starts_with(skip) {
                continue;
            }
            if path.is_dir() {
                stack.push(path);
            } else {
                let rel = path.strip_prefix(dir).unwrap().to_path_buf();
                out.insert(rel, hex::encode(Sha256::digest(std::fs::read(&path).unwrap())));
            }
        }
    }
    out
}

#[tokio::test]
async fn rotating_the_api_ca_replaces_only_the_api_certificates() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("node");
    let mut cfg = Config::new("RJZ".parse().unwrap());
    cfg.data_dir = data.clone();
    let report = node::init(&cfg, &names(), false).unwrap();
    let tls_dir = paths::tls(&data);
    let pki = Pki::at(&tls_dir);
    Pki::issue_client(&tls_dir, "desk", Role::Hr).unwrap();
    let before = digests(&data, &tls_dir);
    assert!(before.keys().any(|p| p.starts_with("keys")) && before.keys().any(|p| p.starts_with("db")));

    let server = Server::start(&tls_dir).await;
    let old_ca = std::fs::read(pki.ca_cert()).unwrap();
    assert!(whoami(&server.client(&pki.ca_cert(), &pki.admin_cert(), &pki.admin_key())).await.is_some());
    server.stop().await;

    let rotated = pki.rotate_ca(&["api.example".to_owned()]).unwrap();
    assert_ne!(rotated.old_ca_sha256, rotated.new_ca_sha256);
    assert_eq!(rotated.to_reissue, vec!["desk".to_owned()]);
    assert!(rotated.server_names.contains(&"api.example".to_owned()));
    assert!(rotated.server_names.contains(&"127.0.0.1".to_owned()));
    // The old files are kept aside.
    let aside = &rotated.replaced_dir;
    for name in [tls::CA_CERT, tls::CA_KEY, tls::ADMIN_CERT, tls::ADMIN_KEY, tls::SERVER_CERT, tls::SERVER_KEY] {
        assert!(aside.join(name).is_file(), "{name} not kept aside");
    }
    assert!(aside.join(tls::CLIENTS_DIR).join("desk.pem").is_file());
    assert_eq!(std::fs::read(aside.join(tls::CA_CERT)).unwrap(), old_ca);
    for key in [tls::CA_KEY, tls::ADMIN_KEY, tls::SERVER_KEY] {
        assert_eq!(std::fs::metadata(tls_dir.join(key)).unwrap().permissions().mode() & 0o777, 0o600, "{key}");
    }

    // The node identity, keys and data are unchanged.
    assert_eq!(digests(&data, &tls_dir), before);
    let keys = KeyFiles::load(&paths::keys(&data)).unwrap();
    assert_eq!(keys.node().peer_id(), report.peer_id);
    assert_eq!(keys.issuer().public(), report.issuer_key);

    // Restarted: the old admin certificate is refused, the new one works.
    let server = Server::start(&tls_dir).await;
    let old_admin = server.client(&aside.join(tls::CA_CERT), &aside.join(tls::ADMIN_CERT), &aside.join(tls::ADMIN_KEY));
    assert_eq!(whoami(&old_admin).await, None, "old admin certificate (old CA trusted) accepted");
    let old_cert_new_ca = server.client(&pki.ca_cert(), &aside.join(tls::ADMIN_CERT), &aside.join(tls::ADMIN_KEY));
    assert_eq!(whoami(&old_cert_new_ca).await, None, "old admin certificate accepted");
    let desk = server.client(
        &pki.ca_cert(),
        &aside.join(tls::CLIENTS_DIR).join("desk.pem"),
        &aside.join(tls::CLIENTS_DIR).join("desk.key"),
    );
    assert_eq!(whoami(&desk).await, None, "client certificate of the old CA accepted");
    let admin = server.client(&pki.ca_cert(), &pki.admin_cert(), &pki.admin_key());
    assert_eq!(whoami(&admin).await.unwrap(), Caller { name: "admin".into(), role: Role::Admin });
    server.stop().await;
}

/// A signing request for `name` asking for `role` (OU), made with rcgen.
fn csr(name: &str, role: &str) -> String {
    let key = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap();
    let mut params = rcgen::CertificateParams::default();
    params.distinguished_name.push(rcgen::DnType::OrganizationalUnitName, role);
    params.distinguished_name.push(rcgen::DnType::CommonName, name);
    params.serialize_request(&key).unwrap().pem().unwrap()
}

#[test]
fn a_signing_request_with_a_bad_signature_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let pki = Pki::init(dir.path(), "RJZ", &names(), false).unwrap();
    let pem = csr("eve", "admin");
    let der = tls_csr_der(&pem);
    // The signature is the last bytes of the DER: flip one.
    let mut bad = der.clone();
    let last = bad.len() - 3;
    bad[last] ^= 0x01;
    let bad_pem = pem_of("CERTIFICATE REQUEST", &bad);
    match pki.sign_csr(bad_pem.as_bytes(), "eve.csr", None, Role::Hr) {
        Err(tls::Error::CsrSignature { origin }) => assert_eq!(origin, "eve.csr"),
        other => panic!("expected CsrSignature, got {other:?}"),
    }
    // Another subject under the original signature: refused too.
    let mut swapped = der.clone();
    if let Some(at) = swapped.windows(3).position(|w| w == b"eve") {
        swapped[at..at + 3].copy_from_slice(b"bob");
    }
    assert!(matches!(
        pki.sign_csr(pem_of("CERTIFICATE REQUEST", &swapped).as_bytes(), "x", None, Role::Hr),
        Err(tls::Error::CsrSignature { .. })
    ));
    assert!(matches!(pki.sign_csr(b"not a csr", "x", None, Role::Hr), Err(tls::Error::BadCsr { .. })));
    // A CN that is not a usable name is refused (unless --name is given).
    assert!(matches!(
        pki.sign_csr(csr("../ca", "hr").as_bytes(), "x", None, Role::Hr),
        Err(tls::Error::InvalidClientName { .. })
    ));
    assert!(pki.sign_csr(csr("../ca", "hr").as_bytes(), "x", Some("carol"), Role::Hr).is_ok());
    // Nothing was written for the refused ones.
    let clients: Vec<_> = std::fs::read_dir(pki.dir().join(tls::CLIENTS_DIR)).unwrap().collect();
    assert_eq!(clients.len(), 1);
}

fn tls_csr_der(pem: &str) -> Vec<u8> {
    let mut reader = pem.as_bytes();
    rustls_pemfile::csr(&mut reader).unwrap().unwrap().as_ref().to_vec()
}

fn pem_of(label: &str, der: &[u8]) -> String {
    let body = base64_encode(der);
    let mut out = format!("-----BEGIN {label}-----\n");
    for chunk in body.as_bytes().chunks(64) {
        out.push_str(std::str::from_utf8(chunk).unwrap());
        out.push('\n');
    }
    out.push_str(&format!("-----END {label}-----\n"));
    out
}

/// Standard base64 (the test has no base64 crate).
fn base64_encode(bytes: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::new();
    for chunk in bytes.chunks(3) {
        let b = [chunk[0], *chunk.get(1).unwrap_or(&0), *chunk.get(2).unwrap_or(&0)];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(ALPHABET[((n >> (18 - 6 * i)) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}
