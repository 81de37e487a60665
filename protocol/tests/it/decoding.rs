//! Decoding untrusted bytes: every entry point is bounded, total (never
//! panics) and exact (no trailing bytes, one encoding per value), and every
//! message type survives encode → decode and JSON unchanged.

// Test code: a failed unwrap is a failed assertion (clippy.toml allows it
// in #[test] fns; this extends it to the helpers).
#![allow(clippy::unwrap_used)]

use std::collections::BTreeSet;
use std::fmt::Debug;
use std::sync::OnceLock;

use proptest::prelude::*;
use serde::Serialize;
use serde::de::DeserializeOwned;
use staffpass_protocol::bundle::{Bundle, Rejection};
use staffpass_protocol::claims::{
    Assignment, Claim, ClaimKind, CstfSubject, Dbs, DbsLevel, Identity, ImmunisationRecord, NiNumber, OhClearance,
    Placement, References, Registration, Regulator, RightToWork, Training, Vaccine,
};
use staffpass_protocol::consent::{Consent, SignedConsent, Withdrawal};
use staffpass_protocol::credential::{Credential, Disclosure, Salt};
use staffpass_protocol::datetime::{Date, Timestamp};
use staffpass_protocol::encoding::{self, Error};
use staffpass_protocol::ids::{AgreementId, ConsentId, CredentialId, MessageId, NodeId, OrgId, StaffRef};
use staffpass_protocol::keys::{IssuerPublicKey, StaffPublicKey, StewardPublicKey};
use staffpass_protocol::receipt::{Outcome, Receipt};
use staffpass_protocol::revocation::{Revocation, RevocationReason};
use staffpass_protocol::roster::{Change, Entry, EntryBody, MemberSpec, MoveKind, StewardSignature, Terms};
use staffpass_protocol::signing::{Hash, Signature, Signed};
use staffpass_protocol::testkit;
use staffpass_protocol::wire::{exchange, roster as wr};

// --------------------------------------------------------- entry points

/// Every decode entry point, as (name, bound, decode-and-re-encode in the
/// same format).
type Decoder = fn(&[u8]) -> Result<Vec<u8>, Error>;

fn reencode<T: Serialize>(v: T) -> Vec<u8> {
    encoding::to_bytes(&v)
}

fn rejson<T: Serialize>(v: T) -> Vec<u8> {
    serde_json::to_vec(&v).unwrap()
}

const MAX_BUNDLE: usize = exchange::MAX_REQUEST;

/// The decoders that accept only the canonical encoding (the wire's).
const CANONICAL: &[&str] =
    &["exchange request", "exchange response", "roster request", "roster response", "roster entry"];
const MAX_JSON: usize = wr::MAX_ENTRY;

fn decoders() -> Vec<(&'static str, usize, Decoder)> {
    vec![
        ("exchange request", exchange::MAX_REQUEST, |b| exchange::Request::decode(b).map(reencode)),
        ("exchange response", exchange::MAX_RESPONSE, |b| exchange::Response::decode(b).map(reencode)),
        ("roster request", wr::MAX_REQUEST, |b| wr::Request::decode(b).map(reencode)),
        ("roster response", wr::MAX_RESPONSE, |b| wr::Response::decode(b).map(reencode)),
        ("roster entry", wr::MAX_ENTRY, |b| wr::decode_entry(b).map(reencode)),
        ("bundle", MAX_BUNDLE, |b| encoding::from_bytes::<Bundle>(b, MAX_BUNDLE, "bundle").map(reencode)),
        ("entry json", MAX_JSON, |b| encoding::from_json::<Entry>(b, MAX_JSON, "entry").map(rejson)),
        ("bundle json", MAX_BUNDLE, |b| encoding::from_json::<Bundle>(b, MAX_BUNDLE, "bundle").map(rejson)),
    ]
}

/// Valid encodings for each decoder (same order as [`decoders`]), to mutate.
fn seeds() -> &'static [Vec<Vec<u8>>] {
    static SEEDS: OnceLock<Vec<Vec<Vec<u8>>>> = OnceLock::new();
    SEEDS.get_or_init(|| {
        let bundle = crate::common::fixed_parts().build(&testkit::issuer("RJZ", 0));
        let chain = testkit::roster().chain;
        let entry = chain.entries()[1].clone();
        let k = testkit::issuer("RJZ", 0);
        let id = MessageId::from_bytes([1; 16]);
        let requests = vec![
            exchange::Request::Offer { id, bundle: Box::new(bundle.clone()) }.encode(),
            exchange::Request::Withdraw {
                id,
                withdrawal: Signed::new(crate::common::samples::withdrawal(), |w| k.sign(w)),
            }
            .encode(),
            exchange::Request::Revoke {
                id,
                revocation: Signed::new(crate::common::samples::revocation(), |r| k.sign(r)),
            }
            .encode(),
        ];
        let response =
            exchange::Response { receipt: Signed::new(crate::common::samples::receipt(), |r| k.sign(r)) }.encode();
        let head = wr::Head { agreement: testkit::agreement(), seq: chain.seq(), hash: chain.head() };
        vec![
            requests,
            vec![response],
            vec![
                wr::Request::Heads(vec![head.clone()]).encode(),
                wr::Request::Fetch { agreement: testkit::agreement(), from: 1, limit: 10 }.encode(),
            ],
            vec![wr::Response::Heads(vec![head]).encode(), wr::Response::Entries(chain.entries().to_vec()).encode()],
            vec![encoding::to_bytes(&entry)],
            vec![encoding::to_bytes(&bundle)],
            vec![serde_json::to_vec(&entry).unwrap()],
            vec![serde_json::to_vec(&bundle).unwrap()],
        ]
    })
}

#[derive(Debug, Clone)]
enum Mutation {
    Flip(prop::sample::Index, u8),
    Truncate(prop::sample::Index),
    Insert(prop::sample::Index, u8),
    Remove(prop::sample::Index),
    Splice(prop::sample::Index, Vec<u8>),
}

fn mutation() -> impl Strategy<Value = Mutation> {
    prop_oneof![
        4 => (any::<prop::sample::Index>(), 1u8..=255).prop_map(|(i, m)| Mutation::Flip(i, m)),
        1 => any::<prop::sample::Index>().prop_map(Mutation::Truncate),
        1 => (any::<prop::sample::Index>(), any::<u8>()).prop_map(|(i, b)| Mutation::Insert(i, b)),
        1 => any::<prop::sample::Index>().prop_map(Mutation::Remove),
        1 => (any::<prop::sample::Index>(), prop::collection::vec(any::<u8>(), 1..16))
            .prop_map(|(i, b)| Mutation::Splice(i, b)),
    ]
}

fn mutate(bytes: &mut Vec<u8>, m: &Mutation) {
    if bytes.is_empty() {
        return;
    }
    match m {
        Mutation::Flip(i, mask) => {
            let i = i.index(bytes.len());
            bytes[i] ^= mask;
        }
        Mutation::Truncate(i) => bytes.truncate(i.index(bytes.len())),
        Mutation::Insert(i, b) => bytes.insert(i.index(bytes.len() + 1), *b),
        Mutation::Remove(i) => {
            bytes.remove(i.index(bytes.len()));
        }
        Mutation::Splice(i, b) => {
            let i = i.index(bytes.len());
            let end = (i + b.len()).min(bytes.len());
            bytes.splice(i..end, b.iter().copied());
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    /// Arbitrary bytes: every decoder answers, none panics, and whatever
    /// decodes re-encodes to bytes that decode to the same thing.
    #[test]
    fn arbitrary_bytes_never_panic(bytes in prop::collection::vec(any::<u8>(), 0..4096)) {
        for (name, _, decode) in decoders() {
            if let Ok(again) = decode(&bytes) {
                prop_assert_eq!(decode(&again).ok(), Some(again.clone()), "{} is not stable", name);
                if CANONICAL.contains(&name) {
                    prop_assert_eq!(&again, &bytes, "{} accepted a non-canonical encoding", name);
                }
            }
        }
    }

    /// Valid messages with a few random mutations: same properties, and
    /// they reach far deeper into the decoders than random bytes do.
    #[test]
    fn mutated_messages_never_panic(
        which in any::<prop::sample::Index>(),
        seed in any::<prop::sample::Index>(),
        mutations in prop::collection::vec(mutation(), 1..4),
    ) {
        let all = decoders();
        let d = which.index(all.len());
        let (name, _, decode) = all[d];
        let seeds = &seeds()[d];
        let mut bytes = seeds[seed.index(seeds.len())].clone();
        for m in &mutations {
            mutate(&mut bytes, m);
        }
        if let Ok(again) = decode(&bytes) {
            prop_assert_eq!(decode(&again).ok(), Some(again.clone()), "{} is not stable", name);
            if CANONICAL.contains(&name) {
                prop_assert_eq!(&again, &bytes, "{} accepted a non-canonical encoding", name);
            }
        }
    }
}

/// Every single-byte change (bit flips, and ±1 so that every length
/// prefix is made one too short and one too long) of every valid binary seed:
/// each decoder answers without panicking, and anything it accepts is
/// stable (and canonical on the wire).
#[test]
fn every_single_byte_change_of_every_seed_is_handled() {
    let mut accepted = 0usize;
    let mut total = 0usize;
    // The binary decoders; JSON (slow to sweep in a debug build) is fuzzed
    // by the properties above.
    for ((name, _, decode), seeds) in decoders().into_iter().zip(seeds()).filter(|((n, ..), _)| !n.ends_with("json")) {
        for s in seeds {
            for i in 0..s.len() {
                for v in [s[i] ^ 0x01, s[i] ^ 0x80, s[i].wrapping_add(1), s[i].wrapping_sub(1)] {
                    let mut b = s.clone();
                    b[i] = v;
                    total += 1;
                    if let Ok(again) = decode(&b) {
                        accepted += 1;
                        assert_eq!(decode(&again).as_ref(), Ok(&again), "{name}: byte {i} = {v:#x}: not stable");
                        if CANONICAL.contains(&name) {
                            assert_eq!(again, b, "{name}: byte {i} = {v:#x}: non-canonical encoding accepted");
                        }
                    }
                }
            }
        }
    }
    // Many changes land in free-form bytes (signatures, salts, digests) and
    // still decode; many land in structure and do not.
    assert!(accepted > total / 10 && accepted < total, "{accepted} of {total} accepted");
}

#[test]
fn the_seeds_decode() {
    for ((name, _, decode), seeds) in decoders().into_iter().zip(seeds()) {
        for s in seeds {
            let again = decode(s).unwrap_or_else(|e| panic!("{name}: {e}"));
            assert_eq!(&again, s, "{name}: re-encoding differs");
        }
    }
}

#[test]
fn inputs_over_the_bound_are_too_large() {
    for (name, max, decode) in decoders() {
        let err = decode(&vec![0u8; max + 1]).unwrap_err();
        assert_eq!(err, Error::TooLarge { len: max + 1, max }, "{name}");
        // At the bound itself the size is not the objection.
        let err = decode(&vec![0u8; max]).unwrap_err();
        assert!(!matches!(err, Error::TooLarge { .. }), "{name}: {err}");
    }
}

#[test]
fn the_bounds_fit_what_they_carry() {
    // A full-size bundle (every claim disclosed) fits an exchange request,
    // a full page of entries a roster response.
    let mut parts = crate::common::fixed_parts();
    parts.disclose = ClaimKind::all().into_iter().collect();
    parts.consent.claims = parts.disclose.clone();
    let offer = exchange::Request::Offer {
        id: MessageId::from_bytes([1; 16]),
        bundle: Box::new(parts.build(&testkit::issuer("RJZ", 0))),
    };
    assert!(offer.encode().len() < exchange::MAX_REQUEST / 8);
    let entry = encoding::to_bytes(&testkit::roster().chain.entries()[0]);
    assert!(entry.len() * usize::from(wr::MAX_ENTRIES) < wr::MAX_RESPONSE);
}

#[test]
fn trailing_bytes_are_refused() {
    for ((name, _, decode), seeds) in decoders().into_iter().zip(seeds()) {
        if name.ends_with("json") {
            continue;
        }
        for s in seeds {
            let mut longer = s.clone();
            longer.extend_from_slice(&[0, 7]);
            assert!(matches!(decode(&longer), Err(Error::TrailingBytes { extra: 2, .. })), "{name}");
        }
    }
    // JSON: trailing garbage is malformed.
    let entry = serde_json::to_vec(&testkit::roster().chain.entries()[0]).unwrap();
    let mut longer = entry.clone();
    longer.extend_from_slice(b" {}");
    assert!(matches!(encoding::from_json::<Entry>(&longer, MAX_JSON, "entry"), Err(Error::Malformed { .. })));
}

#[test]
fn empty_and_truncated_inputs_are_malformed() {
    for ((name, _, decode), seeds) in decoders().into_iter().zip(seeds()) {
        assert!(matches!(decode(&[]), Err(Error::Malformed { .. })), "{name}: empty");
        let s = &seeds[0];
        for cut in [1, s.len() / 2, s.len() - 1] {
            assert!(matches!(decode(&s[..cut]), Err(Error::Malformed { .. })), "{name}: cut at {cut}");
        }
    }
}

/// Re-encodes `bytes` with the varint at `at` (a one-byte value) written
/// overlong: same number, two bytes.
fn overlong_at(bytes: &[u8], at: usize) -> Vec<u8> {
    assert!(bytes[at] < 0x80);
    let mut out = bytes[..at].to_vec();
    out.extend_from_slice(&[bytes[at] | 0x80, 0x00]);
    out.extend_from_slice(&bytes[at + 1..]);
    out
}

#[test]
fn the_wire_accepts_only_the_canonical_encoding() {
    // The roster entry starts with its version, a varint 1. Written in two
    // bytes it would decode to the same entry with the same signatures:
    // another byte string for one signed message.
    let chain = testkit::roster().chain;
    let entry = &chain.entries()[1];
    let bytes = encoding::to_bytes(entry);
    assert_eq!(bytes[0], 1);
    let overlong = overlong_at(&bytes, 0);
    assert_eq!(
        encoding::from_bytes::<Entry>(&overlong, usize::MAX, "entry").as_ref(),
        Ok(entry),
        "postcard is lenient"
    );
    assert!(matches!(wr::decode_entry(&overlong), Err(Error::Malformed { .. })), "decode_entry");
    let response = wr::Response::Entries(vec![entry.clone()]).encode();
    let at = response.len() - bytes.len();
    assert!(matches!(wr::Response::decode(&overlong_at(&response, at)), Err(Error::Malformed { .. })), "response");

    // A set is canonical only sorted: the consent's claims listed in
    // reverse decode to the same set, so the same signature verifies.
    let bundle = crate::common::fixed_parts().build(&testkit::issuer("RJZ", 0));
    let claims: Vec<ClaimKind> = bundle.consent.signed.body.claims.iter().copied().collect();
    let mut reversed = claims.clone();
    reversed.reverse();
    let offer =
        exchange::Request::Offer { id: MessageId::from_bytes([1; 16]), bundle: Box::new(bundle.clone()) }.encode();
    let (sorted_bytes, reversed_bytes) = (encoding::to_bytes(&claims), encoding::to_bytes(&reversed));
    let at = find(&offer, &sorted_bytes).expect("the consent's claims in the offer");
    let mut swapped = offer.clone();
    swapped[at..at + sorted_bytes.len()].copy_from_slice(&reversed_bytes);
    let lenient: exchange::Request = encoding::from_bytes(&swapped, usize::MAX, "offer").unwrap();
    assert_eq!(lenient, exchange::Request::decode(&offer).unwrap(), "postcard is lenient");
    assert!(matches!(exchange::Request::decode(&swapped), Err(Error::Malformed { .. })), "exchange request");
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

// ------------------------------------------------------------ round trips

fn ts() -> impl Strategy<Value = Timestamp> {
    (Timestamp::MIN.unix()..=Timestamp::MAX.unix()).prop_map(|s| Timestamp::from_unix(s).unwrap())
}

fn date() -> impl Strategy<Value = Date> {
    let (lo, hi) = ("1900-01-01".parse::<Date>().unwrap().days(), "9999-12-31".parse::<Date>().unwrap().days());
    (lo..=hi).prop_map(|d| Date::from_days(d).unwrap())
}

fn text() -> impl Strategy<Value = String> {
    "\\PC{1,40}"
}

fn org() -> impl Strategy<Value = OrgId> {
    prop_oneof![
        "[A-Z][A-Z0-9]{2,5}".prop_map(|s| s.parse().unwrap()),
        ("[a-z][a-z0-9-]{1,31}", "[A-Z0-9-]{1,32}").prop_map(|(r, n)| format!("ext:{r}:{n}").parse().unwrap()),
    ]
}

fn agreement() -> impl Strategy<Value = AgreementId> {
    "[a-z][a-z0-9-]{1,60}[a-z0-9]".prop_map(|s| s.parse().unwrap())
}

fn staff_ref() -> impl Strategy<Value = StaffRef> {
    "[A-Za-z0-9_-]{8,64}".prop_map(|s| s.parse().unwrap())
}

fn issuer_key() -> impl Strategy<Value = IssuerPublicKey> {
    (0u32..8).prop_map(|g| testkit::issuer("RJZ", g).public())
}

fn steward_key() -> impl Strategy<Value = StewardPublicKey> {
    (0usize..8).prop_map(|i| testkit::steward(i).public())
}

fn staff_key() -> impl Strategy<Value = StaffPublicKey> {
    "[a-z]{1,8}".prop_map(|s| testkit::staff(&s).public())
}

fn node_id() -> impl Strategy<Value = NodeId> {
    any::<[u8; 32]>().prop_map(|k| NodeId::from_ed25519_public(&k))
}

fn sig() -> impl Strategy<Value = Signature> {
    (any::<[u8; 32]>(), any::<[u8; 32]>()).prop_map(|(a, b)| {
        let mut s = [0u8; 64];
        s[..32].copy_from_slice(&a);
        s[32..].copy_from_slice(&b);
        Signature(s)
    })
}

fn hash() -> impl Strategy<Value = Hash> {
    any::<[u8; 32]>().prop_map(Hash)
}

fn claim_kind() -> impl Strategy<Value = ClaimKind> {
    prop::sample::select(ClaimKind::all())
}

fn claim_kinds() -> impl Strategy<Value = BTreeSet<ClaimKind>> {
    prop::collection::btree_set(claim_kind(), 0..8)
}

fn ni() -> impl Strategy<Value = NiNumber> {
    "[ABCEGHJ-PRSTW-Z][ABCEGHJ-NPRSTW-Z][0-9]{6}[A-D]".prop_map(|s| s.parse().unwrap())
}

fn claim() -> impl Strategy<Value = Claim> {
    let opt_date = || prop::option::of(date());
    prop_oneof![
        (text(), date(), ni(), date()).prop_map(|(full_name, date_of_birth, ni_number, verified_on)| {
            Claim::Identity(Identity { full_name, date_of_birth, ni_number, verified_on })
        }),
        (text(), date(), opt_date()).prop_map(|(basis, checked_on, expires_on)| Claim::RightToWork(RightToWork {
            basis,
            checked_on,
            expires_on
        })),
        (prop::sample::select(DbsLevel::ALL), text(), date(), any::<bool>(), opt_date()).prop_map(
            |(level, certificate_number, issued_on, update_service, recheck_on)| {
                Claim::Dbs(Dbs { level, certificate_number, issued_on, update_service, recheck_on })
            }
        ),
        (prop::sample::select(Regulator::ALL), text(), opt_date()).prop_map(|(r, number, expires_on)| {
            Claim::ProfessionalRegistration(Registration { regulator: r, number, expires_on })
        }),
        (text(), text(), date(), opt_date()).prop_map(|(assignment_number, job_role, start, end)| {
            Claim::EmploymentAssignment(Assignment { assignment_number, job_role, start, end })
        }),
        (text(), date(), date()).prop_map(|(description, start, end)| Claim::TemporaryPlacement(Placement {
            description,
            start,
            end
        })),
        (any::<u8>(), date()).prop_map(|(count, checked_on)| Claim::References(References { count, checked_on })),
        (date(), any::<bool>(), opt_date()).prop_map(|(cleared_on, epp_cleared, review_on)| {
            Claim::OccupationalHealth(OhClearance { cleared_on, epp_cleared, review_on })
        }),
        (prop::sample::select(Vaccine::ALL), date(), opt_date()).prop_map(|(v, completed_on, expires_on)| {
            Claim::Immunisation(v, ImmunisationRecord { completed_on, expires_on })
        }),
        (prop::sample::select(CstfSubject::ALL), any::<u8>(), date(), any::<u16>()).prop_map(
            |(s, level, completed_on, refresher_months)| {
                Claim::Training(s, Training { level, completed_on, refresher_months })
            }
        ),
    ]
}

fn disclosure() -> impl Strategy<Value = Disclosure> {
    (any::<[u8; 16]>(), claim()).prop_map(|(s, claim)| Disclosure { salt: Salt(s), claim })
}

fn credential() -> impl Strategy<Value = Credential> {
    (any::<[u8; 16]>(), org(), issuer_key(), staff_ref(), ts(), ts(), prop::collection::vec(hash(), 0..8)).prop_map(
        |(id, issuer, issuer_key, subject, issued_at, expires_at, digests)| Credential {
            id: CredentialId::from_bytes(id),
            issuer,
            issuer_key,
            subject,
            issued_at,
            expires_at,
            digests,
        },
    )
}

fn consent() -> impl Strategy<Value = Consent> {
    (
        (any::<[u8; 16]>(), staff_ref(), org(), org(), agreement(), prop::sample::select(MoveKind::ALL)),
        (claim_kinds(), ts(), ts(), ts(), issuer_key(), prop::option::of(staff_key())),
    )
        .prop_map(
            |(
                (id, subject, home, receiver, agreement, move_kind),
                (claims, not_before, not_after, issued_at, issuer_key, staff_key),
            )| Consent {
                id: ConsentId::from_bytes(id),
                subject,
                home,
                receiver,
                agreement,
                move_kind,
                claims,
                not_before,
                not_after,
                issued_at,
                issuer_key,
                staff_key,
            },
        )
}

fn signed<T: Debug + Clone + 'static>(body: impl Strategy<Value = T>) -> impl Strategy<Value = Signed<T>> {
    (any::<u16>(), body, sig()).prop_map(|(version, body, signature)| Signed { version, body, signature })
}

fn bundle() -> impl Strategy<Value = Bundle> {
    (signed(credential()), prop::collection::vec(disclosure(), 0..6), signed(consent()), prop::option::of(sig()))
        .prop_map(|(credential, disclosures, signed, staff_signature)| Bundle {
            credential,
            disclosures,
            consent: SignedConsent { signed, staff_signature },
        })
}

fn withdrawal() -> impl Strategy<Value = Withdrawal> {
    (any::<[u8; 16]>(), staff_ref(), org(), org(), ts(), issuer_key()).prop_map(
        |(c, subject, home, receiver, withdrawn_at, issuer_key)| Withdrawal {
            consent: ConsentId::from_bytes(c),
            subject,
            home,
            receiver,
            withdrawn_at,
            issuer_key,
        },
    )
}

fn revocation() -> impl Strategy<Value = Revocation> {
    (any::<[u8; 16]>(), org(), prop::sample::select(RevocationReason::ALL), ts(), issuer_key()).prop_map(
        |(c, issuer, reason, revoked_at, issuer_key)| Revocation {
            credential: CredentialId::from_bytes(c),
            issuer,
            reason,
            revoked_at,
            issuer_key,
        },
    )
}

fn outcome() -> impl Strategy<Value = Outcome> {
    prop_oneof![
        (any::<[u8; 16]>(), any::<[u8; 16]>(), claim_kinds()).prop_map(|(c, k, claims)| Outcome::Received {
            consent: ConsentId::from_bytes(c),
            credential: CredentialId::from_bytes(k),
            claims
        }),
        any::<[u8; 16]>().prop_map(|c| Outcome::Erased { consent: ConsentId::from_bytes(c) }),
        any::<[u8; 16]>().prop_map(|c| Outcome::RevocationAcknowledged { credential: CredentialId::from_bytes(c) }),
        prop::sample::select(Rejection::ALL).prop_map(|r| Outcome::Rejected { reason: r }),
    ]
}

fn receipt() -> impl Strategy<Value = Receipt> {
    (any::<[u8; 16]>(), org(), outcome(), ts(), issuer_key()).prop_map(|(m, receiver, outcome, at, issuer_key)| {
        Receipt { message: MessageId::from_bytes(m), receiver, outcome, at, issuer_key }
    })
}

fn terms() -> impl Strategy<Value = Terms> {
    (prop::collection::btree_set(prop::sample::select(MoveKind::ALL), 0..4), claim_kinds(), text())
        .prop_map(|(moves, accepts, lawful_basis)| Terms { moves, accepts, lawful_basis })
}

fn member_spec() -> impl Strategy<Value = MemberSpec> {
    (
        org(),
        text(),
        prop::collection::vec(issuer_key(), 0..3),
        prop::collection::vec(node_id(), 0..3),
        prop::collection::vec(text(), 0..3),
    )
        .prop_map(|(org, name, issuer_keys, nodes, addresses)| MemberSpec {
            org,
            name,
            issuer_keys,
            nodes,
            addresses,
        })
}

fn change() -> impl Strategy<Value = Change> {
    prop_oneof![
        (text(), terms(), prop::collection::btree_set(steward_key(), 0..4), any::<u8>(), ts()).prop_map(
            |(title, terms, stewards, threshold, valid_until)| Change::Genesis {
                title,
                terms,
                stewards,
                threshold,
                valid_until
            }
        ),
        member_spec().prop_map(Change::AddMember),
        (
            org(),
            prop::option::of(text()),
            prop::option::of(prop::collection::vec(node_id(), 0..3)),
            prop::option::of(prop::collection::vec(text(), 0..2))
        )
            .prop_map(|(org, name, nodes, addresses)| Change::UpdateMember { org, name, nodes, addresses }),
        (org(), issuer_key(), prop::option::of(issuer_key())).prop_map(|(org, add, retire)| Change::RotateKey {
            org,
            add,
            retire
        }),
        (org(), text()).prop_map(|(org, reason)| Change::Suspend { org, reason }),
        org().prop_map(|org| Change::Reinstate { org }),
        org().prop_map(|org| Change::Remove { org }),
        (prop::collection::btree_set(steward_key(), 0..4), any::<u8>())
            .prop_map(|(stewards, threshold)| Change::SetStewards { stewards, threshold }),
        terms().prop_map(Change::SetTerms),
        ts().prop_map(|valid_until| Change::Resign { valid_until }),
    ]
}

fn entry() -> impl Strategy<Value = Entry> {
    (
        any::<u16>(),
        agreement(),
        any::<u64>(),
        hash(),
        ts(),
        change(),
        prop::collection::vec((steward_key(), sig()), 0..4),
    )
        .prop_map(|(version, agreement, seq, prev, issued_at, change, sigs)| Entry {
            version,
            body: EntryBody { agreement, seq, prev, issued_at, change },
            signatures: sigs.into_iter().map(|(steward, signature)| StewardSignature { steward, signature }).collect(),
        })
}

fn exchange_request() -> impl Strategy<Value = exchange::Request> {
    prop_oneof![
        (any::<[u8; 16]>(), bundle())
            .prop_map(|(id, b)| exchange::Request::Offer { id: MessageId::from_bytes(id), bundle: Box::new(b) }),
        (any::<[u8; 16]>(), signed(withdrawal()))
            .prop_map(|(id, withdrawal)| exchange::Request::Withdraw { id: MessageId::from_bytes(id), withdrawal }),
        (any::<[u8; 16]>(), signed(revocation()))
            .prop_map(|(id, revocation)| exchange::Request::Revoke { id: MessageId::from_bytes(id), revocation }),
    ]
}

fn head() -> impl Strategy<Value = wr::Head> {
    (agreement(), any::<u64>(), hash()).prop_map(|(agreement, seq, hash)| wr::Head { agreement, seq, hash })
}

fn roster_request() -> impl Strategy<Value = wr::Request> {
    prop_oneof![
        prop::collection::vec(head(), 0..4).prop_map(wr::Request::Heads),
        (agreement(), any::<u64>(), any::<u16>()).prop_map(|(agreement, from, limit)| wr::Request::Fetch {
            agreement,
            from,
            limit
        }),
    ]
}

fn roster_response() -> impl Strategy<Value = wr::Response> {
    prop_oneof![
        prop::collection::vec(head(), 0..4).prop_map(wr::Response::Heads),
        prop::collection::vec(entry(), 0..3).prop_map(wr::Response::Entries),
        Just(wr::Response::Unknown),
    ]
}

/// Postcard and JSON round trips of `v`.
fn round_trips<T>(v: &T, decode: impl Fn(&[u8]) -> Result<T, Error>) -> Result<(), TestCaseError>
where
    T: Serialize + DeserializeOwned + PartialEq + Debug,
{
    let bytes = encoding::to_bytes(v);
    prop_assert_eq!(&decode(&bytes).unwrap(), v);
    let json = serde_json::to_vec(v).unwrap();
    let back: T = encoding::from_json(&json, usize::MAX, "json")
        .map_err(|e| TestCaseError::fail(format!("{e}: {}", String::from_utf8_lossy(&json))))?;
    prop_assert_eq!(&back, v);
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(128))]

    #[test]
    fn bundles_round_trip(b in bundle()) {
        round_trips(&b, |x| encoding::from_bytes(x, MAX_BUNDLE, "bundle"))?;
    }

    #[test]
    fn entries_round_trip(e in entry()) {
        round_trips(&e, wr::decode_entry)?;
    }

    #[test]
    fn exchange_requests_round_trip(r in exchange_request()) {
        round_trips(&r, exchange::Request::decode)?;
    }

    #[test]
    fn exchange_responses_round_trip(r in signed(receipt())) {
        round_trips(&exchange::Response { receipt: r }, exchange::Response::decode)?;
    }

    #[test]
    fn roster_requests_round_trip(r in roster_request()) {
        round_trips(&r, wr::Request::decode)?;
    }

    #[test]
    fn roster_responses_round_trip(r in roster_response()) {
        round_trips(&r, wr::Response::decode)?;
    }

    #[test]
    fn timestamps_and_dates_round_trip_through_text(t in ts(), d in date()) {
        prop_assert_eq!(t.to_string().parse::<Timestamp>().unwrap(), t);
        prop_assert_eq!(d.to_string().parse::<Date>().unwrap(), d);
    }
}
