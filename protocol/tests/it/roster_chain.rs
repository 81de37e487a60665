//! The roster chain: `roster::apply` and `roster::Chain`.
//!
//! Random sequences of valid changes apply and mean what they say; any
//! corruption, reordering or signature fault is refused with its own
//! error; two valid entries at one seq halt the chain; and the queries the
//! node and `verify_bundle` rely on answer correctly across time.

// Test code: a failed unwrap is a failed assertion (clippy.toml allows it
// in #[test] fns; this extends it to the helpers).
#![allow(clippy::unwrap_used)]

use std::collections::{BTreeMap, BTreeSet};
use std::sync::OnceLock;

use proptest::prelude::*;
use staffpass_protocol::claims::ClaimKind;
use staffpass_protocol::encoding;
use staffpass_protocol::keys::{IssuerPublicKey, StewardSecretKey};
use staffpass_protocol::roster::{
    self, Appended, Chain, Change, ChangeError, Entry, EntryBody, Error, KeyValidity, MemberSpec, MemberStatus,
    MoveKind, State, StewardSignature, Terms, limits,
};
use staffpass_protocol::testkit::{self, RosterBuilder, agreement, issuer, node, org, steward};
use staffpass_protocol::wire::roster::decode_entry;
use staffpass_protocol::{OrgId, Signature, Timestamp};

use crate::common::{conflicting, flip};

/// The standard roster (genesis, RJZ, RJ1), built and checked once.
fn roster() -> RosterBuilder {
    static BASE: OnceLock<(Chain, Timestamp)> = OnceLock::new();
    let (chain, clock) = BASE.get_or_init(|| {
        let r = testkit::roster();
        (r.chain, r.clock)
    });
    RosterBuilder { chain: chain.clone(), stewards: (0..3).map(steward).collect(), clock: *clock }
}

/// The next entry of `chain` for `change` at `at`, signed by `signers`.
fn next(chain: &Chain, change: Change, at: Timestamp, signers: &[&StewardSecretKey]) -> Entry {
    let st = chain.state();
    let mut e = Entry::unsigned(EntryBody {
        agreement: st.agreement.clone(),
        seq: st.seq + 1,
        prev: st.head,
        issued_at: at,
        change,
    });
    for s in signers {
        e.sign(s);
    }
    e
}

fn member(code: &str, keys: Vec<IssuerPublicKey>) -> MemberSpec {
    MemberSpec {
        org: org(code),
        name: format!("{code} NHS Trust"),
        issuer_keys: keys,
        nodes: vec![node(code)],
        addresses: vec![],
    }
}

fn resign(r: &RosterBuilder) -> Change {
    Change::Resign { valid_until: r.chain.state().valid_until.plus_days(30) }
}

// ------------------------------------------------ random valid sequences

const POOL: [&str; 6] = ["RJZ", "RJ1", "RV5", "RJ2", "RPG", "RYJ"];
const STEWARD_POOL: usize = 6;

#[derive(Debug, Clone)]
enum Op {
    Add(u8),
    Update(u8, u8),
    Rotate(u8, bool),
    Suspend(u8),
    Reinstate(u8),
    Remove(u8),
    SetStewards(u8, u8),
    SetTerms(u8, u32),
    Resign(u16),
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        3 => any::<u8>().prop_map(Op::Add),
        1 => (any::<u8>(), any::<u8>()).prop_map(|(a, b)| Op::Update(a, b)),
        2 => (any::<u8>(), any::<bool>()).prop_map(|(a, b)| Op::Rotate(a, b)),
        2 => any::<u8>().prop_map(Op::Suspend),
        2 => any::<u8>().prop_map(Op::Reinstate),
        1 => any::<u8>().prop_map(Op::Remove),
        1 => (any::<u8>(), any::<u8>()).prop_map(|(a, b)| Op::SetStewards(a, b)),
        1 => (any::<u8>(), any::<u32>()).prop_map(|(a, b)| Op::SetTerms(a, b)),
        1 => any::<u16>().prop_map(Op::Resign),
    ]
}

/// The `i`-th (mod len) member of `state` whose status is in `statuses`.
fn pick(state: &State, i: u8, statuses: &[MemberStatus]) -> Option<OrgId> {
    let c: Vec<&OrgId> = state.members.values().filter(|m| statuses.contains(&m.status)).map(|m| &m.org).collect();
    (!c.is_empty()).then(|| c[usize::from(i) % c.len()].clone())
}

/// What a change should have done, checked after it applied.
enum Expect {
    Status(OrgId, MemberStatus),
    Key { org: OrgId, added: IssuerPublicKey, retired: Option<IssuerPublicKey> },
    Nodes(OrgId, Vec<staffpass_protocol::NodeId>),
    Stewards(BTreeSet<usize>, u8),
    Terms(Terms),
    ValidUntil(Timestamp),
}

/// Turns a random op into a change valid in `state` (falling back to a
/// re-sign where the op has no valid target), with its expected effect.
fn interpret(op: &Op, state: &State, at: Timestamp, counter: &mut u32, stewards: &[usize]) -> (Change, Expect) {
    use MemberStatus::*;
    *counter += 1;
    let n = *counter;
    let fallback = |state: &State| {
        let valid_until = state.valid_until.max(at).plus_days(1);
        (Change::Resign { valid_until }, Expect::ValidUntil(valid_until))
    };
    match *op {
        Op::Add(i) => {
            let free: Vec<&str> =
                POOL.iter().copied().filter(|c| state.status(&org(c)).is_none_or(|s| s == Removed)).collect();
            if free.is_empty() {
                return fallback(state);
            }
            let code = free[usize::from(i) % free.len()];
            let spec = MemberSpec {
                org: org(code),
                name: format!("{code} NHS Trust"),
                issuer_keys: vec![issuer(code, n).public()],
                nodes: vec![node(&format!("{code}-{n}"))],
                addresses: vec![format!("/dns4/{}.example/tcp/4001", code.to_lowercase())],
            };
            (Change::AddMember(spec), Expect::Status(org(code), Active))
        }
        Op::Update(i, what) => {
            let Some(o) = pick(state, i, &[Active, Suspended]) else { return fallback(state) };
            let nodes = vec![node(&format!("{o}-{n}")), node(&format!("{o}-{n}-b"))];
            let change = Change::UpdateMember {
                org: o.clone(),
                name: (what % 3 == 0).then(|| format!("Renamed {n}")),
                nodes: (what % 3 == 1).then(|| nodes.clone()),
                addresses: (what % 3 == 2).then(Vec::new),
            };
            let expected = if what % 3 == 1 { nodes } else { state.nodes_of(&o).to_vec() };
            (change, Expect::Nodes(o, expected))
        }
        Op::Rotate(i, retire) => {
            let Some(o) = pick(state, i, &[Active, Suspended]) else { return fallback(state) };
            let m = &state.members[&o];
            let current: Vec<IssuerPublicKey> =
                m.keys.iter().filter(|k| k.retired_at.is_none()).map(|k| k.key).collect();
            if current.len() >= limits::MAX_PER_MEMBER {
                return fallback(state);
            }
            let add = issuer(&o.to_string(), n).public();
            let retired = (retire && !current.is_empty()).then(|| current[0]);
            (Change::RotateKey { org: o.clone(), add, retire: retired }, Expect::Key { org: o, added: add, retired })
        }
        Op::Suspend(i) => match pick(state, i, &[Active]) {
            Some(o) => (Change::Suspend { org: o.clone(), reason: "audit".into() }, Expect::Status(o, Suspended)),
            None => fallback(state),
        },
        Op::Reinstate(i) => match pick(state, i, &[Suspended]) {
            Some(o) => (Change::Reinstate { org: o.clone() }, Expect::Status(o, Active)),
            None => fallback(state),
        },
        Op::Remove(i) => match pick(state, i, &[Active, Suspended]) {
            Some(o) => (Change::Remove { org: o.clone() }, Expect::Status(o, Removed)),
            None => fallback(state),
        },
        Op::SetStewards(mask, t) => {
            let mask = mask % ((1 << STEWARD_POOL) - 1) + 1;
            let set: BTreeSet<usize> = (0..STEWARD_POOL).filter(|i| mask & (1 << i) != 0).collect();
            // Thresholds stay low: debug-build signature checks are slow.
            let threshold = 1 + t % (set.len().min(2) as u8);
            let _ = stewards;
            let keys = set.iter().map(|i| steward(*i).public()).collect();
            (Change::SetStewards { stewards: keys, threshold }, Expect::Stewards(set, threshold))
        }
        Op::SetTerms(m, a) => {
            let moves: BTreeSet<MoveKind> =
                MoveKind::ALL.iter().enumerate().filter(|(i, _)| m & (1 << i) != 0).map(|(_, k)| *k).collect();
            let mut accepts: BTreeSet<ClaimKind> =
                ClaimKind::all().into_iter().enumerate().filter(|(i, _)| a & (1 << i) != 0).map(|(_, k)| k).collect();
            accepts.insert(ClaimKind::Identity);
            let moves = if moves.is_empty() { [MoveKind::Rotation].into_iter().collect() } else { moves };
            let terms = Terms { moves, accepts, lawful_basis: format!("basis {n}") };
            (Change::SetTerms(terms.clone()), Expect::Terms(terms))
        }
        Op::Resign(d) => {
            let valid_until = state.valid_until.max(at).plus_days(1 + i64::from(d % 400));
            (Change::Resign { valid_until }, Expect::ValidUntil(valid_until))
        }
    }
}

fn check_expectation(state: &State, at: Timestamp, expect: &Expect) -> Result<(), TestCaseError> {
    match expect {
        Expect::Status(o, s) => {
            prop_assert_eq!(state.status(o), Some(*s));
            prop_assert_eq!(state.is_active_at(o, at), *s == MemberStatus::Active);
            prop_assert_eq!(state.is_active(o), *s == MemberStatus::Active);
        }
        Expect::Key { org, added, retired } => {
            prop_assert_eq!(state.key_validity(org, added, at), KeyValidity::Valid);
            prop_assert_eq!(state.key_validity(org, added, at.plus_secs(-1)), KeyValidity::NotYetValid);
            prop_assert!(state.keys_at(org, at).contains(added));
            if let Some(old) = retired {
                prop_assert_eq!(state.key_validity(org, old, at), KeyValidity::Retired);
                prop_assert!(!state.keys_at(org, at).contains(old));
            }
        }
        Expect::Nodes(o, nodes) => {
            prop_assert_eq!(state.nodes_of(o), nodes.as_slice());
            for n in nodes {
                prop_assert_eq!(&state.org_of_node(n).unwrap().org, o);
            }
        }
        Expect::Stewards(set, threshold) => {
            let keys: BTreeSet<_> = set.iter().map(|i| steward(*i).public()).collect();
            prop_assert_eq!(&state.stewards, &keys);
            prop_assert_eq!(state.threshold, *threshold);
        }
        Expect::Terms(t) => prop_assert_eq!(&state.terms, t),
        Expect::ValidUntil(v) => {
            prop_assert_eq!(state.valid_until, *v);
            prop_assert!(state.is_fresh(*v) && !state.is_fresh(v.plus_secs(1)));
        }
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(32))]

    #[test]
    fn random_sequences_of_valid_changes_apply(
        ops in prop::collection::vec((op(), 0u16..600, any::<u8>()), 1..14),
    ) {
        // Genesis: stewards 0 and 1 of the pool, threshold 1.
        let mut stewards: Vec<usize> = vec![0, 1];
        let g = RosterBuilder::new(agreement(), 2, 1);
        let mut at = g.clock;
        let mut chain = g.chain;
        let mut counter = 0;
        for (op, minutes, rot) in &ops {
            at = at.plus_secs(60 * i64::from(*minutes));
            let state = chain.state().clone();
            let (change, expect) = interpret(op, &state, at, &mut counter, &stewards);
            // Sign with `threshold` of the current stewards, starting at a random one.
            let t = usize::from(state.threshold);
            let keys: Vec<StewardSecretKey> =
                (0..t).map(|k| steward(stewards[(usize::from(*rot) + k) % stewards.len()])).collect();
            let e = next(&chain, change, at, &keys.iter().collect::<Vec<_>>());
            // Every entry survives its wire encoding.
            prop_assert_eq!(&decode_entry(&encoding::to_bytes(&e)).unwrap(), &e);
            let applied = chain.append(e.clone());
            prop_assert_eq!(applied, Ok(Appended::Applied), "{:?}", op);
            let st = chain.state();
            prop_assert_eq!(st.seq, state.seq + 1);
            prop_assert_eq!(st.head, e.hash());
            prop_assert_eq!(st.issued_at, at);
            check_expectation(st, at, &expect)?;
            if let Expect::Stewards(set, _) = &expect {
                stewards = set.iter().copied().collect();
            }
            // Every node belongs to exactly one member, every key to one member.
            let mut nodes = BTreeSet::new();
            let mut keys = BTreeSet::new();
            for m in st.members.values() {
                for n in &m.nodes {
                    prop_assert!(nodes.insert(n.clone()), "node {} twice", n);
                }
                for k in &m.keys {
                    prop_assert!(keys.insert(k.key), "key {} twice", k.key);
                }
            }
            // Replaying an entry already held is a no-op.
            prop_assert_eq!(chain.append(e), Ok(Appended::AlreadyHave));
        }
        // The whole chain replays from its entries to the same state.
        let replayed = Chain::from_entries(chain.entries().to_vec()).unwrap();
        prop_assert_eq!(&replayed, &chain);
    }
}

// ---------------------------------------------------------- corruption

/// A chain with one entry of most kinds, its entries' encodings and the
/// state before each entry.
struct Corpus {
    entries: Vec<Entry>,
    before: Vec<Option<State>>,
}

fn corpus() -> &'static Corpus {
    static C: OnceLock<Corpus> = OnceLock::new();
    C.get_or_init(|| {
        let mut r = testkit::roster();
        let resign_change = resign(&r);
        r.push(Change::RotateKey {
            org: org("RJZ"),
            add: issuer("RJZ", 1).public(),
            retire: Some(issuer("RJZ", 0).public()),
        })
        .push(Change::Suspend { org: org("RJ1"), reason: "audit".into() })
        .push(Change::Reinstate { org: org("RJ1") })
        .push(Change::UpdateMember {
            org: org("RJZ"),
            name: Some("King's".into()),
            nodes: Some(vec![node("RJZ"), node("RJZ-2")]),
            addresses: Some(vec!["/ip4/10.0.0.1/tcp/4001".into()]),
        })
        .push(Change::SetStewards { stewards: (0..3).map(|i| steward(i).public()).collect(), threshold: 2 })
        .push(resign_change);
        let entries = r.chain.entries().to_vec();
        let mut before = Vec::new();
        let mut state = None;
        for e in &entries {
            before.push(state.clone());
            state = Some(roster::apply(state.as_ref(), e).unwrap());
        }
        Corpus { entries, before }
    })
}

/// A corrupted encoding is refused at decode, or refused by `apply`; it is
/// never accepted with another meaning. True if it got past decoding.
fn check_corruption(i: usize, bytes: &[u8]) -> Result<bool, TestCaseError> {
    let c = corpus();
    let Ok(e) = decode_entry(bytes) else { return Ok(false) };
    prop_assert_ne!(&e, &c.entries[i], "two encodings of one entry");
    let verdict = roster::apply(c.before[i].as_ref(), &e);
    prop_assert!(verdict.is_err(), "entry {} accepted with another meaning: {:?}", i, e.body.change);
    Ok(true)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(128))]

    #[test]
    fn a_corrupted_byte_is_refused(which in any::<prop::sample::Index>(), pos in any::<prop::sample::Index>(), mask in 1u8..=255) {
        let c = corpus();
        let i = which.index(c.entries.len());
        let bytes = encoding::to_bytes(&c.entries[i]);
        check_corruption(i, &flip(&bytes, pos.index(bytes.len()), mask))?;
    }
}

#[test]
fn every_corrupted_byte_of_an_entry_is_refused() {
    let c = corpus();
    // The reinstate entry: small, with two signatures.
    let i = c.entries.iter().position(|e| matches!(e.body.change, Change::Reinstate { .. })).unwrap();
    let bytes = encoding::to_bytes(&c.entries[i]);
    assert_eq!(roster::apply(c.before[i].as_ref(), &c.entries[i]).map(|s| s.seq), Ok(i as u64));
    let mut decoded = 0;
    for pos in 0..bytes.len() {
        decoded +=
            usize::from(check_corruption(i, &flip(&bytes, pos, 0x01)).unwrap_or_else(|e| panic!("byte {pos}: {e}")));
    }
    // Both ways of refusing were exercised: most flips decode (and fail their signatures).
    assert!(decoded > bytes.len() / 2 && decoded < bytes.len(), "{decoded} of {} decoded", bytes.len());
}

#[test]
fn a_corrupted_genesis_is_refused() {
    let c = corpus();
    let bytes = encoding::to_bytes(&c.entries[0]);
    for pos in (0..bytes.len()).step_by(7) {
        check_corruption(0, &flip(&bytes, pos, 0x80)).unwrap_or_else(|e| panic!("byte {pos}: {e}"));
    }
}

// ----------------------------------------------------------- ordering

#[test]
fn entries_out_of_order_are_refused() {
    let c = corpus();
    let (e3, e4) = (&c.entries[3], &c.entries[4]);
    assert_eq!(roster::apply(c.before[3].as_ref(), e4).unwrap_err(), Error::Gap { from: 3, to: 4 });
    let mut swapped = c.entries.clone();
    swapped.swap(3, 4);
    assert_eq!(Chain::from_entries(swapped).unwrap_err(), Error::Gap { from: 3, to: 4 });
    // An old entry applied on a later state is not the next one.
    assert_eq!(roster::apply(c.before[5].as_ref(), e3).unwrap_err(), Error::WrongSeq { expected: 5, found: 3 });
    // Nor is a genesis anywhere but first.
    assert_eq!(Chain::from_entries(c.entries[1..].to_vec()).unwrap_err(), Error::NotGenesis);
    // While the chain itself just says it has it.
    let mut chain = Chain::from_entries(c.entries.clone()).unwrap();
    assert_eq!(chain.append(e3.clone()), Ok(Appended::AlreadyHave));
}

#[test]
fn gap_wrong_seq_bad_prev_and_backdating_are_each_refused() {
    let r = roster();
    let st = r.chain.state();
    let signers: Vec<&StewardSecretKey> = r.stewards.iter().take(2).collect();
    let base = next(&r.chain, resign(&r), r.clock, &signers);
    let resigned = |f: &dyn Fn(&mut EntryBody)| {
        let mut e = base.clone();
        f(&mut e.body);
        let mut out = Entry::unsigned(e.body);
        for s in &signers {
            out.sign(s);
        }
        out
    };
    assert_eq!(roster::apply(Some(st), &base).map(|s| s.seq), Ok(3));
    assert_eq!(roster::apply(Some(st), &resigned(&|b| b.seq = 5)), Err(Error::Gap { from: 3, to: 5 }));
    assert_eq!(roster::apply(Some(st), &resigned(&|b| b.seq = 2)), Err(Error::WrongSeq { expected: 3, found: 2 }));
    assert_eq!(roster::apply(Some(st), &resigned(&|b| b.seq = 0)), Err(Error::WrongSeq { expected: 3, found: 0 }));
    let wrong_prev = staffpass_protocol::Hash::of(b"not the head");
    assert_eq!(
        roster::apply(Some(st), &resigned(&|b| b.prev = wrong_prev)),
        Err(Error::BadPrev { expected: st.head, found: wrong_prev })
    );
    let early = st.issued_at.plus_secs(-1);
    assert_eq!(
        roster::apply(Some(st), &resigned(&|b| b.issued_at = early)),
        Err(Error::IssuedBeforePrevious { previous: st.issued_at, found: early })
    );
    // The same instant as the previous entry is allowed.
    assert!(roster::apply(Some(st), &resigned(&|b| b.issued_at = st.issued_at)).is_ok());
    let other: staffpass_protocol::AgreementId = "kent-mou".parse().unwrap();
    assert_eq!(
        roster::apply(Some(st), &resigned(&|b| b.agreement = other.clone())),
        Err(Error::WrongAgreement { expected: agreement(), found: other.clone() })
    );
    let mut v2 = base.clone();
    v2.version += 1;
    assert_eq!(roster::apply(Some(st), &v2), Err(Error::UnsupportedVersion { found: 2, supported: 1 }));
    // A chain cannot start with anything but a genesis at seq 0.
    assert_eq!(roster::apply(None, &base), Err(Error::NotGenesis));
    let mut genesis = r.chain.entries()[0].clone();
    genesis.body.seq = 1;
    assert_eq!(roster::apply(None, &genesis), Err(Error::NotGenesis));
}

// ----------------------------------------------------------- signatures

#[test]
fn signature_faults_are_each_refused_with_their_error() {
    let r = roster();
    let st = r.chain.state();
    let s = &r.stewards;
    let ok = next(&r.chain, resign(&r), r.clock, &[&s[0], &s[1]]);
    assert!(roster::apply(Some(st), &ok).is_ok());

    // One signature short of the threshold.
    let mut below = ok.clone();
    below.signatures.pop();
    assert_eq!(roster::apply(Some(st), &below), Err(Error::BelowThreshold { have: 1, need: 2 }));
    let mut none = ok.clone();
    none.signatures.clear();
    assert_eq!(roster::apply(Some(st), &none), Err(Error::BelowThreshold { have: 0, need: 2 }));

    // The same steward twice does not count twice.
    let mut dup = below.clone();
    dup.signatures.push(dup.signatures[0].clone());
    let who = dup.signatures[0].steward;
    assert_eq!(roster::apply(Some(st), &dup), Err(Error::DuplicateSigner { steward: who }));

    // A key that is not a steward (here: a well-formed steward key outside the set).
    let outsider = steward(7);
    let mut unknown = below.clone();
    unknown.sign(&outsider);
    assert_eq!(roster::apply(Some(st), &unknown), Err(Error::UnknownSigner { steward: outsider.public() }));

    // A steward's signature that does not verify (over another body).
    let mut bad = ok.clone();
    let other_body = next(&r.chain, Change::Resign { valid_until: st.valid_until.plus_days(31) }, r.clock, &[&s[1]]);
    bad.signatures[1] =
        StewardSignature { steward: bad.signatures[1].steward, signature: other_body.signatures[0].signature };
    let which = bad.signatures[1].steward;
    assert_eq!(roster::apply(Some(st), &bad), Err(Error::BadSignature { steward: which }));
    let mut zero = ok.clone();
    zero.signatures[0].signature = Signature([0; 64]);
    let which = zero.signatures[0].steward;
    assert_eq!(roster::apply(Some(st), &zero), Err(Error::BadSignature { steward: which }));

    // Extra valid signatures beyond the threshold are fine.
    let all = next(&r.chain, resign(&r), r.clock, &[&s[0], &s[1], &s[2]]);
    assert!(roster::apply(Some(st), &all).is_ok());
}

#[test]
fn set_stewards_is_checked_against_the_old_stewards() {
    let mut r = roster();
    let old: Vec<StewardSecretKey> = (0..3).map(steward).collect();
    let new: Vec<StewardSecretKey> = (3..5).map(steward).collect();
    let change = Change::SetStewards { stewards: new.iter().map(|k| k.public()).collect(), threshold: 2 };

    // Signed by the incoming stewards only: they are not stewards yet.
    let by_new = next(&r.chain, change.clone(), r.clock, &[&new[0], &new[1]]);
    let first_new = by_new.signatures[0].steward;
    assert_eq!(roster::apply(Some(r.chain.state()), &by_new), Err(Error::UnknownSigner { steward: first_new }));
    // Signed by one old steward: below the old threshold.
    let by_one = next(&r.chain, change.clone(), r.clock, &[&old[0]]);
    assert_eq!(roster::apply(Some(r.chain.state()), &by_one), Err(Error::BelowThreshold { have: 1, need: 2 }));
    // Signed by the old threshold: applies.
    r.chain.append(next(&r.chain, change, r.clock, &[&old[0], &old[2]])).unwrap();
    assert_eq!(r.chain.state().threshold, 2);

    // From then on the old stewards are outsiders and the new ones sign.
    let later = r.clock.plus_secs(60);
    let by_old = next(&r.chain, resign(&r), later, &[&old[0], &old[1]]);
    assert!(matches!(roster::apply(Some(r.chain.state()), &by_old), Err(Error::UnknownSigner { .. })));
    r.chain.append(next(&r.chain, resign(&r), later, &[&new[0], &new[1]])).unwrap();
}

// ---------------------------------------------------------- equivocation

#[test]
fn two_valid_entries_at_one_seq_halt_the_chain() {
    let mut r = roster();
    r.push(resign(&r));
    let held = r.chain.entries()[3].clone();
    let before = r.chain.state_at(2).unwrap();
    let other = conflicting(&r.chain, 3, &r.stewards[1..3]);
    assert_ne!(other.hash(), held.hash());
    assert!(roster::apply(Some(&before), &other).is_ok(), "the conflicting entry is itself valid");

    let err = r.chain.append(other.clone()).unwrap_err();
    let Error::Equivocation { seq, existing, conflicting: conflict } = err else {
        panic!("not an equivocation: {err}")
    };
    assert_eq!((seq, *existing, *conflict), (3, held.clone(), other.clone()));

    // Halted with the evidence; neither entry stands.
    let eq = r.chain.halted().expect("halted");
    assert_eq!((eq.seq, &eq.existing, &eq.conflicting), (3, &held, &other));
    assert_eq!(r.chain.state().seq, 2);
    assert_eq!(r.chain.state(), &before);

    // Nothing more is accepted, but the two known entries are recognised.
    let after = next(&r.chain, resign(&r), r.clock.plus_secs(60), &[&r.stewards[0], &r.stewards[1]]);
    assert_eq!(r.chain.append(after), Err(Error::Halted { seq: 3 }));
    let third = conflicting(&r.chain, 3, &r.stewards[0..2]);
    let mut third = third;
    third.body.issued_at = third.body.issued_at.plus_secs(5);
    assert_eq!(r.chain.append(third), Err(Error::Halted { seq: 3 }));
    assert_eq!(r.chain.append(held.clone()), Ok(Appended::AlreadyHave));
    assert_eq!(r.chain.append(other.clone()), Ok(Appended::AlreadyHave));
    assert!(r.chain.halted().is_some());

    // A halted chain restores halted from what a node stores.
    let restored = Chain::restore(r.chain.entries().to_vec(), r.chain.halted().cloned()).unwrap();
    assert_eq!(restored.halted(), r.chain.halted());
    assert_eq!(restored.state().seq, 2);
}

#[test]
fn equivocation_below_the_head_rolls_back_to_before_it() {
    let mut r = roster();
    r.push(resign(&r));
    // A different valid entry at seq 1 (adding RJZ a second later) while the head is 3.
    let other = conflicting(&r.chain, 1, &r.stewards[0..2]);
    let err = r.chain.append(other).unwrap_err();
    assert!(matches!(err, Error::Equivocation { seq: 1, .. }), "{err}");
    assert_eq!(r.chain.state().seq, 0);
    assert!(r.chain.state().members.is_empty());
}

#[test]
fn a_different_genesis_is_another_chain_not_an_equivocation() {
    // A genesis for the same agreement id, signed by stewards of the
    // signer's own choosing, is valid in itself; a chain is the one its
    // node's admin installed, so this is refused and never halts it.
    let mut r = roster();
    r.push(resign(&r));
    let mut other = r.chain.entries()[0].clone();
    let rogue = steward(9);
    if let Change::Genesis { stewards, threshold, .. } = &mut other.body.change {
        *stewards = [rogue.public()].into_iter().collect();
        *threshold = 1;
    }
    other.signatures.clear();
    other.sign(&rogue);
    assert!(roster::apply(None, &other).is_ok(), "the foreign genesis is itself valid");
    let err = r.chain.append(other.clone()).unwrap_err();
    assert_eq!(err, Error::GenesisMismatch { held: r.chain.entries()[0].hash(), found: other.hash() });
    assert!(r.chain.halted().is_none());
    assert_eq!(r.chain.seq(), 3);
    // The held genesis is still recognised.
    assert_eq!(r.chain.append(r.chain.entries()[0].clone()), Ok(Appended::AlreadyHave));
}

#[test]
fn former_stewards_cannot_halt_the_chain() {
    // Stewards 0,1,2 (M = 2) hand over to 0,3,4; then 1 and 2, no longer
    // stewards, sign with 0 an alternative entry at seq 2. Only one of its
    // signers is a steward now: refused as evidence, the chain goes on.
    let mut r = roster();
    let new: BTreeSet<_> = [steward(0).public(), steward(3).public(), steward(4).public()].into_iter().collect();
    r.push(Change::SetStewards { stewards: new, threshold: 2 });
    let head = r.chain.seq();
    let old = conflicting(&r.chain, 2, &[steward(1), steward(2)]);
    assert_eq!(r.chain.append(old), Err(Error::FormerStewards { seq: 2, current: 0, need: 2 }));
    let mixed = conflicting(&r.chain, 2, &[steward(0), steward(1)]);
    assert_eq!(r.chain.append(mixed), Err(Error::FormerStewards { seq: 2, current: 1, need: 2 }));
    assert!(r.chain.halted().is_none());
    assert_eq!(r.chain.seq(), head);
    // The new stewards go on.
    r.stewards = vec![steward(0), steward(3), steward(4)];
    r.push(resign(&r));
    assert_eq!(r.chain.seq(), head + 1);
    // Stewards still in office who sign twice at one seq do halt it.
    let twice = conflicting(&r.chain, head + 1, &[steward(3), steward(4)]);
    assert!(matches!(r.chain.append(twice), Err(Error::Equivocation { .. })));
}

#[test]
fn an_entry_from_the_future_is_refused() {
    let r = roster();
    let now = r.clock;
    let early = next(&r.chain, resign(&r), now.plus_days(3650), &[&r.stewards[0], &r.stewards[1]]);
    let mut chain = r.chain.clone();
    assert!(matches!(chain.append_at(early, now), Err(Error::FromTheFuture { .. })));
    assert_eq!(chain.seq(), r.chain.seq());
    let skewed = next(&r.chain, resign(&r), now.plus_secs(299), &[&r.stewards[0], &r.stewards[1]]);
    assert_eq!(chain.append_at(skewed, now), Ok(Appended::Applied));
}

#[test]
fn prepare_changes_nothing_and_commit_does_what_it_said() {
    let r = roster();
    let e = next(&r.chain, resign(&r), r.clock, &[&r.stewards[0], &r.stewards[1]]);
    let mut chain = r.chain.clone();
    let prepared = chain.prepare(e.clone()).unwrap();
    assert_eq!(chain, r.chain, "prepare left the chain as it was");
    assert_eq!(chain.commit(prepared), Ok(Appended::Applied));
    assert_eq!(chain.hash_at(chain.seq()), Some(e.hash()));
    assert_eq!(chain.prepare(e), Ok(roster::Prepared::AlreadyHave));
}

#[test]
fn a_member_removed_and_re_added_does_not_get_its_old_keys_back() {
    let mut r = roster();
    let rjz = org("RJZ");
    let k1 = issuer("RJZ", 0).public();
    r.push(Change::Remove { org: rjz.clone() });
    // Removed, its key still signs the erasure receipts it owes.
    let removed_at = r.chain.state().issued_at;
    assert_eq!(r.chain.state().key_validity(&rjz, &k1, removed_at.plus_secs(60)), KeyValidity::Valid);
    let k2 = issuer("RJZ", 1).public();
    r.push(Change::AddMember(MemberSpec {
        org: rjz.clone(),
        name: "RJZ again".into(),
        issuer_keys: vec![k2],
        nodes: vec![node("RJZ")],
        addresses: vec![],
    }));
    let now = r.chain.state().issued_at.plus_secs(60);
    assert_eq!(r.chain.state().key_validity(&rjz, &k1, now), KeyValidity::Retired);
    assert_eq!(r.chain.state().key_validity(&rjz, &k2, now), KeyValidity::Valid);
}

#[test]
fn a_revoked_key_signs_nothing_from_its_compromise_on() {
    let mut r = roster();
    let rjz = org("RJZ");
    let k1 = issuer("RJZ", 0).public();
    let added = r.chain.state().members[&rjz].keys[0].added_at;
    let since = added.plus_secs(10);
    r.push(Change::RevokeKey { org: rjz.clone(), key: k1, compromised_since: since });
    let st = r.chain.state();
    assert_eq!(st.key_validity(&rjz, &k1, since.plus_secs(-1)), KeyValidity::Valid);
    assert_eq!(st.key_validity(&rjz, &k1, since), KeyValidity::Retired);
    // Backdating cannot get round it, and a later revocation does not
    // move an earlier one forward.
    r.push(Change::RevokeKey { org: rjz.clone(), key: k1, compromised_since: since.plus_days(1) });
    assert_eq!(r.chain.state().key_validity(&rjz, &k1, since), KeyValidity::Retired);
    let unknown = issuer("RV5", 0).public();
    let st = r.chain.state();
    let e = next(
        &r.chain,
        Change::RevokeKey { org: rjz, key: unknown, compromised_since: since },
        r.clock,
        &[&r.stewards[0], &r.stewards[1]],
    );
    assert!(matches!(roster::apply(Some(st), &e), Err(Error::Invalid(ChangeError::UnknownKey { .. }))));
}

/// A chain halted at seq 3 (RJZ, RJ1, then two different re-signs at 3).
fn halted() -> (RosterBuilder, Entry, Entry) {
    let mut r = roster();
    r.push(resign(&r));
    let held = r.chain.entries()[3].clone();
    let other = conflicting(&r.chain, 3, &r.stewards[1..3]);
    assert!(matches!(r.chain.append(other.clone()), Err(Error::Equivocation { seq: 3, .. })));
    (r, held, other)
}

/// A resolution of seq 3 choosing `chosen`, signed by `signers`.
fn resolution(r: &RosterBuilder, chosen: &Entry, signers: &[&StewardSecretKey]) -> Entry {
    let mut e = Entry::unsigned(EntryBody {
        agreement: agreement(),
        seq: 4,
        prev: chosen.hash(),
        issued_at: chosen.body.issued_at.plus_secs(60),
        change: Change::Resolve { seq: 3, chosen: chosen.hash() },
    });
    for s in signers {
        e.sign(s);
    }
    let _ = r;
    e
}

#[test]
fn stewards_resolve_a_halt_and_the_other_entry_is_refused_for_good() {
    for pick_other in [false, true] {
        let (mut r, held, other) = halted();
        let chosen = if pick_other { other.clone() } else { held.clone() };
        let refused = if pick_other { held.clone() } else { other.clone() };
        let res = resolution(&r, &chosen, &[&r.stewards[0], &r.stewards[2]]);
        assert_eq!(r.chain.append(res.clone()), Ok(Appended::Applied));
        assert!(r.chain.halted().is_none());
        assert_eq!(r.chain.seq(), 4);
        assert_eq!(r.chain.hash_at(3), Some(chosen.hash()));
        assert_eq!(r.chain.append(refused), Err(Error::Resolved { seq: 3 }));
        assert!(r.chain.halted().is_none());
        assert_eq!(r.chain.append(chosen.clone()), Ok(Appended::AlreadyHave));
        // The chain goes on, and reads back the same from its entries.
        r.clock = res.body.issued_at.plus_secs(60);
        r.push(resign(&r));
        let again = Chain::from_entries(r.chain.entries().to_vec()).unwrap();
        assert_eq!(again.state(), r.chain.state());
    }
}

/// A node that went on past the fork on the losing branch (it holds the
/// entry at seq 3 and two more after it when the other entry at 3
/// arrives) halts at 3, then adopts the stewards' resolution: its own
/// entries from 3 on are dropped, the chosen one and the resolution stand,
/// and the chain reads back the same from its entries.
#[test]
fn a_node_past_the_fork_on_the_other_branch_adopts_the_resolution() {
    let mut r = roster();
    r.push(resign(&r));
    let held = r.chain.entries()[3].clone();
    let other = conflicting(&r.chain, 3, &r.stewards[1..3]);
    let mut past = r.chain.clone();
    for _ in 0..2 {
        let e = next(&past, resign(&r), r.clock, &[&r.stewards[0], &r.stewards[1]]);
        r.clock = r.clock.plus_secs(60);
        assert_eq!(past.append(e), Ok(Appended::Applied));
    }
    assert_eq!(past.seq(), 5);
    assert!(matches!(past.append(other.clone()), Err(Error::Equivocation { seq: 3, .. })));
    let res = resolution(&r, &other, &[&r.stewards[0], &r.stewards[2]]);
    assert_eq!(past.append(res.clone()), Ok(Appended::Applied));
    assert!(past.halted().is_none());
    assert_eq!(past.seq(), 4, "the losing branch's later entries are gone");
    assert_eq!((past.hash_at(3), past.hash_at(4)), (Some(other.hash()), Some(res.hash())));
    assert_eq!(past.append(held), Err(Error::Resolved { seq: 3 }));
    let again = Chain::from_entries(past.entries().to_vec()).unwrap();
    assert_eq!(again.state(), past.state());
}

#[test]
fn a_resolution_needs_a_threshold_and_one_of_the_two_entries() {
    let (mut r, held, _other) = halted();
    let weak = resolution(&r, &held, &[&r.stewards[0]]);
    assert!(matches!(r.chain.append(weak), Err(Error::BelowThreshold { .. })));
    let outsiders = resolution(&r, &held, &[&steward(8), &steward(9)]);
    assert!(matches!(r.chain.append(outsiders), Err(Error::UnknownSigner { .. })));
    let third = conflicting(&r.chain, 2, &r.stewards[0..2]);
    let mut stranger = resolution(&r, &held, &[]);
    stranger.body.change = Change::Resolve { seq: 3, chosen: third.hash() };
    stranger.body.prev = third.hash();
    stranger.sign(&r.stewards[0]);
    stranger.sign(&r.stewards[1]);
    assert!(matches!(r.chain.append(stranger), Err(Error::Invalid(ChangeError::BadResolve { seq: 3 }))));
    assert!(r.chain.halted().is_some(), "still halted");
    // A resolution outside a halt must sit right after the entry it names.
    let mut fresh = roster();
    let mut misplaced = next(&fresh.chain, Change::Resolve { seq: 0, chosen: fresh.chain.head() }, fresh.clock, &[]);
    misplaced.sign(&fresh.stewards[0]);
    misplaced.sign(&fresh.stewards[1]);
    assert!(matches!(fresh.chain.append(misplaced), Err(Error::Invalid(ChangeError::BadResolve { seq: 0 }))));
    fresh.push(resign(&fresh));
}

#[test]
fn an_admin_override_ends_the_halt_on_this_node() {
    let (mut r, _held, other) = halted();
    let prepared = r.chain.prepare_override(&other.hash()).unwrap();
    assert_eq!(r.chain.commit(prepared), Ok(Appended::Applied));
    assert!(r.chain.halted().is_none());
    assert_eq!(r.chain.hash_at(3), Some(other.hash()));
    let held_again = conflicting(&r.chain, 3, &r.stewards[0..2]);
    assert_eq!(r.chain.append(held_again), Err(Error::Resolved { seq: 3 }));
    // Not halted: nothing to override.
    assert!(r.chain.prepare_override(&other.hash()).is_err());
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(24))]

    /// Whichever entry the stewards choose, and whichever order the two
    /// entries and the resolution reach a node in, it ends on the same
    /// chain, not halted, with the chosen entry at the seq.
    #[test]
    fn every_arrival_order_of_a_resolved_fork_ends_the_same(pick_other in any::<bool>(), order in 0usize..6) {
        let base = roster().chain;
        let mut r = roster();
        r.push(resign(&r));
        let held = r.chain.entries()[3].clone();
        let other = conflicting(&r.chain, 3, &r.stewards[1..3]);
        let chosen = if pick_other { other.clone() } else { held.clone() };
        let res = resolution(&r, &chosen, &[&r.stewards[0], &r.stewards[2]]);
        let items = [held.clone(), other.clone(), res.clone()];
        let orders = [[0, 1, 2], [0, 2, 1], [1, 0, 2], [1, 2, 0], [2, 0, 1], [2, 1, 0]];
        let mut chain = base;
        // Whatever arrives before its place is refused; a node retries
        // what it missed (anti-entropy), so offer everything twice.
        for _ in 0..2 {
            for i in orders[order] {
                let _ = chain.append(items[i].clone());
            }
        }
        prop_assert!(chain.halted().is_none());
        prop_assert_eq!(chain.seq(), 4);
        prop_assert_eq!(chain.hash_at(3), Some(chosen.hash()));
        prop_assert_eq!(chain.hash_at(4), Some(res.hash()));
    }

    /// Judging an entry at a taken seq agrees with the replay from genesis
    /// it replaced: an alternative is an equivocation exactly when it is
    /// validly signed for its place by stewards still in office.
    #[test]
    fn judging_a_taken_seq_from_stored_hashes_agrees_with_a_replay(seq in 1u64..4, signers in 0usize..4) {
        let mut r = roster();
        r.push(resign(&r));
        let sets: [&[StewardSecretKey]; 4] =
            [&r.stewards[0..1], &r.stewards[0..2], &r.stewards[1..3], &[steward(0), steward(9)]];
        let alt = conflicting(&r.chain, seq, sets[signers]);
        let replay = roster::apply(r.chain.state_at(seq - 1).as_ref(), &alt);
        let mut chain = r.chain.clone();
        let judged = chain.append(alt);
        prop_assert_eq!(replay.is_ok(), matches!(judged, Err(Error::Equivocation { .. })), "{:?}", judged);
    }
}

#[test]
fn an_invalid_entry_at_a_taken_seq_is_refused_without_halting() {
    let mut r = roster();
    // Different body at seq 2, but only one signature: not an equivocation.
    let weak = conflicting(&r.chain, 2, &r.stewards[0..1]);
    assert_eq!(r.chain.append(weak), Err(Error::BelowThreshold { have: 1, need: 2 }));
    // Signed by an outsider.
    let forged = conflicting(&r.chain, 2, &[steward(8), steward(9)]);
    assert!(matches!(r.chain.append(forged), Err(Error::UnknownSigner { .. })));
    assert!(r.chain.halted().is_none());
    assert_eq!(r.chain.seq(), 2);
    r.push(resign(&r));
}

// ---------------------------------------------------------------- changes

#[test]
fn changes_that_do_not_fit_the_state_are_refused() {
    let r = roster();
    let st = r.chain.state();
    let signers: Vec<&StewardSecretKey> = r.stewards.iter().take(2).collect();
    let try_change = |c: Change| roster::apply(Some(st), &next(&r.chain, c, r.clock, &signers));
    let invalid = |e: ChangeError| Err(Error::Invalid(e));
    let (rjz, rv5) = (org("RJZ"), org("RV5"));

    assert_eq!(
        try_change(Change::AddMember(member("RJZ", vec![issuer("RJZ", 5).public()]))),
        invalid(ChangeError::AlreadyMember { org: rjz.clone() })
    );
    assert_eq!(
        try_change(Change::Reinstate { org: rv5.clone() }),
        invalid(ChangeError::NotMember { org: rv5.clone() })
    );
    assert_eq!(
        try_change(Change::Reinstate { org: rjz.clone() }),
        invalid(ChangeError::WrongStatus { org: rjz.clone(), status: MemberStatus::Active })
    );
    let taken = issuer("RJ1", 0).public();
    assert_eq!(
        try_change(Change::AddMember(member("RV5", vec![taken]))),
        invalid(ChangeError::DuplicateKey { key: taken })
    );
    assert_eq!(
        try_change(Change::RotateKey { org: rjz.clone(), add: taken, retire: None }),
        invalid(ChangeError::DuplicateKey { key: taken })
    );
    let mut spec = member("RV5", vec![issuer("RV5", 0).public()]);
    spec.nodes = vec![node("RJ1")];
    assert_eq!(
        try_change(Change::AddMember(spec)),
        invalid(ChangeError::NodeTaken { node: node("RJ1"), org: org("RJ1") })
    );
    let not_rjz = issuer("RJ1", 0).public();
    assert_eq!(
        try_change(Change::RotateKey { org: rjz.clone(), add: issuer("RJZ", 5).public(), retire: Some(not_rjz) }),
        invalid(ChangeError::UnknownKey { org: rjz.clone(), key: not_rjz })
    );
    let stewards: BTreeSet<_> = (0..2).map(|i| steward(i).public()).collect();
    assert_eq!(
        try_change(Change::SetStewards { stewards: stewards.clone(), threshold: 3 }),
        invalid(ChangeError::BadThreshold { threshold: 3, stewards: 2 })
    );
    assert_eq!(
        try_change(Change::SetStewards { stewards, threshold: 0 }),
        invalid(ChangeError::BadThreshold { threshold: 0, stewards: 2 })
    );
    assert_eq!(
        try_change(Change::AddMember(member("RV5", vec![]))),
        invalid(ChangeError::BadCount { field: "issuer_keys", min: 1, max: limits::MAX_PER_MEMBER })
    );
    assert_eq!(
        try_change(Change::Suspend { org: rjz.clone(), reason: "  ".into() }),
        invalid(ChangeError::BadText { field: "reason", max: limits::MAX_TEXT })
    );
    let mut terms = testkit::terms();
    terms.moves.clear();
    assert_eq!(
        try_change(Change::SetTerms(terms)),
        invalid(ChangeError::BadCount { field: "moves", min: 1, max: MoveKind::ALL.len() })
    );
    let current = st.valid_until;
    assert_eq!(
        try_change(Change::Resign { valid_until: current.plus_secs(-1) }),
        invalid(ChangeError::BadValidUntil { valid_until: current.plus_secs(-1), current })
    );
    // A re-sign made after the roster went stale must reach past its own date.
    let late = current.plus_days(1);
    let stale_resign = next(&r.chain, Change::Resign { valid_until: late }, late, &signers);
    assert_eq!(
        roster::apply(Some(st), &stale_resign),
        invalid(ChangeError::BadValidUntil { valid_until: late, current })
    );
    let ok = next(&r.chain, Change::Resign { valid_until: late.plus_secs(1) }, late, &signers);
    assert!(roster::apply(Some(st), &ok).is_ok());
    let genesis = r.chain.entries()[0].body.change.clone();
    assert_eq!(try_change(genesis), invalid(ChangeError::LateGenesis));
}

#[test]
fn a_member_at_the_key_limit_can_still_rotate_by_retiring_one() {
    let mut r = RosterBuilder::new(agreement(), 3, 2);
    let keys: Vec<IssuerPublicKey> = (0..limits::MAX_PER_MEMBER as u32).map(|g| issuer("RJZ", g).public()).collect();
    r.push(Change::AddMember(member("RJZ", keys.clone())));
    let add = issuer("RJZ", 100).public();
    // Adding a seventeenth current key is refused...
    let grow = r.entry(Change::RotateKey { org: org("RJZ"), add, retire: None }, 2);
    assert!(matches!(roster::apply(Some(r.chain.state()), &grow), Err(Error::Invalid(ChangeError::BadCount { .. }))));
    // ...but replacing one keeps sixteen, and is allowed.
    r.push(Change::RotateKey { org: org("RJZ"), add, retire: Some(keys[0]) });
    let at = r.chain.state().issued_at;
    assert_eq!(r.chain.state().keys_at(&org("RJZ"), at).len(), limits::MAX_PER_MEMBER);
}

// ---------------------------------------------------------------- queries

#[test]
fn membership_over_time() {
    let mut r = roster();
    let rjz = org("RJZ");
    let added = r.chain.entries()[1].body.issued_at;
    let mut times = BTreeMap::new();
    for (name, change) in [
        ("suspended", Change::Suspend { org: rjz.clone(), reason: "audit".into() }),
        ("reinstated", Change::Reinstate { org: rjz.clone() }),
        ("removed", Change::Remove { org: rjz.clone() }),
    ] {
        times.insert(name, r.clock);
        r.push(change);
    }
    let st = r.chain.state();
    let active = |t: Timestamp| st.is_active_at(&rjz, t);
    assert!(!active(added.plus_secs(-1)));
    assert!(active(added));
    assert!(active(times["suspended"].plus_secs(-1)));
    assert!(!active(times["suspended"]));
    assert!(active(times["reinstated"]));
    assert!(!active(times["removed"]));
    assert!(!active(testkit::now()));
    assert_eq!(st.status(&rjz), Some(MemberStatus::Removed));
    assert!(!st.is_active(&rjz));
    assert!(st.is_active(&org("RJ1")));
    assert!(!st.is_active_at(&org("RV5"), testkit::now()));
    assert_eq!(st.status(&org("RV5")), None);
    let history: Vec<MemberStatus> = st.members[&rjz].history.iter().map(|(_, s)| *s).collect();
    use MemberStatus::*;
    assert_eq!(history, vec![Active, Suspended, Active, Removed]);

    // A removed member can be added again, and is active from then on.
    let back = r.clock;
    r.push(Change::AddMember(member("RJZ", vec![issuer("RJZ", 1).public()])));
    let st = r.chain.state();
    assert!(st.is_active_at(&rjz, back) && !st.is_active_at(&rjz, times["removed"]));
}

#[test]
fn keys_across_rotation() {
    let mut r = roster();
    let rjz = org("RJZ");
    let (k0, k1, k2) = (issuer("RJZ", 0).public(), issuer("RJZ", 1).public(), issuer("RJZ", 2).public());
    let t0 = r.chain.entries()[1].body.issued_at;
    let t1 = r.clock;
    r.push(Change::RotateKey { org: rjz.clone(), add: k1, retire: None });
    let t2 = r.clock;
    r.push(Change::RotateKey { org: rjz.clone(), add: k2, retire: Some(k0) });
    let st = r.chain.state();
    use KeyValidity::*;
    assert_eq!(st.key_validity(&rjz, &k0, t0.plus_secs(-1)), NotYetValid);
    assert_eq!(st.key_validity(&rjz, &k0, t0), Valid);
    assert_eq!(st.key_validity(&rjz, &k0, t2.plus_secs(-1)), Valid);
    assert_eq!(st.key_validity(&rjz, &k0, t2), Retired);
    assert_eq!(st.key_validity(&rjz, &k1, t1.plus_secs(-1)), NotYetValid);
    assert_eq!(st.key_validity(&rjz, &k1, t2), Valid);
    assert_eq!(st.key_validity(&rjz, &k2, t2), Valid);
    assert_eq!(st.keys_at(&rjz, t0.plus_secs(-1)), vec![]);
    assert_eq!(st.keys_at(&rjz, t1.plus_secs(-1)), vec![k0]);
    assert_eq!(st.keys_at(&rjz, t1), vec![k0, k1]);
    assert_eq!(st.keys_at(&rjz, t2), vec![k1, k2]);
    // Another member's key, or an unknown one, is no key of RJZ.
    assert_eq!(st.key_validity(&rjz, &issuer("RJ1", 0).public(), t2), Unknown);
    assert_eq!(st.key_validity(&rjz, &issuer("RJZ", 9).public(), t2), Unknown);
    assert_eq!(st.key_validity(&org("RV5"), &k0, t2), Unknown);
    assert_eq!(st.keys_at(&org("RV5"), t2), vec![]);
    // A retired key cannot be retired again.
    let again = r.entry(Change::RotateKey { org: rjz.clone(), add: issuer("RJZ", 3).public(), retire: Some(k0) }, 2);
    assert_eq!(roster::apply(Some(st), &again), Err(Error::Invalid(ChangeError::UnknownKey { org: rjz, key: k0 })));
}

#[test]
fn nodes_and_their_organisations() {
    let mut r = roster();
    let (rjz, rj1) = (org("RJZ"), org("RJ1"));
    let st = r.chain.state();
    assert_eq!(st.nodes_of(&rjz), &[node("RJZ")]);
    assert_eq!(st.org_of_node(&node("RJ1")).map(|m| &m.org), Some(&rj1));
    assert!(st.org_of_node(&node("RV5")).is_none());
    assert!(st.nodes_of(&org("RV5")).is_empty());
    r.push(Change::UpdateMember { org: rjz.clone(), name: None, nodes: Some(vec![node("RJZ-new")]), addresses: None });
    let st = r.chain.state();
    assert_eq!(st.nodes_of(&rjz), &[node("RJZ-new")]);
    assert!(st.org_of_node(&node("RJZ")).is_none(), "the old node no longer speaks for RJZ");
    assert_eq!(st.org_of_node(&node("RJZ-new")).map(|m| &m.org), Some(&rjz));
    assert_eq!(st.members[&rjz].name, "RJZ NHS Trust");
}

#[test]
fn freshness_and_resigning() {
    let mut r = roster();
    let until = r.chain.state().valid_until;
    assert!(r.chain.state().is_fresh(until));
    assert!(!r.chain.state().is_fresh(until.plus_secs(1)));
    r.push(Change::Resign { valid_until: until.plus_days(90) });
    assert!(r.chain.state().is_fresh(until.plus_days(90)));
    assert!(!r.chain.state().is_fresh(until.plus_days(90).plus_secs(1)));
}

#[test]
fn chain_accessors() {
    let c = corpus();
    let chain = Chain::from_entries(c.entries.clone()).unwrap();
    let n = c.entries.len() as u64;
    assert_eq!(chain.seq(), n - 1);
    assert_eq!(chain.head(), c.entries.last().unwrap().hash());
    assert_eq!(chain.agreement(), &agreement());
    assert_eq!(chain.entries_from(3), &c.entries[3..]);
    assert!(chain.entries_from(n).is_empty());
    assert!(chain.entries_from(u64::MAX).is_empty());
    assert_eq!(chain.state_at(2).as_ref(), c.before[3].as_ref());
    assert_eq!(chain.state_at(u64::MAX).as_ref(), Some(chain.state()));
    // Signatures are not part of an entry's identity.
    let mut more = c.entries[1].clone();
    more.sign(&steward(2));
    assert_eq!(more.hash(), c.entries[1].hash());
    // The agreement's chain is found by its id only.
    use staffpass_protocol::roster::Rosters;
    assert!(chain.roster(&agreement()).is_some());
    assert!(chain.roster(&"kent-mou".parse().unwrap()).is_none());
}

#[test]
fn a_stored_chain_that_does_not_hold_together_is_refused_not_panicked_on() {
    // A Chain read back from storage (it is Serialize/Deserialize) whose
    // entries were lost or cut short, but whose state survived.
    let r = roster();
    let mut json = serde_json::to_value(&r.chain).unwrap();
    json["entries"].as_array_mut().unwrap().truncate(1);
    let mut broken: Chain = serde_json::from_value(json).unwrap();
    let old = r.chain.entries()[2].clone();
    assert!(broken.append(old).is_err());
    let other = conflicting(&r.chain, 2, &r.stewards[0..2]);
    assert!(broken.append(other).is_err());
    // Read back whole, it works as before: per-seq hashes and steward sets
    // are rebuilt from the entries.
    let mut whole: Chain = serde_json::from_value(serde_json::to_value(&r.chain).unwrap()).unwrap();
    assert_eq!(whole, r.chain);
    let other = conflicting(&r.chain, 2, &r.stewards[0..2]);
    assert!(matches!(whole.append(other), Err(Error::Equivocation { seq: 2, .. })));
}

// ------------------------------------------------- answers to a fetch

mod fetched {
    use super::*;
    use staffpass_protocol::wire::roster::{Unasked, check_fetched};

    fn entries() -> Vec<Entry> {
        let mut r = roster();
        r.push(resign(&r));
        r.chain.entries().to_vec()
    }

    #[test]
    fn the_range_asked_for_passes() {
        let e = entries();
        assert_eq!(check_fetched(&agreement(), 0, 128, &e), Ok(()));
        assert_eq!(check_fetched(&agreement(), 2, 2, &e[2..]), Ok(()));
        assert_eq!(check_fetched(&agreement(), 5, 128, &[]), Ok(()));
        // A halted chain's two pieces of evidence share a seq.
        let other = conflicting(&roster().chain, 2, &roster().stewards[1..3]);
        assert_eq!(check_fetched(&agreement(), 1, 2, &[e[1].clone(), e[2].clone(), other]), Ok(()));
    }

    #[test]
    fn another_agreement_is_refused() {
        let mut other = RosterBuilder::new("rogue-pact".parse().unwrap(), 1, 1);
        other.add_member("RJZ");
        let e = other.chain.entries().to_vec();
        assert!(matches!(check_fetched(&agreement(), 0, 128, &e), Err(Unasked::ForeignAgreement { .. })));
    }

    #[test]
    fn seqs_before_from_or_past_the_limit_are_refused() {
        let e = entries();
        assert_eq!(check_fetched(&agreement(), 1, 128, &e), Err(Unasked::OutOfRange { seq: 0, from: 1, end: 129 }));
        assert_eq!(check_fetched(&agreement(), 0, 2, &e[..3]), Err(Unasked::OutOfRange { seq: 2, from: 0, end: 2 }));
        assert_eq!(
            check_fetched(&agreement(), u64::MAX - 1, 128, &e[..1]),
            Err(Unasked::OutOfRange { seq: 0, from: u64::MAX - 1, end: u64::MAX })
        );
    }

    #[test]
    fn disorder_and_excess_are_refused() {
        let e = entries();
        let backwards: Vec<Entry> = e.iter().rev().cloned().collect();
        assert!(matches!(check_fetched(&agreement(), 0, 128, &backwards), Err(Unasked::OutOfOrder { .. })));
        let many = vec![e[0].clone(); 4];
        assert_eq!(check_fetched(&agreement(), 0, 2, &many), Err(Unasked::TooMany { count: 4, limit: 2 }));
    }
}

#[test]
fn every_change_is_named_as_its_json_kind() {
    let s = roster().chain.state().clone();
    let keys: BTreeSet<_> = s.stewards.clone();
    let changes = [
        roster().chain.entries()[0].body.change.clone(),
        Change::AddMember(MemberSpec {
            org: org("RV5"),
            name: "RV5".into(),
            issuer_keys: vec![issuer("RV5", 0).public()],
            nodes: vec![],
            addresses: vec![],
        }),
        Change::UpdateMember { org: org("RJZ"), name: None, nodes: None, addresses: None },
        Change::RotateKey { org: org("RJZ"), add: issuer("RJZ", 1).public(), retire: None },
        Change::Suspend { org: org("RJZ"), reason: "audit".into() },
        Change::Reinstate { org: org("RJZ") },
        Change::Remove { org: org("RJZ") },
        Change::SetStewards { stewards: keys, threshold: 2 },
        Change::SetTerms(testkit::terms()),
        Change::Resign { valid_until: s.valid_until },
    ];
    let mut names = BTreeSet::new();
    for c in &changes {
        let json = serde_json::to_value(c).unwrap();
        let kind = json.as_object().and_then(|o| o.keys().next().cloned()).unwrap();
        assert_eq!(c.name(), kind, "{json}");
        names.insert(c.name());
    }
    assert_eq!(names.len(), changes.len(), "one name per kind");
}
