//! Who may subscribe to an agreement's roster topic.
//!
//! gossipsub sends a topic's messages to every connected peer that says it
//! subscribes, and its subscription filter cannot see which peer asks. So
//! the network judges each subscription it is told of (and every standing
//! one after a roster change) against the agreement's roster: the nodes of
//! active and suspended members may subscribe; a node of a removed member
//! is given a grace period to apply its own removal and unsubscribe (it can
//! still read the chain up to the entry that removed it); any other peer is
//! a member of some other agreement reaching for this one, and is
//! disconnected at once, before any message of the topic is sent to it.

use std::collections::{HashMap, HashSet};
use std::time::{Duration, Instant};

use libp2p::PeerId;
use libp2p::gossipsub::TopicHash;

/// How long a removed member's node may stay subscribed.
pub const GRACE: Duration = Duration::from_secs(10);

/// One agreement's roster topic, as the node hands it to the network.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Topic {
    /// The topic's name.
    pub name: String,
    /// Whether this node subscribes to it.
    pub subscribe: bool,
    /// Peers that may subscribe.
    pub readers: Vec<PeerId>,
    /// Peers let go after [`GRACE`].
    pub former: Vec<PeerId>,
}

/// The verdict on one peer's subscription to one topic.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Judgement {
    /// A topic this node does not hold, or a peer that may subscribe.
    Allowed,
    /// A removed member's node: tolerated until the grace period ends.
    Stale,
    /// Anyone else: disconnect now.
    Foreign,
}

struct Rule {
    readers: HashSet<PeerId>,
    former: HashSet<PeerId>,
}

/// The rules of every held topic, and the stale subscriptions being timed.
#[derive(Default)]
pub struct TopicRules {
    rules: HashMap<TopicHash, Rule>,
    stale: HashMap<(PeerId, TopicHash), Instant>,
}

impl TopicRules {
    /// Replaces the rules. Returns the topics no longer held.
    pub fn set(&mut self, topics: &[Topic]) -> Vec<TopicHash> {
        let new: HashMap<TopicHash, Rule> = topics
            .iter()
            .map(|t| {
                let rule =
                    Rule { readers: t.readers.iter().copied().collect(), former: t.former.iter().copied().collect() };
                (TopicHash::from_raw(t.name.clone()), rule)
            })
            .collect();
        let dropped = self.rules.keys().filter(|h| !new.contains_key(*h)).cloned().collect();
        self.rules = new;
        let rules = &self.rules;
        self.stale.retain(|(_, topic), _| rules.contains_key(topic));
        dropped
    }

    /// Judges `peer`'s subscription to `topic` at `now`; a stale one starts
    /// (or keeps) its grace period.
    pub fn judge(&mut self, peer: PeerId, topic: &TopicHash, now: Instant) -> Judgement {
        let Some(rule) = self.rules.get(topic) else { return Judgement::Allowed };
        if rule.readers.contains(&peer) {
            self.stale.remove(&(peer, topic.clone()));
            Judgement::Allowed
        } else if rule.former.contains(&peer) {
            self.stale.entry((peer, topic.clone())).or_insert(now);
            Judgement::Stale
        } else {
            Judgement::Foreign
        }
    }

    /// `peer` left `topic` (or disconnected, with `topic` `None`).
    pub fn forget(&mut self, peer: PeerId, topic: Option<&TopicHash>) {
        match topic {
            Some(t) => {
                self.stale.remove(&(peer, t.clone()));
            }
            None => self.stale.retain(|(p, _), _| *p != peer),
        }
    }

    /// Peers whose stale subscription outlived the grace period at `now`
    /// (each once; the caller disconnects them).
    pub fn overdue(&mut self, now: Instant) -> Vec<PeerId> {
        let mut out: Vec<PeerId> =
            self.stale.iter().filter(|(_, since)| now.duration_since(**since) >= GRACE).map(|((p, _), _)| *p).collect();
        out.sort();
        out.dedup();
        for p in &out {
            self.forget(*p, None);
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn topic(readers: &[PeerId], former: &[PeerId]) -> Topic {
        Topic { name: "/t".into(), subscribe: true, readers: readers.to_vec(), former: former.to_vec() }
    }

    #[test]
    fn readers_pass_strangers_fail_the_removed_wait_out_the_grace() {
        let (reader, removed, stranger) = (PeerId::random(), PeerId::random(), PeerId::random());
        let mut r = TopicRules::default();
        assert!(r.set(&[topic(&[reader], &[removed])]).is_empty());
        let t = TopicHash::from_raw("/t");
        let t0 = Instant::now();
        assert_eq!(r.judge(reader, &t, t0), Judgement::Allowed);
        assert_eq!(r.judge(stranger, &t, t0), Judgement::Foreign);
        assert_eq!(r.judge(removed, &t, t0), Judgement::Stale);
        assert_eq!(r.judge(stranger, &TopicHash::from_raw("/other"), t0), Judgement::Allowed, "not a held topic");
        assert!(r.overdue(t0 + GRACE / 2).is_empty(), "still in its grace period");
        // Judged again later: the grace period runs from the first time.
        assert_eq!(r.judge(removed, &t, t0 + GRACE / 2), Judgement::Stale);
        assert_eq!(r.overdue(t0 + GRACE), vec![removed]);
        assert!(r.overdue(t0 + GRACE * 2).is_empty(), "reported once");
    }

    #[test]
    fn unsubscribing_or_a_dropped_topic_ends_the_grace_period() {
        let removed = PeerId::random();
        let mut r = TopicRules::default();
        r.set(&[topic(&[], &[removed])]);
        let t = TopicHash::from_raw("/t");
        let t0 = Instant::now();
        r.judge(removed, &t, t0);
        r.forget(removed, Some(&t));
        assert!(r.overdue(t0 + GRACE).is_empty());
        r.judge(removed, &t, t0);
        assert_eq!(r.set(&[]), vec![t]);
        assert!(r.overdue(t0 + GRACE).is_empty());
    }
}
