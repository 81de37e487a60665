//! Figure 5: roster propagation. Real nodes in this process on real
//! sockets (10 and 50): time from `submit_roster_entry` on one node until
//! every member node has applied the entry, over several changes. Then a
//! 200-node network simulated in-process (see [`simulate`] for the model).

use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};
use rand::{RngExt as _, SeedableRng as _};
use staffpass_protocol::AgreementId;
use staffpass_protocol::roster::{Chain, Change, Entry};
use staffpass_tests::{TestNode, add_members, now, roster, submit};
use tokio::sync::mpsc;

use super::exchange::{bare_round_trips, wait};
use super::{Row, Sizes, percentile, sorted_ms};

fn agreement() -> AgreementId {
    "london-mou".parse().expect("agreement id")
}

/// Times `changes` roster changes across `n` real nodes.
async fn real(n: usize, changes: usize) -> anyhow::Result<Vec<Duration>> {
    let mut nodes = Vec::with_capacity(n);
    for i in 0..n {
        nodes.push(TestNode::start_new(&format!("N{i:03}")).await.with_context(|| format!("starting node {i}"))?);
    }
    eprintln!("  {n} nodes started");
    let mut r = roster("london-mou");
    let refs: Vec<&TestNode> = nodes.iter().collect();
    let chain = add_members(&mut r, &refs);
    for node in &nodes {
        submit(node, &chain).await?;
    }
    eprintln!("  roster submitted to every node");
    // Let connections and gossip meshes form before timing anything.
    let want = (n - 1).min(3);
    for node in &nodes {
        let r = wait(
            || async {
                tokio::time::timeout(Duration::from_secs(1), node.node().network().info())
                    .await
                    .ok()
                    .and_then(|i| i.ok())
                    .is_some_and(|i| i.connected.len() >= want)
            },
            "nodes connect to each other",
        )
        .await;
        if let Err(e) = r {
            bail!("{e}: {} has fewer than {want} connections", node.org);
        }
    }

    // The first change is a warm-up, not timed: it lets the gossip meshes
    // form (a node that missed it catches up by anti-entropy).
    let id = agreement();
    let mut out = Vec::with_capacity(changes);
    for k in 0..=changes {
        let e = r.entry(Change::Resign { valid_until: now().plus_days(30).plus_secs(60 * (k as i64 + 1)) }, 2);
        r.chain.append(e.clone()).map_err(|e| anyhow::anyhow!("fixture change refused: {e}"))?;
        let target = r.chain.seq();
        let t = Instant::now();
        nodes[0].node().submit_roster_entry(e, "bench").await.map_err(|e| anyhow::anyhow!("submit refused: {e}"))?;
        let deadline = t + Duration::from_secs(30);
        loop {
            if nodes.iter().all(|node| node.roster_seq(&id) >= Some(target)) {
                break;
            }
            if Instant::now() > deadline {
                let behind = nodes.iter().filter(|node| node.roster_seq(&id) < Some(target)).count();
                bail!("{behind} of {n} nodes did not apply change {k} within 30 s");
            }
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
        if k > 0 {
            out.push(t.elapsed());
        }
    }
    eprintln!("  {changes} changes applied everywhere; stopping the nodes");
    for mut node in nodes {
        node.stop().await;
    }
    Ok(out)
}

/// The 200-node model: every node holds a real [`Chain`] and runs as a
/// task; each links to `FANOUT` random others (undirected, seeded, so a
/// mean degree near 2 × `FANOUT`, like a gossipsub mesh between D = 6 and
/// D_hi = 12). A node that receives an entry verifies and applies it (the
/// real steward-signature checks), then forwards it to every neighbour
/// over a bounded channel, as gossipsub forwards after validation. Wire
/// time is modelled, not slept: each hop adds `one_way` (half the measured
/// bare loopback round trip). A change has converged when the last node
/// applied it; its time is the real elapsed time plus its hop depth ×
/// `one_way`. Not modelled: packet loss, slow or offline nodes (those
/// catch up by anti-entropy), CPU contention beyond this machine's.
async fn simulate(n: usize, changes: usize, one_way: Duration) -> anyhow::Result<(Vec<Duration>, usize)> {
    const FANOUT: usize = 6;
    let mut r = roster("london-mou");
    let genesis: Chain = r.chain.clone();
    let mut rng = rand::rngs::StdRng::seed_from_u64(8);
    let mut links = vec![Vec::new(); n];
    for a in 0..n {
        for _ in 0..FANOUT {
            let b = rng.random_range(0..n);
            if b != a && !links[a].contains(&b) {
                links[a].push(b);
                links[b].push(a);
            }
        }
    }
    type Msg = (Arc<Entry>, u32);
    let (txs, rxs): (Vec<_>, Vec<_>) = (0..n).map(|_| mpsc::channel::<Msg>(4096)).unzip();
    // (node, seq applied, hops, when)
    let (done_tx, mut done_rx) = mpsc::channel::<(usize, u64, u32, Instant)>(n * 4);
    let mut tasks = Vec::new();
    for (i, mut rx) in rxs.into_iter().enumerate() {
        let mut chain = genesis.clone();
        let peers: Vec<mpsc::Sender<Msg>> = links[i].iter().map(|&p| txs[p].clone()).collect();
        let done = done_tx.clone();
        tasks.push(tokio::spawn(async move {
            while let Some((e, hops)) = rx.recv().await {
                if e.body.seq != chain.seq() + 1 {
                    continue; // already applied (a duplicate from another neighbour)
                }
                if chain.append((*e).clone()).is_err() {
                    continue;
                }
                let _ = done.send((i, chain.seq(), hops, Instant::now())).await;
                for p in &peers {
                    let _ = p.send((e.clone(), hops + 1)).await;
                }
            }
        }));
    }
    drop(done_tx);
    let mut out = Vec::with_capacity(changes);
    let mut max_hops = 0;
    for k in 0..changes {
        let e = r.entry(Change::Resign { valid_until: now().plus_days(30).plus_secs(60 * (k as i64 + 1)) }, 2);
        r.chain.append(e.clone()).map_err(|e| anyhow::anyhow!("fixture change refused: {e}"))?;
        let target = r.chain.seq();
        let t = Instant::now();
        txs[0].send((Arc::new(e), 0)).await.context("simulated node gone")?;
        let mut seen = 0;
        let mut worst = Duration::ZERO;
        while seen < n {
            let (_, seq, hops, at) = tokio::time::timeout(Duration::from_secs(30), done_rx.recv())
                .await
                .context("simulation stalled")?
                .context("simulation ended")?;
            if seq != target {
                continue;
            }
            seen += 1;
            max_hops = max_hops.max(hops as usize);
            worst = worst.max(at.duration_since(t) + one_way * hops);
        }
        out.push(worst);
    }
    // Each task holds senders to its neighbours, so the channels never
    // close on their own: stop the tasks.
    for t in &tasks {
        t.abort();
    }
    Ok((out, max_hops))
}

/// Runs figure 5.
pub async fn run(sizes: &Sizes) -> anyhow::Result<Vec<Row>> {
    let mut rows = Vec::new();
    let changes = sizes.roster_changes;
    let mut ns = vec![10, sizes.roster_nodes];
    ns.dedup();
    for n in ns {
        let limit = Duration::from_secs(60 + 20 * n as u64);
        let result = tokio::time::timeout(limit, real(n, changes))
            .await
            .unwrap_or_else(|_| Err(anyhow::anyhow!("did not finish in {limit:?}")));
        let ms = sorted_ms(&result.with_context(|| format!("{n} real nodes"))?);
        let max = ms.last().copied().unwrap_or_default();
        let mut row = Row::new(
            "5 roster",
            &format!("{n} real nodes: submit → all applied, p50 ({changes} changes)"),
            percentile(&ms, 50.0),
            "ms",
        );
        rows.push(row.clone());
        row.metric = format!("{n} real nodes: submit → all applied, max ({changes} changes)");
        row.ours = max;
        if n >= 50 {
            row = row.target("50 nodes: max <= 1000 ms", max <= 1000.0);
        }
        rows.push(row);
    }
    eprintln!("  measuring the loopback round trip for the simulation's wire time");
    let rt = sorted_ms(&bare_round_trips(512, 64, 200).await?);
    eprintln!("  simulating {} nodes", sizes.sim_nodes);
    let one_way = Duration::from_secs_f64(percentile(&rt, 50.0) / 2000.0);
    let (sim, hops) = simulate(sizes.sim_nodes, changes.max(5), one_way).await?;
    let ms = sorted_ms(&sim);
    let max = ms.last().copied().unwrap_or_default();
    rows.push(
        Row::new(
            "5 roster",
            &format!(
                "{} simulated nodes (fan-out 6, {hops} hops max, {:.3} ms/hop wire): convergence max",
                sizes.sim_nodes,
                one_way.as_secs_f64() * 1000.0
            ),
            max,
            "ms",
        )
        .target("200 nodes: <= 5000 ms", max <= 5000.0),
    );
    Ok(rows)
}
