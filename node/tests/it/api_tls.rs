//! The local API's TLS and HTTP infrastructure over real sockets on
//! 127.0.0.1: client-certificate authentication and roles, the JSON error
//! shape, body limits, the node PKI files, connection bounds (per IP, idle,
//! eviction of stalled handshakes) and shutdown.

// Test helpers are outside `#[test]` functions, where clippy's
// `allow-unwrap-in-tests` does not reach; a panic is the right failure here.
#![allow(clippy::unwrap_used)]

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::body::Bytes;
use axum::extract::DefaultBodyLimit;
use axum::routing::{get, post};
use rustls::AlertDescription;
use rustls_pki_types::ServerName;
use serde::Deserialize;
use serde_json::{Value, json};
use staffpass_api::{Client, ClientError};
use staffpass_node::api::error::ErrorBody;
use staffpass_node::api::server::{self, DEFAULT_BODY_LIMIT, Options};
use staffpass_node::api::{ApiError, Caller, Json, Role, require};
use staffpass_node::tls::{self, Pki};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{Notify, oneshot};
use tokio::task::JoinHandle;

/// Every wait in these tests is bounded by this.
const STEP: Duration = Duration::from_secs(15);

const ORG: &str = "RJZ";

fn names() -> Vec<String> {
    vec!["localhost".to_owned(), "127.0.0.1".to_owned()]
}

fn init_pki(dir: &Path) -> Pki {
    Pki::init(dir, ORG, &names(), false).expect("init PKI")
}

/// Routes for each role, an echo, a raw-bytes import with a larger limit,
/// a tiny-limit route, and a slow route the test releases.
fn test_router(slow: Slow) -> Router {
    #[derive(Deserialize, serde::Serialize)]
    struct Typed {
        n: u32,
    }
    async fn whoami(caller: Caller) -> Json<Caller> {
        Json(caller)
    }
    async fn echo(caller: Caller, Json(body): Json<Value>) -> Json<Value> {
        Json(json!({ "caller": caller, "body": body }))
    }
    async fn typed(Json(body): Json<Typed>) -> Json<Typed> {
        Json(body)
    }
    async fn import(body: Bytes) -> Json<Value> {
        Json(json!({ "len": body.len() }))
    }
    async fn teapot() -> Result<Json<Value>, ApiError> {
        Err(ApiError::conflict("already there").with_details(json!({ "id": "x" })))
    }

    let read_only = Router::new()
        .route("/status", get(whoami))
        .route("/echo", post(echo))
        .route("/typed", post(typed))
        .route("/conflict", get(teapot))
        .route("/import", post(import).layer(DefaultBodyLimit::max(4 * DEFAULT_BODY_LIMIT)))
        .route("/small", post(import).layer(DefaultBodyLimit::max(1024)))
        .route(
            "/slow",
            get(move || async move {
                slow.started.notify_one();
                slow.release.notified().await;
                "done"
            }),
        );
    let hr = Router::new().route("/hr", get(whoami)).route_layer(require(Role::Hr));
    let admin = Router::new().route("/admin", post(whoami)).route_layer(require(Role::Admin));
    read_only.merge(hr).merge(admin)
}

#[derive(Clone, Default)]
struct Slow {
    started: Arc<Notify>,
    release: Arc<Notify>,
}

struct TestNode {
    _dir: tempfile::TempDir,
    pki: Pki,
    addr: SocketAddr,
    slow: Slow,
    shutdown: Option<oneshot::Sender<()>>,
    handle: JoinHandle<Result<(), server::Error>>,
}

impl TestNode {
    async fn start() -> Self {
        Self::start_with(Options::default()).await
    }

    /// Makes a PKI, binds 127.0.0.1:0, then spawns `serve`: the socket
    /// accepts (into the backlog) before the task runs, so no readiness wait.
    async fn start_with(options: Options) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let pki = init_pki(dir.path());
        let config = tls::server_config(pki.dir()).expect("server config");
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let slow = Slow::default();
        let (tx, rx) = oneshot::channel::<()>();
        let shutdown = async move {
            let _ = rx.await;
        };
        let handle = tokio::spawn(server::serve_with(listener, config, test_router(slow.clone()), shutdown, options));
        TestNode { _dir: dir, pki, addr, slow, shutdown: Some(tx), handle }
    }

    fn url(&self) -> String {
        format!("https://127.0.0.1:{}", self.addr.port())
    }

    fn admin(&self) -> Client {
        Client::from_files(&self.url(), self.pki.ca_cert(), self.pki.admin_cert(), self.pki.admin_key()).unwrap()
    }

    fn client_for(&self, name: &str, role: Role) -> Client {
        let (cert, key) = Pki::issue_client(self.pki.dir(), name, role).unwrap();
        Client::from_files(&self.url(), self.pki.ca_cert(), cert, key).unwrap()
    }

    /// A reqwest client with the admin certificate, to see raw responses.
    fn raw_admin(&self) -> reqwest::Client {
        let config = tls::client_config(
            &std::fs::read(self.pki.ca_cert()).unwrap(),
            &std::fs::read(self.pki.admin_cert()).unwrap(),
            &std::fs::read(self.pki.admin_key()).unwrap(),
        )
        .unwrap();
        reqwest::Client::builder().use_preconfigured_tls(config).no_proxy().build().unwrap()
    }

    async fn stop(mut self) -> Result<(), server::Error> {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        tokio::time::timeout(STEP, &mut self.handle).await.expect("serve did not return").expect("serve panicked")
    }
}

fn read(path: impl AsRef<Path>) -> Vec<u8> {
    std::fs::read(path).unwrap()
}

/// A rustls client config trusting `ca`, with an optional client identity.
fn raw_config(ca: &Path, identity: Option<(&[u8], &[u8])>, alpn: &[&[u8]]) -> rustls::ClientConfig {
    let mut roots = rustls::RootCertStore::empty();
    for cert in tls::certs(&read(ca), "ca").unwrap() {
        roots.add(cert).unwrap();
    }
    let builder = rustls::ClientConfig::builder_with_provider(tls::provider())
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots);
    let mut config = match identity {
        None => builder.with_no_client_auth(),
        Some((cert, key)) => builder
            .with_client_auth_cert(tls::certs(cert, "cert").unwrap(), tls::private_key(key, "key").unwrap())
            .unwrap(),
    };
    config.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
    config
}

/// Connects with tokio-rustls, sends `GET /status` over HTTP/1.1 and reads
/// the whole answer. Refusal shows as an error at the handshake or at the
/// first read (TLS 1.3 reports client-certificate refusal after the
/// client's side of the handshake is done), or as an empty answer.
async fn raw_get(addr: SocketAddr, config: rustls::ClientConfig) -> std::io::Result<Vec<u8>> {
    let attempt = async {
        let tcp = TcpStream::connect(addr).await?;
        let name = ServerName::try_from("localhost").unwrap();
        let mut stream = tokio_rustls::TlsConnector::from(Arc::new(config)).connect(name, tcp).await?;
        stream.write_all(b"GET /status HTTP/1.1\r\nhost: localhost\r\nconnection: close\r\n\r\n").await?;
        let mut answer = Vec::new();
        stream.read_to_end(&mut answer).await?;
        Ok(answer)
    };
    tokio::time::timeout(STEP, attempt).await.expect("raw TLS exchange hung")
}

/// The rustls error inside an I/O error from tokio-rustls, if any.
fn rustls_error(e: &std::io::Error) -> Option<&rustls::Error> {
    e.get_ref().and_then(|inner| inner.downcast_ref::<rustls::Error>())
}

/// Asserts no HTTP answer came back.
fn assert_refused(result: std::io::Result<Vec<u8>>, what: &str) {
    if let Ok(answer) = result {
        assert!(answer.is_empty(), "{what}: expected refusal, got: {:?}", String::from_utf8_lossy(&answer));
    }
}

/// Asserts the TLS layer refused the exchange with one of `alerts`.
fn assert_tls_refused(result: std::io::Result<Vec<u8>>, alerts: &[rustls::AlertDescription]) {
    match result {
        Ok(answer) => panic!("expected a TLS refusal, got: {:?}", String::from_utf8_lossy(&answer)),
        Err(e) => match rustls_error(&e) {
            Some(rustls::Error::AlertReceived(alert)) if alerts.contains(alert) => {}
            _ => panic!("expected a TLS alert in {alerts:?}, got: {e}"),
        },
    }
}

/// Asserts the JSON error shape, returning the `error` object.
async fn assert_error_shape(response: reqwest::Response, status: u16, code: &str) -> Value {
    assert_eq!(response.status().as_u16(), status);
    let content_type = response.headers().get("content-type").map(|v| v.to_str().unwrap().to_owned());
    assert_eq!(content_type.as_deref(), Some("application/json"));
    let body: Value = response.json().await.unwrap();
    let parsed: ErrorBody = serde_json::from_value(body.clone()).expect("error shape");
    assert_eq!(parsed.error.code, code, "{body}");
    assert!(!parsed.error.message.is_empty(), "{body}");
    assert_eq!(body.as_object().unwrap().len(), 1, "only `error` at the top: {body}");
    body["error"].clone()
}

#[tokio::test]
async fn admin_certificate_reaches_every_route() {
    let node = TestNode::start().await;
    let admin = node.admin();

    let me: Caller = admin.get_json("/status").await.unwrap();
    assert_eq!(me, Caller { name: "admin".into(), role: Role::Admin });
    let me: Caller = admin.get_json("/hr").await.unwrap();
    assert_eq!(me.role, Role::Admin);
    let me: Caller = admin.post_json("/admin", &json!({})).await.unwrap();
    assert_eq!(me.role, Role::Admin);
    let echoed: Value = admin.post_json("/echo", &json!({"a": [1, 2, 3]})).await.unwrap();
    assert_eq!(echoed, json!({"caller": {"name": "admin", "role": "admin"}, "body": {"a": [1, 2, 3]}}));

    node.stop().await.unwrap();
}

#[tokio::test]
async fn roles_limit_routes() {
    let node = TestNode::start().await;

    let viewer = node.client_for("viewer", Role::ReadOnly);
    let me: Caller = viewer.get_json("/status").await.unwrap();
    assert_eq!(me, Caller { name: "viewer".into(), role: Role::ReadOnly });
    let _: Value = viewer.post_json("/echo", &json!(1)).await.unwrap();
    for refused in [viewer.get_json::<Value>("/hr").await, viewer.post_json::<_, Value>("/admin", &json!({})).await] {
        match refused {
            Err(ClientError::Status { status, code, message, .. }) => {
                assert_eq!(status.as_u16(), 403);
                assert_eq!(code, "forbidden");
                assert!(message.contains("role"), "{message}");
            }
            other => panic!("expected 403, got {other:?}"),
        }
    }

    let hr = node.client_for("hr-desk-1", Role::Hr);
    let me: Caller = hr.get_json("/hr").await.unwrap();
    assert_eq!(me, Caller { name: "hr-desk-1".into(), role: Role::Hr });
    let refused = hr.post_json::<_, Value>("/admin", &json!({})).await.unwrap_err();
    assert_eq!(refused.code(), Some("forbidden"), "{refused}");
    if let ClientError::Status { details, .. } = &refused {
        assert_eq!(details, &Some(json!({"required": "admin", "role": "hr"})));
    }

    node.stop().await.unwrap();
}

#[tokio::test]
async fn forbidden_is_json() {
    let node = TestNode::start().await;
    let (cert, key) = Pki::issue_client(node.pki.dir(), "viewer", Role::ReadOnly).unwrap();
    let config = tls::client_config(&read(node.pki.ca_cert()), &read(cert), &read(key)).unwrap();
    let raw = reqwest::Client::builder().use_preconfigured_tls(config).no_proxy().build().unwrap();
    let response = raw.post(format!("{}/admin", node.url())).send().await.unwrap();
    let error = assert_error_shape(response, 403, "forbidden").await;
    assert_eq!(error["details"]["required"], "admin");
    node.stop().await.unwrap();
}

#[tokio::test]
async fn no_client_certificate_is_refused_at_tls() {
    let node = TestNode::start().await;
    let ca = node.pki.ca_cert();

    // Control: the same raw exchange with the admin certificate is served.
    let admin = (read(node.pki.admin_cert()), read(node.pki.admin_key()));
    let answer = raw_get(node.addr, raw_config(&ca, Some((&admin.0, &admin.1)), &[b"http/1.1"])).await.unwrap();
    assert!(answer.starts_with(b"HTTP/1.1 200"), "{}", String::from_utf8_lossy(&answer));

    let result = raw_get(node.addr, raw_config(&ca, None, &[b"http/1.1"])).await;
    assert_tls_refused(result, &[AlertDescription::CertificateRequired, AlertDescription::HandshakeFailure]);
    node.stop().await.unwrap();
}

/// Found by testssl.sh ("NOT a cipher order configured"): the server took
/// the first suite the client listed. It must choose in its own order
/// (strongest first), for TLS 1.3 and TLS 1.2 alike.
#[tokio::test]
async fn server_picks_the_cipher_suite_in_its_own_order() {
    use rustls::CipherSuite;
    let node = TestNode::start().await;
    let admin = (read(node.pki.admin_cert()), read(node.pki.admin_key()));
    let cases = [
        (&rustls::version::TLS13, CipherSuite::TLS13_AES_256_GCM_SHA384),
        (&rustls::version::TLS12, CipherSuite::TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384),
    ];
    for (version, expected) in cases {
        // A client that prefers the server's last choices.
        let mut provider = (*tls::provider()).clone();
        provider.cipher_suites.reverse();
        let mut roots = rustls::RootCertStore::empty();
        for cert in tls::certs(&read(node.pki.ca_cert()), "ca").unwrap() {
            roots.add(cert).unwrap();
        }
        let config = rustls::ClientConfig::builder_with_provider(Arc::new(provider))
            .with_protocol_versions(&[version])
            .unwrap()
            .with_root_certificates(roots)
            .with_client_auth_cert(tls::certs(&admin.0, "cert").unwrap(), tls::private_key(&admin.1, "key").unwrap())
            .unwrap();
        let tcp = TcpStream::connect(node.addr).await.unwrap();
        let name = ServerName::try_from("localhost").unwrap();
        let connect = tokio_rustls::TlsConnector::from(Arc::new(config)).connect(name, tcp);
        let stream = tokio::time::timeout(STEP, connect).await.expect("handshake hung").unwrap();
        let suite = stream.get_ref().1.negotiated_cipher_suite().unwrap().suite();
        assert_eq!(suite, expected, "{version:?}: the client's preference won");
    }
    node.stop().await.unwrap();
}

#[tokio::test]
async fn certificate_from_another_ca_is_refused_at_tls() {
    let node = TestNode::start().await;
    let other_dir = tempfile::tempdir().unwrap();
    let other = init_pki(other_dir.path());

    // Trusts this node's CA, presents the other node's admin certificate.
    // Same org, so the same CA name: webpki finds the issuer by name and the
    // signature check fails (DecryptError).
    let (cert, key) = (read(other.admin_cert()), read(other.admin_key()));
    let result = raw_get(node.addr, raw_config(&node.pki.ca_cert(), Some((&cert, &key)), &[b"http/1.1"])).await;
    assert_tls_refused(result, &[AlertDescription::DecryptError, AlertDescription::BadCertificate]);

    // Another org's CA: no issuer of that name at all.
    let third_dir = tempfile::tempdir().unwrap();
    let third = Pki::init(third_dir.path(), "RJ1", &names(), false).unwrap();
    let (cert, key) = (read(third.admin_cert()), read(third.admin_key()));
    let result = raw_get(node.addr, raw_config(&node.pki.ca_cert(), Some((&cert, &key)), &[b"http/1.1"])).await;
    assert_tls_refused(result, &[AlertDescription::UnknownCA, AlertDescription::BadCertificate]);

    // The API client says what is wrong.
    let client = Client::from_files(&node.url(), node.pki.ca_cert(), other.admin_cert(), other.admin_key()).unwrap();
    match client.get_json::<Value>("/status").await {
        Err(e @ ClientError::Tls { .. }) => assert!(e.to_string().contains("client certificate"), "{e}"),
        other => panic!("expected a TLS error, got {other:?}"),
    }

    // And a client that does not trust the node's CA refuses the node.
    let client = Client::from_files(&node.url(), other.ca_cert(), node.pki.admin_cert(), node.pki.admin_key()).unwrap();
    match client.get_json::<Value>("/status").await {
        Err(e @ ClientError::Tls { .. }) => assert!(e.to_string().contains("CA file"), "{e}"),
        other => panic!("expected a TLS error, got {other:?}"),
    }

    node.stop().await.unwrap();
}

#[tokio::test]
async fn certificate_without_role_is_refused() {
    let node = TestNode::start().await;

    // Signed by the node CA, right key usage, but no OU (role).
    let ca_key = rcgen::KeyPair::from_pem(&std::fs::read_to_string(node.pki.ca_key()).unwrap()).unwrap();
    let issuer =
        rcgen::Issuer::from_ca_cert_pem(&std::fs::read_to_string(node.pki.ca_cert()).unwrap(), ca_key).unwrap();
    let key = rcgen::KeyPair::generate().unwrap();
    let mut params = rcgen::CertificateParams::default();
    params.distinguished_name = rcgen::DistinguishedName::new();
    params.distinguished_name.push(rcgen::DnType::CommonName, "no-role");
    params.extended_key_usages = vec![rcgen::ExtendedKeyUsagePurpose::ClientAuth];
    let cert = params.signed_by(&key, &issuer).unwrap();
    let (cert_pem, key_pem) = (cert.pem(), key.serialize_pem());

    let result = raw_get(
        node.addr,
        raw_config(&node.pki.ca_cert(), Some((cert_pem.as_bytes(), key_pem.as_bytes())), &[b"http/1.1"]),
    )
    .await;
    assert_refused(result, "certificate without a role");

    let client = Client::new(&node.url(), &read(node.pki.ca_cert()), cert_pem.as_bytes(), key_pem.as_bytes()).unwrap();
    let err = client.get_json::<Value>("/status").await.unwrap_err();
    assert!(matches!(err, ClientError::Closed { .. }), "{err:?}");

    node.stop().await.unwrap();
}

#[tokio::test]
async fn server_offers_h2_and_http11() {
    let node = TestNode::start().await;
    let (cert, key) = (read(node.pki.admin_cert()), read(node.pki.admin_key()));
    let config = raw_config(&node.pki.ca_cert(), Some((&cert, &key)), &[b"h2", b"http/1.1"]);
    let tcp = TcpStream::connect(node.addr).await.unwrap();
    let name = ServerName::try_from("localhost").unwrap();
    let stream = tokio::time::timeout(STEP, tokio_rustls::TlsConnector::from(Arc::new(config)).connect(name, tcp))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(stream.get_ref().1.alpn_protocol(), Some(&b"h2"[..]));
    drop(stream);
    node.stop().await.unwrap();
}

#[tokio::test]
async fn body_over_the_limit_is_413_json() {
    let node = TestNode::start().await;
    let raw = node.raw_admin();

    // A JSON body just over the default limit, on a Json route.
    let big = format!("\"{}\"", "x".repeat(DEFAULT_BODY_LIMIT));
    let response = raw
        .post(format!("{}/echo", node.url()))
        .header("content-type", "application/json")
        .body(big.clone())
        .send()
        .await
        .unwrap();
    assert_error_shape(response, 413, "payload-too-large").await;

    // The same body is fine on a route that raised its limit.
    let response = raw.post(format!("{}/import", node.url())).body(big.clone()).send().await.unwrap();
    assert_eq!(response.status().as_u16(), 200);
    assert_eq!(response.json::<Value>().await.unwrap(), json!({ "len": big.len() }));

    // A raw-bytes route with a lower limit: axum's plain-text rejection is
    // rewritten into the JSON shape too.
    let response = raw.post(format!("{}/small", node.url())).body(vec![b'a'; 2048]).send().await.unwrap();
    assert_error_shape(response, 413, "payload-too-large").await;

    // The client reports it as a Status error.
    let err = node.admin().post_bytes::<Value>("/small", "text/csv", vec![b'a'; 2048]).await.unwrap_err();
    assert_eq!(err.status().map(|s| s.as_u16()), Some(413));
    assert_eq!(err.code(), Some("payload-too-large"));

    node.stop().await.unwrap();
}

#[tokio::test]
async fn bad_json_bodies_are_json_errors() {
    let node = TestNode::start().await;
    let raw = node.raw_admin();
    let post = |path: &str, content_type: Option<&str>, body: &'static str| {
        let mut request = raw.post(format!("{}{path}", node.url())).body(body);
        if let Some(ct) = content_type {
            request = request.header("content-type", ct);
        }
        request.send()
    };

    let response = post("/echo", Some("application/json"), "{not json").await.unwrap();
    assert_error_shape(response, 400, "malformed-json").await;
    let response = post("/echo", None, "{}").await.unwrap();
    assert_error_shape(response, 415, "unsupported-media-type").await;
    let response = post("/typed", Some("application/json"), r#"{"n": "seven"}"#).await.unwrap();
    assert_error_shape(response, 422, "invalid-body").await;
    let response = post("/typed", Some("application/json"), r#"{"n": 7}"#).await.unwrap();
    assert_eq!(response.status().as_u16(), 200);

    node.stop().await.unwrap();
}

#[tokio::test]
async fn unknown_routes_and_methods_are_json_errors() {
    let node = TestNode::start().await;
    let raw = node.raw_admin();

    let response = raw.get(format!("{}/no/such/route", node.url())).send().await.unwrap();
    let error = assert_error_shape(response, 404, "not-found").await;
    assert!(error["message"].as_str().unwrap().contains("/no/such/route"), "{error}");

    let response = raw.delete(format!("{}/status", node.url())).send().await.unwrap();
    assert!(response.headers().contains_key("allow"));
    assert_error_shape(response, 405, "method-not-allowed").await;

    // A handler's own ApiError keeps its code and details.
    let response = raw.get(format!("{}/conflict", node.url())).send().await.unwrap();
    let error = assert_error_shape(response, 409, "conflict").await;
    assert_eq!(error["details"], json!({ "id": "x" }));

    let err = node.admin().get_json::<Value>("/nope").await.unwrap_err();
    assert_eq!(err.code(), Some("not-found"), "{err}");

    node.stop().await.unwrap();
}

#[tokio::test]
async fn client_reports_a_node_that_is_not_running() {
    let dir = tempfile::tempdir().unwrap();
    let pki = init_pki(dir.path());
    // A port that was just free.
    let port = TcpListener::bind("127.0.0.1:0").await.unwrap().local_addr().unwrap().port();
    let client =
        Client::from_files(&format!("https://127.0.0.1:{port}"), pki.ca_cert(), pki.admin_cert(), pki.admin_key())
            .unwrap();
    let err = client.get_json::<Value>("/status").await.unwrap_err();
    assert!(matches!(err, ClientError::Connect { .. }), "{err:?}");
    assert!(err.to_string().contains("is staffpass-node running"), "{err}");

    let err =
        Client::from_files("https://127.0.0.1:1", dir.path().join("missing.pem"), pki.admin_cert(), pki.admin_key())
            .unwrap_err();
    assert!(matches!(err, ClientError::File { ref path, .. } if path.ends_with("missing.pem")), "{err:?}");
}

#[cfg(unix)]
fn mode(path: &Path) -> u32 {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(path).unwrap().permissions().mode() & 0o777
}

#[cfg(unix)]
#[test]
fn init_writes_private_keys_and_refuses_to_overwrite() {
    let dir = tempfile::tempdir().unwrap();
    let tls_dir = dir.path().join("tls");
    let pki = init_pki(&tls_dir);

    assert_eq!(mode(&tls_dir), 0o700);
    for key in [pki.ca_key(), pki.server_key(), pki.admin_key()] {
        assert_eq!(mode(&key), 0o600, "{}", key.display());
    }
    for cert in [pki.ca_cert(), pki.server_cert(), pki.admin_cert()] {
        assert_eq!(mode(&cert), 0o644, "{}", cert.display());
    }
    let files = |dir: &Path| -> Vec<PathBuf> {
        let mut names: Vec<_> = std::fs::read_dir(dir).unwrap().map(|e| e.unwrap().path()).collect();
        names.sort();
        names
    };
    assert_eq!(files(&tls_dir).len(), 6, "no temporary files left: {:?}", files(&tls_dir));

    let ca_before = read(pki.ca_cert());
    match Pki::init(&tls_dir, ORG, &names(), false) {
        Err(e @ tls::Error::Exists { .. }) => assert!(e.to_string().contains("--force"), "{e}"),
        other => panic!("expected Exists, got {other:?}"),
    }
    assert_eq!(read(pki.ca_cert()), ca_before, "a refused init must not change the CA");

    Pki::init(&tls_dir, ORG, &names(), true).unwrap();
    assert_ne!(read(pki.ca_cert()), ca_before, "init --force makes a new CA");
    assert_eq!(mode(&pki.ca_key()), 0o600);

    // Client certificates: role in the certificate, key 0600, no overwrite.
    let (cert, key) = Pki::issue_client(&tls_dir, "hr-desk-1", Role::Hr).unwrap();
    assert_eq!(mode(&key), 0o600);
    let der = tls::certs(&read(&cert), "cert").unwrap().remove(0);
    let caller = staffpass_node::api::auth::caller_from_cert(der.as_ref()).unwrap();
    assert_eq!(caller, Caller { name: "hr-desk-1".into(), role: Role::Hr });
    assert!(matches!(Pki::issue_client(&tls_dir, "hr-desk-1", Role::Admin), Err(tls::Error::Exists { .. })));
    assert!(matches!(Pki::issue_client(&tls_dir, "../escape", Role::Admin), Err(tls::Error::InvalidClientName { .. })));

    // Any one existing file blocks init before anything is written.
    let partial = dir.path().join("partial");
    std::fs::create_dir(&partial).unwrap();
    std::fs::write(partial.join(tls::CA_KEY), b"old key").unwrap();
    assert!(matches!(Pki::init(&partial, ORG, &names(), false), Err(tls::Error::Exists { .. })));
    assert_eq!(files(&partial), vec![partial.join(tls::CA_KEY)], "init wrote files before refusing");
    assert_eq!(read(partial.join(tls::CA_KEY)), b"old key");

    // Missing names are refused before anything is written.
    let empty = dir.path().join("empty");
    assert!(matches!(Pki::init(&empty, ORG, &[], false), Err(tls::Error::NoServerNames)));
    assert!(!empty.exists());
}

#[cfg(unix)]
#[test]
fn server_config_refuses_a_key_others_can_read() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    let pki = init_pki(dir.path());
    tls::server_config(pki.dir()).unwrap();
    std::fs::set_permissions(pki.server_key(), std::fs::Permissions::from_mode(0o644)).unwrap();
    match tls::server_config(pki.dir()) {
        Err(e @ tls::Error::KeyPermissions { .. }) => {
            assert!(e.to_string().contains("chmod 600"), "{e}");
        }
        other => panic!("expected KeyPermissions, got {other:?}"),
    }
}

#[test]
fn issue_client_refuses_a_ca_key_that_does_not_match() {
    let a = tempfile::tempdir().unwrap();
    let b = tempfile::tempdir().unwrap();
    let pki_a = init_pki(a.path());
    let pki_b = init_pki(b.path());
    std::fs::copy(pki_b.ca_key(), pki_a.ca_key()).unwrap();
    assert!(matches!(Pki::issue_client(a.path(), "x", Role::Hr), Err(tls::Error::CaKeyMismatch { .. })));
}

#[tokio::test]
async fn shutdown_lets_in_flight_requests_finish() {
    let node = TestNode::start().await;
    let client = node.admin();
    let request = tokio::spawn(async move { client.get_text("/slow").await });
    tokio::time::timeout(STEP, node.slow.started.notified()).await.expect("slow handler never started");

    let slow = node.slow.clone();
    let addr = node.addr;
    let mut stopping = tokio::spawn(node.stop());
    // Shutdown has begun once the listener is closed.
    tokio::time::timeout(STEP, async {
        while TcpStream::connect(addr).await.is_ok() {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    })
    .await
    .expect("listener still open after shutdown was asked for");
    assert!(!stopping.is_finished(), "serve returned with a request in flight");

    // The handler finishes after shutdown began, and its answer arrives.
    slow.release.notify_one();
    let answer = tokio::time::timeout(STEP, request).await.unwrap().unwrap().unwrap();
    assert_eq!(answer, "done");
    tokio::time::timeout(STEP, &mut stopping).await.unwrap().unwrap().unwrap();
}

#[tokio::test]
async fn shutdown_cuts_requests_after_the_grace_period() {
    let node = TestNode::start_with(Options { shutdown_grace: Duration::from_millis(200), ..Options::default() }).await;
    let client = node.admin();
    let request = tokio::spawn(async move { client.get_text("/slow").await });
    tokio::time::timeout(STEP, node.slow.started.notified()).await.expect("slow handler never started");

    // Never released: serve must still return, and the request fails.
    node.stop().await.unwrap();
    let result = tokio::time::timeout(STEP, request).await.unwrap().unwrap();
    assert!(result.is_err(), "{result:?}");
}

#[tokio::test]
async fn silent_connections_are_closed_after_the_handshake_timeout() {
    let node =
        TestNode::start_with(Options { handshake_timeout: Duration::from_millis(200), ..Options::default() }).await;
    let mut tcp = TcpStream::connect(node.addr).await.unwrap();
    let mut buf = [0u8; 16];
    // Send nothing: the server gives up on the handshake and closes.
    let read = tokio::time::timeout(STEP, tcp.read(&mut buf)).await.expect("server kept a silent connection");
    assert!(matches!(read, Ok(0) | Err(_)), "{read:?}");
    node.stop().await.unwrap();
}

#[tokio::test]
async fn connections_are_bounded() {
    let node = TestNode::start_with(Options { max_connections: 1, ..Options::default() }).await;

    // Hold the only connection slot with an idle, authenticated connection
    // that the server has served (so it counts).
    let held = served_connection(&node).await;

    // A second client waits: it is not served while the slot is taken. This
    // is the one negative check with a fixed wait; a pass can't be a false
    // alarm, only a failure to notice.
    let client = node.admin();
    let mut second = tokio::spawn(async move { client.get_json::<Caller>("/status").await });
    assert!(
        tokio::time::timeout(Duration::from_millis(300), &mut second).await.is_err(),
        "second connection served beyond max_connections"
    );

    // Freeing the slot lets it through.
    drop(held);
    let me = tokio::time::timeout(STEP, second).await.unwrap().unwrap().unwrap();
    assert_eq!(me.role, Role::Admin);
    node.stop().await.unwrap();
}

/// An authenticated connection held open with HTTP/1.1 (the admin certificate).
async fn held_connection(node: &TestNode) -> tokio_rustls::client::TlsStream<TcpStream> {
    let (cert, key) = (read(node.pki.admin_cert()), read(node.pki.admin_key()));
    let config = raw_config(&node.pki.ca_cert(), Some((&cert, &key)), &[b"http/1.1"]);
    let tcp = TcpStream::connect(node.addr).await.unwrap();
    let name = ServerName::try_from("localhost").unwrap();
    tokio_rustls::TlsConnector::from(Arc::new(config)).connect(name, tcp).await.unwrap()
}

/// As [`held_connection`], after one request answered 200 on it: the
/// server has served it, so it is past its handshake.
async fn served_connection(node: &TestNode) -> tokio_rustls::client::TlsStream<TcpStream> {
    let mut held = held_connection(node).await;
    held.write_all(b"GET /status HTTP/1.1\r\nhost: localhost\r\n\r\n").await.unwrap();
    let mut first = [0u8; 12];
    tokio::time::timeout(STEP, held.read_exact(&mut first)).await.unwrap().unwrap();
    assert_eq!(&first, b"HTTP/1.1 200");
    held
}

/// Reads until the server closes the connection (end of stream or error).
async fn closed_by_server(stream: &mut (impl AsyncReadExt + Unpin)) -> bool {
    let mut buf = [0u8; 4096];
    loop {
        match tokio::time::timeout(STEP, stream.read(&mut buf)).await {
            Err(_) => return false,
            Ok(Ok(0)) | Ok(Err(_)) => return true,
            Ok(Ok(_)) => {}
        }
    }
}

#[tokio::test]
async fn a_connection_with_no_request_in_flight_is_closed_after_the_idle_timeout() {
    let node = TestNode::start_with(Options { idle_timeout: Duration::from_millis(200), ..Options::default() }).await;
    let mut held = served_connection(&node).await;
    // Then nothing more is asked: the server hangs up.
    assert!(closed_by_server(&mut held).await, "an idle connection was kept");
    node.stop().await.unwrap();
}

#[tokio::test]
async fn a_client_ip_over_its_cap_is_refused_when_none_of_its_connections_is_handshaking() {
    let node = TestNode::start_with(Options { max_connections_per_ip: 1, ..Options::default() }).await;
    // The IP's only place, taken by a served connection.
    let held = served_connection(&node).await;
    // A second connection from the same IP is closed at once.
    let mut second = TcpStream::connect(node.addr).await.unwrap();
    assert!(closed_by_server(&mut second).await, "a second connection from the IP was kept");
    drop(held);
    node.stop().await.unwrap();
}

#[tokio::test]
async fn a_stalled_handshake_gives_its_place_to_a_newcomer_from_its_ip() {
    let node = TestNode::start_with(Options {
        max_connections_per_ip: 1,
        handshake_timeout: Duration::from_secs(60),
        ..Options::default()
    })
    .await;
    let mut stalled = TcpStream::connect(node.addr).await.unwrap();
    // The admin gets through, and the stalled connection is closed for it.
    let me = tokio::time::timeout(STEP, node.admin().get_json::<Caller>("/status")).await.unwrap().unwrap();
    assert_eq!(me.role, Role::Admin);
    assert!(closed_by_server(&mut stalled).await, "the stalled handshake was kept");
    node.stop().await.unwrap();
}

/// The API's own PKI files, damaged: each is a typed error naming the
/// file, never a panic and never a server that starts half-configured
/// (`TESTING.md`, files).
#[test]
fn damaged_api_pki_files_are_typed_errors_naming_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let pki = init_pki(dir.path());
    tls::server_config(pki.dir()).unwrap();
    let bad_der = b"-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n";
    for (path, bytes) in [
        (pki.ca_cert(), &b"not a certificate"[..]),
        (pki.ca_cert(), &bad_der[..]),
        (pki.server_cert(), &b""[..]),
        (pki.server_cert(), &bad_der[..]),
        (pki.server_key(), &b"not a key"[..]),
    ] {
        let saved = std::fs::read(&path).unwrap();
        std::fs::write(&path, bytes).unwrap();
        match tls::server_config(pki.dir()) {
            Err(e) => assert!(e.to_string().contains(&path.display().to_string()), "{}: {e}", path.display()),
            Ok(_) => panic!("{} accepted with {:?}", path.display(), String::from_utf8_lossy(bytes)),
        }
        std::fs::write(&path, saved).unwrap();
    }
    tls::server_config(pki.dir()).unwrap();

    // The server key of another node: the pair does not match.
    let other = tempfile::tempdir().unwrap();
    std::fs::copy(init_pki(other.path()).server_key(), pki.server_key()).unwrap();
    assert!(matches!(tls::server_config(pki.dir()), Err(tls::Error::Rustls { .. })), "a key of another certificate");
}
