//! The staff JSON import (`POST /v1/staff` as `application/json`) from
//! arbitrary bytes: `parse_json` returns good records and record errors,
//! or a file error, never a panic.
#![no_main]

use libfuzzer_sys::fuzz_target;
use staffpass_fuzz::fixture;
use staffpass_node::exchange::staff::parse_json;

fuzz_target!(|data: &[u8]| {
    let _ = parse_json(data, fixture().today);
});
