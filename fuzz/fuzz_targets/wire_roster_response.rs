//! `/staffpass/roster/1` responses from arbitrary bytes, as a peer
//! answers. What decodes must be canonical; entries are checked as the
//! answer to a fetch (`check_fetched`) and offered to the fixture chain,
//! which must refuse or apply each without panicking.
#![no_main]

use libfuzzer_sys::fuzz_target;
use staffpass_fuzz::fixture;
use staffpass_protocol::wire::roster::{Response, check_fetched};

fuzz_target!(|data: &[u8]| {
    let Ok(resp) = Response::decode(data) else { return };
    assert_eq!(resp.encode(), data, "a decoded roster response is not its value's canonical encoding");
    let f = fixture();
    let Response::Entries(entries) = resp else { return };
    let from = entries.first().map_or(0, |e| e.body.seq);
    let _ = check_fetched(f.chain.agreement(), from, 128, &entries);
    let _ = check_fetched(f.chain.agreement(), 1, 2, &entries);
    let mut chain = f.chain.clone();
    for e in entries {
        let _ = chain.append_at(e, f.now);
    }
    let _ = (chain.seq(), chain.head(), chain.halted().is_some());
});
