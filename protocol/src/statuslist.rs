//! The home trust's Token Status List (IETF OAuth Status List): one bit per
//! exported credential, set when the credential is revoked, superseded by a
//! re-issue, or erased, published as a `statuslist+jwt` signed by the
//! issuer key, so that a verifier outside staffpass (a staff wallet, a host
//! HR system) learns that a passport no longer stands without asking the
//! node about a person.
//!
//! The list is `bits` 1: bit `idx` is bit `idx % 8` (least significant
//! first) of byte `idx / 8`, the bytes compressed with DEFLATE in the ZLIB
//! format and base64url-encoded into `status_list.lst`. A credential names
//! its entry in the SD-JWT VC's `status.status_list` (`idx`, `uri`).

use std::io::{Read as _, Write as _};

use serde_json::{Map, Value, json};

use crate::datetime::Timestamp;
use crate::keys::{IssuerPublicKey, IssuerSecretKey};
use crate::sdjwt::{self, ALG, Error, b64, need, need_str, need_time, thumbprint, unb64};

/// The media type in the JWT header.
pub const TYP: &str = "statuslist+jwt";
/// The most entries a list holds (16 Mi bits, 2 MiB uncompressed): a
/// bound on what [`verify`] inflates.
pub const MAX_ENTRIES: u64 = 1 << 24;
/// The longest list token [`verify`] reads, in bytes.
pub const MAX_TOKEN: usize = 4 * 1024 * 1024;

/// A list of one-bit statuses.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct StatusList {
    bytes: Vec<u8>,
}

impl StatusList {
    /// A list of `len` entries, every one valid (0).
    pub fn new(len: u64) -> StatusList {
        let len = len.min(MAX_ENTRIES);
        StatusList { bytes: vec![0; usize::try_from(len.div_ceil(8)).unwrap_or(0)] }
    }

    /// How many entries it has (a multiple of 8).
    pub fn len(&self) -> u64 {
        self.bytes.len() as u64 * 8
    }

    /// Whether it has no entries.
    pub fn is_empty(&self) -> bool {
        self.bytes.is_empty()
    }

    /// Marks entry `idx` invalid, growing the list if needed (up to
    /// [`MAX_ENTRIES`]; an index beyond it is ignored).
    pub fn set(&mut self, idx: u64) {
        if idx >= MAX_ENTRIES {
            return;
        }
        let byte = usize::try_from(idx / 8).unwrap_or(usize::MAX);
        if byte >= self.bytes.len() {
            self.bytes.resize(byte + 1, 0);
        }
        self.bytes[byte] |= 1 << (idx % 8);
    }

    /// Whether entry `idx` is marked invalid (false beyond the list).
    pub fn get(&self, idx: u64) -> bool {
        usize::try_from(idx / 8).ok().and_then(|b| self.bytes.get(b)).is_some_and(|b| b & (1 << (idx % 8)) != 0)
    }

    /// `status_list.lst`: the bytes, zlib-compressed, base64url.
    pub fn lst(&self) -> String {
        let mut z = flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::best());
        // Writing to a Vec cannot fail.
        let _ = z.write_all(&self.bytes);
        b64(&z.finish().unwrap_or_default())
    }

    /// The list from `lst` (at most [`MAX_ENTRIES`] entries).
    pub fn from_lst(lst: &str) -> Result<StatusList, Error> {
        let compressed = unb64(lst, "status list")?;
        let mut bytes = Vec::new();
        flate2::read::ZlibDecoder::new(compressed.as_slice())
            .take(MAX_ENTRIES / 8 + 1)
            .read_to_end(&mut bytes)
            .map_err(|_| Error::Decode("status list"))?;
        if bytes.len() as u64 > MAX_ENTRIES / 8 {
            return Err(Error::Malformed("status list longer than the bound"));
        }
        Ok(StatusList { bytes })
    }
}

/// What a status list token says.
#[derive(Debug, Clone)]
pub struct ListToken<'a> {
    /// The list's URL (`sub`, and the `uri` credentials name).
    pub uri: &'a str,
    /// Issued at.
    pub iat: Timestamp,
    /// Expires at: a verifier fetches it again by then.
    pub exp: Timestamp,
    /// Seconds a verifier may cache it (`ttl`).
    pub ttl: u64,
    /// The statuses.
    pub list: &'a StatusList,
}

/// The `statuslist+jwt`, signed with `key`.
pub fn issue(key: &IssuerSecretKey, t: &ListToken<'_>) -> String {
    let mut header = Map::new();
    header.insert("typ".into(), json!(TYP));
    header.insert("alg".into(), json!(ALG));
    header.insert("kid".into(), json!(thumbprint(&key.public())));
    let mut p = Map::new();
    p.insert("sub".into(), json!(t.uri));
    p.insert("iat".into(), json!(t.iat.unix()));
    p.insert("exp".into(), json!(t.exp.unix()));
    p.insert("ttl".into(), json!(t.ttl));
    p.insert("status_list".into(), json!({ "bits": 1, "lst": t.list.lst() }));
    key.sign_jws(&header, &p)
}

/// Verifies a status list token from `issuer` published at `uri`, as of
/// `now`: `typ`, `alg`, `kid`, the signature, `sub` the URL it was fetched
/// from, not expired, `bits` 1. Returns the list.
pub fn verify(token: &str, issuer: &IssuerPublicKey, uri: &str, now: Timestamp) -> Result<StatusList, Error> {
    if token.len() > MAX_TOKEN {
        return Err(Error::Malformed("larger than the bound"));
    }
    let (_, payload) = sdjwt::verify_jws(token.trim(), TYP, "not statuslist+jwt", issuer)?;
    if need_str(&payload, "sub")? != uri {
        return Err(Error::Claim { member: "sub", problem: "not the list's URL" });
    }
    if need_time(&payload, "exp")? <= now {
        return Err(Error::Expired);
    }
    let list = need(&payload, "status_list")?;
    if list.get("bits").and_then(Value::as_u64) != Some(1) {
        return Err(Error::Claim { member: "status_list.bits", problem: "not 1" });
    }
    let lst = list
        .get("lst")
        .and_then(Value::as_str)
        .ok_or(Error::Claim { member: "status_list.lst", problem: "missing" })?;
    StatusList::from_lst(lst)
}

/// Reads a credential's status entry from a verified SD-JWT VC payload:
/// `(idx, uri)`, or `None` when it names none.
pub fn entry_of(payload: &Map<String, Value>) -> Option<(u64, &str)> {
    let e = payload.get("status")?.get("status_list")?;
    Some((e.get("idx")?.as_u64()?, e.get("uri")?.as_str()?))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bits_are_least_significant_first() {
        let mut l = StatusList::new(16);
        l.set(0);
        l.set(9);
        assert_eq!(l.bytes, vec![0b0000_0001, 0b0000_0010]);
        assert!(l.get(0) && l.get(9) && !l.get(1) && !l.get(8) && !l.get(1_000_000));
    }

    #[test]
    fn lst_round_trips_and_grows() {
        let mut l = StatusList::new(0);
        l.set(1_000);
        let back = StatusList::from_lst(&l.lst()).unwrap();
        assert_eq!(back, l);
        assert!(back.get(1_000) && !back.get(999));
        // The draft's example: bits 0, 3, 4, 5, 7, 8, 9, 13, 15 of 16.
        let mut ex = StatusList::new(16);
        for i in [0, 3, 4, 5, 7, 8, 9, 13, 15] {
            ex.set(i);
        }
        assert_eq!(ex.bytes, vec![0xB9, 0xA3]);
    }

    #[test]
    fn a_bomb_is_refused() {
        let big = vec![0u8; usize::try_from(MAX_ENTRIES / 8).unwrap() + 1];
        let mut z = flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::best());
        z.write_all(&big).unwrap();
        assert!(matches!(StatusList::from_lst(&b64(&z.finish().unwrap())), Err(Error::Malformed(_))));
    }

    #[test]
    fn a_token_verifies_only_as_issued() {
        let key = IssuerSecretKey::from_bytes(&[7; 32]);
        let other = IssuerSecretKey::from_bytes(&[8; 32]);
        let mut list = StatusList::new(64);
        list.set(5);
        let now = Timestamp::from_unix(1_800_000_000).unwrap();
        let uri = "https://staffpass.rjz.nhs.uk/statuslists/1";
        let t = issue(&key, &ListToken { uri, iat: now, exp: now.plus_secs(3600), ttl: 300, list: &list });
        let got = verify(&t, &key.public(), uri, now).unwrap();
        assert!(got.get(5) && !got.get(4));
        assert!(matches!(verify(&t, &other.public(), uri, now), Err(Error::Claim { member: "kid", .. })));
        assert!(matches!(
            verify(&t, &key.public(), "https://elsewhere/1", now),
            Err(Error::Claim { member: "sub", .. })
        ));
        assert_eq!(verify(&t, &key.public(), uri, now.plus_secs(3600)).unwrap_err(), Error::Expired);
        // A flipped bit in the payload breaks the signature.
        let parts: Vec<&str> = t.split('.').collect();
        let mut p = String::from_utf8(unb64(parts[1], "p").unwrap()).unwrap();
        p = p.replace("\"ttl\":300", "\"ttl\":301");
        let forged = format!("{}.{}.{}", parts[0], b64(p.as_bytes()), parts[2]);
        assert_eq!(verify(&forged, &key.public(), uri, now).unwrap_err(), Error::Signature);
    }
}
