//! `cargo +nightly fuzz run key_parse`: see `fuzz/bodies/key_parse.rs`.
#![no_main]

use libfuzzer_sys::fuzz_target;

#[path = "../bodies/mod.rs"]
#[allow(dead_code, unused_imports)]
mod bodies;

fuzz_target!(|data: &[u8]| {
    if let Err(failure) = bodies::key_parse(data) {
        panic!("key_parse: {failure}");
    }
});
