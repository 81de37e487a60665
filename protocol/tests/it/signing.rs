//! Domain separation and tamper evidence of the one signing function.
//!
//! A signature made for one type must never verify as another type, nor
//! as another version of the same type, and changing any byte of what was
//! signed must break it.

// Test code: a failed unwrap is a failed assertion (clippy.toml allows it
// in #[test] fns; this extends it to the helpers).
#![allow(clippy::unwrap_used)]

use std::collections::BTreeSet;
use std::sync::OnceLock;

use ed25519_dalek::{SigningKey, VerifyingKey};
use proptest::prelude::*;
use serde::Serialize;
use serde::de::DeserializeOwned;
use staffpass_protocol::consent::{Consent, Withdrawal};
use staffpass_protocol::encoding;
use staffpass_protocol::keys::IssuerPublicKey;
use staffpass_protocol::signing::{self, Signable, Signature, Signed};
use staffpass_protocol::testkit;

use crate::common::{Raw, flip, samples};

fn key() -> SigningKey {
    SigningKey::from_bytes(&testkit::seed("signing-tests"))
}

/// One signed type, with a sample value, seen through its tag only.
trait Kind {
    fn name(&self) -> &'static str;
    fn tag(&self) -> &'static str;
    /// The sample's canonical (postcard) body bytes.
    fn body(&self) -> Vec<u8>;
    /// The sample's full signing bytes.
    fn signing_bytes(&self) -> Vec<u8>;
    /// Signs `body` as this type (this type's tag and version).
    fn sign_body(&self, key: &SigningKey, body: &[u8]) -> Signature;
    /// Verifies `sig` over `body` as this type, with `signing::verify`.
    fn verify_body(&self, key: &VerifyingKey, body: &[u8], sig: &Signature) -> bool;
    /// If `body` decodes as this type, whether `sig` verifies over the
    /// decoded value (the typed path a receiver would take).
    fn decode_and_verify(&self, key: &VerifyingKey, body: &[u8], sig: &Signature) -> Option<bool>;
}

struct K<T>(&'static str, T);

impl<T: Signable + DeserializeOwned> Kind for K<T> {
    fn name(&self) -> &'static str {
        self.0
    }
    fn tag(&self) -> &'static str {
        T::TAG
    }
    fn body(&self) -> Vec<u8> {
        encoding::to_bytes(&self.1)
    }
    fn signing_bytes(&self) -> Vec<u8> {
        self.1.signing_bytes()
    }
    fn sign_body(&self, key: &SigningKey, body: &[u8]) -> Signature {
        signing::sign(key, &Raw::<T>::new(body.to_vec()))
    }
    fn verify_body(&self, key: &VerifyingKey, body: &[u8], sig: &Signature) -> bool {
        signing::verify(key, &Raw::<T>::new(body.to_vec()), sig).is_ok()
    }
    fn decode_and_verify(&self, key: &VerifyingKey, body: &[u8], sig: &Signature) -> Option<bool> {
        let value: T = encoding::from_bytes(body, usize::MAX, "body").ok()?;
        Some(signing::verify(key, &value, sig).is_ok())
    }
}

fn kinds() -> Vec<Box<dyn Kind>> {
    vec![
        Box::new(K("Credential", samples::credential())),
        Box::new(K("Disclosure", samples::disclosure())),
        Box::new(K("Consent", samples::consent())),
        Box::new(K("Withdrawal", samples::withdrawal())),
        Box::new(K("Revocation", samples::revocation())),
        Box::new(K("Receipt", samples::receipt())),
        Box::new(K("roster::EntryBody", samples::entry_body())),
    ]
}

#[test]
fn raw_bodies_sign_exactly_like_typed_values() {
    // The helper the other tests rely on: Raw<T> over a value's canonical
    // bytes has exactly that value's signing bytes and signature.
    let k = key();
    let c = samples::consent();
    let raw = Raw::<Consent>::new(encoding::to_bytes(&c));
    assert_eq!(raw.signing_bytes(), c.signing_bytes());
    assert_eq!(signing::sign(&k, &raw), signing::sign(&k, &c));
    for kind in kinds() {
        let sig = kind.sign_body(&k, &kind.body());
        assert_eq!(kind.decode_and_verify(&k.verifying_key(), &kind.body(), &sig), Some(true), "{}", kind.name());
        assert!(kind.signing_bytes().ends_with(&kind.body()), "{}", kind.name());
    }
}

#[test]
fn signing_bytes_are_prefix_tag_version_body() {
    let c = samples::consent();
    let mut expected = b"staffpass\0consent\0\0\x01".to_vec();
    expected.extend_from_slice(&encoding::to_bytes(&c));
    assert_eq!(c.signing_bytes(), expected);
}

#[test]
fn tags_are_distinct_and_cannot_run_into_each_other() {
    let tags: Vec<&str> = kinds().iter().map(|k| k.tag()).collect();
    let distinct: BTreeSet<&str> = tags.iter().copied().collect();
    assert_eq!(distinct.len(), tags.len(), "{tags:?}");
    for t in tags {
        assert!(!t.is_empty() && !t.contains('\0'), "{t:?}: the tag is NUL-terminated in the signed bytes");
    }
}

#[test]
fn a_signature_never_verifies_as_another_type() {
    let k = key();
    let pk = k.verifying_key();
    let kinds = kinds();
    let mut pairs = 0;
    for a in &kinds {
        let body = a.body();
        let sig = a.sign_body(&k, &body);
        assert!(a.verify_body(&pk, &body, &sig), "{} does not verify as itself", a.name());
        for b in kinds.iter().filter(|b| b.name() != a.name()) {
            // The same bytes under the other type's tag: refused.
            assert!(!b.verify_body(&pk, &body, &sig), "{} signature verifies as {}", a.name(), b.name());
            // And if the bytes happened to decode as the other type, the typed path refuses too.
            assert_ne!(b.decode_and_verify(&pk, &body, &sig), Some(true), "{} decoded as {}", a.name(), b.name());
            // The other type's own bytes with a's signature: refused.
            assert!(!b.verify_body(&pk, &b.body(), &sig), "{} vs {}", a.name(), b.name());
            pairs += 1;
        }
    }
    assert_eq!(pairs, 7 * 6);
}

/// A type with another type's body and tag but the next version.
struct NextVersion<T>(T);

impl<T: Serialize> Serialize for NextVersion<T> {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        self.0.serialize(s)
    }
}

impl<T: Signable> Signable for NextVersion<T> {
    const TAG: &'static str = T::TAG;
    const VERSION: u16 = T::VERSION + 1;
}

fn check_version_separation<T: Signable + Clone>(value: T) {
    let k = key();
    let sig = signing::sign(&k, &value);
    assert!(signing::verify(&k.verifying_key(), &value, &sig).is_ok());
    let next = NextVersion(value);
    assert_eq!(encoding::to_bytes(&next), encoding::to_bytes(&next.0), "same body");
    assert!(signing::verify(&k.verifying_key(), &next, &sig).is_err(), "{} v1 signature verifies as v2", T::TAG);
}

#[test]
fn a_signature_never_verifies_as_another_version() {
    check_version_separation(samples::credential());
    check_version_separation(samples::disclosure());
    check_version_separation(samples::consent());
    check_version_separation(samples::withdrawal());
    check_version_separation(samples::revocation());
    check_version_separation(samples::receipt());
    check_version_separation(samples::entry_body());
}

fn verifies(pk: &VerifyingKey, bytes: &[u8], sig: &Signature) -> bool {
    pk.verify_strict(bytes, &sig.dalek()).is_ok()
}

#[test]
fn flipping_any_byte_of_a_withdrawal_breaks_its_signature() {
    // Every position (debug-build ed25519 verification costs ~10 ms, so the
    // exhaustive sweep is over the smallest type; the others are sampled
    // below).
    let k = key();
    let pk = k.verifying_key();
    let w = samples::withdrawal();
    let sig = signing::sign(&k, &w);
    let bytes = w.signing_bytes();
    assert!(verifies(&pk, &bytes, &sig));
    let prefix = bytes.len() - encoding::to_bytes(&w).len();
    let mut decoded = 0;
    for i in 0..bytes.len() {
        let flipped = flip(&bytes, i, 0x01);
        assert!(!verifies(&pk, &flipped, &sig), "byte {i} still verifies");
        // Where the flipped body still decodes as a withdrawal, it is another one.
        if i >= prefix
            && let Ok(v) = encoding::from_bytes::<Withdrawal>(&flipped[prefix..], usize::MAX, "withdrawal")
        {
            decoded += 1;
            assert_ne!(v, w, "byte {i}: two encodings of one withdrawal");
        }
    }
    assert!(decoded > 0, "some flips should decode as a (different) withdrawal");
}

/// The signing bytes of every sample, made once.
fn sample_bytes() -> &'static [(&'static str, Vec<u8>)] {
    static BYTES: OnceLock<Vec<(&'static str, Vec<u8>)>> = OnceLock::new();
    BYTES.get_or_init(|| kinds().iter().map(|k| (k.name(), k.signing_bytes())).collect())
}

#[test]
fn flipping_any_byte_of_the_signature_or_key_breaks_it() {
    let k = key();
    let pk = k.verifying_key();
    let c = samples::consent();
    let sig = signing::sign(&k, &c);
    for i in 0..64 {
        let bad = Signature(flip(&sig.0, i, 0x01).try_into().unwrap());
        assert!(signing::verify(&pk, &c, &bad).is_err(), "signature byte {i}");
    }
    for i in 0..32 {
        let b: [u8; 32] = flip(pk.as_bytes(), i, 0x01).try_into().unwrap();
        // Either not a key at all, or another key: never verifies.
        if let Ok(other) = VerifyingKey::from_bytes(&b) {
            assert!(signing::verify(&other, &c, &sig).is_err(), "key byte {i}");
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    /// Every signed type: a flipped byte anywhere in its signing bytes
    /// breaks the signature.
    #[test]
    fn flipping_a_sampled_byte_of_any_type_breaks_its_signature(
        which in 0usize..7,
        pos in any::<prop::sample::Index>(),
        mask in 1u8..=255,
    ) {
        let k = key();
        let (name, bytes) = &sample_bytes()[which];
        let sig = Signature(ed25519_dalek::Signer::sign(&k, bytes).to_bytes());
        let i = pos.index(bytes.len());
        prop_assert!(!verifies(&k.verifying_key(), &flip(bytes, i, mask), &sig), "{} byte {}", name, i);
    }
}

#[test]
fn verification_is_strict_about_weak_keys() {
    // The identity point is a valid encoding of a (small-order) public key.
    // With R = identity and S = 0, the plain ed25519 equation holds for
    // every message; strict verification must refuse it.
    let mut identity = [0u8; 32];
    identity[0] = 1;
    let weak = VerifyingKey::from_bytes(&identity).unwrap();
    let mut forged = [0u8; 64];
    forged[0] = 1;
    let sig = Signature(forged);
    let c = samples::consent();
    assert!(
        ed25519_dalek::Verifier::verify(&weak, &c.signing_bytes(), &sig.dalek()).is_ok(),
        "the forgery works against lax verification"
    );
    assert!(signing::verify(&weak, &c, &sig).is_err());
    let issuer_key = IssuerPublicKey::from_bytes(&identity);
    if let Ok(issuer_key) = issuer_key {
        assert!(issuer_key.verify(&c, &sig).is_err());
    }
}

#[test]
fn verification_refuses_a_non_canonical_s() {
    // S + L (the group order) is the same scalar mod L; accepting it would
    // make signatures malleable.
    const L: [u8; 32] = [
        0xed, 0xd3, 0xf5, 0x5c, 0x1a, 0x63, 0x12, 0x58, 0xd6, 0x9c, 0xf7, 0xa2, 0xde, 0xf9, 0xde, 0x14, 0, 0, 0, 0, 0,
        0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x10,
    ];
    let k = key();
    let c = samples::consent();
    let sig = signing::sign(&k, &c);
    let mut s = [0u8; 32];
    s.copy_from_slice(&sig.0[32..]);
    let mut carry = 0u16;
    for i in 0..32 {
        let v = u16::from(s[i]) + u16::from(L[i]) + carry;
        s[i] = v as u8;
        carry = v >> 8;
    }
    assert_eq!(carry, 0, "S + L fits in 256 bits");
    let mut malleated = sig.0;
    malleated[32..].copy_from_slice(&s);
    assert!(signing::verify(&k.verifying_key(), &c, &Signature(malleated)).is_err());
}

#[test]
fn the_envelope_version_is_checked_by_receivers() {
    let k = testkit::issuer("RJZ", 0);
    let mut w = Signed::new(samples::withdrawal(), |w| k.sign(w));
    assert!(w.version_ok());
    assert_eq!(w.version, Withdrawal::VERSION);
    w.version += 1;
    assert!(!w.version_ok());
}
