//! Figure 11: a real `staffpass-node` process in a national agreement of
//! 25,000 members (issue 17): the whole roster chain submitted through the
//! API in batches under `api.body_limit_bytes`, the time until the node
//! holds its last entry, the node's idle RSS once jemalloc has purged
//! (beside the same node empty), memory per member, and how many peers it
//! allows, dials and holds — at most `network.standing_peers` are dialled,
//! however many members the roster names.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};
use staffpass_api::agreements::Submission;
use staffpass_api::{Client, data_dir};
use staffpass_node::config::Config;
use staffpass_node::node;
use staffpass_protocol::roster::{Change, Entry, MemberSpec};
use staffpass_protocol::testkit;

use super::process::{free_port, node_binary, rss, start_node, wait_ready};
use super::{Row, Sizes};

const AGREEMENT: &str = "national-pilot";

/// The roster of [`AGREEMENT`]: the node's own organisation, then
/// `members - 1` synthetic ones, one entry each, every one at `address`
/// (a closed port, so the standing peers the node dials fail fast). All
/// entries carry the same `issued_at`: a minute apart, 25,000 of them would
/// be dated weeks ahead of the node's clock.
fn chain(own: MemberSpec, members: usize, address: &str) -> Vec<Entry> {
    let mut r = staffpass_tests::roster(AGREEMENT);
    r.push(Change::AddMember(own));
    let clock = r.clock;
    for i in 1..members {
        let code = format!("N{i:05}");
        r.push(Change::AddMember(MemberSpec {
            org: testkit::org(&code),
            name: format!("{code} NHS Trust"),
            issuer_keys: vec![testkit::issuer(&code, 0).public()],
            nodes: vec![testkit::node(&code)],
            addresses: vec![address.to_string()],
        }));
        r.clock = clock;
    }
    r.chain.entries().to_vec()
}

/// `entries` cut into runs whose JSON stays under `limit` bytes.
fn batches(entries: &[Entry], limit: usize) -> anyhow::Result<Vec<&[Entry]>> {
    let mut out = Vec::new();
    let (mut start, mut bytes) = (0, 2);
    for (i, e) in entries.iter().enumerate() {
        let len = serde_json::to_vec(e)?.len() + 1;
        if len + 2 > limit {
            bail!("entry {i} alone is {len} bytes, over the {limit}-byte body limit");
        }
        if bytes + len > limit {
            out.push(&entries[start..i]);
            (start, bytes) = (i, 2);
        }
        bytes += len;
    }
    if start < entries.len() {
        out.push(&entries[start..]);
    }
    Ok(out)
}

/// The value of the unlabelled metric `name` in `text` (Prometheus text).
fn metric(text: &str, name: &str) -> Option<f64> {
    text.lines().find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.trim().parse().ok())
}

/// RSS in KiB once it settles: sampled every second until two samples in a
/// row are within 1 MiB, or 30 s have passed. jemalloc returns freed pages
/// gradually over its 10 s decay, and a step of under 1 MiB in the middle of
/// that is not the floor: no sample taken before 11 s counts as settled.
async fn settled_rss(pid: u32) -> anyhow::Result<u64> {
    let start = Instant::now();
    let mut last = rss(pid)?.0;
    loop {
        tokio::time::sleep(Duration::from_secs(1)).await;
        let now = rss(pid)?.0;
        let waited = start.elapsed();
        if (now.abs_diff(last) <= 1024 && waited >= Duration::from_secs(11)) || waited >= Duration::from_secs(30) {
            return Ok(now);
        }
        last = now;
    }
}

/// Runs figure 11.
pub async fn run(sizes: &Sizes, node_bin: Option<PathBuf>) -> anyhow::Result<Vec<Row>> {
    let members = sizes.national_members;
    let bin = node_binary(node_bin)?;
    let dir = tempfile::tempdir()?;
    let data = dir.path().join("data");
    let mut config = Config::new("RJ1".parse()?);
    config.data_dir = data.clone();
    config.network.listen = vec![format!("/ip4/127.0.0.1/tcp/{}", free_port()?)];
    config.api.listen = format!("127.0.0.1:{}", free_port()?).parse()?;
    let report = node::init(&config, &["localhost".into(), "127.0.0.1".into()], false)?;
    let log_path = dir.path().join("node.log");
    let mut child = start_node(&bin, &report.config, &log_path)?;
    let api = Client::from_client_files(
        &format!("https://127.0.0.1:{}", config.api.listen.port()),
        &data_dir::admin_client_files(&data),
    )?
    .with_timeout(Duration::from_secs(300));
    wait_ready(&api, &log_path).await?;
    let rss_empty = settled_rss(child.pid()).await?;

    let own = MemberSpec {
        org: config.org.clone(),
        name: "RJ1 NHS Trust".into(),
        issuer_keys: vec![report.issuer_key],
        nodes: vec![staffpass_node::network::node_of(&report.peer_id).context("ed25519 peer id")?],
        addresses: vec![config.network.listen[0].clone()],
    };
    let closed = format!("/ip4/127.0.0.1/tcp/{}", free_port()?);
    let entries = chain(own, members, &closed);
    let last = entries.last().context("an empty chain")?.body.seq;
    let id = entries[0].body.agreement.clone();
    // Half the limit: room for the JSON's framing and a margin.
    let batches = batches(&entries, config.api.body_limit_bytes / 2)?;

    let t = Instant::now();
    api.submit_chain(batches[0]).await?;
    for b in &batches[1..] {
        api.submit_entries(&id, &Submission::Many(b.to_vec())).await?;
    }
    let deadline = Instant::now() + Duration::from_secs(600);
    loop {
        let seq = api.agreements().await?.into_iter().find(|a| a.id == id).map(|a| a.seq);
        if seq == Some(last) {
            break;
        }
        if Instant::now() > deadline {
            bail!("the node holds the roster at seq {seq:?} after 600 s, not {last}");
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let catch_up = t.elapsed().as_secs_f64();

    let rss_idle = settled_rss(child.pid()).await?;
    let (_, peak) = rss(child.pid())?;
    let peers = api.peers().await?;
    let standing = peers.iter().filter(|p| p.standing).count();
    let connected = peers.iter().filter(|p| p.connected).count();
    let text = api.metrics().await?;
    let allowed = metric(&text, "staffpass_allowed_peers").context("no staffpass_allowed_peers metric")?;
    let standing_metric = metric(&text, "staffpass_standing_peers").unwrap_or(f64::NAN);
    child.stop();

    let mb = |kib: u64| kib as f64 / 1024.0;
    let per_member = rss_idle.saturating_sub(rss_empty) as f64 * 1024.0 / members as f64;
    let n = entries.len();
    let cap = config.network.standing_peers;
    Ok(vec![
        Row::new(
            "11 national",
            &format!("catch up {n} entries through the API ({} batches)", batches.len()),
            catch_up,
            "s",
        ),
        Row::new("11 national", &format!("idle RSS in a {members}-member agreement"), mb(rss_idle), "MB")
            .baseline(mb(rss_empty), "same node empty, just started")
            .target("<= 100 MB", mb(rss_idle) <= 100.0),
        Row::new("11 national", "peak RSS (VmHWM)", mb(peak), "MB"),
        Row::new("11 national", "memory per agreement member", per_member, "B"),
        Row::new("11 national", "peers allowed to connect", allowed, "peers"),
        Row::new(
            "11 national",
            &format!("standing peers dialled (metric {standing_metric})"),
            standing as f64,
            "peers",
        )
        .target(&format!("<= network.standing_peers ({cap})"), standing <= cap),
        Row::new("11 national", "peers connected", connected as f64, "peers"),
    ])
}
