//! The SD-JWT VC export at the home trust (issue 16): the staff member's
//! current credential, every claim or some, verified with the protocol's
//! strict verifier against the trust's issuer metadata; audited; refused
//! for a claim not held and for a revoked credential; its status list
//! entry, marked on revocation, re-issue and erasure; old keys in the
//! metadata.

use std::collections::BTreeSet;

use staffpass_node::audit::Action;
use staffpass_node::exchange::Error;
use staffpass_node::testkit::Net;
use staffpass_protocol::claims::{ClaimKind, CstfSubject};
use staffpass_protocol::revocation::RevocationReason;
use staffpass_protocol::roster::Change;
use staffpass_protocol::testkit as fixture;
use staffpass_protocol::{sdjwt, statuslist};

#[test]
fn a_wallet_copy_verifies_against_the_published_key_and_is_audited() {
    let net = Net::new(&["RJZ", "RJ1"]);
    let home = net.get("RJZ");
    let staff = home.import_staff("12345678-1");
    let cred = home.exchange.issue_credential(&staff, "hr").unwrap();

    let all = home.exchange.export_sd_jwt_vc(&staff, None, "cert:hr-officer").unwrap();
    assert_eq!(all.credential, cred.signed.body.id);
    let v = sdjwt::verify(&all.token, &home.exchange.issuer_key(), home.exchange.now()).unwrap();
    assert_eq!(v.sub(), Some(staff.to_string().as_str()));
    assert_eq!(v.claims.len(), cred.disclosures.len());
    assert_eq!(v.exp(), Some(cred.signed.body.expires_at));
    assert_eq!(v.payload["iss"], "https://staffpass.rjz.invalid");

    // The metadata names the key the token's kid points at.
    let meta = home.exchange.issuer_metadata();
    assert_eq!(meta["issuer"], v.payload["iss"]);
    assert_eq!(meta["jwks"]["keys"][0]["kid"], v.header["kid"]);
    assert_eq!(meta["jwks"]["keys"][0]["crv"], "Ed25519");

    // A subset: only those claims are disclosed.
    let some: BTreeSet<ClaimKind> = [ClaimKind::Dbs, ClaimKind::Training(CstfSubject::FireSafety)].into();
    let part = home.exchange.export_sd_jwt_vc(&staff, Some(&some), "cert:hr-officer").unwrap();
    let v = sdjwt::verify(&part.token, &home.exchange.issuer_key(), home.exchange.now()).unwrap();
    assert_eq!(
        v.claims.keys().cloned().collect::<BTreeSet<_>>(),
        ["dbs".to_string(), "training:fire-safety".into()].into()
    );
    // Fresh salts each time: two exports of the same claims differ.
    let again = home.exchange.export_sd_jwt_vc(&staff, Some(&some), "cert:hr-officer").unwrap();
    assert_ne!(part.token, again.token);

    // Audited: one export entry each, by id and format only.
    let exports: Vec<_> =
        home.audit.for_staff(&staff, 100).unwrap().into_iter().filter(|e| e.event.action == Action::Export).collect();
    assert_eq!(exports.len(), 3);
    for e in &exports {
        assert_eq!(e.event.object.as_deref(), Some(cred.signed.body.id.to_string().as_str()));
        assert_eq!(e.event.reason.as_deref(), Some("sd-jwt-vc"));
        assert_eq!(e.event.actor, "cert:hr-officer");
    }
}

#[test]
fn a_claim_not_held_an_unknown_member_and_a_revoked_credential_are_refused() {
    let net = Net::new(&["RJZ", "RJ1"]);
    let home = net.get("RJZ");
    let staff = home.import_staff("12345678-1");
    home.exchange.issue_credential(&staff, "hr").unwrap();

    let flu: BTreeSet<ClaimKind> = [ClaimKind::TemporaryPlacement].into();
    let e = home.exchange.export_sd_jwt_vc(&staff, Some(&flu), "hr").unwrap_err();
    assert!(matches!(e, Error::ClaimNotHeld(ClaimKind::TemporaryPlacement)), "{e}");

    let nobody = home.exchange.staff_ref_for("99999999-9");
    assert_eq!(home.exchange.export_sd_jwt_vc(&nobody, None, "hr").unwrap_err().code(), "not-found");

    home.exchange.revoke_staff(&staff, RevocationReason::LeavingOrganisation, "hr").unwrap();
    let e = home.exchange.export_sd_jwt_vc(&staff, None, "hr").unwrap_err();
    assert_eq!(e.code(), "conflict", "{e}");
    assert!(e.to_string().contains("revoked"), "{e}");
    // Nothing refused was audited as an export.
    assert!(home.audit.for_staff(&staff, 100).unwrap().iter().all(|e| e.event.action != Action::Export));
}

/// The credential's entry in the trust's status list, from an export.
fn entry(home: &staffpass_node::testkit::Trust, token: &str) -> (u64, String) {
    let v = sdjwt::verify(token, &home.exchange.issuer_key(), home.exchange.now()).unwrap();
    let (idx, uri) = statuslist::entry_of(&v.payload).expect("an exported credential names its status entry");
    (idx, uri.to_owned())
}

/// The trust's status list as a verifier outside staffpass reads it.
fn published(home: &staffpass_node::testkit::Trust) -> statuslist::StatusList {
    let token = home.exchange.status_list_token().unwrap();
    statuslist::verify(&token, &home.exchange.issuer_key(), &home.exchange.status_list_uri(), home.exchange.now())
        .unwrap()
}

#[test]
fn the_status_list_marks_a_revoked_a_superseded_and_an_erased_credential() {
    let net = Net::new(&["RJZ", "RJ1"]);
    let home = net.get("RJZ");
    let (a, b, c) = (home.import_staff("12345678-1"), home.import_staff("12345678-2"), home.import_staff("12345678-3"));
    for s in [&a, &b, &c] {
        home.exchange.issue_credential(s, "hr").unwrap();
    }
    let (ia, uri) = entry(home, &home.exchange.export_sd_jwt_vc(&a, None, "hr").unwrap().token);
    let (ib, _) = entry(home, &home.exchange.export_sd_jwt_vc(&b, None, "hr").unwrap().token);
    let (ic, _) = entry(home, &home.exchange.export_sd_jwt_vc(&c, None, "hr").unwrap().token);
    assert_eq!(uri, "https://staffpass.rjz.invalid/statuslists/1");
    assert_eq!(uri, home.exchange.status_list_uri());
    assert_eq!(BTreeSet::from([ia, ib, ic]).len(), 3, "one entry per credential");
    // A second export of the same credential names the same entry.
    assert_eq!(entry(home, &home.exchange.export_sd_jwt_vc(&a, None, "hr").unwrap().token).0, ia);
    let list = published(home);
    assert!(list.len() >= 8192, "padded, so its length says little");
    assert!(!list.get(ia) && !list.get(ib) && !list.get(ic));

    // Revoked: a's bit. Re-issued: b's old credential's bit, and the new
    // one gets an entry of its own when exported. Erased: c's bit.
    home.exchange.revoke_staff(&a, RevocationReason::LeavingOrganisation, "hr").unwrap();
    home.exchange.issue_credential(&b, "hr").unwrap();
    home.exchange.erase_staff(&c, "hr").unwrap();
    let list = published(home);
    assert!(list.get(ia), "revoked");
    assert!(list.get(ib), "superseded");
    assert!(list.get(ic), "erased");
    let (ib2, _) = entry(home, &home.exchange.export_sd_jwt_vc(&b, None, "hr").unwrap().token);
    assert!(ib2 != ib && !published(home).get(ib2));

    // Signed by this trust's issuer key only.
    let token = home.exchange.status_list_token().unwrap();
    let other = net.get("RJ1").exchange.issuer_key();
    assert!(statuslist::verify(&token, &other, &uri, home.exchange.now()).is_err());
}

#[test]
fn the_issuer_metadata_keeps_a_retired_key_while_its_credentials_can_live() {
    let mut net = Net::new(&["RJZ", "RJ1"]);
    let org = net.get("RJZ").org.clone();
    let [k0, k1, k2] = [0, 1, 2].map(|g| fixture::issuer("RJZ", g).public());
    let kids = |net: &Net| -> Vec<String> {
        let meta = net.get("RJZ").exchange.issuer_metadata();
        meta["jwks"]["keys"].as_array().unwrap().iter().map(|k| k["kid"].as_str().unwrap().to_owned()).collect()
    };
    let tp = |k| sdjwt::thumbprint(&k);
    assert_eq!(kids(&net), vec![tp(k0)]);
    // Two rotations: k1 replaces k0, then k2 replaces k1. The node signs
    // with k0 still (its key file is replaced separately), so k0 stays
    // first; k1, retired, is kept while what it signed can live.
    net.change(Change::RotateKey { org: org.clone(), add: k1, retire: Some(k0) });
    net.change(Change::RotateKey { org, add: k2, retire: Some(k1) });
    assert_eq!(kids(&net), vec![tp(k0), tp(k1), tp(k2)]);
    // A credential's lifetime after its retirement, nothing k1 signed lives.
    let days = i64::from(staffpass_node::exchange::Settings::default().credential_validity_days);
    net.clock.advance_secs(days * 86_400 + 3_600);
    assert_eq!(kids(&net), vec![tp(k0), tp(k2)]);
}
