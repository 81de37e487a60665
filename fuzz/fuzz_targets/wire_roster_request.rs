//! `/staffpass/roster/1` requests (heads, fetch) from arbitrary bytes, as
//! a peer asks. What decodes must be canonical; a fetch is then answered
//! from the fixture chain as the node slices it.
#![no_main]

use libfuzzer_sys::fuzz_target;
use staffpass_fuzz::fixture;
use staffpass_protocol::wire::roster::{MAX_ENTRIES, Request};

fuzz_target!(|data: &[u8]| {
    let Ok(req) = Request::decode(data) else { return };
    assert_eq!(req.encode(), data, "a decoded roster request is not its value's canonical encoding");
    let f = fixture();
    match &req {
        Request::Heads(heads) => {
            for h in heads {
                let _ = f.chain.hash_at(h.seq).map(|held| held == h.hash);
            }
        }
        Request::Fetch { from, limit, .. } => {
            let n = usize::from((*limit).min(MAX_ENTRIES));
            let served = f.chain.entries_from(*from).iter().take(n).count();
            assert!(served <= n);
        }
    }
});
