//! Keys, by role.
//!
//! Each role has its own public and secret key types, and its own text
//! prefix (`issuer-pk:`, `steward-pk:`, `staff-pk:`; secrets `...-sk:`), so
//! a steward key can never be pasted where an issuer key belongs. Secret
//! keys zeroize on drop and print as `IssuerSecretKey(..)`.

use std::fmt;
use std::str::FromStr;

use ed25519_dalek::{SigningKey, VerifyingKey};
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use zeroize::Zeroizing;

use crate::datetime::truncate;
use crate::signing::{self, Signable, Signature};

/// A key that could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Error {
    /// The text names another kind of key.
    #[error("this is a {found} key, but a {expected} key is needed here")]
    WrongKind {
        /// The prefix that was expected.
        expected: &'static str,
        /// The prefix that was found.
        found: String,
    },
    /// Not `<kind>-pk:<64 hex digits>` / `<kind>-sk:<64 hex digits>`.
    #[error("not a {expected} key: expected {expected}:<64 hex digits>, got {input:?}")]
    Malformed {
        /// The prefix that was expected.
        expected: &'static str,
        /// What was given (never for a secret key).
        input: String,
    },
    /// The bytes are not a valid ed25519 public key.
    #[error("{expected} key is not a valid ed25519 public key")]
    InvalidPoint {
        /// The prefix that was expected.
        expected: &'static str,
    },
}

fn parse_prefixed(s: &str, expected: &'static str, secret: bool) -> Result<[u8; 32], Error> {
    let s = s.trim();
    let Some((prefix, hexpart)) = s.split_once(':') else {
        return Err(Error::Malformed { expected, input: if secret { "<secret>".into() } else { truncate(s) } });
    };
    if prefix != expected {
        if prefix.ends_with("-pk") || prefix.ends_with("-sk") {
            return Err(Error::WrongKind { expected, found: truncate(prefix) });
        }
        return Err(Error::Malformed { expected, input: if secret { "<secret>".into() } else { truncate(s) } });
    }
    let mut b = [0u8; 32];
    if hexpart.len() != 64 || hex::decode_to_slice(hexpart, &mut b).is_err() {
        return Err(Error::Malformed { expected, input: if secret { "<secret>".into() } else { truncate(s) } });
    }
    Ok(b)
}

macro_rules! key_role {
    ($(#[$pdoc:meta])* $pubname:ident, $(#[$sdoc:meta])* $secname:ident, $pk:literal, $sk:literal) => {
        $(#[$pdoc])*
        #[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub struct $pubname([u8; 32]);

        impl $pubname {
            /// The text prefix of this kind of key.
            pub const PREFIX: &'static str = $pk;

            /// From the 32 raw bytes.
            pub fn from_bytes(b: &[u8; 32]) -> Result<Self, Error> {
                VerifyingKey::from_bytes(b).map(|_| $pubname(*b)).map_err(|_| Error::InvalidPoint { expected: $pk })
            }
            /// The 32 raw bytes.
            pub fn to_bytes(&self) -> [u8; 32] {
                self.0
            }
            /// Checks `sig` over the canonical bytes of `value`.
            pub fn verify<T: Signable>(&self, value: &T, sig: &Signature) -> Result<(), signing::BadSignature> {
                signing::verify(&self.dalek().map_err(|_| signing::BadSignature)?, value, sig)
            }
            /// The dalek key (checked valid when this key was made).
            pub fn dalek(&self) -> Result<VerifyingKey, Error> {
                VerifyingKey::from_bytes(&self.0).map_err(|_| Error::InvalidPoint { expected: $pk })
            }
        }

        impl fmt::Display for $pubname {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, "{}:{}", $pk, hex::encode(self.0))
            }
        }
        impl fmt::Debug for $pubname {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                fmt::Display::fmt(self, f)
            }
        }
        impl FromStr for $pubname {
            type Err = Error;
            fn from_str(s: &str) -> Result<Self, Error> {
                $pubname::from_bytes(&parse_prefixed(s, $pk, false)?)
            }
        }
        impl Serialize for $pubname {
            fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                if s.is_human_readable() { s.collect_str(self) } else { self.0.serialize(s) }
            }
        }
        impl<'de> Deserialize<'de> for $pubname {
            fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                if d.is_human_readable() {
                    let s = <std::borrow::Cow<'de, str>>::deserialize(d)?;
                    s.parse().map_err(serde::de::Error::custom)
                } else {
                    let b = <[u8; 32]>::deserialize(d)?;
                    $pubname::from_bytes(&b).map_err(serde::de::Error::custom)
                }
            }
        }

        $(#[$sdoc])*
        pub struct $secname(SigningKey);

        impl $secname {
            /// The text prefix of this kind of secret key.
            pub const PREFIX: &'static str = $sk;

            /// A fresh key from a CSPRNG.
            pub fn generate<R: rand::CryptoRng + ?Sized>(rng: &mut R) -> Self {
                $secname(SigningKey::generate(rng))
            }
            /// From the 32 secret bytes.
            pub fn from_bytes(b: &[u8; 32]) -> Self {
                $secname(SigningKey::from_bytes(b))
            }
            /// An explicit copy of the secret (for handing to another
            /// owner); the copy zeroizes on drop too.
            pub fn duplicate(&self) -> Self {
                $secname(SigningKey::from_bytes(&self.0.to_bytes()))
            }
            /// The public half.
            pub fn public(&self) -> $pubname {
                $pubname(self.0.verifying_key().to_bytes())
            }
            /// Signs the canonical bytes of `value`.
            pub fn sign<T: Signable>(&self, value: &T) -> Signature {
                signing::sign(&self.0, value)
            }
            /// The key as text (`<kind>-sk:<hex>`), for writing to a 0600
            /// file. Zeroized when dropped; never log it.
            pub fn to_secret_text(&self) -> Zeroizing<String> {
                let bytes = Zeroizing::new(self.0.to_bytes());
                Zeroizing::new(format!("{}:{}\n", $sk, hex::encode(&*bytes)))
            }
            /// Reads the text written by [`Self::to_secret_text`].
            pub fn from_secret_text(s: &str) -> Result<Self, Error> {
                let b = Zeroizing::new(parse_prefixed(s, $sk, true)?);
                Ok($secname(SigningKey::from_bytes(&b)))
            }
        }

        impl fmt::Debug for $secname {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(concat!(stringify!($secname), "(..)"))
            }
        }
    };
}

key_role!(
    /// An organisation's issuer key: signs passports, consents, revocations and receipts.
    IssuerPublicKey,
    /// The secret half of an issuer key.
    IssuerSecretKey,
    "issuer-pk",
    "issuer-sk"
);
impl IssuerSecretKey {
    /// Signs a JWS (RFC 7515, compact serialisation, `alg` `EdDSA`) of
    /// `header` and `payload`: the one way an issuer key signs anything
    /// outside the domain-separated scheme of [`crate::signing`], kept
    /// narrow so that it cannot sign arbitrary bytes. The signed bytes are
    /// `BASE64URL(header) "." BASE64URL(payload)` of two JSON objects, so
    /// they begin `eyJ` (the encoding of `{"`) and can never be a native
    /// signed message, which begins `staffpass\0`.
    pub fn sign_jws(
        &self,
        header: &serde_json::Map<String, serde_json::Value>,
        payload: &serde_json::Map<String, serde_json::Value>,
    ) -> String {
        use ed25519_dalek::Signer as _;
        let input = format!("{}.{}", crate::sdjwt::b64(&json_bytes(header)), crate::sdjwt::b64(&json_bytes(payload)));
        let sig = self.0.sign(input.as_bytes());
        format!("{input}.{}", crate::sdjwt::b64(&sig.to_bytes()))
    }
}

/// A JSON object's bytes (serialising a map of JSON values cannot fail).
fn json_bytes(m: &serde_json::Map<String, serde_json::Value>) -> Vec<u8> {
    serde_json::Value::Object(m.clone()).to_string().into_bytes()
}

key_role!(
    /// An agreement steward's key: signs roster changes only.
    StewardPublicKey,
    /// The secret half of a steward key, held offline.
    StewardSecretKey,
    "steward-pk",
    "steward-sk"
);
key_role!(
    /// A staff member's own key, where they hold one: co-signs their consents.
    StaffPublicKey,
    /// The secret half of a staff member's key.
    StaffSecretKey,
    "staff-pk",
    "staff-sk"
);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prefixes_keep_roles_apart() {
        let sk = StewardSecretKey::from_bytes(&[9; 32]);
        let text = sk.public().to_string();
        assert!(text.starts_with("steward-pk:"));
        assert_eq!(text.parse::<StewardPublicKey>().unwrap(), sk.public());
        let err = text.parse::<IssuerPublicKey>().unwrap_err();
        assert!(matches!(err, Error::WrongKind { .. }), "{err}");
        let secret = sk.to_secret_text();
        assert!(StewardSecretKey::from_secret_text(&secret).is_ok());
        assert!(matches!(IssuerSecretKey::from_secret_text(&secret), Err(Error::WrongKind { .. })));
    }

    #[test]
    fn secrets_never_show_in_debug_or_errors() {
        let sk = IssuerSecretKey::from_bytes(&[0xab; 32]);
        assert_eq!(format!("{sk:?}"), "IssuerSecretKey(..)");
        let broken = format!("issuer-sk:{}", "ab".repeat(31));
        let err = IssuerSecretKey::from_secret_text(&broken).unwrap_err().to_string();
        assert!(!err.contains("abab"), "{err}");
    }
}
