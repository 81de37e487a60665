//! Figures 2 and 3: a move between two real nodes on loopback (consent
//! granted on the home node → signed receipt stored there), beside a bare
//! libp2p request-response round trip of the same sizes on the same
//! transport and one 4 KiB fsync on the same disk; then receiver
//! throughput with 64 offers in flight from several senders.

use std::collections::BTreeSet;
use std::io::Write as _;
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};
use futures::StreamExt as _;
use libp2p::request_response::{self, ProtocolSupport};
use libp2p::swarm::SwarmEvent;
use libp2p::{Multiaddr, PeerId, StreamProtocol, Swarm, identity, noise, tcp, yamux};
use staffpass_api::consents::ConsentRequest;
use staffpass_api::staff::{ImportFormat, ImportQuery};
use staffpass_node::exchange::records::ConsentState;
use staffpass_node::network::codec::ExchangeCodec;
use staffpass_protocol::claims::{ClaimKind, CstfSubject, Vaccine};
use staffpass_protocol::receipt::{Outcome as ReceiptOutcome, Receipt};
use staffpass_protocol::roster::{Change, MemberSpec, MoveKind};
use staffpass_protocol::testkit;
use staffpass_protocol::wire::exchange::{self, Request, Response};
use staffpass_protocol::{Bundle, ConsentId, CredentialId, MessageId, Signed, Timestamp};
use staffpass_tests::{TestNode, add_members, now, roster, staff_csv, submit};

use super::{Row, Sizes, percentile, sorted_ms};

/// Figures 2-3 rows and the staffpass p50 for figure 4.
pub struct Outcome {
    /// Table rows.
    pub rows: Vec<Row>,
    /// Move latency p50, ms.
    pub p50_ms: f64,
}

/// The claims every benchmark move shares (5 of 14, as in figure 1).
pub fn five_claims() -> BTreeSet<ClaimKind> {
    [
        ClaimKind::Identity,
        ClaimKind::Dbs,
        ClaimKind::Training(CstfSubject::FireSafety),
        ClaimKind::Training(CstfSubject::InfectionPreventionControl),
        ClaimKind::Immunisation(Vaccine::HepatitisB),
    ]
    .into_iter()
    .collect()
}

/// Sender organisations for the throughput run (bare peers with fixture keys).
pub fn sender_codes(n: usize) -> Vec<String> {
    (0..n).map(|i| format!("S{i:03}")).collect()
}

/// A roster member for a fixture organisation (testkit keys, no address).
pub fn fixture_member(code: &str) -> MemberSpec {
    MemberSpec {
        org: testkit::org(code),
        name: format!("{code} bench trust"),
        issuer_keys: vec![testkit::issuer(code, 0).public()],
        nodes: vec![testkit::node(code)],
        addresses: vec![],
    }
}

/// `n` valid offers from fixture org `from` to `to`, signed on the real
/// clock, each with the standard-form copy a node sends (one SD-JWT VC
/// presentation fits them all: it names no id).
pub fn offers(from: &str, to: &str, n: usize) -> Vec<Request> {
    let key = testkit::issuer(from, 0);
    offers_without_copy(from, to, n)
        .into_iter()
        .map(|r| match r {
            Request::Offer { id, bundle } => {
                let presentation = presentation_of(&bundle, &key);
                Request::PresentedOffer { id, bundle, presentation }
            }
            other => other,
        })
        .collect()
}

/// The SD-JWT VC presentation a home sends with `bundle`.
pub fn presentation_of(bundle: &Bundle, key: &staffpass_protocol::keys::IssuerSecretKey) -> String {
    let (cred, consent) = (&bundle.credential.body, bundle.consent.consent());
    let claims: Vec<_> = bundle.disclosures.iter().map(|d| d.claim.clone()).collect();
    let vc = staffpass_protocol::sdjwt::Vc {
        iss: "https://staffpass.bench.invalid",
        iat: cred.issued_at,
        exp: cred.expires_at.min(consent.not_after),
        sub: &cred.subject,
        cnf: consent.staff_key.as_ref(),
        status: None,
        claims: &claims,
    };
    let mut rng = rand::rng();
    staffpass_protocol::sdjwt::issue(key, &vc, &mut || {
        let mut salt = [0u8; 16];
        rand::Rng::fill_bytes(&mut rng, &mut salt);
        salt
    })
}

/// As [`offers`], without the standard-form copy (as an older node sends).
pub fn offers_without_copy(from: &str, to: &str, n: usize) -> Vec<Request> {
    let key = testkit::issuer(from, 0);
    let mut parts = testkit::bundle_parts();
    parts.disclose = five_claims();
    let at = now().plus_secs(-60);
    parts.credential.issuer = testkit::org(from);
    parts.credential.issued_at = at;
    parts.credential.expires_at = at.plus_days(365);
    parts.consent.home = testkit::org(from);
    parts.consent.receiver = testkit::org(to);
    parts.consent.claims = five_claims();
    parts.consent.not_before = at;
    parts.consent.not_after = at.plus_days(30);
    parts.consent.issued_at = at;
    let mut rng = rand::rng();
    (0..n)
        .map(|_| {
            parts.credential.id = CredentialId::random(&mut rng);
            parts.consent.id = ConsentId::random(&mut rng);
            let bundle: Bundle = parts.build(&key);
            Request::Offer { id: MessageId::random(&mut rng), bundle: Box::new(bundle) }
        })
        .collect()
}

/// A libp2p key for fixture org `code` (its roster node id).
pub fn fixture_keypair(code: &str) -> anyhow::Result<identity::Keypair> {
    identity::Keypair::ed25519_from_bytes(testkit::node_secret(code)).context("fixture node key")
}

/// A bare peer speaking the exchange codec, on the node's transports.
pub fn exchange_peer(key: identity::Keypair) -> anyhow::Result<Swarm<request_response::Behaviour<ExchangeCodec>>> {
    let proto = [(StreamProtocol::new(exchange::PROTOCOL), ProtocolSupport::Outbound)];
    let cfg = request_response::Config::default()
        .with_request_timeout(Duration::from_secs(60))
        .with_max_concurrent_streams(256);
    Ok(libp2p::SwarmBuilder::with_existing_identity(key)
        .with_tokio()
        .with_tcp(
            tcp::Config::default().nodelay(true),
            (libp2p::tls::Config::new, noise::Config::new),
            yamux::Config::default,
        )?
        .with_behaviour(|_| request_response::Behaviour::new(proto, cfg))?
        .with_swarm_config(|c| c.with_idle_connection_timeout(Duration::from_secs(3600)))
        .build())
}

/// Dials `addr` and waits for the connection.
pub async fn connect<B: libp2p::swarm::NetworkBehaviour>(
    swarm: &mut Swarm<B>,
    addr: &Multiaddr,
) -> anyhow::Result<PeerId> {
    swarm.dial(addr.clone())?;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    loop {
        let ev = tokio::time::timeout_at(deadline, swarm.select_next_some()).await.context("timed out dialling")?;
        match ev {
            SwarmEvent::ConnectionEstablished { peer_id, .. } => return Ok(peer_id),
            SwarmEvent::OutgoingConnectionError { error, .. } => bail!("dial failed: {error}"),
            _ => {}
        }
    }
}

/// Sends `offers` to `peer` keeping `window` in flight; returns how many
/// were receipted as received.
pub async fn drive(
    swarm: &mut Swarm<request_response::Behaviour<ExchangeCodec>>,
    peer: PeerId,
    offers: Vec<Request>,
    window: usize,
) -> anyhow::Result<usize> {
    let total = offers.len();
    let mut queue = offers.into_iter();
    let mut in_flight = 0usize;
    let (mut done, mut received) = (0usize, 0usize);
    // What is in flight, to send again if the node drops it unanswered
    // (as the outbox does: a node over a peer's rate answers nothing).
    let mut sent: std::collections::HashMap<request_response::OutboundRequestId, Request> =
        std::collections::HashMap::new();
    let mut retries = 0usize;
    for r in queue.by_ref().take(window) {
        let id = swarm.behaviour_mut().send_request(&peer, r.clone());
        sent.insert(id, r);
        in_flight += 1;
    }
    while done < total {
        let ev = tokio::time::timeout(Duration::from_secs(60), swarm.select_next_some())
            .await
            .context("no answer in 60 s")?;
        match ev {
            SwarmEvent::Behaviour(request_response::Event::Message {
                message: request_response::Message::Response { response, request_id, .. },
                ..
            }) => {
                sent.remove(&request_id);
                done += 1;
                in_flight -= 1;
                if matches!(response.receipt.body.outcome, ReceiptOutcome::Received { .. }) {
                    received += 1;
                }
            }
            SwarmEvent::Behaviour(request_response::Event::OutboundFailure { error, request_id, .. }) => {
                let Some(r) = sent.remove(&request_id) else { bail!("offer failed: {error}") };
                retries += 1;
                if retries > 10 * total.max(1) {
                    bail!("offer failed: {error} (after {retries} retries)");
                }
                tokio::time::sleep(Duration::from_millis(50)).await;
                let id = swarm.behaviour_mut().send_request(&peer, r.clone());
                sent.insert(id, r);
                continue;
            }
            SwarmEvent::ConnectionClosed { .. } => bail!("connection closed"),
            _ => continue,
        }
        if let Some(r) = queue.next() {
            let id = swarm.behaviour_mut().send_request(&peer, r.clone());
            sent.insert(id, r);
            in_flight += 1;
        }
    }
    let _ = in_flight;
    Ok(received)
}

/// Bytes as they are, length-prefixed (the bare baseline's codec).
#[derive(Clone, Default)]
pub struct BytesCodec;

impl request_response::Codec for BytesCodec {
    type Protocol = StreamProtocol;
    type Request = Vec<u8>;
    type Response = Vec<u8>;

    async fn read_request<T: futures::AsyncRead + Unpin + Send>(
        &mut self,
        _: &StreamProtocol,
        io: &mut T,
    ) -> std::io::Result<Vec<u8>> {
        read_frame(io).await
    }
    async fn read_response<T: futures::AsyncRead + Unpin + Send>(
        &mut self,
        _: &StreamProtocol,
        io: &mut T,
    ) -> std::io::Result<Vec<u8>> {
        read_frame(io).await
    }
    async fn write_request<T: futures::AsyncWrite + Unpin + Send>(
        &mut self,
        _: &StreamProtocol,
        io: &mut T,
        req: Vec<u8>,
    ) -> std::io::Result<()> {
        write_frame(io, &req).await
    }
    async fn write_response<T: futures::AsyncWrite + Unpin + Send>(
        &mut self,
        _: &StreamProtocol,
        io: &mut T,
        res: Vec<u8>,
    ) -> std::io::Result<()> {
        write_frame(io, &res).await
    }
}

async fn read_frame<T: futures::AsyncRead + Unpin + Send>(io: &mut T) -> std::io::Result<Vec<u8>> {
    use futures::AsyncReadExt as _;
    let mut len = [0u8; 4];
    io.read_exact(&mut len).await?;
    let len = u32::from_be_bytes(len) as usize;
    if len > 1 << 20 {
        return Err(std::io::Error::new(std::io::ErrorKind::InvalidData, "frame too large"));
    }
    let mut v = vec![0u8; len];
    io.read_exact(&mut v).await?;
    Ok(v)
}

async fn write_frame<T: futures::AsyncWrite + Unpin + Send>(io: &mut T, b: &[u8]) -> std::io::Result<()> {
    use futures::AsyncWriteExt as _;
    io.write_all(&(b.len() as u32).to_be_bytes()).await?;
    io.write_all(b).await?;
    io.close().await
}

fn bytes_swarm(support: ProtocolSupport) -> anyhow::Result<Swarm<request_response::Behaviour<BytesCodec>>> {
    let proto = [(StreamProtocol::new("/staffpass-bench/bytes/1"), support)];
    let cfg = request_response::Config::default().with_request_timeout(Duration::from_secs(30));
    Ok(libp2p::SwarmBuilder::with_new_identity()
        .with_tokio()
        .with_tcp(
            tcp::Config::default().nodelay(true),
            (libp2p::tls::Config::new, noise::Config::new),
            yamux::Config::default,
        )?
        .with_behaviour(|_| request_response::Behaviour::new(proto, cfg))?
        .with_swarm_config(|c| c.with_idle_connection_timeout(Duration::from_secs(3600)))
        .build())
}

/// Round trips of `req_len` / `resp_len` bytes over TCP+TLS+yamux on
/// loopback (the node's first transport), sequentially.
pub async fn bare_round_trips(req_len: usize, resp_len: usize, n: usize) -> anyhow::Result<Vec<Duration>> {
    let mut server = bytes_swarm(ProtocolSupport::Inbound)?;
    server.listen_on("/ip4/127.0.0.1/tcp/0".parse()?)?;
    let addr = tokio::time::timeout(Duration::from_secs(10), async {
        loop {
            if let SwarmEvent::NewListenAddr { address, .. } = server.select_next_some().await {
                break address;
            }
        }
    })
    .await
    .context("the bare server did not start listening in 10 s")?;
    let (stop_tx, mut stop_rx) = tokio::sync::oneshot::channel::<()>();
    let response = vec![7u8; resp_len];
    let serve = tokio::spawn(async move {
        loop {
            tokio::select! {
                ev = server.select_next_some() => {
                    if let SwarmEvent::Behaviour(request_response::Event::Message {
                        message: request_response::Message::Request { channel, .. }, ..
                    }) = ev {
                        let _ = server.behaviour_mut().send_response(channel, response.clone());
                    }
                }
                _ = &mut stop_rx => return,
            }
        }
    });
    let mut client = bytes_swarm(ProtocolSupport::Outbound)?;
    let peer = connect(&mut client, &addr).await?;
    let mut out = Vec::with_capacity(n);
    let request = vec![9u8; req_len];
    for i in 0..n + 20 {
        let t = Instant::now();
        client.behaviour_mut().send_request(&peer, request.clone());
        loop {
            let ev = tokio::time::timeout(Duration::from_secs(30), client.select_next_some())
                .await
                .context("no bare response in 30 s")?;
            match ev {
                SwarmEvent::Behaviour(request_response::Event::Message {
                    message: request_response::Message::Response { .. },
                    ..
                }) => break,
                SwarmEvent::Behaviour(request_response::Event::OutboundFailure { error, .. }) => {
                    bail!("bare round trip failed: {error}")
                }
                _ => {}
            }
        }
        if i >= 20 {
            out.push(t.elapsed());
        }
    }
    let _ = stop_tx.send(());
    let _ = serve.await;
    Ok(out)
}

/// `n` fsyncs of a 4 KiB write in `dir`.
pub fn fsyncs(dir: &std::path::Path, n: usize) -> anyhow::Result<Vec<Duration>> {
    let path = dir.join("fsync-probe");
    let mut f = std::fs::File::create(&path).with_context(|| format!("creating {}", path.display()))?;
    let block = [0x5au8; 4096];
    let mut out = Vec::with_capacity(n);
    for _ in 0..n {
        let t = Instant::now();
        f.write_all(&block)?;
        f.sync_all()?;
        out.push(t.elapsed());
    }
    drop(f);
    let _ = std::fs::remove_file(&path);
    Ok(out)
}

/// `n` single-record durable commits (a 1 KiB sealed record, as a
/// received passport) to a fresh node store in `dir`: what one of a
/// move's three durable writes costs, beside the raw fsync.
pub fn store_commits(dir: &std::path::Path, n: usize) -> anyhow::Result<Vec<Duration>> {
    let log = super::gateway::Log::open(&dir.join("commit-probe"))?;
    let value = vec![0x5au8; 1024];
    let mut out = Vec::with_capacity(n);
    for i in 0..n + 10 {
        let t = Instant::now();
        log.write(value.clone())?;
        if i >= 10 {
            out.push(t.elapsed());
        }
    }
    Ok(out)
}

/// Runs figures 2 and 3 (3 only if `throughput`); `limit` is figure 1's.
pub async fn run(sizes: &Sizes, limit: Option<f64>, throughput: bool) -> anyhow::Result<Outcome> {
    let senders = sender_codes(4);
    let a = TestNode::start_new("RJZ").await?;
    let b = TestNode::start_new("RJ1").await?;
    let mut r = roster("london-mou");
    add_members(&mut r, &[&a, &b]);
    for s in &senders {
        r.push(Change::AddMember(fixture_member(s)));
    }
    let chain = r.chain.entries().to_vec();
    submit(&a, &chain).await?;
    submit(&b, &chain).await?;
    let bp = b.peer_id;
    wait(|| async { a.connected_to(&bp).await }, "home and host connect").await?;

    let home = a.node().exchange().clone();
    let (lat, grant_lat) = timed_moves(&a, &b, sizes.moves).await?;
    let delivered = home.consents()?.iter().filter(|c| matches!(c.state, ConsentState::Delivered { .. })).count();
    if delivered < sizes.moves {
        bail!("only {delivered} of {} consents delivered", sizes.moves);
    }
    let ms = sorted_ms(&lat);
    let (p50, p99) = (percentile(&ms, 50.0), percentile(&ms, 99.0));
    let grant50 = percentile(&sorted_ms(&grant_lat), 50.0);

    // Baselines: the same sizes, bare; one 4 KiB fsync on the same disk.
    let sample = offers("RJZ", "RJ1", 1).remove(0);
    let req_len = sample.encode().len();
    let receipt = Response {
        receipt: Signed::new(
            Receipt {
                message: sample.id(),
                receiver: testkit::org("RJ1"),
                outcome: ReceiptOutcome::Received {
                    consent: ConsentId::from_bytes([2; 16]),
                    credential: CredentialId::from_bytes([1; 16]),
                    claims: five_claims(),
                },
                at: now(),
                issuer_key: testkit::issuer("RJ1", 0).public(),
            },
            |b| testkit::issuer("RJ1", 0).sign(b),
        ),
    };
    let resp_len = receipt.encode().len();
    let rt = sorted_ms(&bare_round_trips(req_len, resp_len, sizes.moves).await?);
    let fs = sorted_ms(&fsyncs(b.dir.path(), (sizes.moves / 2).max(50))?);
    let (rt50, fs50) = (percentile(&rt, 50.0), percentile(&fs, 50.0));
    let commit50 = percentile(&sorted_ms(&store_commits(b.dir.path(), (sizes.moves / 2).max(50))?), 50.0);
    let base = rt50 + fs50;
    let n = sizes.moves;
    let mut rows = vec![
        Row::new("2 latency", &format!("move p50 (grant → receipt stored, {n} sequential)"), p50, "ms")
            .baseline(base, &format!("bare RT {rt50:.3} + fsync {fs50:.3}"))
            .target("<= 2 x (RT + fsync)", p50 <= 2.0 * base),
        Row::new("2 latency", "of which: consent granted and committed on the home node, p50", grant50, "ms"),
        Row::new("2 latency", &format!("move p99 ({n} sequential)"), p99, "ms")
            .baseline(percentile(&rt, 99.0) + percentile(&fs, 99.0), "bare RT p99 + fsync p99"),
        Row::new(
            "2 latency",
            &format!("bare libp2p round trip p50 ({req_len} B / {resp_len} B, TCP+TLS+yamux)"),
            rt50,
            "ms",
        ),
        Row::new("2 latency", "fsync of 4 KiB p50 (same disk)", fs50, "ms"),
        Row::new("2 latency", "one durable node-store commit p50 (1 KiB sealed record, sled flush)", commit50, "ms")
            .baseline(fs50, "raw 4 KiB fsync"),
        Row::new("2 latency", "floor of a move: 3 durable commits + bare RT", 3.0 * commit50 + rt50, "ms")
            .baseline(p50, "measured move p50"),
    ];

    if throughput {
        // Offers as older nodes send them (no standard-form copy), then as
        // nodes send them now (with it): the copy's cost at the receiver.
        // The second run receives into a larger key file (one key per
        // passport, see BENCHMARKS.md), so the order is against the copy.
        for copy in [false, true] {
            let rate = receiver_rate(&b, &senders, sizes.offers, copy).await?;
            let received = sizes.offers / senders.len() * senders.len();
            let what = if copy { "with their SD-JWT VC copy" } else { "without the copy (older nodes)" };
            let mut row = Row::new(
                "3 throughput",
                &format!(
                    "offers {what} verified+stored+receipted at the receiver ({} senders, 64 in flight, {received} offers)",
                    senders.len()
                ),
                rate,
                "bundles/s",
            );
            if let Some(l) = limit {
                row = row.baseline(l, "figure 1 raw limit, 1 core").target(">= 0.50 x raw limit", rate >= 0.5 * l);
            }
            rows.push(row);
        }
    }
    drop(a);
    drop(b);
    Ok(Outcome { rows, p50_ms: p50 })
}

/// Offers per second received by `b` from `senders` (64 in flight in all),
/// `total` offers, with or without the standard-form copy.
async fn receiver_rate(b: &TestNode, senders: &[String], total: usize, copy: bool) -> anyhow::Result<f64> {
    let window = 64 / senders.len();
    let per = total / senders.len();
    let mut tasks = Vec::new();
    let start = std::sync::Arc::new(tokio::sync::Barrier::new(senders.len() + 1));
    for s in senders {
        let mut swarm = exchange_peer(fixture_keypair(s)?)?;
        let batch = if copy { offers(s, "RJ1", per) } else { offers_without_copy(s, "RJ1", per) };
        let addr = b.p2p.clone();
        let start = start.clone();
        tasks.push(tokio::spawn(async move {
            let peer = connect(&mut swarm, &addr).await?;
            // Let the receiver's admission check settle.
            tokio::time::sleep(Duration::from_millis(300)).await;
            start.wait().await;
            drive(&mut swarm, peer, batch, window).await
        }));
    }
    start.wait().await;
    let t = Instant::now();
    let mut received = 0;
    for t in tasks {
        received += t.await??;
    }
    let secs = t.elapsed().as_secs_f64();
    if received != per * senders.len() {
        bail!("only {received} of {} offers were received", per * senders.len());
    }
    Ok(received as f64 / secs)
}

/// Sequential moves from `a` to `b` (after 10 unmeasured ones): one
/// member of staff, every move sharing 5 of their 14 claims. Returns each
/// move's time from grant to receipt stored, and the grant's share of it.
pub async fn timed_moves(a: &TestNode, b: &TestNode, n: usize) -> anyhow::Result<(Vec<Duration>, Vec<Duration>)> {
    let csv = staff_csv(&[("12345678-1", "Alex Testperson", "ZZ123456A")]);
    a.admin().import_staff(ImportFormat::Csv, csv.into_bytes(), ImportQuery::default()).await?;
    let home = a.node().exchange().clone();
    let staff = home.staff_list(None, 1)?.into_iter().next().context("imported staff record")?.staff_ref;
    let request = |until: Timestamp| ConsentRequest {
        staff: staff.clone(),
        receiver: b.org.clone(),
        agreement: "london-mou".parse().expect("agreement id"),
        move_kind: MoveKind::Rotation,
        claims: five_claims(),
        not_before: None,
        not_after: until,
        staff_key: None,
    };
    let mut rx = home.receipts_stored();
    let mut lat = Vec::with_capacity(n);
    let mut grant_lat = Vec::with_capacity(n);
    let warmup = 10;
    for i in 0..n + warmup {
        let target = *rx.borrow_and_update() + 1;
        let req = request(now().plus_days(30));
        let t = Instant::now();
        staffpass_node::task::blocking(&home, move |ex| ex.grant_consent(req, "bench")).await??;
        let granted = t.elapsed();
        tokio::time::timeout(Duration::from_secs(30), rx.wait_for(|c| *c >= target))
            .await
            .context("no receipt within 30 s")??;
        if i >= warmup {
            lat.push(t.elapsed());
            grant_lat.push(granted);
        }
    }
    Ok((lat, grant_lat))
}

/// Polls `cond` every 20 ms for up to 30 s.
pub async fn wait<F, Fut>(mut cond: F, what: &str) -> anyhow::Result<()>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = Instant::now() + Duration::from_secs(30);
    while !cond().await {
        if Instant::now() > deadline {
            bail!("timed out waiting for: {what}");
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    Ok(())
}
