//! `cargo +nightly fuzz run model_ops`: see `orgstore::fuzz_support::model_ops`.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Err(failure) = orgstore::fuzz_support::model_ops(data) {
        panic!("model_ops: {failure}");
    }
});
