//! Golden vectors: the canonical encoding of every signed type and every
//! wire message, pinned in `tests/vectors/*.json`.
//!
//! Each test rebuilds its values from fixed keys and fixed values and fails
//! if the signing bytes, the hash, the signature or the JSON differ from the
//! checked-in file. A change here is a protocol version change: bump the
//! type's `VERSION` (or the wire protocol's name) and then regenerate with
//!
//! ```text
//! STAFFPASS_UPDATE_VECTORS=1 cargo test -p staffpass-protocol --test it vectors::
//! ```
//!
//! The stored files are also checked on their own: every stored signature
//! verifies over the stored bytes with the stored key, and every stored JSON
//! value decodes to a value with exactly the stored signing bytes.

// Test code: a failed unwrap is a failed assertion (clippy.toml allows it
// in #[test] fns; this extends it to the helpers).
#![allow(clippy::unwrap_used)]

use std::collections::BTreeSet;
use std::fmt::{Debug, Display};
use std::path::PathBuf;

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use staffpass_protocol::bundle::Bundle;
use staffpass_protocol::claims::{Claim, ClaimKind, CstfSubject, Placement, References, Vaccine};
use staffpass_protocol::consent::{Consent, Withdrawal};
use staffpass_protocol::credential::{self, Credential, Disclosure, Salt};
use staffpass_protocol::encoding;
use staffpass_protocol::ids::{ConsentId, CredentialId, MessageId};
use staffpass_protocol::keys::StewardSecretKey;
use staffpass_protocol::receipt::{Outcome, Receipt};
use staffpass_protocol::revocation::{Revocation, RevocationReason};
use staffpass_protocol::roster::{Chain, Change, Entry, EntryBody, MemberSpec, MoveKind, Terms};
use staffpass_protocol::signing::{Hash, Signable, Signature, Signed};
use staffpass_protocol::testkit::{self, agreement, issuer, node, org, steward};
use staffpass_protocol::wire;
use staffpass_protocol::{Rejection, StaffRef};

use crate::common::{fixed_disclosures, fixed_parts, ts};

const UPDATE: &str = "STAFFPASS_UPDATE_VECTORS";

fn updating() -> bool {
    std::env::var(UPDATE).is_ok_and(|v| v == "1")
}

fn path(file: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/vectors").join(file)
}

/// One signed value.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct Vector {
    name: String,
    /// The signer's public key, as text (`issuer-pk:<hex>`, ...).
    public_key: String,
    /// `Signable::signing_bytes`, hex.
    signing_bytes: String,
    /// `Signable::hash` (SHA-256 of the signing bytes), hex.
    hash: String,
    /// The ed25519 signature over the signing bytes, hex.
    signature: String,
    /// The value as JSON.
    value: serde_json::Value,
}

/// The vectors of one signed type.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct File {
    #[serde(rename = "type")]
    type_name: String,
    tag: String,
    version: u16,
    vectors: Vec<Vector>,
}

fn vector<T: Signable>(name: &str, value: &T, public_key: &impl Display, signature: Signature) -> Vector {
    let bytes = value.signing_bytes();
    Vector {
        name: name.into(),
        public_key: public_key.to_string(),
        signing_bytes: hex::encode(&bytes),
        hash: value.hash().to_string(),
        signature: hex::encode(signature.0),
        value: serde_json::to_value(value).unwrap(),
    }
}

/// The raw ed25519 key behind `<kind>-pk:<hex>`.
fn dalek_key(text: &str) -> ed25519_dalek::VerifyingKey {
    let (_, h) = text.split_once(':').unwrap();
    let mut b = [0u8; 32];
    hex::decode_to_slice(h, &mut b).unwrap();
    ed25519_dalek::VerifyingKey::from_bytes(&b).unwrap()
}

fn verify_raw(v: &Vector) -> bool {
    let bytes = hex::decode(&v.signing_bytes).unwrap();
    let sig: [u8; 64] = hex::decode(&v.signature).unwrap().try_into().unwrap();
    dalek_key(&v.public_key).verify_strict(&bytes, &ed25519_dalek::Signature::from_bytes(&sig)).is_ok()
}

fn write_json<S: Serialize>(file: &str, value: &S) {
    let mut text = serde_json::to_string_pretty(value).unwrap();
    text.push('\n');
    std::fs::write(path(file), text).unwrap();
}

fn read_json<D: DeserializeOwned>(file: &str) -> D {
    let text = std::fs::read_to_string(path(file))
        .unwrap_or_else(|e| panic!("cannot read tests/vectors/{file} ({e}); generate it with {UPDATE}=1"));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("tests/vectors/{file} is not a vector file: {e}"))
}

const CHANGED: &str = "the canonical encoding changed: that is a protocol version change. If it is intended, bump \
                       the type's VERSION, then regenerate the vectors with STAFFPASS_UPDATE_VECTORS=1";

/// Compares the generated vectors of `T` with `file`, or rewrites `file`.
fn check<T>(file: &str, type_name: &str, generated: Vec<Vector>)
where
    T: Signable + DeserializeOwned + PartialEq + Debug,
{
    let generated = File { type_name: type_name.into(), tag: T::TAG.into(), version: T::VERSION, vectors: generated };
    for v in &generated.vectors {
        assert!(verify_raw(v), "{file}/{}: freshly made signature does not verify", v.name);
    }
    if updating() {
        write_json(file, &generated);
        return;
    }
    let stored: File = read_json(file);

    // The stored file stands on its own: signatures verify, JSON decodes to the same bytes.
    assert_eq!(stored.tag, T::TAG, "{file}: tag");
    assert_eq!(stored.version, T::VERSION, "{file}: version");
    for v in &stored.vectors {
        assert!(verify_raw(v), "{file}/{}: stored signature does not verify over the stored bytes", v.name);
        let bytes = hex::decode(&v.signing_bytes).unwrap();
        assert_eq!(Hash::of(&bytes).to_string(), v.hash, "{file}/{}: stored hash", v.name);
        let value: T = serde_json::from_value(v.value.clone())
            .unwrap_or_else(|e| panic!("{file}/{}: stored JSON does not decode: {e}", v.name));
        assert_eq!(hex::encode(value.signing_bytes()), v.signing_bytes, "{file}/{}: JSON vs bytes", v.name);
        let mut prefix = format!("staffpass\0{}\0", T::TAG).into_bytes();
        prefix.extend_from_slice(&T::VERSION.to_be_bytes());
        assert!(bytes.starts_with(&prefix), "{file}/{}: domain prefix", v.name);
        let body: T = encoding::from_bytes(&bytes[prefix.len()..], usize::MAX, "vector body").unwrap();
        assert_eq!(body, value, "{file}/{}: postcard body vs JSON", v.name);
    }

    // And the code still makes exactly it.
    let names = |f: &File| f.vectors.iter().map(|v| v.name.clone()).collect::<Vec<_>>();
    assert_eq!(names(&generated), names(&stored), "{file}: the set of vectors changed; {CHANGED}");
    assert_eq!(generated.type_name, stored.type_name, "{file}: type");
    for (g, s) in generated.vectors.iter().zip(&stored.vectors) {
        let n = &g.name;
        assert_eq!(g.signing_bytes, s.signing_bytes, "{file}/{n}: signing bytes differ; {CHANGED}");
        assert_eq!(g.hash, s.hash, "{file}/{n}: hash differs; {CHANGED}");
        assert_eq!(g.public_key, s.public_key, "{file}/{n}: public key differs");
        assert_eq!(g.signature, s.signature, "{file}/{n}: signature differs; {CHANGED}");
        assert_eq!(g.value, s.value, "{file}/{n}: JSON differs");
    }
}

// ---------------------------------------------------------------- values

fn subject() -> StaffRef {
    "st-0000000000000000000000000000abcd".parse().unwrap()
}

/// One disclosure per claim variant: the 14 fixture claims with fixed
/// salts, plus the two variants they lack.
fn disclosures() -> Vec<Disclosure> {
    let mut claims = testkit::sample_claims();
    claims.push(Claim::TemporaryPlacement(Placement {
        description: "Emergency department, Princess Royal University Hospital".into(),
        start: "2026-12-01".parse().unwrap(),
        end: "2027-02-28".parse().unwrap(),
    }));
    claims.push(Claim::References(References { count: 2, checked_on: "2024-08-01".parse().unwrap() }));
    fixed_disclosures(claims)
}

fn credential_body() -> Signed<Credential> {
    let parts = fixed_parts();
    credential::issue(&issuer("RJZ", 0), parts.credential, &parts.all)
}

fn consent_body(staff: bool) -> Consent {
    let mut c = fixed_parts().consent;
    if staff {
        c.staff_key = Some(testkit::staff("alex").public());
    }
    c
}

fn withdrawal_body() -> Withdrawal {
    Withdrawal {
        consent: ConsentId::from_bytes([2; 16]),
        subject: subject(),
        home: org("RJZ"),
        receiver: org("RJ1"),
        withdrawn_at: ts("2026-11-30T17:45:00Z"),
        issuer_key: issuer("RJZ", 0).public(),
    }
}

fn revocation_body(reason: RevocationReason) -> Revocation {
    Revocation {
        credential: CredentialId::from_bytes([1; 16]),
        issuer: org("RJZ"),
        reason,
        revoked_at: ts("2026-12-01T08:00:00Z"),
        issuer_key: issuer("RJZ", 0).public(),
    }
}

fn outcomes() -> Vec<(&'static str, Outcome)> {
    vec![
        (
            "received",
            Outcome::Received {
                consent: ConsentId::from_bytes([2; 16]),
                credential: CredentialId::from_bytes([1; 16]),
                claims: [ClaimKind::Identity, ClaimKind::Dbs, ClaimKind::Training(CstfSubject::FireSafety)]
                    .into_iter()
                    .collect(),
            },
        ),
        ("erased", Outcome::Erased { consent: ConsentId::from_bytes([2; 16]) }),
        ("revocation-acknowledged", Outcome::RevocationAcknowledged { credential: CredentialId::from_bytes([1; 16]) }),
        ("rejected", Outcome::Rejected { reason: Rejection::ConsentExpired }),
    ]
}

fn receipt_body(outcome: Outcome) -> Receipt {
    Receipt {
        message: MessageId::from_bytes([0x11; 16]),
        receiver: org("RJ1"),
        outcome,
        at: ts("2026-11-23T09:00:05Z"),
        issuer_key: issuer("RJ1", 0).public(),
    }
}

/// A roster chain with one entry of every kind of change, built from
/// fixed values (not the testkit roster, so fixture edits do not move it).
fn vector_chain() -> (Chain, Vec<&'static str>) {
    let stewards0: Vec<StewardSecretKey> = (0..3).map(steward).collect();
    let start = ts("2026-10-01T00:00:00Z");
    let genesis = EntryBody {
        agreement: agreement(),
        seq: 0,
        prev: Hash::default(),
        issued_at: start,
        change: Change::Genesis {
            title: "London staff-movement MOU".into(),
            terms: Terms {
                moves: [MoveKind::Rotation, MoveKind::Secondment].into_iter().collect(),
                accepts: [
                    ClaimKind::Identity,
                    ClaimKind::Dbs,
                    ClaimKind::Immunisation(Vaccine::Mmr),
                    ClaimKind::Training(CstfSubject::FireSafety),
                ]
                .into_iter()
                .collect(),
                lawful_basis: "UK GDPR Art. 6(1)(b) and 9(2)(b)".into(),
            },
            stewards: stewards0.iter().map(StewardSecretKey::public).collect(),
            threshold: 2,
            valid_until: ts("2027-01-01T00:00:00Z"),
        },
    };
    let mut e = Entry::unsigned(genesis);
    e.sign(&stewards0[0]);
    e.sign(&stewards0[1]);
    let mut chain = Chain::new(e).unwrap();
    let stewards1: Vec<StewardSecretKey> = (1..4).map(steward).collect();
    let rjz = org("RJZ");
    let changes: Vec<(&str, Change, &[StewardSecretKey])> = vec![
        (
            "add-member",
            Change::AddMember(MemberSpec {
                org: rjz.clone(),
                name: "King's College Hospital NHS Foundation Trust".into(),
                issuer_keys: vec![issuer("RJZ", 0).public()],
                nodes: vec![node("RJZ")],
                addresses: vec!["/ip4/10.0.0.1/tcp/4001".into(), "/dns4/rjz.example/udp/4001/quic-v1".into()],
            }),
            &stewards0,
        ),
        (
            "update-member",
            Change::UpdateMember {
                org: rjz.clone(),
                name: None,
                nodes: Some(vec![node("RJZ"), node("RJZ-2")]),
                addresses: Some(vec![]),
            },
            &stewards0,
        ),
        (
            "rotate-key",
            Change::RotateKey {
                org: rjz.clone(),
                add: issuer("RJZ", 1).public(),
                retire: Some(issuer("RJZ", 0).public()),
            },
            &stewards0,
        ),
        ("suspend", Change::Suspend { org: rjz.clone(), reason: "DSPT submission overdue".into() }, &stewards0),
        ("reinstate", Change::Reinstate { org: rjz.clone() }, &stewards0),
        ("remove", Change::Remove { org: rjz.clone() }, &stewards0),
        (
            "set-stewards",
            Change::SetStewards { stewards: stewards1.iter().map(StewardSecretKey::public).collect(), threshold: 2 },
            &stewards0,
        ),
        (
            "set-terms",
            Change::SetTerms(Terms {
                moves: MoveKind::ALL.iter().copied().collect(),
                accepts: [ClaimKind::Identity, ClaimKind::OccupationalHealth].into_iter().collect(),
                lawful_basis: "UK GDPR Art. 6(1)(b) and 9(2)(h)".into(),
            }),
            &stewards1,
        ),
        ("resign", Change::Resign { valid_until: ts("2027-04-01T00:00:00Z") }, &stewards1),
    ];
    let mut names = vec!["genesis"];
    for (i, (name, change, signers)) in changes.into_iter().enumerate() {
        let mut e = Entry::unsigned(EntryBody {
            agreement: agreement(),
            seq: chain.seq() + 1,
            prev: chain.head(),
            issued_at: start.plus_secs(3600 * (i as i64 + 1)),
            change,
        });
        e.sign(&signers[0]);
        e.sign(&signers[1]);
        chain.append(e).unwrap_or_else(|err| panic!("vector entry {name} refused: {err}"));
        names.push(name);
    }
    (chain, names)
}

// ----------------------------------------------------------------- tests

#[test]
fn credential() {
    let c = credential_body();
    let pk = issuer("RJZ", 0).public();
    check::<Credential>("credential.json", "Credential", vec![vector("credential", &c.body, &pk, c.signature)]);
}

#[test]
fn disclosure() {
    let key = issuer("RJZ", 0);
    let vs = disclosures().iter().map(|d| vector(&d.claim.kind().to_string(), d, &key.public(), key.sign(d))).collect();
    check::<Disclosure>("disclosure.json", "Disclosure", vs);
}

#[test]
fn disclosure_digests_are_the_credential_digests() {
    let c = credential_body();
    let mut digests: Vec<Hash> = fixed_parts().all.iter().map(Disclosure::digest).collect();
    digests.sort();
    assert_eq!(c.body.digests, digests);
    // A disclosure's digest is its domain-separated hash, not a bare SHA-256 of the claim.
    let d = &disclosures()[0];
    assert_ne!(d.digest(), Hash::of(&encoding::to_bytes(d)));
    assert_eq!(d.digest(), Hash::of(&d.signing_bytes()));
    assert_eq!(d.salt, Salt([0x10; 16]));
}

#[test]
fn consent() {
    let key = issuer("RJZ", 0);
    let staff = testkit::staff("alex");
    let plain = consent_body(false);
    let with_staff = consent_body(true);
    check::<Consent>(
        "consent.json",
        "Consent",
        vec![
            vector("consent", &plain, &key.public(), key.sign(&plain)),
            vector("consent-staff-key", &with_staff, &key.public(), key.sign(&with_staff)),
            vector("consent-staff-key-staff-signature", &with_staff, &staff.public(), staff.sign(&with_staff)),
        ],
    );
}

#[test]
fn withdrawal() {
    let key = issuer("RJZ", 0);
    let w = withdrawal_body();
    check::<Withdrawal>("withdrawal.json", "Withdrawal", vec![vector("withdrawal", &w, &key.public(), key.sign(&w))]);
}

#[test]
fn revocation() {
    let key = issuer("RJZ", 0);
    let vs = RevocationReason::ALL
        .iter()
        .map(|r| {
            let v = revocation_body(*r);
            vector(r.as_str(), &v, &key.public(), key.sign(&v))
        })
        .collect();
    check::<Revocation>("revocation.json", "Revocation", vs);
}

#[test]
fn receipt() {
    let key = issuer("RJ1", 0);
    let vs = outcomes()
        .into_iter()
        .map(|(name, o)| {
            let r = receipt_body(o);
            vector(name, &r, &key.public(), key.sign(&r))
        })
        .collect();
    check::<Receipt>("receipt.json", "Receipt", vs);
}

#[test]
fn roster_entry() {
    let (chain, names) = vector_chain();
    let vs = chain
        .entries()
        .iter()
        .zip(names)
        .map(|(e, name)| {
            let s = &e.signatures[0];
            vector(name, &e.body, &s.steward, s.signature)
        })
        .collect();
    check::<EntryBody>("roster-entry.json", "roster::EntryBody", vs);
}

// ------------------------------------------------------------------ wire

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct WireVector {
    name: String,
    protocol: String,
    /// The encoded message, hex.
    bytes: String,
    value: serde_json::Value,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct WireFile {
    #[serde(rename = "type")]
    type_name: String,
    vectors: Vec<WireVector>,
}

/// Decodes stored bytes and compares them with the value.
type DecodesToValue = Box<dyn Fn(&[u8]) -> Result<(), String>>;

/// A wire vector and the check that its stored bytes decode to the value.
struct WireCase {
    vector: WireVector,
    decodes_to_value: DecodesToValue,
}

fn wire_case<M>(
    name: &str,
    protocol: &str,
    value: M,
    encode: fn(&M) -> Vec<u8>,
    decode: fn(&[u8]) -> Result<M, encoding::Error>,
) -> WireCase
where
    M: Serialize + PartialEq + Debug + 'static,
{
    let vector = WireVector {
        name: name.into(),
        protocol: protocol.into(),
        bytes: hex::encode(encode(&value)),
        value: serde_json::to_value(&value).unwrap(),
    };
    let decodes_to_value = Box::new(move |b: &[u8]| match decode(b) {
        Ok(m) if m == value => Ok(()),
        Ok(m) => Err(format!("decodes to another value: {m:?}")),
        Err(e) => Err(e.to_string()),
    });
    WireCase { vector, decodes_to_value }
}

fn fixed_bundle() -> Bundle {
    fixed_parts().build(&issuer("RJZ", 0))
}

/// The SD-JWT VC presentation of [`fixed_bundle`] its home would send
/// with it (salts 1, 2, 3, ... so the token is fixed).
fn fixed_presentation() -> String {
    let b = fixed_bundle();
    let (cred, consent) = (&b.credential.body, b.consent.consent());
    let claims: Vec<Claim> = b.disclosures.iter().map(|d| d.claim.clone()).collect();
    let vc = staffpass_protocol::sdjwt::Vc {
        iss: "https://staffpass.rjz.example",
        iat: testkit::now(),
        exp: cred.expires_at.min(consent.not_after),
        sub: &cred.subject,
        cnf: consent.staff_key.as_ref(),
        status: Some(staffpass_protocol::sdjwt::StatusRef {
            idx: 7,
            uri: "https://staffpass.rjz.example/statuslists/1".into(),
        }),
        claims: &claims,
    };
    let mut n = 0u8;
    staffpass_protocol::sdjwt::issue(&issuer("RJZ", 0), &vc, &mut || {
        n += 1;
        [n; 16]
    })
}

fn wire_cases() -> Vec<WireCase> {
    use wire::exchange::{self, Request as XReq, Response as XRes};
    use wire::roster::{self as wr, Head, Request as RReq, Response as RRes};
    let rjz = issuer("RJZ", 0);
    let rj1 = issuer("RJ1", 0);
    let (chain, _) = vector_chain();
    let head = Head { agreement: agreement(), seq: chain.seq(), hash: chain.head() };
    let id = MessageId::from_bytes([0x11; 16]);
    let receipt = receipt_body(outcomes().remove(0).1);
    vec![
        wire_case(
            "exchange-request-offer",
            exchange::PROTOCOL,
            XReq::Offer { id, bundle: Box::new(fixed_bundle()) },
            XReq::encode,
            XReq::decode,
        ),
        wire_case(
            "exchange-request-withdraw",
            exchange::PROTOCOL,
            XReq::Withdraw { id, withdrawal: Signed::new(withdrawal_body(), |w| rjz.sign(w)) },
            XReq::encode,
            XReq::decode,
        ),
        wire_case(
            "exchange-request-revoke",
            exchange::PROTOCOL,
            XReq::Revoke {
                id,
                revocation: Signed::new(revocation_body(RevocationReason::LeavingOrganisation), |r| rjz.sign(r)),
            },
            XReq::encode,
            XReq::decode,
        ),
        wire_case(
            "exchange-request-presented-offer",
            exchange::PROTOCOL,
            XReq::PresentedOffer { id, bundle: Box::new(fixed_bundle()), presentation: fixed_presentation() },
            XReq::encode,
            XReq::decode,
        ),
        wire_case(
            "exchange-response",
            exchange::PROTOCOL,
            XRes { receipt: Signed::new(receipt, |r| rj1.sign(r)) },
            XRes::encode,
            XRes::decode,
        ),
        wire_case("roster-request-heads", wr::PROTOCOL, RReq::Heads(vec![head.clone()]), RReq::encode, RReq::decode),
        wire_case(
            "roster-request-fetch",
            wr::PROTOCOL,
            RReq::Fetch { agreement: agreement(), from: 3, limit: wr::MAX_ENTRIES },
            RReq::encode,
            RReq::decode,
        ),
        wire_case("roster-response-heads", wr::PROTOCOL, RRes::Heads(vec![head]), RRes::encode, RRes::decode),
        wire_case(
            "roster-response-entries",
            wr::PROTOCOL,
            RRes::Entries(chain.entries()[..3].to_vec()),
            RRes::encode,
            RRes::decode,
        ),
        wire_case("roster-response-unknown", wr::PROTOCOL, RRes::Unknown, RRes::encode, RRes::decode),
    ]
}

#[test]
fn wire_messages() {
    let cases = wire_cases();
    let generated = WireFile { type_name: "wire".into(), vectors: cases.iter().map(|c| c.vector.clone()).collect() };
    let file = "wire.json";
    if updating() {
        write_json(file, &generated);
        return;
    }
    let stored: WireFile = read_json(file);
    let names = |f: &WireFile| f.vectors.iter().map(|v| v.name.clone()).collect::<Vec<_>>();
    assert_eq!(names(&generated), names(&stored), "{file}: the set of vectors changed; {CHANGED}");
    for (case, s) in cases.iter().zip(&stored.vectors) {
        let g = &case.vector;
        let n = &g.name;
        let bytes = hex::decode(&s.bytes).unwrap();
        (case.decodes_to_value)(&bytes).unwrap_or_else(|e| panic!("{file}/{n}: stored bytes: {e}"));
        assert_eq!(g.protocol, s.protocol, "{file}/{n}: protocol name");
        assert_eq!(g.bytes, s.bytes, "{file}/{n}: encoding differs; {CHANGED} (and the protocol name)");
        assert_eq!(g.value, s.value, "{file}/{n}: JSON differs");
    }
}

#[test]
fn the_offer_vector_carries_a_bundle_that_verifies() {
    // The pinned bundle is a real one: a change that kept the bytes but
    // broke the rules would not go unnoticed.
    let r = testkit::roster();
    let v = staffpass_protocol::verify_bundle(
        &fixed_bundle(),
        &node("RJZ"),
        &org("RJ1"),
        &testkit::rosters(&r.chain),
        &staffpass_protocol::revocation::Revocations::default(),
        testkit::now(),
    )
    .unwrap();
    let kinds: BTreeSet<ClaimKind> = v.claims.iter().map(Claim::kind).collect();
    assert_eq!(kinds, fixed_parts().disclose);
    // And the presented offer's copy says what the bundle says.
    staffpass_protocol::bundle::check_presentation(
        &fixed_presentation(),
        &v,
        &testkit::rosters(&r.chain),
        testkit::now(),
    )
    .unwrap();
}
