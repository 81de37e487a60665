//! Figure 5: roster propagation. Real nodes in this process on real
//! sockets (10 and 50): time from `submit_roster_entry` on one node until
//! every member node has applied the entry, over several changes. Then a
//! national network (25,000 nodes; `--quick`: 300) simulated in-process,
//! 1% of it offline and catching up afterwards (see [`simulate`] for the
//! model).

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};
use rand::{RngExt as _, SeedableRng as _};
use staffpass_protocol::AgreementId;
use staffpass_protocol::roster::Change;
use staffpass_protocol::wire::roster::MAX_ENTRIES;
use staffpass_tests::{TestNode, add_members, now, roster, submit};

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
    // Entries are a minute apart: date the first early enough that the
    // last (n members, then the changes) is not from the future.
    r.clock = now().plus_secs(-60 * (n + changes + 10) as i64);
    let refs: Vec<&TestNode> = nodes.iter().collect();
    let chain = add_members(&mut r, &refs);
    // To every node at once: handed out one after another, the nodes that
    // have it dial the others, which refuse them (after a full handshake)
    // until their turn, and with 100 nodes in one process those refused
    // dials took the CPU the submissions needed.
    for r in futures::future::join_all(nodes.iter().map(|node| submit(node, &chain))).await {
        r?;
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

/// What a simulation measured.
struct Simulated {
    /// Per change: when the last online node applied it.
    convergence: Vec<Duration>,
    /// The deepest hop any online node received a change at.
    max_hops: u32,
    /// Nodes offline during the changes.
    offline: usize,
    /// Per offline node, once back: its catch-up by anti-entropy.
    catch_up: Vec<Duration>,
    /// Mean real cost of one node's verify and apply.
    per_hop: Duration,
}

/// The simulated network (up to 25,000 nodes: a national agreement's).
/// Every node holds its own real roster
/// [`Chain`](staffpass_protocol::roster::Chain) of the standard small roster
/// (genesis, 3 stewards, threshold 2: what varies with the network's size
/// is the gossip graph, and a 25,000-member state in each of 25,000
/// simulated nodes would not fit in memory; figure 9 shows an entry costs
/// the same on a 25,000-member roster). Each node links to `FANOUT` random
/// others (undirected, seeded, so a mean degree near 2 × `FANOUT`, like a
/// gossipsub mesh between D = 6 and D_hi = 12).
///
/// A discrete-event model, run in virtual time, because on two cores the
/// wall clock would measure this machine running 25,000 nodes' checks one
/// after another, not the network: a node that receives an entry verifies
/// and applies it for real (the steward-signature checks, timed), then
/// forwards it to every neighbour, as gossipsub forwards after validation;
/// each hop adds `one_way` (half the measured bare loopback round trip).
/// A node applies an entry at the earliest time any neighbour's copy
/// reaches it plus its own measured verify and apply time; a change has
/// converged when the last online node applied it.
///
/// 1% of the nodes are offline during the changes (neither receive nor
/// forward). Once the online nodes converged, each comes back and catches
/// up by anti-entropy from one random neighbour: one round trip to compare
/// heads, one per fetch of up to [`MAX_ENTRIES`] entries, then each entry
/// verified and applied for real. Not modelled: packet loss, bandwidth,
/// the wait for the next anti-entropy round, the node's storage write,
/// CPU contention (each node has its own machine).
fn simulate(n: usize, changes: usize, one_way: Duration) -> anyhow::Result<Simulated> {
    const FANOUT: usize = 6;
    let mut r = roster("london-mou");
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
    // Node 0 submits every change, so it is online.
    let mut offline = vec![false; n];
    let mut down = 0;
    while down < n / 100 {
        let i = rng.random_range(1..n);
        if !offline[i] {
            offline[i] = true;
            down += 1;
        }
    }
    let online = n - down;
    let mut chains = vec![r.chain.clone(); n];
    let mut convergence = Vec::with_capacity(changes);
    let (mut max_hops, mut hop_time, mut hop_count) = (0, Duration::ZERO, 0u32);
    for k in 0..changes {
        let e = r.entry(Change::Resign { valid_until: now().plus_days(30).plus_secs(60 * (k as i64 + 1)) }, 2);
        r.chain.append(e.clone()).map_err(|e| anyhow::anyhow!("fixture change refused: {e}"))?;
        // (arrival, node, hops), earliest first.
        let mut queue = BinaryHeap::from([Reverse((Duration::ZERO, 0usize, 0u32))]);
        let mut applied = vec![false; n];
        let (mut seen, mut worst) = (0, Duration::ZERO);
        while let Some(Reverse((arrival, i, hops))) = queue.pop() {
            if applied[i] {
                continue; // a later copy from another neighbour
            }
            let t = Instant::now();
            chains[i]
                .append(e.clone())
                .map_err(|err| anyhow::anyhow!("simulated node {i} refused change {k}: {err}"))?;
            let cost = t.elapsed();
            hop_time += cost;
            hop_count += 1;
            applied[i] = true;
            seen += 1;
            max_hops = max_hops.max(hops);
            let done = arrival + cost;
            worst = worst.max(done);
            for &p in &links[i] {
                if !applied[p] && !offline[p] {
                    queue.push(Reverse((done + one_way, p, hops + 1)));
                }
            }
        }
        if seen < online {
            bail!("change {k} reached {seen} of {online} online nodes: the simulated graph is not connected");
        }
        convergence.push(worst);
    }
    // The offline nodes come back, each on its own machine.
    let mut catch_up = Vec::with_capacity(down);
    for j in (0..n).filter(|&j| offline[j]) {
        let up: Vec<usize> = links[j].iter().copied().filter(|&p| !offline[p]).collect();
        let from = if up.is_empty() {
            (0..n).filter(|&p| !offline[p]).nth(rng.random_range(0..online)).unwrap_or(0)
        } else {
            up[rng.random_range(0..up.len())]
        };
        let missing = chains[from].entries_from(chains[j].seq() + 1).to_vec();
        let fetches = missing.len().div_ceil(usize::from(MAX_ENTRIES)) as u32;
        let t = Instant::now();
        for e in missing {
            chains[j].append(e).map_err(|err| anyhow::anyhow!("node {j} refused an entry while catching up: {err}"))?;
        }
        catch_up.push(t.elapsed() + one_way * 2 * (1 + fetches));
        if chains[j].head() != chains[from].head() {
            bail!("node {j} did not catch up with its neighbour");
        }
    }
    let per_hop = hop_time / hop_count.max(1);
    Ok(Simulated { convergence, max_hops, offline: down, catch_up, per_hop })
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
            row = row.target(&format!("{n} nodes: max <= 1000 ms"), max <= 1000.0);
        }
        rows.push(row);
    }
    eprintln!("  measuring the loopback round trip for the simulation's wire time");
    let rt = sorted_ms(&bare_round_trips(512, 64, 200).await?);
    let n = sizes.sim_nodes;
    eprintln!("  simulating {n} nodes");
    let one_way = Duration::from_secs_f64(percentile(&rt, 50.0) / 2000.0);
    let changes = changes.max(5);
    let t = Instant::now();
    let sim =
        tokio::task::spawn_blocking(move || simulate(n, changes, one_way)).await.context("simulation panicked")??;
    eprintln!("  simulated {changes} changes over {n} nodes in {:.1} s", t.elapsed().as_secs_f64());
    let ms = sorted_ms(&sim.convergence);
    let max = ms.last().copied().unwrap_or_default();
    let wire = one_way.as_secs_f64() * 1000.0;
    let per_hop = sim.per_hop.as_secs_f64() * 1e6;
    rows.push(
        Row::new(
            "5 roster",
            &format!(
                "{n} simulated nodes, {} offline (standard small roster; fan-out 6, {} hops max, {wire:.3} ms/hop wire + {per_hop:.0} µs/hop real verify and apply): convergence max ({changes} changes)",
                sim.offline, sim.max_hops
            ),
            max,
            "ms",
        )
        .target(&format!("{n} nodes: <= 5000 ms"), max <= 5000.0),
    );
    let ms = sorted_ms(&sim.catch_up);
    rows.push(Row::new(
        "5 roster",
        &format!(
            "{} offline nodes back: catch up {changes} entries by anti-entropy from one neighbour (round trips + real verify and apply), max",
            sim.offline
        ),
        ms.last().copied().unwrap_or_default(),
        "ms",
    ));
    Ok(rows)
}
