//! Canonical encoding and bounded decoding.
//!
//! Canonical bytes are [postcard](https://docs.rs/postcard): a fixed field
//! order, varint integers, length-prefixed strings and sequences, sets and
//! maps in sorted order. Signed objects never hold floats or unordered
//! maps, so one value has exactly one encoding; the golden vectors in
//! `protocol/tests/vectors/` pin it.
//!
//! Every decode entry point takes a byte slice and a size bound and returns
//! an [`Error`], never panics.

use serde::Serialize;
use serde::de::DeserializeOwned;

/// Bytes that could not be decoded.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Error {
    /// Larger than the bound for this kind of message.
    #[error("message too large: {len} bytes, at most {max} accepted")]
    TooLarge {
        /// Its size.
        len: usize,
        /// The bound.
        max: usize,
    },
    /// Not a valid encoding of the expected type.
    #[error("malformed {what}: {reason}")]
    Malformed {
        /// What was expected.
        what: &'static str,
        /// Why it failed.
        reason: String,
    },
    /// Valid, with bytes left over after it.
    #[error("malformed {what}: {extra} unexpected trailing bytes")]
    TrailingBytes {
        /// What was expected.
        what: &'static str,
        /// How many bytes were left.
        extra: usize,
    },
}

/// The canonical (postcard) bytes of a value.
pub fn to_bytes<T: Serialize + ?Sized>(value: &T) -> Vec<u8> {
    // Serialising our own types to a Vec cannot fail: they hold no maps
    // with non-string keys, no unsized sequences and no custom errors.
    postcard::to_allocvec(value).unwrap_or_default()
}

/// Decodes canonical bytes into `T`, refusing more than `max` bytes and any
/// trailing bytes. Non-canonical encodings of a value are read as that
/// value; use [`from_canonical_bytes`] for anything received.
pub fn from_bytes<T: DeserializeOwned>(bytes: &[u8], max: usize, what: &'static str) -> Result<T, Error> {
    if bytes.len() > max {
        return Err(Error::TooLarge { len: bytes.len(), max });
    }
    let (value, rest) =
        postcard::take_from_bytes(bytes).map_err(|e| Error::Malformed { what, reason: e.to_string() })?;
    if !rest.is_empty() {
        return Err(Error::TrailingBytes { what, extra: rest.len() });
    }
    Ok(value)
}

/// Decodes canonical bytes into `T` as [`from_bytes`] does, and also
/// refuses every encoding but the canonical one.
///
/// postcard itself is lenient: it reads an integer written in more bytes
/// than it needs (`81 00` for 1), and a set listed out of order or with
/// repeats, as the same value. Such bytes decode to a value whose signature
/// still verifies, so one signed message would have many byte strings, and
/// anything keyed on the bytes (gossip message ids, deduplication, audit
/// digests) could be made to see one message as many. Every wire decoder
/// uses this function, so a message is accepted only in the one encoding
/// the golden vectors pin.
pub fn from_canonical_bytes<T: Serialize + DeserializeOwned>(
    bytes: &[u8],
    max: usize,
    what: &'static str,
) -> Result<T, Error> {
    let value = from_bytes(bytes, max, what)?;
    if to_bytes(&value) != bytes {
        return Err(Error::Malformed { what, reason: "not the canonical encoding of its value".into() });
    }
    Ok(value)
}

/// Decodes JSON into `T`, refusing more than `max` bytes.
pub fn from_json<T: DeserializeOwned>(bytes: &[u8], max: usize, what: &'static str) -> Result<T, Error> {
    if bytes.len() > max {
        return Err(Error::TooLarge { len: bytes.len(), max });
    }
    serde_json::from_slice(bytes).map_err(|e| Error::Malformed { what, reason: e.to_string() })
}

/// A byte buffer that (de)serialises as bytes rather than a sequence.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ByteBuf(pub Vec<u8>);

impl<'de> serde::Deserialize<'de> for ByteBuf {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> serde::de::Visitor<'de> for V {
            type Value = ByteBuf;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("bytes")
            }
            fn visit_bytes<E: serde::de::Error>(self, v: &[u8]) -> Result<ByteBuf, E> {
                Ok(ByteBuf(v.to_vec()))
            }
            fn visit_borrowed_bytes<E: serde::de::Error>(self, v: &'de [u8]) -> Result<ByteBuf, E> {
                Ok(ByteBuf(v.to_vec()))
            }
            fn visit_byte_buf<E: serde::de::Error>(self, v: Vec<u8>) -> Result<ByteBuf, E> {
                Ok(ByteBuf(v))
            }
        }
        d.deserialize_bytes(V)
    }
}
