//! `verify_bundle` on structured bundles: a valid bundle from the
//! protocol's testkit (with or without a staff signature), then a list of
//! mutations chosen by the fuzzer: bytes of the signed bodies and their
//! signatures, single fields set to other values, disclosures changed,
//! dropped, repeated or reordered, and the receiver's clock moved.
//!
//! The verifier must never panic, and must refuse every bundle in which
//! anything signed differs from what was signed: the credential or
//! consent (body, signature or version), the staff signature where the
//! consent names a staff key, or a disclosure (its claim or salt are bound
//! by the credential's digests). Dropping or reordering disclosures
//! changes nothing signed and may be accepted.
#![no_main]

use std::collections::BTreeSet;

use arbitrary::Arbitrary;
use libfuzzer_sys::fuzz_target;
use staffpass_fuzz::fixture;
use staffpass_protocol::bundle::Bundle;
use staffpass_protocol::claims::ClaimKind;
use staffpass_protocol::datetime::Timestamp;
use staffpass_protocol::encoding;
use staffpass_protocol::ids::{AgreementId, ConsentId, CredentialId, OrgId, StaffRef};
use staffpass_protocol::keys::IssuerPublicKey;
use staffpass_protocol::roster::MoveKind;
use staffpass_protocol::signing::{Hash, Signature};
use staffpass_protocol::testkit;
use staffpass_protocol::verify_bundle;

#[derive(Debug, Arbitrary)]
enum Org {
    Home,
    Receiver,
    Outsider,
    Text(String),
}

impl Org {
    fn get(&self) -> Option<OrgId> {
        match self {
            Org::Home => Some(testkit::org("RJZ")),
            Org::Receiver => Some(testkit::org("RJ1")),
            Org::Outsider => Some(testkit::org("RA7")),
            Org::Text(s) => s.parse().ok(),
        }
    }
}

#[derive(Debug, Arbitrary)]
enum Key {
    HomeGen(u8),
    ReceiverGen(u8),
    Raw([u8; 32]),
}

impl Key {
    fn get(&self) -> Option<IssuerPublicKey> {
        match self {
            Key::HomeGen(g) => Some(testkit::issuer("RJZ", u32::from(*g % 3)).public()),
            Key::ReceiverGen(g) => Some(testkit::issuer("RJ1", u32::from(*g % 3)).public()),
            Key::Raw(b) => IssuerPublicKey::from_bytes(b).ok(),
        }
    }
}

#[derive(Debug, Arbitrary)]
enum Mutation {
    /// XOR a byte of the credential body's canonical encoding (re-decoded).
    CredentialByte {
        index: u16,
        xor: u8,
    },
    /// XOR a byte of the consent body's canonical encoding (re-decoded).
    ConsentByte {
        index: u16,
        xor: u8,
    },
    /// XOR a byte of one disclosure's canonical encoding (re-decoded).
    DisclosureByte {
        which: u8,
        index: u16,
        xor: u8,
    },
    CredentialSignature {
        index: u8,
        xor: u8,
    },
    ConsentSignature {
        index: u8,
        xor: u8,
    },
    StaffSignature(Option<[u8; 32]>),
    CredentialVersion(u16),
    ConsentVersion(u16),
    CredentialId([u8; 16]),
    CredentialIssuer(Org),
    CredentialIssuerKey(Key),
    CredentialSubject(String),
    CredentialIssuedAt(i32),
    CredentialExpiresAt(i32),
    CredentialDigest {
        which: u8,
        hash: [u8; 32],
    },
    CredentialDigestDrop(u8),
    ConsentId([u8; 16]),
    ConsentSubject(String),
    ConsentHome(Org),
    ConsentReceiver(Org),
    ConsentAgreement(String),
    ConsentMove(u8),
    ConsentClaims(u64),
    ConsentNotBefore(i32),
    ConsentNotAfter(i32),
    ConsentIssuedAt(i32),
    ConsentIssuerKey(Key),
    ConsentStaffKey(Option<[u8; 32]>),
    DropDisclosure(u8),
    RepeatDisclosure(u8),
    SwapDisclosures(u8, u8),
    /// Another disclosure of the same credential (held back by the consent).
    AddDisclosure(u8),
}

#[derive(Debug, Arbitrary)]
struct Input {
    staff_signed: bool,
    mutations: Vec<Mutation>,
    /// Seconds the receiver's clock is off the fixture's "now".
    clock: i32,
}

fn xor_at(bytes: &mut [u8], index: u16, xor: u8) {
    if !bytes.is_empty() {
        let i = usize::from(index) % bytes.len();
        bytes[i] ^= xor;
    }
}

fn redecode<T: serde::Serialize + serde::de::DeserializeOwned>(value: &mut T, index: u16, xor: u8) {
    let mut bytes = encoding::to_bytes(value);
    xor_at(&mut bytes, index, xor);
    if let Ok(v) = encoding::from_bytes(&bytes, 1 << 20, "fuzz") {
        *value = v;
    }
}

fn shift(t: Timestamp, secs: i32) -> Timestamp {
    t.plus_secs(i64::from(secs))
}

fn apply(b: &mut Bundle, m: &Mutation) {
    let f = fixture();
    let cred = &mut b.credential;
    let cons = &mut b.consent.signed;
    match m {
        Mutation::CredentialByte { index, xor } => redecode(&mut cred.body, *index, *xor),
        Mutation::ConsentByte { index, xor } => redecode(&mut cons.body, *index, *xor),
        Mutation::DisclosureByte { which, index, xor } => {
            let n = b.disclosures.len();
            if n > 0 {
                redecode(&mut b.disclosures[usize::from(*which) % n], *index, *xor);
            }
        }
        Mutation::CredentialSignature { index, xor } => xor_at(&mut cred.signature.0, u16::from(*index), *xor),
        Mutation::ConsentSignature { index, xor } => xor_at(&mut cons.signature.0, u16::from(*index), *xor),
        Mutation::StaffSignature(s) => {
            b.consent.staff_signature = s.map(|half| {
                let mut sig = [0u8; 64];
                sig[..32].copy_from_slice(&half);
                sig[32..].copy_from_slice(&half);
                Signature(sig)
            })
        }
        Mutation::CredentialVersion(v) => cred.version = *v,
        Mutation::ConsentVersion(v) => cons.version = *v,
        Mutation::CredentialId(id) => cred.body.id = CredentialId::from_bytes(*id),
        Mutation::CredentialIssuer(o) => {
            if let Some(o) = o.get() {
                cred.body.issuer = o;
            }
        }
        Mutation::CredentialIssuerKey(k) => {
            if let Some(k) = k.get() {
                cred.body.issuer_key = k;
            }
        }
        Mutation::CredentialSubject(s) => {
            if let Ok(s) = s.parse::<StaffRef>() {
                cred.body.subject = s;
            }
        }
        Mutation::CredentialIssuedAt(d) => cred.body.issued_at = shift(cred.body.issued_at, *d),
        Mutation::CredentialExpiresAt(d) => cred.body.expires_at = shift(cred.body.expires_at, *d),
        Mutation::CredentialDigest { which, hash } => {
            let n = cred.body.digests.len();
            if n > 0 {
                cred.body.digests[usize::from(*which) % n] = Hash(*hash);
            } else {
                cred.body.digests.push(Hash(*hash));
            }
        }
        Mutation::CredentialDigestDrop(which) => {
            let n = cred.body.digests.len();
            if n > 0 {
                cred.body.digests.remove(usize::from(*which) % n);
            }
        }
        Mutation::ConsentId(id) => cons.body.id = ConsentId::from_bytes(*id),
        Mutation::ConsentSubject(s) => {
            if let Ok(s) = s.parse::<StaffRef>() {
                cons.body.subject = s;
            }
        }
        Mutation::ConsentHome(o) => {
            if let Some(o) = o.get() {
                cons.body.home = o;
            }
        }
        Mutation::ConsentReceiver(o) => {
            if let Some(o) = o.get() {
                cons.body.receiver = o;
            }
        }
        Mutation::ConsentAgreement(s) => {
            if let Ok(a) = s.parse::<AgreementId>() {
                cons.body.agreement = a;
            }
        }
        Mutation::ConsentMove(i) => {
            cons.body.move_kind = MoveKind::ALL[usize::from(*i) % MoveKind::ALL.len()];
        }
        Mutation::ConsentClaims(mask) => {
            let all = ClaimKind::all();
            cons.body.claims =
                all.iter().enumerate().filter(|(i, _)| mask & (1 << (i % 64)) != 0).map(|(_, k)| *k).collect();
        }
        Mutation::ConsentNotBefore(d) => cons.body.not_before = shift(cons.body.not_before, *d),
        Mutation::ConsentNotAfter(d) => cons.body.not_after = shift(cons.body.not_after, *d),
        Mutation::ConsentIssuedAt(d) => cons.body.issued_at = shift(cons.body.issued_at, *d),
        Mutation::ConsentIssuerKey(k) => {
            if let Some(k) = k.get() {
                cons.body.issuer_key = k;
            }
        }
        Mutation::ConsentStaffKey(k) => {
            cons.body.staff_key = match k {
                None => None,
                Some(b) => staffpass_protocol::keys::StaffPublicKey::from_bytes(b).ok(),
            }
        }
        Mutation::DropDisclosure(i) => {
            let n = b.disclosures.len();
            if n > 0 {
                b.disclosures.remove(usize::from(*i) % n);
            }
        }
        Mutation::RepeatDisclosure(i) => {
            let n = b.disclosures.len();
            if n > 0 {
                let d = b.disclosures[usize::from(*i) % n].clone();
                b.disclosures.push(d);
            }
        }
        Mutation::SwapDisclosures(i, j) => {
            let n = b.disclosures.len();
            if n > 0 {
                b.disclosures.swap(usize::from(*i) % n, usize::from(*j) % n);
            }
        }
        Mutation::AddDisclosure(i) => {
            let all = &f.parts.all;
            b.disclosures.push(all[usize::from(*i) % all.len()].clone());
        }
    }
}

/// True if anything the home (or the staff member) signed differs in `b`
/// from `orig`, the bundle as signed.
fn signed_part_changed(orig: &Bundle, b: &Bundle) -> bool {
    let staff_sig_bound = b.consent.signed.body.staff_key.is_some();
    b.credential != orig.credential
        || b.consent.signed != orig.consent.signed
        || (staff_sig_bound && b.consent.staff_signature != orig.consent.staff_signature)
        || b.disclosures.iter().any(|d| !orig.disclosures.contains(d))
        || {
            // A disclosure of the credential that the consent held back.
            let disclosed: BTreeSet<_> = orig.disclosures.iter().map(|d| d.claim.kind()).collect();
            b.disclosures.iter().any(|d| !disclosed.contains(&d.claim.kind()))
        }
}

fuzz_target!(|input: Input| {
    let f = fixture();
    let orig = if input.staff_signed { &f.staff_bundle } else { &f.bundle };
    let mut b = orig.clone();
    for m in input.mutations.iter().take(16) {
        apply(&mut b, m);
    }
    let now = shift(f.now, input.clock);
    let verdict = verify_bundle(&b, &f.sender, &f.receiver, &f.rosters, &f.status, now);
    if signed_part_changed(orig, &b) {
        assert!(verdict.is_err(), "a bundle with a changed signed part was accepted: {b:?}");
    }
    if input.mutations.is_empty() && input.clock == 0 {
        assert!(verdict.is_ok(), "the fixture bundle was refused: {verdict:?}");
    }
    if let Ok(p) = verdict {
        assert!(p.claims.len() <= orig.disclosures.len());
    }
});
