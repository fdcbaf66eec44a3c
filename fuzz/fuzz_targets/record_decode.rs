//! `cargo +nightly fuzz run record_decode`: see `orgstore::fuzz_support::record_decode`.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Err(failure) = orgstore::fuzz_support::record_decode(data) {
        panic!("record_decode: {failure}");
    }
});
