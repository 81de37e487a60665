//! The FHIR R4 export: a golden vector (fixed ids and claims), and the
//! rules a FHIR validator does not check: every reference resolves, no
//! period ends before it starts, ODS codes are well formed, the NI number
//! is never there, name and birth date only with the identity claim.

use serde_json::Value;
use staffpass_protocol::claims::{Claim, ClaimKind};
use staffpass_protocol::fhir::{self, Export, Org};
use staffpass_protocol::{ConsentId, CredentialId, OrgId, StaffRef, testkit};

const UPDATE: &str = "STAFFPASS_UPDATE_VECTORS";
const VECTOR: &str = "tests/vectors/fhir-bundle.json";

fn bundle(claims: &[Claim], host: bool) -> Value {
    let home: OrgId = "RJZ".parse().unwrap();
    let hospice: OrgId = "ext:charity:1012345".parse().unwrap();
    let staff: StaffRef = "st-0a1b2c3d4e5f6071".parse().unwrap();
    let now = testkit::now();
    fhir::bundle(&Export {
        home: Org { id: &home, name: Some("King's College Hospital NHS Foundation Trust") },
        host: host.then_some(Org { id: &hospice, name: None }),
        staff: &staff,
        claims,
        credential: CredentialId::from_bytes([7; 16]),
        consent: host.then(|| ConsentId::from_bytes([9; 16])),
        host_period: host.then(|| (now, now.plus_days(90))),
        erase_after: host.then(|| now.plus_days(90)),
        recorded: now,
    })
}

/// Every `reference` in `v`, recursively.
fn references(v: &Value, out: &mut Vec<String>) {
    match v {
        Value::Object(m) => {
            for (k, x) in m {
                match (k.as_str(), x) {
                    ("reference", Value::String(s)) => out.push(s.clone()),
                    _ => references(x, out),
                }
            }
        }
        Value::Array(a) => a.iter().for_each(|x| references(x, out)),
        _ => {}
    }
}

/// Every `period` in `v`, recursively.
fn periods<'a>(v: &'a Value, out: &mut Vec<&'a Value>) {
    match v {
        Value::Object(m) => {
            for (k, x) in m {
                if k == "period" {
                    out.push(x);
                }
                periods(x, out);
            }
        }
        Value::Array(a) => a.iter().for_each(|x| periods(x, out)),
        _ => {}
    }
}

fn check_rules(b: &Value) {
    let entries = b["entry"].as_array().unwrap();
    let urls: Vec<&str> = entries.iter().map(|e| e["fullUrl"].as_str().unwrap()).collect();
    let mut refs = Vec::new();
    references(b, &mut refs);
    assert!(!refs.is_empty());
    for r in &refs {
        assert!(urls.contains(&r.as_str()), "{r} does not resolve in the Bundle");
    }
    let mut ps = Vec::new();
    periods(b, &mut ps);
    for p in ps {
        if let (Some(s), Some(e)) = (p["start"].as_str(), p["end"].as_str()) {
            assert!(s[..10] <= e[..10], "period {p} ends before it starts");
        }
    }
    for e in entries {
        if e["resource"]["resourceType"] == "Organization" {
            for id in e["resource"]["identifier"].as_array().unwrap() {
                if id["system"] == fhir::ODS {
                    let v = id["value"].as_str().unwrap();
                    assert!(
                        (3..=6).contains(&v.len()) && v.chars().all(|c| c.is_ascii_uppercase() || c.is_ascii_digit())
                    );
                }
            }
        }
    }
    let text = b.to_string();
    // testkit's identity claim carries an NI number; none is exported.
    for c in testkit::sample_claims() {
        if let Claim::Identity(i) = c {
            assert!(!text.contains(i.ni_number.as_str()), "the NI number was exported");
        }
    }
}

#[test]
fn the_bundle_matches_its_golden_vector_and_keeps_the_rules() {
    let b = bundle(&testkit::sample_claims(), true);
    let text = serde_json::to_string_pretty(&b).unwrap() + "\n";
    if std::env::var(UPDATE).is_ok_and(|v| v == "1") {
        std::fs::write(VECTOR, &text).unwrap();
    }
    let want = std::fs::read_to_string(VECTOR).expect("the vector (STAFFPASS_UPDATE_VECTORS=1 writes it)");
    assert_eq!(text, want, "the FHIR Bundle changed: review it, then STAFFPASS_UPDATE_VECTORS=1");
    check_rules(&b);
    assert_eq!(b["type"], "collection");
    let kinds: Vec<&str> =
        b["entry"].as_array().unwrap().iter().map(|e| e["resource"]["resourceType"].as_str().unwrap()).collect();
    assert_eq!(kinds.iter().filter(|k| **k == "Organization").count(), 2);
    assert_eq!(kinds.iter().filter(|k| **k == "PractitionerRole").count(), 2, "home assignment and host role");
    assert!(kinds.contains(&"Practitioner") && kinds.contains(&"Provenance"));
}

#[test]
fn name_and_birth_date_only_with_the_identity_claim_and_valid_until_becomes_an_inclusive_end() {
    let without: Vec<Claim> =
        testkit::sample_claims().into_iter().filter(|c| c.kind() != ClaimKind::Identity).collect();
    let b = bundle(&without, false);
    check_rules(&b);
    let practitioner =
        b["entry"].as_array().unwrap().iter().find(|e| e["resource"]["resourceType"] == "Practitioner").unwrap();
    assert!(practitioner["resource"].get("name").is_none() && practitioner["resource"].get("birthDate").is_none());
    // A training claim valid until (exclusive) D ends (inclusive) on D - 1.
    let training = without.iter().find(|c| matches!(c, Claim::Training(..))).unwrap();
    let until = training.valid_until().unwrap();
    let code = training.kind().to_string();
    let q = practitioner["resource"]["qualification"]
        .as_array()
        .unwrap()
        .iter()
        .find(|q| q["code"]["coding"][0]["code"] == code.as_str())
        .unwrap();
    assert_eq!(q["period"]["end"], until.plus_days(-1).to_string());
    // No host: no host organisation or role, no consent.
    assert_eq!(b["entry"].as_array().unwrap().len(), 4, "home, practitioner, home role, provenance");
}
