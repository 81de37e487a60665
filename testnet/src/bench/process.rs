//! Figures 6-8 on a real `staffpass-node` process, so memory is the
//! node's own: import a CSV export through the API (beside parsing the
//! same file with the `csv` crate alone), receive passports from bare
//! peers, hold connections from member peers, then read the process's
//! VmRSS / VmHWM and the data directory's size on disk.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};
use staffpass_api::staff::{ImportFormat, ImportQuery};
use staffpass_api::{Client, data_dir};
use staffpass_node::config::Config;
use staffpass_node::node;
use staffpass_protocol::roster::{Change, MemberSpec};
use staffpass_tests::{CSV_HEADER, roster, staff_row};

use super::exchange::{connect, drive, exchange_peer, fixture_keypair, fixture_member, offers};
use super::{Row, Sizes};

/// A child process, stopped (SIGTERM, then SIGKILL) on drop.
pub(super) struct NodeProcess(Child);

impl NodeProcess {
    pub(super) fn pid(&self) -> u32 {
        self.0.id()
    }

    pub(super) fn stop(&mut self) {
        if let Ok(Some(_)) = self.0.try_wait() {
            return; // already stopped (and reaped)
        }
        let pid = self.0.id().to_string();
        let _ = Command::new("kill").args(["-TERM", &pid]).status();
        for _ in 0..100 {
            if let Ok(Some(_)) = self.0.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

impl Drop for NodeProcess {
    fn drop(&mut self) {
        self.stop();
    }
}

/// `VmRSS` and `VmHWM` of `pid`, in KiB.
pub(super) fn rss(pid: u32) -> anyhow::Result<(u64, u64)> {
    Ok((crate::soak::status_kib(pid, "VmRSS:")?, crate::soak::status_kib(pid, "VmHWM:")?))
}

/// Bytes allocated on disk under `dir` (st_blocks × 512).
fn disk_bytes(dir: &Path) -> u64 {
    use std::os::unix::fs::MetadataExt as _;
    staffpass_tests::files_under(dir).iter().filter_map(|p| std::fs::metadata(p).ok()).map(|m| m.blocks() * 512).sum()
}

pub(super) fn free_port() -> anyhow::Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}

/// A letters-only name for row `i` (names are validated as text).
fn name(i: usize) -> String {
    let mut s = String::new();
    let mut n = i;
    for _ in 0..4 {
        s.push((b'a' + (n % 26) as u8) as char);
        n /= 26;
    }
    format!("Alex Test{s}")
}

/// An ESR-style export of `rows` people (14 claims each).
pub fn esr_csv(rows: usize) -> String {
    let mut s = String::with_capacity(rows * 320);
    s.push_str(CSV_HEADER);
    s.push('\n');
    for i in 0..rows {
        s.push_str(&staff_row(&format!("{:08}-1", 10_000_000 + i), &name(i), &format!("ZZ{:06}A", i % 1_000_000)));
        s.push('\n');
    }
    s
}

/// Parses `csv` with the csv crate alone; returns the record count.
pub fn parse_only(csv: &[u8]) -> anyhow::Result<usize> {
    let mut r = csv::Reader::from_reader(csv);
    let mut n = 0;
    let mut rec = csv::StringRecord::new();
    while r.read_record(&mut rec)? {
        n += 1;
    }
    Ok(n)
}

/// The node binary: `given`, or the one beside this program (under `cargo
/// run`, built first with the same profile, before this figure's timing).
pub(super) fn node_binary(given: Option<PathBuf>) -> anyhow::Result<PathBuf> {
    let Some(path) = given else { return crate::bins::find_node() };
    if !path.exists() {
        bail!(
            "no staffpass-node binary at {}: build it with `cargo build --release -p staffpass-node` (or pass --node-bin)",
            path.display()
        );
    }
    Ok(path)
}

/// Starts `staffpass-node run` on `config`, logging to `log`.
pub(super) fn start_node(bin: &Path, config: &Path, log: &Path) -> anyhow::Result<NodeProcess> {
    let log = std::fs::OpenOptions::new().create(true).append(true).open(log)?;
    Ok(NodeProcess(
        Command::new(bin)
            .args(["run", "--config"])
            .arg(config)
            .env("RUST_LOG", "warn")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .with_context(|| format!("starting {}", bin.display()))?,
    ))
}

/// Waits (up to 30 s) until the node's API answers `/readyz`.
pub(super) async fn wait_ready(api: &Client, log: &Path) -> anyhow::Result<()> {
    let deadline = Instant::now() + Duration::from_secs(30);
    while !api.ready().await.unwrap_or(false) {
        if Instant::now() > deadline {
            // The directory goes with the error: show the log's end here.
            let text = std::fs::read_to_string(log).unwrap_or_default();
            let tail: Vec<&str> = text.lines().rev().take(8).collect();
            let tail: Vec<&str> = tail.into_iter().rev().collect();
            bail!("the node did not become ready in 30 s; its log ends:\n{}", tail.join("\n"));
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    Ok(())
}

/// Runs figures 6-8.
pub async fn run(sizes: &Sizes, node_bin: Option<PathBuf>) -> anyhow::Result<Vec<Row>> {
    let bin = node_binary(node_bin)?;
    let dir = tempfile::tempdir()?;
    let data = dir.path().join("data");
    let mut config = Config::new("RJ1".parse()?);
    config.data_dir = data.clone();
    let p2p_port = free_port()?;
    config.network.listen = vec![format!("/ip4/127.0.0.1/tcp/{p2p_port}")];
    config.api.listen = format!("127.0.0.1:{}", free_port()?).parse()?;
    // Every bench peer dials from 127.0.0.1 at once: the per-IP cap on
    // handshakes in progress (meant for one host among many) is lifted.
    config.network.max_pending_incoming_per_ip = config.network.max_pending_incoming;
    let report = node::init(&config, &["localhost".into(), "127.0.0.1".into()], false)?;
    let log_path = dir.path().join("node.log");
    let mut child = start_node(&bin, &report.config, &log_path)?;
    let api = Client::from_client_files(
        &format!("https://127.0.0.1:{}", config.api.listen.port()),
        &data_dir::admin_client_files(&data),
    )?
    .with_timeout(Duration::from_secs(300));
    wait_ready(&api, &log_path).await?;
    let (rss_empty, _) = rss(child.pid())?;

    // Figure 6: import, beside parse-only.
    let csv = esr_csv(sizes.import_rows);
    let mut parse = Duration::MAX;
    for _ in 0..3 {
        let t = Instant::now();
        let n = parse_only(csv.as_bytes())?;
        parse = parse.min(t.elapsed());
        if n != sizes.import_rows {
            bail!("parsed {n} rows, expected {}", sizes.import_rows);
        }
    }
    let disk0 = disk_bytes(&data);
    let t = Instant::now();
    let imported = api.import_staff(ImportFormat::Csv, csv.clone().into_bytes(), ImportQuery::default()).await?;
    let import = t.elapsed();
    if imported.imported != sizes.import_rows as u64 {
        bail!("import report: {imported:?}");
    }
    let disk1 = disk_bytes(&data);
    let (rss_imported, _) = rss(child.pid())?;

    // Members: this node and `peers` bare peers; the first four send passports.
    let codes: Vec<String> = (0..sizes.peers).map(|i| format!("P{i:03}")).collect();
    let mut r = roster("london-mou");
    r.push(Change::AddMember(MemberSpec {
        org: config.org.clone(),
        name: "RJ1 NHS Trust".into(),
        issuer_keys: vec![report.issuer_key],
        nodes: vec![staffpass_node::network::node_of(&report.peer_id).context("ed25519 peer id")?],
        addresses: vec![config.network.listen[0].clone()],
    }));
    for c in &codes {
        r.push(Change::AddMember(fixture_member(c)));
    }
    api.submit_chain(r.chain.entries()).await?;
    let addr: libp2p::Multiaddr = config.network.listen[0].parse()?;
    let senders = 4.min(codes.len());
    let per = sizes.passports / senders;
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let mut tasks = Vec::new();
    for (i, c) in codes.iter().enumerate() {
        let mut swarm = exchange_peer(fixture_keypair(c)?)?;
        let batch = if i < senders { offers(c, "RJ1", per) } else { Vec::new() };
        let addr = addr.clone();
        let mut stop = stop_rx.clone();
        let (done_tx, done_rx) = tokio::sync::oneshot::channel::<anyhow::Result<usize>>();
        tasks.push((
            tokio::spawn(async move {
                let result = async {
                    let peer = connect(&mut swarm, &addr).await?;
                    if batch.is_empty() { Ok(0) } else { drive(&mut swarm, peer, batch, 16).await }
                }
                .await;
                let _ = done_tx.send(result);
                // Stay connected until told to stop.
                loop {
                    tokio::select! {
                        _ = futures::StreamExt::select_next_some(&mut swarm) => {}
                        _ = stop.wait_for(|s| *s) => return,
                    }
                }
            }),
            done_rx,
        ));
    }
    let mut received = 0;
    for (_, done) in tasks.iter_mut() {
        received += done.await.context("peer task ended")??;
    }
    if received != per * senders {
        bail!("only {received} of {} passports received", per * senders);
    }
    let (rss_received, _) = rss(child.pid())?;
    // Idle: nothing in flight for a while (the idle figure is defined as
    // RSS after a quiet period), every peer still connected.
    tokio::time::sleep(Duration::from_secs(if sizes.peers >= 50 { 10 } else { 3 })).await;
    let connected = api.peers().await?.iter().filter(|p| p.connected).count();
    if connected < sizes.peers {
        bail!("only {connected} of {} peers are connected to the measured node", sizes.peers);
    }
    let (idle, peak) = rss(child.pid())?;
    let _ = stop_tx.send(true);
    for (t, _) in tasks {
        let _ = t.await;
    }
    child.stop();
    // The same node restarted on the same data, before any peer connects:
    // what it holds at rest, apart from what the import left behind.
    let mut child = start_node(&bin, &report.config, &log_path)?;
    wait_ready(&api, &log_path).await?;
    let (rss_restarted, _) = rss(child.pid())?;
    child.stop();
    // After a clean stop everything is flushed: sled grows its file in
    // segments, so a reading taken while it runs undercounts.
    let disk2 = disk_bytes(&data);

    let (rows_n, pass_n) = (sizes.import_rows, received);
    let import_s = import.as_secs_f64();
    let parse_s = parse.as_secs_f64();
    let mb = |kib: u64| kib as f64 / 1024.0;
    let per_staff = disk1.saturating_sub(disk0) as f64 / rows_n as f64;
    let per_pass = disk2.saturating_sub(disk1) as f64 / pass_n.max(1) as f64;
    Ok(vec![
        Row::new("6 import", &format!("POST /v1/staff/import, {rows_n} rows"), import_s, "s")
            .baseline(parse_s, "csv crate parse only")
            .target("<= 3 s and <= 10 x parse", import_s <= 3.0 && import_s <= 10.0 * parse_s),
        Row::new(
            "7 memory",
            &format!("idle RSS: {rows_n} staff, {pass_n} passports, {connected} peers connected"),
            mb(idle),
            "MB",
        )
        .baseline(mb(rss_empty), "same node empty, just started")
        .target("<= 60 MB", mb(idle) <= 60.0),
        Row::new("7 memory", "peak RSS (VmHWM)", mb(peak), "MB"),
        Row::new("7 memory", &format!("RSS just after importing {rows_n} staff"), mb(rss_imported), "MB"),
        Row::new("7 memory", "RSS of the same node restarted on its data, no peers yet", mb(rss_restarted), "MB"),
        Row::new("7 memory", &format!("RSS just after receiving {pass_n} passports"), mb(rss_received), "MB"),
        Row::new("8 disk", "bytes on disk per staff record", per_staff, "B"),
        Row::new("8 disk", "bytes on disk per received passport", per_pass, "B"),
    ])
}
