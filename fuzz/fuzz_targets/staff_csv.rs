//! The staff CSV import (an ESR-style export, `POST /v1/staff` as
//! `text/csv`) from arbitrary bytes: `parse_csv` returns good rows and
//! row errors, or a file error, never a panic.
#![no_main]

use libfuzzer_sys::fuzz_target;
use staffpass_fuzz::fixture;
use staffpass_node::exchange::staff::parse_csv;

fuzz_target!(|data: &[u8]| {
    if let Ok((good, errors)) = parse_csv(data, fixture().today) {
        // A row is either good or an error, never both; lines are counted from the header.
        for (line, _) in &good {
            assert!(*line >= 2, "a data row at line {line}");
        }
        let _ = errors.len();
    }
});
