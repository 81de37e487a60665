//! Roster chains from structured input: a genesis and a list of steps,
//! each a change of any kind with fields drawn from small pools of orgs,
//! keys and nodes (so changes meet each other: a rotation of a key added
//! earlier, a suspension of a member present), placed at the next seq or
//! another, linked to the head or elsewhere, dated forwards or backwards,
//! and signed by a chosen subset of stewards, valid or not.
//!
//! Every step goes through `Chain::append_at` (apply, equivocation and
//! resolution included) and must be refused or applied without a panic.
//! While the chain is not halted, what it holds must replay to the same
//! state (`Chain::from_entries`), and every entry must round-trip through
//! the wire encoding.
#![no_main]

use std::collections::BTreeSet;
use std::sync::OnceLock;

use arbitrary::Arbitrary;
use libfuzzer_sys::fuzz_target;
use staffpass_protocol::claims::ClaimKind;
use staffpass_protocol::datetime::Timestamp;
use staffpass_protocol::ids::{AgreementId, NodeId, OrgId};
use staffpass_protocol::keys::{IssuerPublicKey, StewardPublicKey, StewardSecretKey};
use staffpass_protocol::roster::{Chain, Change, Entry, EntryBody, MemberSpec, MoveKind, Terms};
use staffpass_protocol::signing::Hash;
use staffpass_protocol::testkit;
use staffpass_protocol::wire::roster::decode_entry;

const ORGS: [&str; 4] = ["RJZ", "RJ1", "RA7", "R1H"];
const STEWARDS: usize = 5;

/// The pools, derived once (a key from its seed costs a scalar multiplication).
struct Pools {
    orgs: Vec<OrgId>,
    /// 4 orgs x 3 generations, so keys can collide across members.
    issuers: Vec<IssuerPublicKey>,
    nodes: Vec<NodeId>,
    /// The stewards, and one more that is never a steward.
    stewards: Vec<StewardSecretKey>,
}

fn pools() -> &'static Pools {
    static P: OnceLock<Pools> = OnceLock::new();
    P.get_or_init(|| Pools {
        orgs: ORGS.iter().map(|o| testkit::org(o)).collect(),
        issuers: (0..12u32).map(|i| testkit::issuer(ORGS[(i % 4) as usize], i / 4).public()).collect(),
        nodes: ORGS.iter().map(|o| testkit::node(o)).collect(),
        stewards: (0..=STEWARDS).map(testkit::steward).collect(),
    })
}

fn org(i: u8) -> OrgId {
    pools().orgs[usize::from(i) % ORGS.len()].clone()
}

fn issuer_key(i: u8) -> IssuerPublicKey {
    pools().issuers[usize::from(i) % 12]
}

fn stewards(mask: u8) -> BTreeSet<StewardPublicKey> {
    (0..STEWARDS).filter(|i| mask & (1 << i) != 0).map(|i| pools().stewards[i].public()).collect()
}

fn text(s: &str) -> String {
    s.chars().take(600).collect()
}

#[derive(Debug, Arbitrary)]
struct TermsSpec {
    moves: u8,
    accepts: u32,
    lawful_basis: String,
}

impl TermsSpec {
    fn get(&self) -> Terms {
        let all = ClaimKind::all();
        Terms {
            moves: MoveKind::ALL
                .iter()
                .enumerate()
                .filter(|(i, _)| self.moves & (1 << i) != 0)
                .map(|(_, m)| *m)
                .collect(),
            accepts: all
                .iter()
                .enumerate()
                .filter(|(i, _)| self.accepts & (1 << (i % 32)) != 0)
                .map(|(_, k)| *k)
                .collect(),
            lawful_basis: text(&self.lawful_basis),
        }
    }
}

#[derive(Debug, Arbitrary)]
enum ChangeSpec {
    Genesis { title: String, terms: TermsSpec, stewards: u8, threshold: u8, valid_for: i32 },
    AddMember { org: u8, name: String, keys: Vec<u8>, nodes: Vec<u8>, addresses: Vec<String> },
    UpdateMember { org: u8, name: Option<String>, nodes: Option<Vec<u8>>, addresses: Option<Vec<String>> },
    RotateKey { org: u8, add: u8, retire: Option<u8> },
    Suspend { org: u8, reason: String },
    Reinstate { org: u8 },
    Remove { org: u8 },
    SetStewards { stewards: u8, threshold: u8 },
    SetTerms(TermsSpec),
    Resign { valid_for: i32 },
    RevokeKey { org: u8, key: u8, since: i32 },
    Resolve { seq_back: u8, chosen: Link },
}

#[derive(Debug, Arbitrary)]
enum Link {
    Head,
    Back(u8),
    Zero,
    Raw([u8; 32]),
}

#[derive(Debug, Arbitrary)]
struct Step {
    change: ChangeSpec,
    /// Added to the next seq (wrapping): 0 is the next entry, -1 a taken seq.
    seq: i8,
    prev: Link,
    /// Seconds after the previous step's time (may be negative).
    after: i16,
    /// Which stewards sign (bit i: steward i).
    signers: u8,
    /// A signature by a key that is no steward, or a broken one.
    stray: Option<bool>,
    version: Option<u16>,
}

#[derive(Debug, Arbitrary)]
struct Input {
    stewards: u8,
    threshold: u8,
    genesis_signers: u8,
    steps: Vec<Step>,
}

fn link(chain: &Chain, l: &Link) -> Hash {
    match l {
        Link::Head => chain.head(),
        Link::Back(n) => chain.hash_at(chain.seq().saturating_sub(u64::from(*n))).unwrap_or_default(),
        Link::Zero => Hash::default(),
        Link::Raw(b) => Hash(*b),
    }
}

fn change(chain: &Chain, spec: &ChangeSpec, at: Timestamp) -> Change {
    let nodes = |v: &[u8]| v.iter().take(20).map(|i| pools().nodes[usize::from(*i) % 4].clone()).collect::<Vec<_>>();
    let addrs = |v: &[String]| v.iter().take(20).map(|a| text(a)).collect::<Vec<_>>();
    match spec {
        ChangeSpec::Genesis { title, terms, stewards: s, threshold, valid_for } => Change::Genesis {
            title: text(title),
            terms: terms.get(),
            stewards: stewards(*s),
            threshold: *threshold,
            valid_until: at.plus_secs(i64::from(*valid_for)),
        },
        ChangeSpec::AddMember { org: o, name, keys, nodes: n, addresses } => Change::AddMember(MemberSpec {
            org: org(*o),
            name: text(name),
            issuer_keys: keys.iter().take(20).map(|k| issuer_key(*k)).collect(),
            nodes: nodes(n),
            addresses: addrs(addresses),
        }),
        ChangeSpec::UpdateMember { org: o, name, nodes: n, addresses } => Change::UpdateMember {
            org: org(*o),
            name: name.as_deref().map(text),
            nodes: n.as_deref().map(nodes),
            addresses: addresses.as_deref().map(addrs),
        },
        ChangeSpec::RotateKey { org: o, add, retire } => {
            Change::RotateKey { org: org(*o), add: issuer_key(*add), retire: retire.map(issuer_key) }
        }
        ChangeSpec::Suspend { org: o, reason } => Change::Suspend { org: org(*o), reason: text(reason) },
        ChangeSpec::Reinstate { org: o } => Change::Reinstate { org: org(*o) },
        ChangeSpec::Remove { org: o } => Change::Remove { org: org(*o) },
        ChangeSpec::SetStewards { stewards: s, threshold } => {
            Change::SetStewards { stewards: stewards(*s), threshold: *threshold }
        }
        ChangeSpec::SetTerms(t) => Change::SetTerms(t.get()),
        ChangeSpec::Resign { valid_for } => Change::Resign { valid_until: at.plus_secs(i64::from(*valid_for)) },
        ChangeSpec::RevokeKey { org: o, key, since } => Change::RevokeKey {
            org: org(*o),
            key: issuer_key(*key),
            compromised_since: at.plus_secs(i64::from(*since)),
        },
        ChangeSpec::Resolve { seq_back, chosen } => {
            Change::Resolve { seq: chain.seq().saturating_sub(u64::from(*seq_back)), chosen: link(chain, chosen) }
        }
    }
}

fn sign(entry: &mut Entry, signers: u8, stray: Option<bool>) {
    for i in (0..STEWARDS).filter(|i| signers & (1 << i) != 0) {
        entry.sign(&pools().stewards[i]);
    }
    match stray {
        Some(true) => entry.sign(&pools().stewards[STEWARDS]),
        Some(false) => {
            if let Some(s) = entry.signatures.first_mut() {
                s.signature.0[7] ^= 1;
            }
        }
        None => {}
    }
}

fuzz_target!(|input: Input| {
    let now = testkit::now();
    let agreement: AgreementId = "fuzz-mou".parse().expect("valid agreement id");
    let start = now.plus_days(-30);
    let genesis = EntryBody {
        agreement,
        seq: 0,
        prev: Hash::default(),
        issued_at: start,
        change: Change::Genesis {
            title: "Fuzz MOU".into(),
            terms: testkit::terms(),
            stewards: stewards(input.stewards | 1),
            threshold: input.threshold % 4,
            valid_until: start.plus_days(90),
        },
    };
    let mut g = Entry::unsigned(genesis);
    sign(&mut g, input.genesis_signers, None);
    let Ok(mut chain) = Chain::new(g) else { return };
    let mut clock = start;
    for step in input.steps.iter().take(24) {
        clock = clock.plus_secs(i64::from(step.after));
        let seq = chain.seq().wrapping_add(1).wrapping_add_signed(i64::from(step.seq));
        let body = EntryBody {
            agreement: chain.agreement().clone(),
            seq,
            prev: link(&chain, &step.prev),
            issued_at: clock,
            change: change(&chain, &step.change, clock),
        };
        let mut entry = Entry::unsigned(body);
        sign(&mut entry, step.signers, step.stray);
        if let Some(v) = step.version {
            entry.version = v;
        }
        let bytes = staffpass_protocol::encoding::to_bytes(&entry);
        if let Ok(back) = decode_entry(&bytes) {
            assert_eq!(back, entry, "an entry does not round-trip");
        }
        let _ = chain.append_at(entry, now);
    }
    if chain.halted().is_none() {
        let replayed = Chain::from_entries(chain.entries().to_vec()).expect("a held chain replays");
        assert_eq!(replayed.state(), chain.state(), "a held chain replays to another state");
    }
});
