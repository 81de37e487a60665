//! A node keeps standing connections to a bounded number of an
//! agreement's members (issue 17): ten nodes in one agreement with
//! `network.standing_peers = 4`, real sockets, waits on conditions. Each
//! dials the four that rendezvous hashing picks for it and is connected to
//! those and to the nodes that picked it, no one else; a roster change
//! reaches all ten over that bounded mesh; and a passport moves between
//! two nodes that were not connected, over a connection dialled for it,
//! which the dialler closes once it has carried no request for
//! `network.idle_timeout_secs`.

#![allow(clippy::unwrap_used)] // test code: a failed unwrap is a failed test

use std::collections::BTreeSet;
use std::future::Future;
use std::time::{Duration, Instant};

use futures::future::join_all;
use libp2p::PeerId;
use staffpass_api::consents::ConsentRequest;
use staffpass_api::staff::{ImportFormat, ImportQuery, PageQuery};
use staffpass_api::status::Peer;
use staffpass_node::network::standing;
use staffpass_protocol::roster::{Change, MoveKind};
use staffpass_tests::{STEP, TestNode, add_members, now, roster, staff_csv, submit, submit_entry, wait_until};

/// Standing peers per node: fewer than the nine others, so most pairs
/// are not connected.
const K: usize = 4;
/// Short, so that the on-demand connection is seen to close.
const IDLE_SECS: u64 = 2;
const ORGS: [&str; 10] = ["RJZ", "RJ1", "RV5", "RJ2", "RJ7", "RYJ", "RAL", "RRV", "RAP", "RQM"];

async fn peers(n: &TestNode) -> Vec<Peer> {
    n.admin().peers().await.unwrap()
}

/// The peers `n` reports with `flag` set, by its API.
async fn peers_where(n: &TestNode, flag: fn(&Peer) -> bool) -> BTreeSet<PeerId> {
    peers(n).await.iter().filter(|p| flag(p)).map(|p| p.peer_id.parse().unwrap()).collect()
}

/// Polls `get` until it returns `want`, like [`wait_until`]; on timeout
/// the failure names the nodes missing and those in excess.
async fn wait_for_set<F, Fut>(what: &str, nodes: &[TestNode], want: &BTreeSet<PeerId>, mut get: F)
where
    F: FnMut() -> Fut,
    Fut: Future<Output = BTreeSet<PeerId>>,
{
    let deadline = tokio::time::Instant::now() + STEP;
    loop {
        let got = get().await;
        if got == *want {
            return;
        }
        if tokio::time::Instant::now() > deadline {
            let org = |p: &PeerId| nodes.iter().find(|n| n.peer_id == *p).map_or(p.to_string(), |n| n.org.to_string());
            let missing: Vec<String> = want.difference(&got).map(org).collect();
            let extra: Vec<String> = got.difference(want).map(org).collect();
            panic!("timed out after {STEP:?} waiting for: {what}; missing {missing:?}, extra {extra:?}");
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ten_members_keep_bounded_connections_and_dial_the_others_on_demand() {
    let started = Instant::now();
    let nodes: Vec<TestNode> = join_all(ORGS.iter().map(|o| {
        TestNode::start_new_with(o, |c| {
            c.network.standing_peers = K;
            c.network.idle_timeout_secs = IDLE_SECS;
        })
    }))
    .await
    .into_iter()
    .map(|n| n.expect("node starts"))
    .collect();
    let mut r = roster("london-mou");
    let chain = add_members(&mut r, &nodes.iter().collect::<Vec<_>>());
    for s in join_all(nodes.iter().map(|n| submit(n, &chain))).await {
        s.expect("the chain is accepted");
    }

    // What each node should dial (the same rendezvous choice, made here),
    // and whom it should be connected to: its picks and those that picked it.
    let all: Vec<PeerId> = nodes.iter().map(|n| n.peer_id).collect();
    let picks: Vec<BTreeSet<PeerId>> =
        all.iter().map(|me| standing::choose(me, all.iter().copied(), K).into_iter().collect()).collect();
    let neighbours: Vec<BTreeSet<PeerId>> = all
        .iter()
        .enumerate()
        .map(|(i, me)| {
            let picked_me = all.iter().zip(&picks).filter(|(_, p)| p.contains(me)).map(|(them, _)| *them);
            picks[i].iter().copied().chain(picked_me).collect()
        })
        .collect();

    // (a) Each node dials exactly its four, lets all nine in, and is
    // connected to its neighbours and no one else.
    for (i, n) in nodes.iter().enumerate() {
        let what = format!("{} dials its {K} standing peers", n.org);
        wait_for_set(&what, &nodes, &picks[i], || peers_where(n, |p| p.standing)).await;
        let what = format!("{} is connected to its neighbours", n.org);
        wait_for_set(&what, &nodes, &neighbours[i], || peers_where(n, |p| p.connected)).await;
        let metrics = n.node().metrics();
        assert_eq!(metrics.standing_peers.get(), K as i64, "{}", n.org);
        assert_eq!(metrics.allowed_peers.get(), 9, "{}: every member may connect", n.org);
    }
    let settled = started.elapsed();

    // (b) A roster change submitted at one node reaches all ten.
    let e = r.entry(Change::Resign { valid_until: now().plus_days(60) }, 2);
    r.chain.append(e.clone()).unwrap();
    submit_entry(&nodes[0], &e).await.unwrap();
    let agreement = e.body.agreement.clone();
    for n in &nodes {
        let (agreement, seq) = (&agreement, e.body.seq);
        wait_until(&format!("the change reaches {}", n.org), || async move { n.roster_seq(agreement) == Some(seq) })
            .await;
    }
    // Gossip and anti-entropy used the standing connections only.
    for (i, n) in nodes.iter().enumerate() {
        let connected = peers_where(n, |p| p.connected).await;
        assert!(connected.is_subset(&neighbours[i]), "{}: {connected:?} beyond {:?}", n.org, neighbours[i]);
    }

    // (c) A passport moves between two nodes that are not connected.
    let (h, x) = (0..nodes.len())
        .flat_map(|i| (0..nodes.len()).map(move |j| (i, j)))
        .find(|&(i, j)| i != j && !neighbours[i].contains(&all[j]))
        .expect("with 4 standing peers of 9, some pair is not connected");
    let (home, host) = (&nodes[h], &nodes[x]);
    assert!(!home.connected_to(&host.peer_id).await, "{} and {} start unconnected", home.org, host.org);
    let csv = staff_csv(&[("12345678-1", "Alex Testperson", "ZZ123456A")]);
    home.admin().import_staff(ImportFormat::Csv, csv.into_bytes(), ImportQuery::default()).await.unwrap();
    let staff = home.admin().staff_list(&PageQuery::default()).await.unwrap().remove(0).staff_ref;
    home.admin().issue_credential(&staff).await.unwrap();
    let request = ConsentRequest {
        staff,
        receiver: host.org.clone(),
        agreement: agreement.clone(),
        move_kind: MoveKind::Rotation,
        claims: ["identity".parse().unwrap(), "dbs".parse().unwrap()].into_iter().collect(),
        not_before: None,
        not_after: now().plus_days(30),
        staff_key: None,
    };
    let consent = home.admin().grant_consent(&request).await.unwrap().consent.id;
    let admin = home.admin();
    wait_until("the passport is delivered over an on-demand connection", || {
        let admin = admin.clone();
        async move { admin.consent(&consent).await.map(|v| v.state.name() == "delivered").unwrap_or(false) }
    })
    .await;
    assert_eq!(host.admin().received().await.unwrap().len(), 1, "{} holds the passport", host.org);
    // The dial was for the request: neither counts the other as standing,
    // and once idle the connection is closed; each is back to its neighbours.
    assert_eq!(peers_where(home, |p| p.standing).await, picks[h], "{}", home.org);
    assert_eq!(peers_where(host, |p| p.standing).await, picks[x], "{}", host.org);
    let delivered = started.elapsed();
    let what = format!("{} closes the connection it dialled to {} once idle", home.org, host.org);
    wait_for_set(&what, &nodes, &neighbours[h], || peers_where(home, |p| p.connected)).await;
    let what = format!("{} is back to its neighbours", host.org);
    wait_for_set(&what, &nodes, &neighbours[x], || peers_where(host, |p| p.connected)).await;

    let counts: Vec<String> = nodes
        .iter()
        .zip(&neighbours)
        .map(|(n, nb)| format!("{} dials {K}, connected to {}", n.org, nb.len()))
        .collect();
    eprintln!(
        "10 members, standing_peers {K}: {}; settled in {settled:?}; {} -> {} delivered unconnected at {delivered:?}, \
         closed by {:?}",
        counts.join(", "),
        home.org,
        host.org,
        started.elapsed()
    );
}
