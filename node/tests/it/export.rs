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

/// Every resource of a FHIR Bundle export, by type.
fn resources<'a>(bundle: &'a serde_json::Value, kind: &str) -> Vec<&'a serde_json::Value> {
    bundle["entry"].as_array().unwrap().iter().map(|e| &e["resource"]).filter(|r| r["resourceType"] == kind).collect()
}

#[test]
fn the_home_exports_a_fhir_bundle_audited_without_the_ni_number() {
    let net = Net::new(&["RJZ", "RJ1"]);
    let home = net.get("RJZ");
    let staff = home.import_staff("12345678-1");
    let cred = home.exchange.issue_credential(&staff, "hr").unwrap();
    let out = home.exchange.export_fhir(&staff, None, "cert:hr-officer").unwrap();
    let b: serde_json::Value = serde_json::from_str(&out.token).unwrap();
    assert_eq!(b["resourceType"], "Bundle");
    assert_eq!(out.claims.len(), cred.disclosures.len());
    let org = resources(&b, "Organization");
    assert_eq!(org.len(), 1, "the home only");
    assert_eq!(org[0]["identifier"][0]["value"], "RJZ");
    let p = resources(&b, "Practitioner");
    assert_eq!(p[0]["identifier"][0]["value"], staff.to_string());
    let ni = cred
        .disclosures
        .iter()
        .find_map(|d| match &d.claim {
            staffpass_protocol::claims::Claim::Identity(i) => Some(i.ni_number.as_str().to_owned()),
            _ => None,
        })
        .unwrap();
    assert!(!out.token.contains(&ni), "the NI number was exported");
    let prov = resources(&b, "Provenance");
    assert_eq!(prov[0]["entity"][0]["what"]["identifier"]["value"], cred.signed.body.id.to_string());
    let exports: Vec<_> =
        home.audit.for_staff(&staff, 100).unwrap().into_iter().filter(|e| e.event.action == Action::Export).collect();
    assert_eq!(exports.len(), 1);
    assert_eq!(exports[0].event.reason.as_deref(), Some("fhir"));

    // Without the identity claim: no name, no birth date.
    let some: BTreeSet<ClaimKind> = [ClaimKind::Dbs].into();
    let part = home.exchange.export_fhir(&staff, Some(&some), "hr").unwrap();
    let b: serde_json::Value = serde_json::from_str(&part.token).unwrap();
    assert!(resources(&b, "Practitioner")[0].get("name").is_none());
    // Revoked: refused, like the wallet copy.
    home.exchange.revoke_staff(&staff, RevocationReason::LeavingOrganisation, "hr").unwrap();
    assert_eq!(home.exchange.export_fhir(&staff, None, "hr").unwrap_err().code(), "conflict");
}

#[tokio::test]
async fn the_host_exports_a_received_passport_as_fhir_until_it_is_erased() {
    let net = Net::new(&["RJZ", "RJ1"]);
    let (home, host) = (net.get("RJZ"), net.get("RJ1"));
    let staff = home.import_staff("12345678-1");
    let consent = home.grant(&staff, &host.org).unwrap();
    let id = consent.signed.consent().id;
    assert_eq!(home.deliver().await, 1);

    let out = host.exchange.export_received_fhir(&id, "cert:host-hr").unwrap();
    let b: serde_json::Value = serde_json::from_str(&out.token).unwrap();
    let orgs: Vec<String> = resources(&b, "Organization")
        .iter()
        .map(|o| o["identifier"][0]["value"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(orgs, vec!["RJZ".to_string(), "RJ1".to_string()], "home, then host");
    assert_eq!(out.claims.len(), 3, "the consented claims only");
    let roles = resources(&b, "PractitionerRole");
    assert_eq!(roles.len(), 1, "the host role (no assignment claim was shared)");
    assert_eq!(roles[0]["period"]["end"], consent.signed.consent().not_after.to_string());
    let prov = resources(&b, "Provenance");
    assert_eq!(prov[0]["entity"][1]["what"]["identifier"]["value"], id.to_string());
    assert_eq!(prov[0]["extension"][0]["valueDateTime"], consent.signed.consent().not_after.to_string());
    let audited: Vec<_> = host
        .audit
        .for_staff(&staff, 100)
        .unwrap()
        .into_iter()
        .filter(|e| e.event.action == Action::Export && e.event.reason.as_deref() == Some("fhir"))
        .collect();
    assert_eq!(audited.len(), 1);

    let exported_at = host.exchange.now();
    let held = host.exchange.received_one(&id).unwrap();
    assert_eq!(held.exports.len(), 1, "the export is listed with the passport");
    assert_eq!((held.exports[0].format.as_str(), held.exports[0].at), ("fhir", exported_at));

    // Withdrawn and erased at the host: nothing left to export, and the
    // copy made is still listed, for the host to remove.
    home.exchange.withdraw_consent(&id, "hr").unwrap();
    home.deliver().await;
    let erased = host.exchange.received_one(&id).unwrap();
    assert_eq!(erased.status, "erased");
    assert_eq!(erased.exports, held.exports, "the erased passport's exports are still listed");
    let listed = host.exchange.received().unwrap();
    assert_eq!(listed.iter().find(|r| r.consent == id).unwrap().exports, held.exports);
    let e = host.exchange.export_received_fhir(&id, "hr").unwrap_err();
    assert_eq!(e.code(), "conflict", "{e}");
    assert!(e.to_string().contains("erased"), "{e}");
    let unknown = staffpass_protocol::ConsentId::from_bytes([1; 16]);
    assert_eq!(host.exchange.export_received_fhir(&unknown, "hr").unwrap_err().code(), "not-found");
}

/// Issue 16: every offer carries an SD-JWT VC presentation of exactly the
/// consented claims; the host checks it against the bundle, keeps it
/// sealed with the passport, hands it to its HR system, and erases it with
/// the passport.
#[tokio::test]
async fn the_host_exports_the_presentation_the_home_sent_with_the_bundle() {
    use staffpass_protocol::wire::exchange::Request;
    let net = Net::new(&["RJZ", "RJ1"]);
    let (home, host) = (net.get("RJZ"), net.get("RJ1"));
    let staff = home.import_staff("12345678-1");
    let consent = home.grant(&staff, &host.org).unwrap();
    let id = consent.signed.consent().id;
    let items = home.exchange.outbox().unwrap();
    let Request::PresentedOffer { presentation, .. } = home.exchange.outbox_request(&items[0]).unwrap() else {
        panic!("the offer carries no presentation")
    };
    assert_eq!(home.deliver().await, 1);

    let out = host.exchange.export_received_sd_jwt_vc(&id, "cert:host-hr").unwrap();
    assert_eq!(out.token, presentation, "what was checked on arrival is what is handed over");
    // Verifiable with the home's published key alone.
    let v = sdjwt::verify(&out.token, &home.exchange.issuer_key(), host.exchange.now()).unwrap();
    let consented: BTreeSet<String> = consent.signed.consent().claims.iter().map(ToString::to_string).collect();
    assert_eq!(v.claims.keys().cloned().collect::<BTreeSet<_>>(), consented, "exactly the consented claims");
    let cred = home.exchange.credential(&home.exchange.consent(&id).unwrap().credential).unwrap();
    let ends = cred.signed.body.expires_at.min(consent.signed.consent().not_after);
    assert_eq!(v.exp(), Some(ends), "expires when the shared passport does");
    assert!(v.payload["status"]["status_list"]["idx"].is_u64(), "the credential's status list entry");
    let listed = host.exchange.received_one(&id).unwrap().exports;
    assert_eq!(listed.iter().map(|x| x.format.as_str()).collect::<Vec<_>>(), ["sd-jwt-vc"]);

    // Withdrawn: erased with the passport.
    home.exchange.withdraw_consent(&id, "hr").unwrap();
    home.deliver().await;
    let e = host.exchange.export_received_sd_jwt_vc(&id, "hr").unwrap_err();
    assert_eq!(e.code(), "conflict", "{e}");
}

/// A bundle whose standard-form copy disagrees with it is refused with a
/// typed rejection, and nothing of it is kept; a legacy offer (an older
/// node, no copy) is accepted, and its SD-JWT VC export is a conflict.
#[tokio::test]
async fn a_bundle_whose_presentation_disagrees_is_refused() {
    use staffpass_protocol::bundle::Rejection;
    use staffpass_protocol::receipt::Outcome;
    use staffpass_protocol::wire::exchange::Request;
    let net = Net::new(&["RJZ", "RJ1"]);
    let (home, host) = (net.get("RJZ"), net.get("RJ1"));
    let staff = home.import_staff("12345678-1");
    let id = home.grant(&staff, &host.org).unwrap().signed.consent().id;
    let items = home.exchange.outbox().unwrap();
    let Request::PresentedOffer { id: mid, bundle, presentation } = home.exchange.outbox_request(&items[0]).unwrap()
    else {
        panic!("the offer carries no presentation")
    };
    // The home's wallet copy of every claim: signed by the right key, but
    // more than the consent shares.
    let all = home.exchange.export_sd_jwt_vc(&staff, None, "hr").unwrap().token;
    let wrong = Request::PresentedOffer { id: mid, bundle: bundle.clone(), presentation: all };
    let resp = host.exchange.receive(&home.node, wrong).unwrap();
    assert!(
        matches!(resp.receipt.body.outcome, Outcome::Rejected { reason: Rejection::PresentationMismatch }),
        "{:?}",
        resp.receipt.body.outcome
    );
    assert!(host.exchange.received_one(&id).is_err(), "nothing of a refused offer is kept");
    let garbled = Request::PresentedOffer {
        id: staffpass_protocol::MessageId::from_bytes([3; 16]),
        bundle: bundle.clone(),
        presentation: presentation.replace('.', "!"),
    };
    let resp = host.exchange.receive(&home.node, garbled).unwrap();
    assert!(matches!(resp.receipt.body.outcome, Outcome::Rejected { reason: Rejection::BadPresentation }));

    let legacy = Request::Offer { id: staffpass_protocol::MessageId::from_bytes([4; 16]), bundle };
    let resp = host.exchange.receive(&home.node, legacy).unwrap();
    assert!(matches!(resp.receipt.body.outcome, Outcome::Received { .. }), "{:?}", resp.receipt.body.outcome);
    assert_eq!(host.exchange.received_one(&id).unwrap().status, "active");
    let e = host.exchange.export_received_sd_jwt_vc(&id, "hr").unwrap_err();
    assert_eq!(e.code(), "conflict", "{e}");
    assert!(host.exchange.export_received_fhir(&id, "hr").is_ok(), "the FHIR form needs no copy");
}
