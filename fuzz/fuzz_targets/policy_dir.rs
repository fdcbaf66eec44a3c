//! `cargo +nightly fuzz run policy_dir`: see `orgstore::fuzz_support::policy_dir`.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Err(failure) = orgstore::fuzz_support::policy_dir(data) {
        panic!("policy_dir: {failure}");
    }
});
