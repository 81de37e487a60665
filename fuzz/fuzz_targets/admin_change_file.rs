//! The admin CLI's roster files (a change file, or a CHAIN file of
//! entries) from arbitrary bytes, as `staffpass-admin roster sign`,
//! `show`, `verify` and `append` read them: parsed (`parse_file`), each
//! entry described for people, checked without signatures against the
//! fixture roster (`dry_run`), offered to the fixture chain, and a chain
//! built and verified entry by entry (`build_chain`). No panic, whatever
//! the JSON.
#![no_main]

use std::path::Path;

use libfuzzer_sys::fuzz_target;
use staffpass_admin::roster::{RosterFile, build_chain, describe, dry_run, parse_file};
use staffpass_fuzz::fixture;

fuzz_target!(|data: &[u8]| {
    let Ok(file) = parse_file(Path::new("change.json"), data) else { return };
    let f = fixture();
    match file {
        RosterFile::Entry(entry) => {
            let _ = describe(&entry.body.change);
            let _ = dry_run(None, &entry.body);
            let _ = dry_run(Some(f.chain.state()), &entry.body);
            let mut chain = f.chain.clone();
            let _ = chain.append_at(*entry, f.now);
        }
        RosterFile::Chain(entries) => {
            for e in &entries {
                let _ = describe(&e.body.change);
            }
            let (chain, failed) = build_chain(entries);
            if let (Some(chain), None) = (chain, failed) {
                let _ = (chain.seq(), chain.head());
            }
        }
    }
});
