//! One roster entry from arbitrary bytes, as it arrives by gossip (or in
//! a file): canonical, then applied to a new chain and to the fixture
//! chain (append, equivocation, resolution paths) without panicking.
#![no_main]

use libfuzzer_sys::fuzz_target;
use staffpass_fuzz::fixture;
use staffpass_protocol::roster::{self, Chain};
use staffpass_protocol::wire::roster::decode_entry;

fuzz_target!(|data: &[u8]| {
    let Ok(entry) = decode_entry(data) else { return };
    assert_eq!(staffpass_protocol::encoding::to_bytes(&entry), data, "a decoded entry is not canonical");
    let f = fixture();
    let _ = roster::check_clock(&entry, f.now);
    let _ = roster::apply(None, &entry);
    let _ = roster::apply(Some(f.chain.state()), &entry);
    let _ = Chain::new(entry.clone());
    let mut chain = f.chain.clone();
    match chain.append_at(entry, f.now) {
        Ok(_) => {
            // Whatever was taken replays to the same state.
            let replayed = Chain::from_entries(chain.entries().to_vec()).expect("an accepted chain replays");
            assert_eq!(replayed.state(), chain.state());
        }
        Err(_) => {
            if let Some(eq) = chain.halted() {
                let chosen = eq.existing.hash();
                if let Ok(p) = chain.prepare_override(&chosen) {
                    let _ = chain.commit(p);
                }
            }
        }
    }
});
