//! Rotating a member's issuer key with `roster propose rotate-key`, checked
//! with the receiver's own rule (`verify_bundle`): passports signed before
//! the rotation still verify, new ones verify with the new key, and the
//! old key is refused for anything signed after its retirement.
//!
//! The issuer keys are key files (as a node keeps them); the stewards name
//! them by file, and the CLI takes only the public half.

#![allow(clippy::unwrap_used)] // test helpers outside #[test] fns may unwrap, as tests do

use std::path::Path;
use std::time::{Duration, Instant};

use crate::common::admin;
use staffpass_protocol::bundle::{Rejection, verify_bundle};
use staffpass_protocol::revocation::Revocations;
use staffpass_protocol::roster::{Chain, Entry};
use staffpass_protocol::testkit;
use staffpass_protocol::{IssuerSecretKey, Timestamp};

fn now() -> Timestamp {
    let s = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs();
    Timestamp::from_unix(s as i64).unwrap()
}

fn chain(dir: &Path) -> Chain {
    let entries: Vec<Entry> = serde_json::from_slice(&std::fs::read(dir.join("chain.json")).unwrap()).unwrap();
    Chain::from_entries(entries).unwrap()
}

fn apply(dir: &Path, change: &str, signers: [&str; 2]) {
    for k in signers {
        admin(dir, &["roster", "sign", change, "--key", k, "--chain", "chain.json", "--yes"]).ok();
    }
    admin(dir, &["roster", "append", "chain.json", change]).ok();
}

fn add(dir: &Path, org: &str, key: &str) {
    let out = format!("add-{org}.json");
    let node = testkit::node(org).to_string();
    admin(
        dir,
        &[
            "roster",
            "propose",
            "add-member",
            "--chain",
            "chain.json",
            "--out",
            &out,
            "--org",
            org,
            "--name",
            org,
            "--issuer-key",
            key,
            "--node",
            &node,
        ],
    )
    .ok();
    apply(dir, &out, ["a.key", "b.key"]);
}

fn secret(dir: &Path, file: &str) -> IssuerSecretKey {
    IssuerSecretKey::from_secret_text(&std::fs::read_to_string(dir.join(file)).unwrap()).unwrap()
}

#[test]
fn rotating_an_issuer_key_keeps_old_passports_and_retires_the_old_key() {
    let d = tempfile::tempdir().unwrap();
    let dir = d.path();
    for k in ["a", "b", "c"] {
        admin(dir, &["key", "gen", "--kind", "steward", "--out", &format!("{k}.key")]).ok();
    }
    for k in ["rjz-old", "rjz-new", "rj1"] {
        admin(dir, &["key", "gen", "--kind", "issuer", "--out", &format!("{k}.key")]).ok();
    }
    admin(
        dir,
        &[
            "agreement",
            "init",
            "--id",
            "london-mou",
            "--title",
            "London MOU",
            "--steward",
            "a.key",
            "--steward",
            "b.key",
            "--steward",
            "c.key",
            "--threshold",
            "2",
            "--moves",
            "rotation",
            "--accepts",
            "all",
            "--lawful-basis",
            "UK GDPR 6(1)(b)",
            "--out",
            "chain.json",
        ],
    )
    .ok();
    for k in ["a.key", "b.key"] {
        admin(dir, &["roster", "sign", "chain.json", "--key", k, "--yes"]).ok();
    }
    add(dir, "RJZ", "rjz-old.key");
    add(dir, "RJ1", "rj1.key");
    let added_at = chain(dir).state().issued_at;

    // Entries are dated in whole seconds: let the clock pass the addition,
    // so there is a moment when only the old key is valid.
    let deadline = Instant::now() + Duration::from_secs(5);
    while now() <= added_at {
        assert!(Instant::now() < deadline, "the clock did not move");
        std::thread::sleep(Duration::from_millis(20));
    }

    admin(
        dir,
        &[
            "roster",
            "propose",
            "rotate-key",
            "--chain",
            "chain.json",
            "--out",
            "rotate.json",
            "--org",
            "RJZ",
            "--add",
            "rjz-new.key",
            "--retire",
            "rjz-old.key",
        ],
    )
    .ok();
    let shown = admin(dir, &["roster", "show", "rotate.json"]);
    assert!(shown.ok().contains("rotate RJZ's issuer key"), "{}", shown.stdout);
    apply(dir, "rotate.json", ["b.key", "c.key"]);

    let chain = chain(dir);
    let rotated_at = chain.state().issued_at;
    assert!(rotated_at > added_at);
    let rosters = testkit::rosters(&chain);
    let (old, new) = (secret(dir, "rjz-old.key"), secret(dir, "rjz-new.key"));
    let check = |key: &IssuerSecretKey, signed_at: Timestamp| {
        let mut parts = testkit::bundle_parts();
        parts.credential.issued_at = signed_at;
        parts.credential.expires_at = signed_at.plus_days(365);
        parts.consent.issued_at = signed_at;
        parts.consent.not_before = signed_at;
        parts.consent.not_after = now().plus_days(30);
        let bundle = parts.build(key);
        verify_bundle(&bundle, &testkit::node("RJZ"), &testkit::org("RJ1"), &rosters, &Revocations::default(), now())
            .map(drop)
    };
    assert_eq!(check(&old, added_at), Ok(()), "signed before the rotation: still verifies");
    assert_eq!(check(&new, rotated_at), Ok(()), "new passports use the new key");
    assert_eq!(check(&old, rotated_at), Err(Rejection::IssuerKeyRetired), "old key after its retirement");
    assert_eq!(check(&new, added_at), Err(Rejection::IssuerKeyNotYetValid), "new key before it was added");

    // Retiring it again is refused before anything is written.
    admin(
        dir,
        &[
            "roster",
            "propose",
            "rotate-key",
            "--chain",
            "chain.json",
            "--out",
            "again.json",
            "--org",
            "RJZ",
            "--add",
            "rj1.key",
            "--retire",
            "rjz-old.key",
        ],
    )
    .fails(3);
    assert!(!dir.join("again.json").exists());
}
