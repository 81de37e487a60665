//! `/staffpass/exchange/1` responses (signed receipts) from arbitrary
//! bytes, as the receiving peer answers. What decodes must be canonical,
//! and is checked by the sender's rule (`verify_receipt`) for each kind of
//! message it could answer.
#![no_main]

use libfuzzer_sys::fuzz_target;
use staffpass_fuzz::fixture;
use staffpass_protocol::receipt::Expected;
use staffpass_protocol::verify_receipt;
use staffpass_protocol::wire::exchange::{Kind, Response};

fuzz_target!(|data: &[u8]| {
    let Ok(resp) = Response::decode(data) else { return };
    assert_eq!(resp.encode(), data, "a decoded response is not its value's canonical encoding");
    let f = fixture();
    let b = &resp.receipt.body;
    let _ = (b.outcome.name(), b.outcome.label());
    for kind in [Kind::Offer, Kind::Withdraw, Kind::Revoke] {
        // As the answer to the message it names (so the checks go past the id).
        let expect = Expected { message: b.message, kind, receiver: &f.receiver, agreement: f.chain.agreement() };
        let _ = verify_receipt(&resp.receipt, &expect, &f.rosters, f.now);
        let _ = b.outcome.fits(kind);
    }
});
