//! Typed identifiers with validated parsing.
//!
//! Every identifier that crosses a trust boundary is parsed, never trusted:
//! a bad string gives an [`Error`] saying what was wrong.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::datetime::truncate;

/// An identifier that could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Error {
    /// Not an organisation identifier.
    #[error(
        "{input:?} is not an organisation id: use an NHS ODS code (3 to 6 capital letters or digits, e.g. RJZ) or ext:<register>:<number> for a non-NHS partner (e.g. ext:charity:1012345)"
    )]
    BadOrg {
        /// What was given.
        input: String,
    },
    /// Not an agreement id.
    #[error(
        "{input:?} is not an agreement id: use 3 to 63 lower-case letters, digits and hyphens, starting with a letter (e.g. london-mou)"
    )]
    BadAgreement {
        /// What was given.
        input: String,
    },
    /// Not a staff reference.
    #[error(
        "{input:?} is not a staff reference: use 8 to 64 letters, digits, '-' or '_' (a pseudonym, never a name or NI number)"
    )]
    BadStaffRef {
        /// What was given.
        input: String,
    },
    /// Not an id of the expected kind.
    #[error("{input:?} is not a {kind} id: expected {prefix}- followed by 32 lower-case hex digits")]
    BadRandomId {
        /// Which kind of id.
        kind: &'static str,
        /// Its prefix.
        prefix: &'static str,
        /// What was given.
        input: String,
    },
    /// Not a node identity (libp2p PeerId of an ed25519 key).
    #[error("{input:?} is not a node id: expected the base58 PeerId of an ed25519 node key (12D3KooW...)")]
    BadNodeId {
        /// What was given.
        input: String,
    },
}

/// An organisation: an NHS ODS code, or a non-NHS partner's registered id.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum OrgId {
    /// NHS Organisation Data Service code, e.g. `RJZ`.
    Ods(String),
    /// A partner outside the ODS: the register it is on, and its number
    /// there, e.g. `ext:charity:1012345` for a hospice.
    External {
        /// The register, e.g. `charity` or `companies-house`.
        register: String,
        /// The number on that register.
        number: String,
    },
}

impl OrgId {
    /// True for an NHS ODS code.
    pub fn is_nhs(&self) -> bool {
        matches!(self, OrgId::Ods(_))
    }
}

impl FromStr for OrgId {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self, Error> {
        let bad = || Error::BadOrg { input: truncate(s) };
        if let Some(rest) = s.strip_prefix("ext:") {
            let (register, number) = rest.split_once(':').ok_or_else(bad)?;
            let reg_ok = (2..=32).contains(&register.len())
                && register.starts_with(|c: char| c.is_ascii_lowercase())
                && register.bytes().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == b'-');
            let num_ok = (1..=32).contains(&number.len())
                && number.bytes().all(|c| c.is_ascii_uppercase() || c.is_ascii_digit() || c == b'-');
            if reg_ok && num_ok {
                return Ok(OrgId::External { register: register.into(), number: number.into() });
            }
            return Err(bad());
        }
        let ods_ok = (3..=6).contains(&s.len())
            && s.bytes().all(|c| c.is_ascii_uppercase() || c.is_ascii_digit())
            && s.bytes().any(|c| c.is_ascii_uppercase());
        if ods_ok { Ok(OrgId::Ods(s.into())) } else { Err(bad()) }
    }
}

impl fmt::Display for OrgId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            OrgId::Ods(code) => f.write_str(code),
            OrgId::External { register, number } => write!(f, "ext:{register}:{number}"),
        }
    }
}

/// An agreement between trusts, e.g. `london-mou`.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct AgreementId(String);

impl FromStr for AgreementId {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self, Error> {
        let ok = (3..=63).contains(&s.len())
            && s.starts_with(|c: char| c.is_ascii_lowercase())
            && !s.ends_with('-')
            && s.bytes().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == b'-');
        if ok { Ok(AgreementId(s.into())) } else { Err(Error::BadAgreement { input: truncate(s) }) }
    }
}

impl AgreementId {
    /// The id as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for AgreementId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A staff member's pseudonymous reference, assigned by the home trust.
/// It is all that the credential says about who the subject is.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct StaffRef(String);

impl FromStr for StaffRef {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self, Error> {
        let ok = (8..=64).contains(&s.len()) && s.bytes().all(|c| c.is_ascii_alphanumeric() || c == b'-' || c == b'_');
        if ok { Ok(StaffRef(s.into())) } else { Err(Error::BadStaffRef { input: truncate(s) }) }
    }
}

impl StaffRef {
    /// A fresh random reference (`st-` and 32 hex digits).
    pub fn random<R: rand::CryptoRng + ?Sized>(rng: &mut R) -> Self {
        let mut b = [0u8; 16];
        rng.fill_bytes(&mut b);
        StaffRef(format!("st-{}", hex::encode(b)))
    }

    /// The reference as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for StaffRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

macro_rules! string_serde {
    ($($ty:ty),*) => {$(
        impl Serialize for $ty {
            fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.collect_str(self)
            }
        }
        impl<'de> Deserialize<'de> for $ty {
            fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                let s = <std::borrow::Cow<'de, str>>::deserialize(d)?;
                s.parse().map_err(serde::de::Error::custom)
            }
        }
    )*};
}

string_serde!(OrgId, AgreementId, StaffRef);

macro_rules! random_id {
    ($(#[$doc:meta])* $name:ident, $prefix:literal, $kind:literal) => {
        $(#[$doc])*
        #[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
        pub struct $name([u8; 16]);

        impl $name {
            /// A fresh random id from a CSPRNG.
            pub fn random<R: rand::CryptoRng + ?Sized>(rng: &mut R) -> Self {
                let mut b = [0u8; 16];
                rng.fill_bytes(&mut b);
                $name(b)
            }
            /// From raw bytes.
            pub const fn from_bytes(b: [u8; 16]) -> Self {
                $name(b)
            }
            /// The raw bytes.
            pub fn as_bytes(&self) -> &[u8; 16] {
                &self.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, concat!($prefix, "-{}"), hex::encode(self.0))
            }
        }

        impl fmt::Debug for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                fmt::Display::fmt(self, f)
            }
        }

        impl FromStr for $name {
            type Err = Error;
            fn from_str(s: &str) -> Result<Self, Error> {
                let bad = || Error::BadRandomId { kind: $kind, prefix: $prefix, input: truncate(s) };
                let h = s.strip_prefix(concat!($prefix, "-")).ok_or_else(bad)?;
                if h.len() != 32 || h.bytes().any(|c| c.is_ascii_uppercase()) {
                    return Err(bad());
                }
                let mut b = [0u8; 16];
                hex::decode_to_slice(h, &mut b).map_err(|_| bad())?;
                Ok($name(b))
            }
        }

        impl Serialize for $name {
            fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                if s.is_human_readable() { s.collect_str(self) } else { self.0.serialize(s) }
            }
        }

        impl<'de> Deserialize<'de> for $name {
            fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                if d.is_human_readable() {
                    let s = <std::borrow::Cow<'de, str>>::deserialize(d)?;
                    s.parse().map_err(serde::de::Error::custom)
                } else {
                    Ok($name(<[u8; 16]>::deserialize(d)?))
                }
            }
        }
    };
}

random_id!(
    /// A passport credential.
    CredentialId, "cred", "credential"
);
random_id!(
    /// A sharing consent.
    ConsentId, "consent", "consent"
);
random_id!(
    /// A message between nodes, the key of receiver idempotency.
    MessageId, "msg", "message"
);

/// A node's transport identity: the libp2p PeerId of its ed25519 node key,
/// kept as the PeerId's bytes (an identity multihash of the protobuf-encoded
/// public key) so this crate needs no libp2p.
#[derive(Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct NodeId([u8; 38]);

/// identity multihash (0x00), length 36, protobuf: KeyType = Ed25519 (0x08 0x01), Data (0x12) length 32.
const PEER_ID_ED25519_PREFIX: [u8; 6] = [0x00, 0x24, 0x08, 0x01, 0x12, 0x20];

impl NodeId {
    /// The node id of an ed25519 public key.
    pub fn from_ed25519_public(key: &[u8; 32]) -> Self {
        let mut b = [0u8; 38];
        b[..6].copy_from_slice(&PEER_ID_ED25519_PREFIX);
        b[6..].copy_from_slice(key);
        NodeId(b)
    }

    /// From PeerId bytes; only ed25519 identity PeerIds are accepted.
    pub fn from_peer_id_bytes(b: &[u8]) -> Result<Self, Error> {
        let arr: [u8; 38] = b.try_into().map_err(|_| Error::BadNodeId { input: hex::encode(b) })?;
        if arr[..6] != PEER_ID_ED25519_PREFIX {
            return Err(Error::BadNodeId { input: hex::encode(b) });
        }
        Ok(NodeId(arr))
    }

    /// The PeerId bytes.
    pub fn to_peer_id_bytes(&self) -> &[u8] {
        &self.0
    }
}

impl fmt::Display for NodeId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&bs58::encode(&self.0).into_string())
    }
}

impl fmt::Debug for NodeId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "NodeId({self})")
    }
}

impl FromStr for NodeId {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self, Error> {
        let bad = || Error::BadNodeId { input: truncate(s) };
        if s.len() > 64 {
            return Err(bad());
        }
        let b = bs58::decode(s).into_vec().map_err(|_| bad())?;
        NodeId::from_peer_id_bytes(&b).map_err(|_| bad())
    }
}

impl Serialize for NodeId {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        if s.is_human_readable() { s.collect_str(self) } else { s.serialize_bytes(&self.0) }
    }
}

impl<'de> Deserialize<'de> for NodeId {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        if d.is_human_readable() {
            let s = <std::borrow::Cow<'de, str>>::deserialize(d)?;
            s.parse().map_err(serde::de::Error::custom)
        } else {
            let b = crate::encoding::ByteBuf::deserialize(d)?;
            NodeId::from_peer_id_bytes(&b.0).map_err(serde::de::Error::custom)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn org_ids() {
        for ok in ["RJZ", "RJ1", "RV5", "RJ2", "RPG", "A81001", "8A718"] {
            assert!(ok.parse::<OrgId>().unwrap().is_nhs(), "{ok}");
        }
        let hospice: OrgId = "ext:charity:1012345".parse().unwrap();
        assert!(!hospice.is_nhs());
        assert_eq!(hospice.to_string(), "ext:charity:1012345");
        for bad in ["", "rjz", "RJ", "RJZ0000", "123", "R Z", "ext:charity", "ext::1", "ext:Charity:1", "ext:charity:"]
        {
            assert!(bad.parse::<OrgId>().is_err(), "{bad}");
        }
    }

    #[test]
    fn agreement_ids() {
        assert!("london-mou".parse::<AgreementId>().is_ok());
        for bad in ["London-MOU", "-mou", "mou-", "ab", "1mou", "a b c"] {
            assert!(bad.parse::<AgreementId>().is_err(), "{bad}");
        }
    }

    #[test]
    fn random_ids_round_trip_and_check_prefix() {
        let id = CredentialId::from_bytes([7; 16]);
        let s = id.to_string();
        assert_eq!(s, "cred-07070707070707070707070707070707");
        assert_eq!(s.parse::<CredentialId>().unwrap(), id);
        assert!(s.replace("cred", "msg").parse::<CredentialId>().is_err());
        assert!("cred-0707".parse::<CredentialId>().is_err());
        assert!(s.to_uppercase().parse::<CredentialId>().is_err());
    }

    #[test]
    fn node_ids_are_ed25519_peer_ids() {
        let id = NodeId::from_ed25519_public(&[1; 32]);
        let s = id.to_string();
        assert!(s.starts_with("12D3KooW"), "{s}");
        assert_eq!(s.parse::<NodeId>().unwrap(), id);
        assert!("QmYyQSo1c1Ym7orWxLYvCrM2EmxFTANf8wXmmE7DWjhx5N".parse::<NodeId>().is_err());
    }
}
