//! `cargo +nightly fuzz run key_parse`: see `orgstore::fuzz_support::key_parse`.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Err(failure) = orgstore::fuzz_support::key_parse(data) {
        panic!("key_parse: {failure}");
    }
});
