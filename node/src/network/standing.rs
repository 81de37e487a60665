//! Which member nodes this node keeps standing connections to.
//!
//! In an agreement of thousands of members a node cannot keep a connection
//! to every other node. In each agreement it dials and keeps connected at
//! most `network.standing_peers` of the other member nodes, its standing
//! peers, chosen by rendezvous hashing: every other
//! node is scored by SHA-256 of (this node's id ‖ its id) and the lowest
//! scores are kept. Each node picks its own, so the standing connections of
//! an agreement form a random graph in which every node has at least
//! `standing_peers` neighbours (its picks and the nodes that picked it):
//! connected, with gossip crossing it in a few hops. Adding or removing one
//! member changes at most one standing peer of any node.
//!
//! Every member node stays allowed to connect, and one that is not a
//! standing peer is dialled when there is something to send it (see
//! [`super::Network::exchange`]).

use libp2p::PeerId;
use staffpass_protocol::Hash;

/// The rendezvous score of `them` as seen from `me`: lower is closer.
pub fn score(me: &PeerId, them: &PeerId) -> Hash {
    let mut bytes = me.to_bytes();
    bytes.extend_from_slice(&them.to_bytes());
    Hash::of(&bytes)
}

/// The standing peers of `me` among one agreement's member nodes
/// `candidates`: all of them (but `me`) if there are at most `k`, else the
/// `k` with the lowest [`score`]. Duplicates count once; the result is in
/// score order.
pub fn choose(me: &PeerId, candidates: impl IntoIterator<Item = PeerId>, k: usize) -> Vec<PeerId> {
    let mut scored: Vec<(Hash, PeerId)> =
        candidates.into_iter().filter(|p| p != me).map(|p| (score(me, &p), p)).collect();
    scored.sort_unstable_by_key(|(h, _)| *h);
    scored.dedup_by(|a, b| a.1 == b.1);
    scored.truncate(k);
    scored.into_iter().map(|(_, p)| p).collect()
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use super::*;

    fn peers(n: usize) -> Vec<PeerId> {
        (0..n).map(|_| libp2p::identity::Keypair::generate_ed25519().public().to_peer_id()).collect()
    }

    #[test]
    fn everyone_is_chosen_when_there_are_at_most_k() {
        let all = peers(5);
        let me = all[0];
        let got: BTreeSet<PeerId> = choose(&me, all.iter().copied(), 4).into_iter().collect();
        let want: BTreeSet<PeerId> = all[1..].iter().copied().collect();
        assert_eq!(got, want, "the four others, never itself");
        let got: BTreeSet<PeerId> = choose(&me, all.iter().copied(), 24).into_iter().collect();
        assert_eq!(got, want);
        assert!(choose(&me, [me], 4).is_empty());
    }

    #[test]
    fn at_most_k_the_lowest_scores_and_the_same_whatever_the_order() {
        let all = peers(40);
        let me = all[7];
        let k = 6;
        let got = choose(&me, all.iter().copied(), k);
        assert_eq!(got.len(), k);
        assert!(!got.contains(&me));
        // The lowest scores, by brute force.
        let mut by_score: Vec<PeerId> = all.iter().copied().filter(|p| *p != me).collect();
        by_score.sort_by_key(|p| score(&me, p));
        assert_eq!(got, by_score[..k]);
        // Deterministic: any order, any duplicates, same choice.
        let mut shuffled: Vec<PeerId> = all.iter().rev().copied().collect();
        shuffled.extend(all.iter().take(10).copied());
        assert_eq!(choose(&me, shuffled, k), got);
        // Another node chooses for itself.
        assert_ne!(choose(&all[8], all.iter().copied(), k), got);
    }

    #[test]
    fn one_new_member_changes_at_most_one_standing_peer() {
        let all = peers(30);
        let me = all[0];
        let before: BTreeSet<PeerId> = choose(&me, all.iter().copied(), 5).into_iter().collect();
        let newcomer = peers(1)[0];
        let after: BTreeSet<PeerId> = choose(&me, all.iter().copied().chain([newcomer]), 5).into_iter().collect();
        assert!(before.difference(&after).count() <= 1, "{before:?} -> {after:?}");
        assert!(after.difference(&before).all(|p| *p == newcomer));
    }
}
