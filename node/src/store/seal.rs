//! Encryption at rest for the values of personal trees.
//!
//! A sealed value is `0x01 || nonce (24 bytes) || ciphertext || tag (16
//! bytes)`: XChaCha20-Poly1305 under the node's data key, a fresh random
//! nonce per write (192 bits: random nonces never collide in practice),
//! and as associated data the tree name and the key, so a ciphertext
//! copied to another key or tree fails to open. The leading byte versions
//! the format.

use chacha20poly1305::aead::{Aead, KeyInit, Payload};
use chacha20poly1305::{Key, XChaCha20Poly1305, XNonce};
use rand::Rng as _;
use sha2::{Digest as _, Sha256};

use super::{Error, Tree};
use crate::keys::DataKey;

const FORMAT_V1: u8 = 1;
const NONCE_LEN: usize = 24;
const TAG_LEN: usize = 16;
const AAD_DOMAIN: &[u8] = b"staffpass/store/sealed-value/v1\0";
const FINGERPRINT_DOMAIN: &[u8] = b"staffpass/store/data-key-fingerprint/v1\0";

/// Seals and opens values under the data key.
pub(crate) struct Sealer {
    aead: XChaCha20Poly1305,
}

impl Sealer {
    pub(crate) fn new(key: &DataKey) -> Self {
        Sealer { aead: XChaCha20Poly1305::new(Key::from_slice(key.expose())) }
    }

    pub(crate) fn seal(&self, tree: Tree, key: &[u8], plaintext: &[u8]) -> Result<Vec<u8>, Error> {
        let mut nonce = [0u8; NONCE_LEN];
        rand::rng().fill_bytes(&mut nonce);
        let aad = aad(tree, key);
        let ct = self
            .aead
            .encrypt(XNonce::from_slice(&nonce), Payload { msg: plaintext, aad: &aad })
            .map_err(|_| Error::Io { op: "encrypt", detail: format!("value too large for the {tree} tree") })?;
        let mut out = Vec::with_capacity(1 + NONCE_LEN + ct.len());
        out.push(FORMAT_V1);
        out.extend_from_slice(&nonce);
        out.extend_from_slice(&ct);
        Ok(out)
    }

    pub(crate) fn open(&self, tree: Tree, key: &[u8], sealed: &[u8]) -> Result<Vec<u8>, Error> {
        if sealed.len() < 1 + NONCE_LEN + TAG_LEN || sealed[0] != FORMAT_V1 {
            return Err(Error::Decrypt { tree });
        }
        let (nonce, ct) = sealed[1..].split_at(NONCE_LEN);
        let aad = aad(tree, key);
        self.aead
            .decrypt(XNonce::from_slice(nonce), Payload { msg: ct, aad: &aad })
            .map_err(|_| Error::Decrypt { tree })
    }
}

/// Tree names hold no NUL, so `name || 0 || key` is unambiguous.
fn aad(tree: Tree, key: &[u8]) -> Vec<u8> {
    let mut aad = Vec::with_capacity(AAD_DOMAIN.len() + tree.name().len() + 1 + key.len());
    aad.extend_from_slice(AAD_DOMAIN);
    aad.extend_from_slice(tree.name().as_bytes());
    aad.push(0);
    aad.extend_from_slice(key);
    aad
}

/// A one-way, domain-separated fingerprint of the data key, stored in the
/// store so that opening it under another key is refused. The key is 256
/// uniformly random bits, so the fingerprint reveals nothing usable.
pub(crate) fn fingerprint(key: &DataKey) -> [u8; 32] {
    let mut h = Sha256::new();
    h.update(FINGERPRINT_DOMAIN);
    h.update(key.expose());
    h.finalize().into()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_binding() {
        let s = Sealer::new(&DataKey::from_bytes([7; 32]));
        let sealed = s.seal(Tree::Staff, b"st-1", b"hello").unwrap();
        assert_eq!(s.open(Tree::Staff, b"st-1", &sealed).unwrap(), b"hello");
        assert!(matches!(s.open(Tree::Staff, b"st-2", &sealed), Err(Error::Decrypt { tree: Tree::Staff })));
        assert!(matches!(s.open(Tree::Consents, b"st-1", &sealed), Err(Error::Decrypt { .. })));
        let other = Sealer::new(&DataKey::from_bytes([8; 32]));
        assert!(other.open(Tree::Staff, b"st-1", &sealed).is_err());
        for i in 0..sealed.len() {
            let mut bad = sealed.clone();
            bad[i] ^= 0x01;
            assert!(s.open(Tree::Staff, b"st-1", &bad).is_err(), "flip at {i}");
        }
        assert!(s.open(Tree::Staff, b"st-1", &sealed[..10]).is_err());
        assert!(s.open(Tree::Staff, b"st-1", &[]).is_err());
    }

    #[test]
    fn nonces_differ() {
        let s = Sealer::new(&DataKey::from_bytes([7; 32]));
        assert_ne!(s.seal(Tree::Staff, b"k", b"v").unwrap(), s.seal(Tree::Staff, b"k", b"v").unwrap());
    }

    #[test]
    fn fingerprints_differ_and_hide_the_key() {
        let a = DataKey::from_bytes([1; 32]);
        assert_ne!(fingerprint(&a), fingerprint(&DataKey::from_bytes([2; 32])));
        assert_ne!(&fingerprint(&a), a.expose());
    }
}
