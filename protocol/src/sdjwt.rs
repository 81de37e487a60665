//! A passport as an SD-JWT VC (RFC 9901 SD-JWT; IETF SD-JWT-based
//! Verifiable Credentials), so that a staff wallet or a host trust's HR
//! system can verify it without staffpass.
//!
//! The issuer-signed JWT has header `typ` `dc+sd-jwt`, `alg` `EdDSA` and
//! `kid` the RFC 7638 thumbprint of the issuer's JWK; its payload has
//! `iss` (the home trust's HTTPS issuer URL), `iat`, `exp`, `vct`
//! ([`VCT`]), `sub` (the pseudonymous staff reference), `cnf` with the
//! staff member's key when they hold one, `status` when the credential has
//! an index in a status list, `_sd_alg` `sha-256` and `_sd`: one digest per
//! claim. Each claim is a disclosure `[salt, name, value]` named by its
//! claim kind (`identity`, `dbs`, `training:fire-safety`, ...) whose value
//! is the claim's fields as the API shows them, plus `valid_until` (the
//! first day it is no longer valid) where the claim ends, so a verifier
//! never re-implements the refresher arithmetic.
//!
//! Native digests cannot be reused (they hash postcard, and a native
//! signature is not a JWS), so an export makes fresh salts and signs anew,
//! through [`IssuerSecretKey::sign_jws`].
//!
//! [`verify`] applies RFC 9901 §7.1 strictly: every disclosure's digest is
//! in `_sd` exactly once, no disclosure is repeated, no disclosed name
//! overwrites a payload claim; and the SD-JWT VC checks (`typ`, `vct`,
//! `iss`, `exp`, `iat`).

use std::collections::{BTreeMap, BTreeSet};

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde_json::{Map, Value, json};
use sha2::{Digest as _, Sha256};

use crate::claims::Claim;
use crate::datetime::Timestamp;
use crate::ids::StaffRef;
use crate::keys::{IssuerPublicKey, IssuerSecretKey, StaffPublicKey};

/// The media type in the JWT header.
pub const TYP: &str = "dc+sd-jwt";
/// The credential type: the NHS staff passport as staffpass issues it.
pub const VCT: &str = "https://staffpass.org.uk/vct/nhs-staff-passport/1";
/// The JWS algorithm.
pub const ALG: &str = "EdDSA";
/// The digest algorithm.
pub const SD_ALG: &str = "sha-256";
/// Clock skew allowed on `iat`, in seconds.
pub const SKEW_SECS: i64 = 300;
/// The longest token [`verify`] reads (bytes): a passport has at most a few
/// dozen claims.
pub const MAX_TOKEN: usize = 256 * 1024;

/// Why a token was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Error {
    /// Not `<jwt>~<disclosure>~...~` within the size bound.
    #[error("not an SD-JWT: {0}")]
    Malformed(&'static str),
    /// A part is not base64url or not the JSON it should be.
    #[error("cannot decode the {0}")]
    Decode(&'static str),
    /// A header or payload member is missing or not as required.
    #[error("{member} is {problem}")]
    Claim {
        /// The member (`typ`, `alg`, `kid`, `vct`, `iss`, `exp`, ...).
        member: &'static str,
        /// What is wrong.
        problem: &'static str,
    },
    /// The issuer signature does not verify with the expected key.
    #[error("the issuer signature does not verify")]
    Signature,
    /// `exp` has passed.
    #[error("the token expired")]
    Expired,
    /// A disclosure's digest is not in `_sd`, or appears twice.
    #[error("a disclosure is not referenced by the token, or is repeated")]
    Unreferenced,
    /// A disclosure names a claim the payload already has, a reserved
    /// name, or one disclosed twice.
    #[error("a disclosure names a reserved or repeated claim")]
    ClaimName,
}

/// base64url without padding.
pub fn b64(bytes: &[u8]) -> String {
    URL_SAFE_NO_PAD.encode(bytes)
}

pub(crate) fn unb64(s: &str, what: &'static str) -> Result<Vec<u8>, Error> {
    URL_SAFE_NO_PAD.decode(s).map_err(|_| Error::Decode(what))
}

/// An Ed25519 public key as an OKP JWK (RFC 8037).
pub fn jwk(key: &[u8; 32]) -> Map<String, Value> {
    let mut m = Map::new();
    m.insert("kty".into(), json!("OKP"));
    m.insert("crv".into(), json!("Ed25519"));
    m.insert("x".into(), json!(b64(key)));
    m
}

/// The RFC 7638 thumbprint of an issuer key's JWK: base64url of the
/// SHA-256 of `{"crv":"Ed25519","kty":"OKP","x":"..."}`.
pub fn thumbprint(key: &IssuerPublicKey) -> String {
    let canonical = format!(r#"{{"crv":"Ed25519","kty":"OKP","x":"{}"}}"#, b64(&key.to_bytes()));
    b64(&Sha256::digest(canonical.as_bytes()))
}

/// The issuer's key as published in its JWT VC issuer metadata: the JWK
/// with its `kid`, `alg` and `use`.
pub fn issuer_jwk(key: &IssuerPublicKey) -> Map<String, Value> {
    let mut m = jwk(&key.to_bytes());
    m.insert("kid".into(), json!(thumbprint(key)));
    m.insert("alg".into(), json!(ALG));
    m.insert("use".into(), json!("sig"));
    m
}

/// The issuer key an OKP Ed25519 JWK (as [`issuer_jwk`] publishes it)
/// holds, or `None` if it is not one.
pub fn issuer_key_of_jwk(jwk: &Value) -> Option<IssuerPublicKey> {
    if jwk.get("kty")? != "OKP" || jwk.get("crv")? != "Ed25519" {
        return None;
    }
    let x: [u8; 32] = unb64(jwk.get("x")?.as_str()?, "JWK x").ok()?.try_into().ok()?;
    IssuerPublicKey::from_bytes(&x).ok()
}

/// A claim's disclosed name: its kind.
pub fn claim_name(claim: &Claim) -> String {
    claim.kind().to_string()
}

/// A claim's disclosed value: its fields as the API shows them, plus
/// `valid_until` where it ends.
pub fn claim_value(claim: &Claim) -> Value {
    let fields = match claim {
        Claim::Identity(x) => serde_json::to_value(x),
        Claim::RightToWork(x) => serde_json::to_value(x),
        Claim::Dbs(x) => serde_json::to_value(x),
        Claim::ProfessionalRegistration(x) => serde_json::to_value(x),
        Claim::EmploymentAssignment(x) => serde_json::to_value(x),
        Claim::TemporaryPlacement(x) => serde_json::to_value(x),
        Claim::References(x) => serde_json::to_value(x),
        Claim::OccupationalHealth(x) => serde_json::to_value(x),
        Claim::Immunisation(_, x) => serde_json::to_value(x),
        Claim::Training(_, x) => serde_json::to_value(x),
    };
    // Plain structs of strings, numbers and dates: serialising cannot fail.
    let mut v = fields.unwrap_or(Value::Null);
    if let (Value::Object(m), Some(until)) = (&mut v, claim.valid_until()) {
        m.insert("valid_until".into(), json!(until.to_string()));
    }
    v
}

/// A disclosure: base64url of the JSON array `[salt, name, value]`.
pub fn disclosure(salt: &[u8; 16], name: &str, value: &Value) -> String {
    b64(Value::Array(vec![json!(b64(salt)), json!(name), value.clone()]).to_string().as_bytes())
}

/// A disclosure's digest as it appears in `_sd`.
pub fn digest(disclosure: &str) -> String {
    b64(&Sha256::digest(disclosure.as_bytes()))
}

/// Where a credential's status is published (Token Status List).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StatusRef {
    /// Its index in the list.
    pub idx: u64,
    /// The list's URL.
    pub uri: String,
}

/// What an SD-JWT VC says.
#[derive(Debug, Clone)]
pub struct Vc<'a> {
    /// The home trust's HTTPS issuer URL.
    pub iss: &'a str,
    /// Issued at.
    pub iat: Timestamp,
    /// Expires at.
    pub exp: Timestamp,
    /// The staff member.
    pub sub: &'a StaffRef,
    /// The staff member's own key, when they hold one.
    pub cnf: Option<&'a StaffPublicKey>,
    /// The credential's status list entry, if it has one.
    pub status: Option<StatusRef>,
    /// The claims, each selectively disclosable.
    pub claims: &'a [Claim],
}

/// Issues `vc` signed with `key`: the issuer-signed JWT, then every
/// disclosure, each followed by `~` (an SD-JWT without key binding). Each
/// claim gets the next salt from `salt` (a CSPRNG in use; fixed in golden
/// vectors).
pub fn issue(key: &IssuerSecretKey, vc: &Vc<'_>, salt: &mut dyn FnMut() -> [u8; 16]) -> String {
    let disclosures: Vec<String> =
        vc.claims.iter().map(|c| disclosure(&salt(), &claim_name(c), &claim_value(c))).collect();
    let mut digests: Vec<String> = disclosures.iter().map(|d| digest(d)).collect();
    // Sorted, so the order of `_sd` says nothing about the claims' order.
    digests.sort();

    let mut header = Map::new();
    header.insert("typ".into(), json!(TYP));
    header.insert("alg".into(), json!(ALG));
    header.insert("kid".into(), json!(thumbprint(&key.public())));

    let mut p = Map::new();
    p.insert("iss".into(), json!(vc.iss));
    p.insert("iat".into(), json!(vc.iat.unix()));
    p.insert("exp".into(), json!(vc.exp.unix()));
    p.insert("vct".into(), json!(VCT));
    p.insert("sub".into(), json!(vc.sub.to_string()));
    if let Some(k) = vc.cnf {
        p.insert("cnf".into(), json!({ "jwk": jwk(&k.to_bytes()) }));
    }
    if let Some(s) = &vc.status {
        p.insert("status".into(), json!({ "status_list": { "idx": s.idx, "uri": s.uri } }));
    }
    p.insert("_sd_alg".into(), json!(SD_ALG));
    p.insert("_sd".into(), json!(digests));

    let mut out = key.sign_jws(&header, &p);
    out.push('~');
    for d in disclosures {
        out.push_str(&d);
        out.push('~');
    }
    out
}

/// The `kid` of a token's JWT header, read without checking anything
/// else (to choose the key to verify it with).
pub fn kid(token: &str) -> Option<String> {
    if token.len() > MAX_TOKEN {
        return None;
    }
    let header = token.split('~').next()?.split('.').next()?;
    let header = object(&unb64(header, "JWT header").ok()?, "JWT header").ok()?;
    header.get("kid")?.as_str().map(str::to_owned)
}

/// A token that verified.
#[derive(Debug, Clone, PartialEq)]
pub struct Verified {
    /// The JWT header.
    pub header: Map<String, Value>,
    /// The JWT payload (with `_sd`).
    pub payload: Map<String, Value>,
    /// The disclosed claims, by name.
    pub claims: BTreeMap<String, Value>,
}

impl Verified {
    /// `sub`.
    pub fn sub(&self) -> Option<&str> {
        self.payload.get("sub").and_then(Value::as_str)
    }
    /// `exp`, as a timestamp.
    pub fn exp(&self) -> Option<Timestamp> {
        self.payload.get("exp").and_then(Value::as_i64).and_then(Timestamp::from_unix)
    }
}

pub(crate) fn object(bytes: &[u8], what: &'static str) -> Result<Map<String, Value>, Error> {
    match serde_json::from_slice(bytes) {
        Ok(Value::Object(m)) => Ok(m),
        _ => Err(Error::Decode(what)),
    }
}

pub(crate) fn need<'a>(m: &'a Map<String, Value>, member: &'static str) -> Result<&'a Value, Error> {
    m.get(member).ok_or(Error::Claim { member, problem: "missing" })
}

pub(crate) fn need_str<'a>(m: &'a Map<String, Value>, member: &'static str) -> Result<&'a str, Error> {
    need(m, member)?.as_str().ok_or(Error::Claim { member, problem: "not a string" })
}

pub(crate) fn need_time(m: &Map<String, Value>, member: &'static str) -> Result<Timestamp, Error> {
    need(m, member)?
        .as_i64()
        .and_then(Timestamp::from_unix)
        .ok_or(Error::Claim { member, problem: "not a time in seconds" })
}

/// An SD-JWT without key binding split into its issuer-signed JWT and
/// its disclosures.
fn split(token: &str) -> Result<(&str, Vec<&str>), Error> {
    let mut parts: Vec<&str> = token.split('~').collect();
    if parts.len() < 2 || parts.pop() != Some("") {
        return Err(Error::Malformed("it must end with `~` (no key binding)"));
    }
    let jwt = parts.remove(0);
    Ok((jwt, parts))
}

/// A JSON object (a JWT header or payload).
pub(crate) type JsonObject = Map<String, Value>;

/// Verifies a compact JWS signed by `issuer`: three base64url parts, JSON
/// header and payload, header `typ` = `typ` (else `typ_problem`), `alg`
/// `EdDSA` (or `Ed25519`), `kid` the issuer key's thumbprint, and the
/// signature (strict Ed25519). Returns the header and payload.
pub(crate) fn verify_jws(
    jwt: &str,
    typ: &str,
    typ_problem: &'static str,
    issuer: &IssuerPublicKey,
) -> Result<(JsonObject, JsonObject), Error> {
    let segments: Vec<&str> = jwt.split('.').collect();
    let [h, p, s] = segments[..] else { return Err(Error::Malformed("the JWT is not three parts")) };
    let header = object(&unb64(h, "JWT header")?, "JWT header")?;
    let payload = object(&unb64(p, "JWT payload")?, "JWT payload")?;
    if need_str(&header, "typ")? != typ {
        return Err(Error::Claim { member: "typ", problem: typ_problem });
    }
    if !matches!(need_str(&header, "alg")?, "EdDSA" | "Ed25519") {
        return Err(Error::Claim { member: "alg", problem: "not EdDSA" });
    }
    if need_str(&header, "kid")? != thumbprint(issuer) {
        return Err(Error::Claim { member: "kid", problem: "not the issuer key's thumbprint" });
    }
    let sig: [u8; 64] = unb64(s, "JWT signature")?.try_into().map_err(|_| Error::Decode("JWT signature"))?;
    let key = issuer.dalek().map_err(|_| Error::Signature)?;
    key.verify_strict(format!("{h}.{p}").as_bytes(), &ed25519_dalek::Signature::from_bytes(&sig))
        .map_err(|_| Error::Signature)?;
    Ok((header, payload))
}

/// Verifies an SD-JWT VC issued by `issuer` at `now` (an SD-JWT without
/// key binding: it ends with `~`). Strict: see the module documentation.
pub fn verify(token: &str, issuer: &IssuerPublicKey, now: Timestamp) -> Result<Verified, Error> {
    if token.len() > MAX_TOKEN {
        return Err(Error::Malformed("larger than the bound"));
    }
    let (jwt, parts) = split(token)?;
    let (header, payload) = verify_jws(jwt, TYP, "not dc+sd-jwt", issuer)?;

    if need_str(&payload, "_sd_alg")? != SD_ALG {
        return Err(Error::Claim { member: "_sd_alg", problem: "not sha-256" });
    }
    if need_str(&payload, "vct")? != VCT {
        return Err(Error::Claim { member: "vct", problem: "not the staff passport type" });
    }
    if !need_str(&payload, "iss")?.starts_with("https://") {
        return Err(Error::Claim { member: "iss", problem: "not an HTTPS URL" });
    }
    need_str(&payload, "sub")?;
    if need_time(&payload, "iat")?.unix() > now.unix() + SKEW_SECS {
        return Err(Error::Claim { member: "iat", problem: "in the future" });
    }
    if need_time(&payload, "exp")? <= now {
        return Err(Error::Expired);
    }
    let sd: BTreeSet<&str> = need(&payload, "_sd")?
        .as_array()
        .ok_or(Error::Claim { member: "_sd", problem: "not an array" })?
        .iter()
        .map(|d| d.as_str().ok_or(Error::Claim { member: "_sd", problem: "not an array of strings" }))
        .collect::<Result<_, _>>()?;

    let mut used = BTreeSet::new();
    let mut claims = BTreeMap::new();
    for d in parts {
        let dg = digest(d);
        if !sd.contains(dg.as_str()) || !used.insert(dg) {
            return Err(Error::Unreferenced);
        }
        let Ok(Value::Array(a)) = serde_json::from_slice::<Value>(&unb64(d, "disclosure")?) else {
            return Err(Error::Decode("disclosure"));
        };
        let [Value::String(salt), Value::String(name), value] = &a[..] else {
            return Err(Error::Decode("disclosure"));
        };
        if unb64(salt, "disclosure salt")?.len() < 16 {
            return Err(Error::Decode("disclosure salt"));
        }
        if name == "_sd" || name == "..." || payload.contains_key(name) || claims.contains_key(name) {
            return Err(Error::ClaimName);
        }
        claims.insert(name.clone(), value.clone());
    }
    Ok(Verified { header, payload, claims })
}

/// Keeps only the disclosures of `token` whose claim name is in `keep`:
/// a holder's presentation of some of its claims (the issuer signature
/// still verifies; the digests of the others stay, undisclosed).
pub fn present(token: &str, keep: &BTreeSet<String>) -> Result<String, Error> {
    let (jwt, parts) = split(token)?;
    let mut out = format!("{jwt}~");
    for d in parts {
        let Ok(Value::Array(a)) = serde_json::from_slice::<Value>(&unb64(d, "disclosure")?) else {
            return Err(Error::Decode("disclosure"));
        };
        if a.get(1).and_then(Value::as_str).is_some_and(|n| keep.contains(n)) {
            out.push_str(d);
            out.push('~');
        }
    }
    Ok(out)
}
