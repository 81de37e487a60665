//! The SD-JWT VC export: a golden vector (fixed key, salts and claims),
//! RFC 8037's thumbprint example, and the strict verifier refusing every
//! kind of tampering.

use std::collections::BTreeSet;

use serde_json::{Map, Value, json};
use staffpass_protocol::sdjwt::{self, Error, Vc};
use staffpass_protocol::testkit;
use staffpass_protocol::{IssuerPublicKey, StaffRef};

const UPDATE: &str = "STAFFPASS_UPDATE_VECTORS";
const VECTOR: &str = "tests/vectors/sd-jwt-vc.txt";

fn staff() -> StaffRef {
    "st-0a1b2c3d4e5f6071".parse().unwrap()
}

/// Salts 1, 2, 3, ... in the first byte: fixed, so the token is.
fn counting() -> impl FnMut() -> [u8; 16] {
    let mut n = 0u8;
    move || {
        n += 1;
        let mut s = [0u8; 16];
        s[0] = n;
        s
    }
}

fn token_with(claims: &[staffpass_protocol::claims::Claim], exp_days: i64) -> String {
    let key = testkit::issuer("RJZ", 0);
    let sub = staff();
    let staff_key = testkit::staff("alex").public();
    let vc = Vc {
        iss: "https://staffpass.rjz.example",
        iat: testkit::now(),
        exp: testkit::now().plus_days(exp_days),
        sub: &sub,
        cnf: Some(&staff_key),
        status: Some(sdjwt::StatusRef { idx: 7, uri: "https://staffpass.rjz.example/statuslists/1".into() }),
        claims,
    };
    sdjwt::issue(&key, &vc, &mut counting())
}

fn token() -> String {
    token_with(&testkit::sample_claims(), 365)
}

fn issuer() -> IssuerPublicKey {
    testkit::issuer("RJZ", 0).public()
}

#[test]
fn the_token_matches_its_golden_vector() {
    let t = token();
    if std::env::var(UPDATE).is_ok_and(|v| v == "1") {
        std::fs::write(VECTOR, format!("{t}\n")).unwrap();
    }
    let want = std::fs::read_to_string(VECTOR)
        .unwrap_or_else(|e| panic!("cannot read {VECTOR} ({e}); generate it with {UPDATE}=1"));
    assert_eq!(t, want.trim_end(), "the SD-JWT VC encoding changed; if on purpose, regenerate with {UPDATE}=1");
}

#[test]
fn rfc_8037_thumbprint_example() {
    // RFC 8037 appendix A.3: the thumbprint of the A.2 public key.
    let x = "11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo";
    let bytes: [u8; 32] = base64_url(x).try_into().unwrap();
    let key = IssuerPublicKey::from_bytes(&bytes).unwrap();
    assert_eq!(sdjwt::thumbprint(&key), "kPrK_qmxVWaYVA9wwBF6Iuo3vVzz7TxHCTwXBygrS4k");
}

fn base64_url(s: &str) -> Vec<u8> {
    use base64::Engine as _;
    base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(s).unwrap()
}

#[test]
fn it_verifies_with_every_claim_and_its_end_date() {
    let v = sdjwt::verify(&token(), &issuer(), testkit::now()).unwrap();
    assert_eq!(v.header["typ"], "dc+sd-jwt");
    assert_eq!(v.header["alg"], "EdDSA");
    assert_eq!(v.header["kid"], sdjwt::thumbprint(&issuer()));
    assert_eq!(v.payload["vct"], sdjwt::VCT);
    assert_eq!(v.sub(), Some("st-0a1b2c3d4e5f6071"));
    assert_eq!(v.payload["status"]["status_list"]["idx"], 7);
    assert_eq!(v.payload["cnf"]["jwk"]["crv"], "Ed25519");
    let names: BTreeSet<String> = testkit::sample_claims().iter().map(sdjwt::claim_name).collect();
    assert_eq!(v.claims.keys().cloned().collect::<BTreeSet<_>>(), names);
    // Fire safety completed 2026-03-01 with a 12-month refresher.
    assert_eq!(v.claims["training:fire-safety"]["valid_until"], "2027-03-01");
    assert_eq!(v.claims["training:fire-safety"]["level"], 2);
    // Identity has no end.
    assert!(v.claims["identity"].get("valid_until").is_none());
    assert_eq!(v.claims["dbs"]["valid_until"], "2027-08-15");
    // Digests only in the payload: no claim value in clear.
    assert!(!v.payload.contains_key("identity"));
    assert_eq!(v.payload["_sd"].as_array().unwrap().len(), names.len());
}

#[test]
fn a_presentation_of_some_claims_verifies_and_shows_only_those() {
    let keep: BTreeSet<String> = ["dbs".to_string(), "training:fire-safety".into()].into();
    let p = sdjwt::present(&token(), &keep).unwrap();
    let v = sdjwt::verify(&p, &issuer(), testkit::now()).unwrap();
    assert_eq!(v.claims.keys().cloned().collect::<BTreeSet<_>>(), keep);
}

/// The token's parts: the JWT and the disclosures.
fn parts(t: &str) -> (String, Vec<String>) {
    let mut p: Vec<String> = t.trim_end_matches('~').split('~').map(str::to_string).collect();
    let jwt = p.remove(0);
    (jwt, p)
}

fn join(jwt: &str, ds: &[String]) -> String {
    let mut s = format!("{jwt}~");
    for d in ds {
        s.push_str(d);
        s.push('~');
    }
    s
}

/// Re-signs the token's payload after `edit`, with `header` changes.
fn resigned(edit: impl FnOnce(&mut Map<String, Value>, &mut Map<String, Value>)) -> String {
    let (jwt, ds) = parts(&token());
    let mut segs = jwt.split('.');
    let h: Value = serde_json::from_slice(&base64_url(segs.next().unwrap())).unwrap();
    let p: Value = serde_json::from_slice(&base64_url(segs.next().unwrap())).unwrap();
    let (Value::Object(mut h), Value::Object(mut p)) = (h, p) else { panic!("not objects") };
    edit(&mut h, &mut p);
    join(&testkit::issuer("RJZ", 0).sign_jws(&h, &p), &ds)
}

#[test]
fn tampering_is_refused() {
    let now = testkit::now();
    let key = issuer();
    let t = token();
    let (jwt, ds) = parts(&t);

    // A changed disclosure: its digest is not in _sd.
    let mut changed = ds.clone();
    let mut arr: Value = serde_json::from_slice(&base64_url(&changed[0])).unwrap();
    arr[2] = json!({"full_name": "Someone Else"});
    changed[0] = sdjwt::b64(arr.to_string().as_bytes());
    assert_eq!(sdjwt::verify(&join(&jwt, &changed), &key, now), Err(Error::Unreferenced));

    // An added disclosure (another salt), and a repeated one.
    let mut added = ds.clone();
    added.push(sdjwt::disclosure(&[9; 16], "dbs", &json!({"level": "basic"})));
    assert_eq!(sdjwt::verify(&join(&jwt, &added), &key, now), Err(Error::Unreferenced));
    let mut repeated = ds.clone();
    repeated.push(ds[0].clone());
    assert_eq!(sdjwt::verify(&join(&jwt, &repeated), &key, now), Err(Error::Unreferenced));

    // Another issuer's key, and a kid that is not the key's.
    let other = testkit::issuer("RJ1", 0).public();
    assert!(matches!(sdjwt::verify(&t, &other, now), Err(Error::Claim { member: "kid", .. })));
    let forged = resigned(|h, _| {
        h.insert("kid".into(), json!(sdjwt::thumbprint(&other)));
    });
    assert!(matches!(sdjwt::verify(&forged, &other, now), Err(Error::Signature)));

    // A changed payload under the old signature.
    let mut segs: Vec<&str> = jwt.split('.').collect();
    let p2 = sdjwt::b64(br#"{"iss":"https://evil.example"}"#);
    segs[1] = &p2;
    assert_eq!(sdjwt::verify(&join(&segs.join("."), &ds), &key, now), Err(Error::Signature));

    // Header and payload rules.
    let typ = resigned(|h, _| {
        h.insert("typ".into(), json!("JWT"));
    });
    assert!(matches!(sdjwt::verify(&typ, &key, now), Err(Error::Claim { member: "typ", .. })));
    let vct = resigned(|_, p| {
        p.insert("vct".into(), json!("https://example.com/other"));
    });
    assert!(matches!(sdjwt::verify(&vct, &key, now), Err(Error::Claim { member: "vct", .. })));
    let iss = resigned(|_, p| {
        p.insert("iss".into(), json!("http://plain.example"));
    });
    assert!(matches!(sdjwt::verify(&iss, &key, now), Err(Error::Claim { member: "iss", .. })));
    let clash = resigned(|_, p| {
        p.insert("identity".into(), json!("already here"));
    });
    assert_eq!(sdjwt::verify(&clash, &key, now), Err(Error::ClaimName));

    // Expired, and issued in the future.
    assert_eq!(sdjwt::verify(&t, &key, now.plus_days(366)), Err(Error::Expired));
    assert!(matches!(sdjwt::verify(&t, &key, now.plus_days(-1)), Err(Error::Claim { member: "iat", .. })));

    // Not an SD-JWT at all.
    assert!(matches!(sdjwt::verify(&jwt, &key, now), Err(Error::Malformed(_))));
    assert!(matches!(sdjwt::verify("a.b~", &key, now), Err(Error::Malformed(_))));
    assert!(matches!(sdjwt::verify("!!.!!.!!~", &key, now), Err(Error::Decode(_))));
    let huge = "a".repeat(sdjwt::MAX_TOKEN + 1);
    assert!(matches!(sdjwt::verify(&huge, &key, now), Err(Error::Malformed(_))));
}

#[test]
fn the_signed_bytes_can_never_be_a_native_signed_message() {
    // A JWS signing input starts with the base64url of `{"`; a native
    // message with "staffpass\0".
    let (jwt, _) = parts(&token());
    assert!(jwt.starts_with("eyJ"));
    assert!(!jwt.as_bytes().starts_with(b"staffpass\0"));
}

#[test]
fn an_issuer_key_comes_back_from_its_published_jwk_and_nothing_else_does() {
    let key = issuer();
    let jwk = serde_json::Value::Object(sdjwt::issuer_jwk(&key));
    assert_eq!(sdjwt::issuer_key_of_jwk(&jwk), Some(key));
    for (member, value) in [("kty", json!("EC")), ("crv", json!("X25519")), ("x", json!("AAAA")), ("x", json!(7))] {
        let mut bad = jwk.clone();
        bad[member] = value;
        assert_eq!(sdjwt::issuer_key_of_jwk(&bad), None, "{member}");
    }
}
