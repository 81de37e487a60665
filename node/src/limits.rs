//! Resource limits against peers and clients that ask too much: a token
//! bucket per peer for request rates ([`PeerRates`]), and a per-reason
//! rate-limited logger ([`LogLimiter`]) so a flood of refusals does not
//! flood the log as well.

use std::collections::HashMap;
use std::hash::Hash;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use libp2p::PeerId;

/// A sustained rate with a burst allowance.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Rate {
    /// Tokens added per second.
    pub per_sec: u32,
    /// Most tokens held at once: how many requests may come back to back.
    pub burst: u32,
}

/// A token bucket: starts full (`burst` tokens), refills at `per_sec`, and
/// each request takes one token.
#[derive(Debug, Clone, Copy)]
pub struct TokenBucket {
    tokens: f64,
    last: Instant,
}

impl TokenBucket {
    /// A full bucket for `rate` at `now`.
    pub fn full(rate: Rate, now: Instant) -> Self {
        TokenBucket { tokens: f64::from(rate.burst), last: now }
    }

    fn refill(&mut self, rate: Rate, now: Instant) {
        let elapsed = now.saturating_duration_since(self.last).as_secs_f64();
        self.tokens = (self.tokens + elapsed * f64::from(rate.per_sec)).min(f64::from(rate.burst));
        self.last = now.max(self.last);
    }

    /// Takes one token if there is one; `false` means over the rate.
    pub fn try_take(&mut self, rate: Rate, now: Instant) -> bool {
        self.refill(rate, now);
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            true
        } else {
            false
        }
    }

    /// True if the bucket has refilled completely by `now`: forgetting it
    /// then changes nothing.
    fn is_full(&self, rate: Rate, now: Instant) -> bool {
        let mut b = *self;
        b.refill(rate, now);
        b.tokens >= f64::from(rate.burst)
    }
}

/// Default bound on the number of peers [`PeerRates`] tracks at once.
pub const MAX_TRACKED_PEERS: usize = 65_536;

/// One token bucket per peer, in a bounded map: when it is full, buckets
/// that have refilled (equal to a fresh one) are dropped first, then the
/// one used longest ago.
pub struct PeerRates<K = PeerId> {
    rate: Rate,
    max_peers: usize,
    buckets: Mutex<HashMap<K, TokenBucket>>,
}

impl<K: Eq + Hash + Clone> PeerRates<K> {
    /// Limits each peer to `rate`, tracking at most `max_peers` peers.
    pub fn new(rate: Rate, max_peers: usize) -> Self {
        PeerRates { rate, max_peers: max_peers.max(1), buckets: Mutex::new(HashMap::new()) }
    }

    /// Takes a token from `peer`'s bucket now; `false` means over its rate.
    pub fn allow(&self, peer: &K) -> bool {
        self.allow_at(peer, Instant::now())
    }

    /// As [`PeerRates::allow`], at `now`.
    pub fn allow_at(&self, peer: &K, now: Instant) -> bool {
        let mut buckets = self.buckets.lock().unwrap_or_else(|p| p.into_inner());
        if !buckets.contains_key(peer) && buckets.len() >= self.max_peers {
            let rate = self.rate;
            buckets.retain(|_, b| !b.is_full(rate, now));
            if buckets.len() >= self.max_peers {
                let oldest = buckets.iter().min_by_key(|(_, b)| b.last).map(|(k, _)| k.clone());
                if let Some(k) = oldest {
                    buckets.remove(&k);
                }
            }
        }
        buckets.entry(peer.clone()).or_insert_with(|| TokenBucket::full(self.rate, now)).try_take(self.rate, now)
    }

    /// Whether `peer` has a token left now, without taking it.
    pub fn has_token(&self, peer: &K) -> bool {
        let now = Instant::now();
        let buckets = self.buckets.lock().unwrap_or_else(|p| p.into_inner());
        buckets.get(peer).is_none_or(|b| {
            let mut b = *b;
            b.refill(self.rate, now);
            b.tokens >= 1.0
        })
    }

    /// How many peers are tracked.
    pub fn tracked(&self) -> usize {
        self.buckets.lock().unwrap_or_else(|p| p.into_inner()).len()
    }
}

/// At most one log line per key in a period; the next line says how many
/// were not logged meanwhile.
pub struct LogLimiter<K = &'static str> {
    every: Duration,
    last: Mutex<HashMap<K, (Instant, u64)>>,
}

impl<K: Eq + Hash> LogLimiter<K> {
    /// At most one line per key every `every`.
    pub fn new(every: Duration) -> Self {
        LogLimiter { every, last: Mutex::new(HashMap::new()) }
    }

    /// `Some(suppressed)` if a line for `key` should be logged now (with
    /// the number of lines suppressed since the last one), `None` if it
    /// should be suppressed.
    pub fn should_log(&self, key: K) -> Option<u64> {
        self.should_log_at(key, Instant::now())
    }

    fn should_log_at(&self, key: K, now: Instant) -> Option<u64> {
        let mut last = self.last.lock().unwrap_or_else(|p| p.into_inner());
        match last.get_mut(&key) {
            Some((at, suppressed)) if now.saturating_duration_since(*at) < self.every => {
                *suppressed += 1;
                None
            }
            slot => {
                let suppressed = slot.map(|(_, s)| *s).unwrap_or(0);
                last.insert(key, (now, 0));
                Some(suppressed)
            }
        }
    }

    /// Lines suppressed for `key` since its last logged line.
    pub fn suppressed(&self, key: &K) -> u64 {
        self.last.lock().unwrap_or_else(|p| p.into_inner()).get(key).map_or(0, |(_, s)| *s)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const RATE: Rate = Rate { per_sec: 10, burst: 5 };

    #[test]
    fn a_bucket_allows_its_burst_then_refuses() {
        let t0 = Instant::now();
        let mut b = TokenBucket::full(RATE, t0);
        for i in 0..5 {
            assert!(b.try_take(RATE, t0), "request {i} of the burst");
        }
        assert!(!b.try_take(RATE, t0), "the sixth at once is over the rate");
    }

    #[test]
    fn a_bucket_refills_at_its_rate_and_never_beyond_its_burst() {
        let t0 = Instant::now();
        let mut b = TokenBucket::full(RATE, t0);
        while b.try_take(RATE, t0) {}
        // 10 per second: one token every 100 ms.
        assert!(!b.try_take(RATE, t0 + Duration::from_millis(50)));
        assert!(b.try_take(RATE, t0 + Duration::from_millis(120)));
        assert!(!b.try_take(RATE, t0 + Duration::from_millis(130)));
        // A long quiet spell gives back the burst, not more.
        let later = t0 + Duration::from_secs(3600);
        let taken = (0..100).filter(|_| b.try_take(RATE, later)).count();
        assert_eq!(taken, 5);
    }

    #[test]
    fn a_clock_going_backwards_adds_nothing() {
        let t0 = Instant::now() + Duration::from_secs(10);
        let mut b = TokenBucket::full(RATE, t0);
        while b.try_take(RATE, t0) {}
        assert!(!b.try_take(RATE, t0 - Duration::from_secs(5)));
    }

    #[test]
    fn peers_have_buckets_of_their_own() {
        let rates = PeerRates::new(RATE, 16);
        let (a, b) = (PeerId::random(), PeerId::random());
        let t0 = Instant::now();
        assert_eq!((0..20).filter(|_| rates.allow_at(&a, t0)).count(), 5);
        assert_eq!((0..20).filter(|_| rates.allow_at(&b, t0)).count(), 5, "b is not limited by a's flood");
    }

    #[test]
    fn the_map_stays_bounded_and_keeps_the_busy_peers() {
        let rates = PeerRates::new(RATE, 4);
        let t0 = Instant::now();
        let flooder = PeerId::random();
        while rates.allow_at(&flooder, t0) {}
        // Many other peers, each asking once, at the same instant: the
        // flooder's empty bucket is the one used most recently...
        let t1 = t0 + Duration::from_millis(1);
        while rates.allow_at(&flooder, t1) {}
        for _ in 0..100 {
            rates.allow_at(&PeerId::random(), t0);
        }
        assert!(rates.tracked() <= 4);
        // ...so it is kept, still empty.
        assert!(!rates.allow_at(&flooder, t1), "evicting the flooder would give it a new burst");
    }

    #[test]
    fn refilled_buckets_are_dropped_first() {
        let rates = PeerRates::new(RATE, 2);
        let t0 = Instant::now();
        let (quiet, busy) = (PeerId::random(), PeerId::random());
        rates.allow_at(&quiet, t0);
        while rates.allow_at(&busy, t0) {}
        // A second later the quiet peer's bucket is full again, the busy one
        // is drained once more.
        let t1 = t0 + Duration::from_secs(1);
        while rates.allow_at(&busy, t1) {}
        assert!(rates.allow_at(&PeerId::random(), t1));
        assert_eq!(rates.tracked(), 2);
        assert!(!rates.allow_at(&busy, t1), "the busy peer's bucket was kept");
    }

    #[test]
    fn the_log_limiter_logs_once_per_period_and_counts_the_rest() {
        let log = LogLimiter::new(Duration::from_secs(60));
        let t0 = Instant::now();
        assert_eq!(log.should_log_at("a", t0), Some(0));
        assert_eq!(log.should_log_at("a", t0 + Duration::from_secs(1)), None);
        assert_eq!(log.should_log_at("a", t0 + Duration::from_secs(2)), None);
        assert_eq!(log.should_log_at("b", t0 + Duration::from_secs(2)), Some(0), "keys are separate");
        assert_eq!(log.suppressed(&"a"), 2);
        assert_eq!(log.should_log_at("a", t0 + Duration::from_secs(61)), Some(2));
        assert_eq!(log.suppressed(&"a"), 0);
    }
}
