//! `/staffpass/exchange/1` requests (offer, presented offer, withdrawal,
//! revocation) from
//! arbitrary bytes, as a peer sends them. What decodes must be the one
//! canonical encoding of its value, and is then judged by the receiver's
//! rule for its kind against the fixture roster: no panic either way.
#![no_main]

use libfuzzer_sys::fuzz_target;
use staffpass_fuzz::fixture;
use staffpass_protocol::bundle::Held;
use staffpass_protocol::wire::exchange::Request;
use staffpass_protocol::{verify_bundle, verify_revocation, verify_withdrawal};

fuzz_target!(|data: &[u8]| {
    let Ok(req) = Request::decode(data) else { return };
    assert_eq!(req.encode(), data, "a decoded request is not its value's canonical encoding");
    let f = fixture();
    let held = Held { issuer: &f.home, agreement: Some(f.chain.agreement()) };
    match &req {
        Request::Offer { bundle, .. } => {
            let _ = verify_bundle(bundle, &f.sender, &f.receiver, &f.rosters, &f.status, f.now);
        }
        Request::PresentedOffer { bundle, presentation, .. } => {
            if let Ok(p) = verify_bundle(bundle, &f.sender, &f.receiver, &f.rosters, &f.status, f.now) {
                let _ = staffpass_protocol::bundle::check_presentation(presentation, &p, &f.rosters, f.now);
            }
        }
        Request::Withdraw { withdrawal, .. } => {
            let _ = verify_withdrawal(withdrawal, &f.sender, &f.receiver, None, &f.rosters, f.now);
            let _ = verify_withdrawal(withdrawal, &f.sender, &f.receiver, Some(held), &f.rosters, f.now);
        }
        Request::Revoke { revocation, .. } => {
            let _ = verify_revocation(revocation, &f.sender, None, &f.rosters, f.now);
            let _ = verify_revocation(revocation, &f.sender, Some(held), &f.rosters, f.now);
        }
    }
    let _ = (req.kind().as_str(), req.id());
});
