//! `cargo +nightly fuzz run policy_dir`: see `fuzz/bodies/policy_dir.rs`.
#![no_main]

use libfuzzer_sys::fuzz_target;

#[path = "../bodies/mod.rs"]
#[allow(dead_code, unused_imports)]
mod bodies;

fuzz_target!(|data: &[u8]| {
    if let Err(failure) = bodies::policy_dir(data) {
        panic!("policy_dir: {failure}");
    }
});
