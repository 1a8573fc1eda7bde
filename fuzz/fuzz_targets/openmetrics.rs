//! Feeds arbitrary bytes to the OpenMetrics parser and reads every entry through every
//! accessor: no input may panic.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = tocsin::ingest::parse::exercise(data, true);
});
