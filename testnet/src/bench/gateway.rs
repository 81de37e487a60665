//! Figure 4: the design a user would otherwise pick, as a benchmark
//! fixture only: a central store-and-forward HTTPS gateway (axum + rustls,
//! JSON). One move: the home signs the bundle, writes it to its outbox
//! (a durable commit) and POSTs it to the gateway; the gateway stores it
//! (durable) and POSTs it to the host; the host verifies it
//! (`verify_bundle`), stores it (durable) and answers with a signed
//! receipt, which the gateway passes back and the home checks and stores
//! (durable). The same durability as a staffpass move, on the same store
//! engine, plus the gateway's own store; the host trusts the gateway's
//! word for who sent it (there is no peer identity to check).

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};
use axum::extract::State;
use axum::routing::post;
use axum::{Json, Router};
use serde::{Deserialize, Serialize};
use staffpass_node::keys::DataKey;
use staffpass_node::store::{Batch, OpenMode, SledStore, Store as _, Tree};
use staffpass_protocol::receipt::{Outcome, Receipt};
use staffpass_protocol::revocation::Revocations;
use staffpass_protocol::roster::{Chain, Change};
use staffpass_protocol::wire::exchange::Request;
use staffpass_protocol::{Bundle, MessageId, Signed, testkit, verify_bundle};
use staffpass_tests::{now, roster};

use super::exchange::{fixture_member, offers_without_copy};
use super::{Row, Sizes, percentile, sorted_ms};

/// A durable record log on the same store a node uses (sled, sealed
/// records, group-committed flushes), so the comparison is between the
/// two designs, not between two storage engines. Figure 2's commit probe
/// writes to one too.
pub(super) struct Log {
    store: SledStore,
    next: std::sync::atomic::AtomicU64,
}

impl Log {
    pub(super) fn open(path: &Path) -> anyhow::Result<Arc<Self>> {
        let store = SledStore::open(path, &DataKey::generate(), OpenMode::Create)
            .with_context(|| format!("opening {}", path.display()))?;
        Ok(Arc::new(Log { store, next: std::sync::atomic::AtomicU64::new(0) }))
    }

    /// Stores `bytes` as one sealed record; returns once it is durable.
    pub(super) fn write(&self, bytes: Vec<u8>) -> anyhow::Result<()> {
        let n = self.next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let mut batch = Batch::default();
        batch.put(Tree::Received, format!("log/{n:016}").into_bytes(), bytes);
        Ok(self.store.commit(batch)?)
    }

    /// [`Log::write`] on the blocking pool (the commit waits for its flush).
    async fn append(self: &Arc<Self>, bytes: Vec<u8>) -> anyhow::Result<()> {
        let me = self.clone();
        tokio::task::spawn_blocking(move || me.write(bytes)).await?
    }
}

#[derive(Serialize, Deserialize)]
struct Forward {
    id: MessageId,
    to: String,
    from_node: staffpass_protocol::NodeId,
    bundle: Bundle,
}

struct Gateway {
    log: Arc<Log>,
    client: reqwest::Client,
    host_url: String,
}

struct Host {
    log: Arc<Log>,
    chain: Chain,
}

type Fail = (axum::http::StatusCode, String);

fn fail(e: impl std::fmt::Display) -> Fail {
    (axum::http::StatusCode::INTERNAL_SERVER_ERROR, e.to_string())
}

async fn gateway_forward(State(g): State<Arc<Gateway>>, Json(f): Json<Forward>) -> Result<Json<Signed<Receipt>>, Fail> {
    g.log.append(serde_json::to_vec(&f).map_err(fail)?).await.map_err(fail)?;
    let resp = g.client.post(&g.host_url).json(&f).send().await.map_err(fail)?;
    let receipt: Signed<Receipt> = resp.error_for_status().map_err(fail)?.json().await.map_err(fail)?;
    Ok(Json(receipt))
}

async fn host_deliver(State(h): State<Arc<Host>>, Json(f): Json<Forward>) -> Result<Json<Signed<Receipt>>, Fail> {
    let me = testkit::org("RJ1");
    let at = now();
    let passport = verify_bundle(&f.bundle, &f.from_node, &me, &h.chain, &Revocations::default(), at)
        .map_err(|r| (axum::http::StatusCode::UNPROCESSABLE_ENTITY, r.to_string()))?;
    h.log.append(serde_json::to_vec(&passport).map_err(fail)?).await.map_err(fail)?;
    let key = testkit::issuer("RJ1", 0);
    let body = Receipt {
        message: f.id,
        receiver: me,
        outcome: Outcome::Received {
            consent: passport.consent,
            credential: passport.credential,
            claims: passport.claims.iter().map(|c| c.kind()).collect(),
        },
        at,
        issuer_key: key.public(),
    };
    Ok(Json(Signed::new(body, |b| key.sign(b))))
}

fn tls() -> anyhow::Result<(Arc<rustls::ServerConfig>, Vec<u8>)> {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let ck = rcgen::generate_simple_self_signed(vec!["127.0.0.1".to_string(), "localhost".to_string()])?;
    let cert = ck.cert.der().clone();
    let key = rustls::pki_types::PrivateKeyDer::Pkcs8(ck.signing_key.serialize_der().into());
    let cfg = rustls::ServerConfig::builder().with_no_client_auth().with_single_cert(vec![cert], key)?;
    Ok((Arc::new(cfg), ck.cert.pem().into_bytes()))
}

/// Serves `router` over HTTPS (tokio-rustls + hyper) until `stop`.
async fn serve(
    router: Router,
    tls: Arc<rustls::ServerConfig>,
    stop: tokio::sync::watch::Receiver<bool>,
) -> anyhow::Result<SocketAddr> {
    use hyper_util::rt::{TokioExecutor, TokioIo};
    use hyper_util::service::TowerToHyperService;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    let acceptor = tokio_rustls::TlsAcceptor::from(tls);
    let mut stop = stop;
    tokio::spawn(async move {
        loop {
            let (tcp, _) = tokio::select! {
                a = listener.accept() => match a { Ok(a) => a, Err(_) => continue },
                _ = stop.wait_for(|s| *s) => return,
            };
            let _ = tcp.set_nodelay(true);
            let (acceptor, router) = (acceptor.clone(), router.clone());
            tokio::spawn(async move {
                let Ok(stream) = acceptor.accept(tcp).await else { return };
                let service = TowerToHyperService::new(router);
                let _ = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new())
                    .serve_connection(TokioIo::new(stream), service)
                    .await;
            });
        }
    });
    Ok(addr)
}

/// Runs figure 4; `staffpass_p50` is figure 2's move p50 (ms).
pub async fn run(sizes: &Sizes, staffpass_p50: Option<f64>) -> anyhow::Result<Vec<Row>> {
    let dir = tempfile::tempdir()?;
    let mut r = roster("london-mou");
    r.push(Change::AddMember(fixture_member("RJZ")));
    r.push(Change::AddMember(fixture_member("RJ1")));
    let (server_tls, ca_pem) = tls()?;
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let client = || -> anyhow::Result<reqwest::Client> {
        Ok(reqwest::Client::builder()
            .use_rustls_tls()
            .add_root_certificate(reqwest::Certificate::from_pem(&ca_pem)?)
            .timeout(Duration::from_secs(30))
            .build()?)
    };
    let host = Arc::new(Host { log: Log::open(&dir.path().join("host.log"))?, chain: r.chain.clone() });
    let host_addr = serve(
        Router::new().route("/v1/deliver", post(host_deliver)).with_state(host),
        server_tls.clone(),
        stop_rx.clone(),
    )
    .await?;
    let gw = Arc::new(Gateway {
        log: Log::open(&dir.path().join("gateway.log"))?,
        client: client()?,
        host_url: format!("https://127.0.0.1:{}/v1/deliver", host_addr.port()),
    });
    let gw_addr =
        serve(Router::new().route("/v1/forward", post(gateway_forward)).with_state(gw), server_tls, stop_rx).await?;
    let home_log = Log::open(&dir.path().join("home.log"))?;
    let home = client()?;
    let url = format!("https://127.0.0.1:{}/v1/forward", gw_addr.port());
    let rj1 = testkit::issuer("RJ1", 0).public();

    let warmup = 10;
    let mut lat = Vec::with_capacity(sizes.moves);
    for i in 0..sizes.moves + warmup {
        // Signing the bundle is part of the move on both sides.
        let t = Instant::now();
        let Some(Request::Offer { id, bundle }) = offers_without_copy("RJZ", "RJ1", 1).pop() else {
            bail!("fixture is not an offer")
        };
        let f = Forward { id, to: "RJ1".into(), from_node: testkit::node("RJZ"), bundle: *bundle };
        home_log.append(serde_json::to_vec(&f)?).await?;
        let resp = home.post(&url).json(&f).send().await?.error_for_status()?;
        let receipt: Signed<Receipt> = resp.json().await?;
        if rj1.verify(&receipt.body, &receipt.signature).is_err() || receipt.body.message != id {
            bail!("gateway returned a receipt that does not verify");
        }
        home_log.append(serde_json::to_vec(&receipt)?).await?;
        if i >= warmup {
            lat.push(t.elapsed());
        }
    }
    let _ = stop_tx.send(true);
    let ms = sorted_ms(&lat);
    let (p50, p99) = (percentile(&ms, 50.0), percentile(&ms, 99.0));
    let n = sizes.moves;
    let mut rows = Vec::new();
    match staffpass_p50 {
        Some(ours) => rows.push(
            Row::new(
                "4 gateway",
                &format!("staffpass move p50 (figure 2) vs central HTTPS gateway p50 ({n} moves)"),
                ours,
                "ms",
            )
            .baseline(p50, "gateway p50")
            .target("staffpass lower", ours < p50),
        ),
        None => rows.push(Row::new("4 gateway", "central HTTPS gateway p50 (figure 2 not run)", p50, "ms")),
    }
    rows.push(Row::new("4 gateway", &format!("central HTTPS gateway p99 ({n} moves)"), p99, "ms"));
    Ok(rows)
}
