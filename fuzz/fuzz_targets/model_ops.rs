//! `cargo +nightly fuzz run model_ops`: see `fuzz/bodies/model_ops.rs`.
#![no_main]

use libfuzzer_sys::fuzz_target;

#[path = "../bodies/mod.rs"]
#[allow(dead_code, unused_imports)]
mod bodies;

fuzz_target!(|data: &[u8]| {
    if let Err(failure) = bodies::model_ops(data) {
        panic!("model_ops: {failure}");
    }
});
