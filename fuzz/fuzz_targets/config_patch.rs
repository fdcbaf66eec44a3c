//! `cargo +nightly fuzz run config_patch`: see `orgstore::fuzz_support::config_patch`.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Err(failure) = orgstore::fuzz_support::config_patch(data) {
        panic!("config_patch: {failure}");
    }
});
