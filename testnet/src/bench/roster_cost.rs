//! Figure 9: what one roster entry costs on a short and on a long chain
//! (issue 13, roster denial of service). Judging the next entry and a
//! different entry at a taken seq must cost the same on a chain of 100
//! entries and of 10,000: the chain keeps each seq's hash and each
//! stretch's steward set, so nothing is replayed or copied per entry.
//! Pure (`protocol` only, no I/O): `Chain::prepare` decides without
//! changing the chain, so each case is repeated on the same chain.

use std::hint::black_box;
use std::time::Instant;

use staffpass_protocol::roster::{Chain, Change, Entry};
use staffpass_protocol::testkit::RosterBuilder;

use super::{Row, Sizes};

/// A chain of `len` entries (members, then re-signs), the next valid
/// entry, a valid different entry at seq 1 (an equivocation) and an
/// invalid one there (a member's junk: one signature).
fn fixture(len: usize) -> (Chain, Entry, Entry, Entry) {
    let mut r = staffpass_protocol::testkit::roster();
    for i in 0..8 {
        r.add_member(&format!("B{i:03}"));
    }
    while r.chain.entries().len() < len {
        let until = r.chain.state().valid_until.plus_secs(60);
        r.push(Change::Resign { valid_until: until });
    }
    let until = r.chain.state().valid_until.plus_secs(60);
    let next = r.entry(Change::Resign { valid_until: until }, 2);
    let alt = |signers: usize| {
        let mut e = r.chain.entries()[1].clone();
        e.body.issued_at = e.body.issued_at.plus_secs(1);
        e.signatures.clear();
        for s in r.stewards.iter().take(signers) {
            e.sign(s);
        }
        e
    };
    let (fork, junk) = (alt(2), alt(1));
    let RosterBuilder { chain, .. } = r;
    (chain, next, fork, junk)
}

/// Mean microseconds of `f` over `n` runs.
fn time(n: usize, mut f: impl FnMut()) -> f64 {
    let t = Instant::now();
    for _ in 0..n {
        f();
    }
    t.elapsed().as_secs_f64() * 1e6 / n as f64
}

/// The three costs on a chain of `len` entries, in microseconds.
fn costs(len: usize, reps: usize) -> [f64; 3] {
    let (chain, next, fork, junk) = fixture(len);
    let next_cost = time(reps, || {
        black_box(chain.prepare(next.clone()).is_ok());
    });
    let fork_cost = time(reps, || {
        black_box(chain.prepare(fork.clone()).is_ok());
    });
    let junk_cost = time(reps, || {
        black_box(chain.prepare(junk.clone()).is_err());
    });
    [next_cost, fork_cost, junk_cost]
}

/// Figure 9's rows.
pub fn run(sizes: &Sizes) -> anyhow::Result<Vec<Row>> {
    let (short, long) = (100, sizes.roster_chain);
    let reps = 2_000;
    let a = costs(short, reps);
    let b = costs(long, reps);
    let names = ["apply the next entry", "judge a valid entry at a taken seq", "refuse a junk entry at a taken seq"];
    let mut rows = Vec::new();
    for (i, name) in names.iter().enumerate() {
        let ratio = b[i] / a[i];
        rows.push(
            Row::new("9 roster cost", &format!("{name}, chain of {long}"), b[i], "µs")
                .baseline(a[i], &format!("same, chain of {short}"))
                .target("within 2× of the short chain", ratio <= 2.0),
        );
    }
    Ok(rows)
}
