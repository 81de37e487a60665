//! Domain-separated canonical signing: the one signing function and the
//! one verifying function every signed object goes through.
//!
//! The signed message is `"staffpass\0" || TAG || "\0" || VERSION (u16 BE)
//! || canonical bytes`, so a signature made over one type can never verify
//! as another, nor over another version of the same type.

use std::fmt;

use ed25519_dalek::{Signer, SigningKey, VerifyingKey};
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use sha2::{Digest as _, Sha256};

use crate::encoding;

/// A type that can be signed.
pub trait Signable: Serialize {
    /// The domain-separation tag, unique per type.
    const TAG: &'static str;
    /// The encoding version; a change of encoding is a new version.
    const VERSION: u16;

    /// The bytes that are signed and hashed.
    fn signing_bytes(&self) -> Vec<u8> {
        let body = encoding::to_bytes(self);
        let mut out = Vec::with_capacity(body.len() + Self::TAG.len() + 13);
        out.extend_from_slice(b"staffpass\0");
        out.extend_from_slice(Self::TAG.as_bytes());
        out.push(0);
        out.extend_from_slice(&Self::VERSION.to_be_bytes());
        out.extend_from_slice(&body);
        out
    }

    /// The SHA-256 of [`Self::signing_bytes`].
    fn hash(&self) -> Hash {
        Hash::of(&self.signing_bytes())
    }
}

/// A signature did not verify.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("signature does not verify")]
pub struct BadSignature;

/// Signs `value` (domain-separated).
pub fn sign<T: Signable>(key: &SigningKey, value: &T) -> Signature {
    Signature(key.sign(&value.signing_bytes()).to_bytes())
}

/// Verifies `sig` over `value` (domain-separated, strict).
pub fn verify<T: Signable>(key: &VerifyingKey, value: &T, sig: &Signature) -> Result<(), BadSignature> {
    let sig = ed25519_dalek::Signature::from_bytes(&sig.0);
    key.verify_strict(&value.signing_bytes(), &sig).map_err(|_| BadSignature)
}

/// An ed25519 signature.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct Signature(pub [u8; 64]);

impl Signature {
    /// The dalek signature, for batch verification.
    pub fn dalek(&self) -> ed25519_dalek::Signature {
        ed25519_dalek::Signature::from_bytes(&self.0)
    }
}

impl fmt::Debug for Signature {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Signature({}..)", hex::encode(&self.0[..8]))
    }
}

/// A SHA-256 digest.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Hash(pub [u8; 32]);

impl Hash {
    /// SHA-256 of `bytes`.
    pub fn of(bytes: &[u8]) -> Self {
        Hash(Sha256::digest(bytes).into())
    }
}

impl fmt::Display for Hash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&hex::encode(self.0))
    }
}

impl fmt::Debug for Hash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Hash({})", hex::encode(&self.0[..8]))
    }
}

impl std::str::FromStr for Hash {
    type Err = hex::FromHexError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let mut b = [0u8; 32];
        hex::decode_to_slice(s, &mut b)?;
        Ok(Hash(b))
    }
}

macro_rules! hex_serde {
    ($ty:ident, $n:expr) => {
        impl Serialize for $ty {
            fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                if s.is_human_readable() { s.serialize_str(&hex::encode(self.0)) } else { s.serialize_bytes(&self.0) }
            }
        }
        impl<'de> Deserialize<'de> for $ty {
            fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                let mut b = [0u8; $n];
                if d.is_human_readable() {
                    let s = <std::borrow::Cow<'de, str>>::deserialize(d)?;
                    hex::decode_to_slice(s.as_bytes(), &mut b).map_err(serde::de::Error::custom)?;
                } else {
                    let v = encoding::ByteBuf::deserialize(d)?;
                    if v.0.len() != $n {
                        return Err(serde::de::Error::invalid_length(v.0.len(), &stringify!($n)));
                    }
                    b.copy_from_slice(&v.0);
                }
                Ok($ty(b))
            }
        }
    };
}

hex_serde!(Signature, 64);
hex_serde!(Hash, 32);

/// A signed object: its version, its body and one signature over the
/// body's domain-separated canonical bytes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Signed<T> {
    /// The encoding version the signer used; must equal `T::VERSION`.
    pub version: u16,
    /// What is signed.
    pub body: T,
    /// The signature.
    pub signature: Signature,
}

impl<T: Signable> Signed<T> {
    /// Signs `body` with `sign`, a closure over the signer's secret key.
    pub fn new(body: T, sign: impl FnOnce(&T) -> Signature) -> Self {
        let signature = sign(&body);
        Signed { version: T::VERSION, body, signature }
    }

    /// True if the version is the one this build speaks.
    pub fn version_ok(&self) -> bool {
        self.version == T::VERSION
    }
}
