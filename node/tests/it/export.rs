//! The SD-JWT VC export at the home trust (issue 16): the staff member's
//! current credential, every claim or some, verified with the protocol's
//! strict verifier against the trust's issuer metadata; audited; refused
//! for a claim not held and for a revoked credential.

use std::collections::BTreeSet;

use staffpass_node::audit::Action;
use staffpass_node::exchange::Error;
use staffpass_node::testkit::Net;
use staffpass_protocol::claims::{ClaimKind, CstfSubject};
use staffpass_protocol::revocation::RevocationReason;
use staffpass_protocol::sdjwt;

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
