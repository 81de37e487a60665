use staffpass_protocol::revocation::Revocations;
use staffpass_protocol::{testkit, verify_bundle};

#[test]
fn the_fixture_bundle_verifies() {
    let r = testkit::roster();
    let parts = testkit::bundle_parts();
    let b = parts.build(&testkit::issuer("RJZ", 0));
    let v = verify_bundle(
        &b,
        &testkit::node("RJZ"),
        &testkit::org("RJ1"),
        &testkit::rosters(&r.chain),
        &Revocations::default(),
        testkit::now(),
    )
    .expect("valid bundle");
    assert_eq!(v.claims.len(), 3);
}
