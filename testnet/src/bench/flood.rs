//! Figure 10: an honest move's latency while two member peers flood the
//! home node, one with roster requests and one with roster gossip (junk,
//! as fast as each can send), beside the same moves on a fresh pair of
//! nodes with no flood.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Instant;

use staffpass_protocol::signing::Hash;
use staffpass_protocol::wire::roster::{self as wire_roster, Head, Request};
use staffpass_tests::{connected_pair, raw_member};

use super::exchange::timed_moves;
use super::{Row, Sizes, percentile, sorted_ms};

/// The home node's count in the misbehaviour metric for `reason`.
fn refused(node: &staffpass_tests::TestNode, reason: &str) -> f64 {
    let needle = format!("staffpass_peer_misbehaviour_total{{reason=\"{reason}\"}} ");
    node.node().metrics().render().lines().find_map(|l| l.strip_prefix(&needle)?.parse().ok()).unwrap_or(0.0)
}

/// Figure 10's rows.
pub async fn run(sizes: &Sizes) -> anyhow::Result<Vec<Row>> {
    let n = sizes.moves;
    let (a, b, _) = connected_pair("RJZ", "RJ1").await;
    let calm = sorted_ms(&timed_moves(&a, &b, n).await?.0);
    drop((a, b));

    let (a, b, mut r) = connected_pair("RJZ", "RJ1").await;
    let mut asker = raw_member(&a, &mut r, "RJ2").await;
    let mut gossiper = raw_member(&a, &mut r, "RV5").await;
    let peer = asker.connect(&a.p2p).await.map_err(anyhow::Error::msg)?;
    gossiper.connect(&a.p2p).await.map_err(anyhow::Error::msg)?;
    let genesis = r.chain.hash_at(0).ok_or_else(|| anyhow::anyhow!("no genesis"))?;
    let topic = wire_roster::topic(&genesis);
    gossiper.subscribe(&topic);
    let agreement = r.chain.state().agreement.clone();

    let stop = Arc::new(AtomicBool::new(false));
    let requests = tokio::spawn({
        let stop = stop.clone();
        async move {
            let heads = vec![Head { agreement, seq: 0, hash: Hash([0; 32]) }];
            let mut sent = 0u64;
            while !stop.load(Ordering::SeqCst) {
                if asker.roster(peer, Request::Heads(heads.clone())).await.is_err() {
                    break;
                }
                sent += 1;
            }
            sent
        }
    });
    let gossip = tokio::spawn({
        let stop = stop.clone();
        async move { gossiper.flood_gossip(&topic, &stop, 0).await }
    });
    let started = Instant::now();
    let flooded = sorted_ms(&timed_moves(&a, &b, n).await?.0);
    let secs = started.elapsed().as_secs_f64();
    stop.store(true, Ordering::SeqCst);
    let asked = requests.await? as f64;
    let gossiped = gossip.await? as f64;
    let (roster_refused, gossip_refused) = (refused(&a, "roster-rate-limit"), refused(&a, "gossip-rate-limit"));

    let (c50, f50) = (percentile(&calm, 50.0), percentile(&flooded, 50.0));
    let (c99, f99) = (percentile(&calm, 99.0), percentile(&flooded, 99.0));
    Ok(vec![
        Row::new("10 flood", &format!("move p50 during a roster flood ({n} sequential)"), f50, "ms")
            .baseline(c50, "same moves, no flood"),
        Row::new("10 flood", &format!("move p99 during a roster flood ({n} sequential)"), f99, "ms")
            .baseline(c99, "same moves, no flood"),
        Row::new("10 flood", "roster requests sent by the flooding member", asked / secs, "/s")
            .baseline(roster_refused / secs, "of which refused over its rate"),
        Row::new("10 flood", "gossip messages published by the flooding member", gossiped / secs, "/s")
            .baseline(gossip_refused / secs, "of which refused over its rate"),
    ])
}
