//! The bodies of the cargo-fuzz targets that need only orgstore's public API, shared by the
//! targets in `fuzz/fuzz_targets/` and by `tests/it/fuzz_corpus.rs`, which replays the
//! checked-in corpus on stable Rust (both include this directory with `#[path]`).
//!
//! Each function takes the fuzzer's bytes and returns `Err` with a description when an
//! invariant is broken; a panic anywhere below is a bug too. Errors the library reports for
//! bad input are expected and fine. The targets that need the library's internals
//! (`config_patch`, `record_decode`) live in `orgstore::fuzz_support`, behind the
//! library's non-default `fuzzing` feature.

/// What a broken invariant reports.
pub type Failure = String;

macro_rules! ensure {
    ($cond:expr, $($msg:tt)+) => {
        if !$cond {
            return Err(format!($($msg)+));
        }
    };
}

mod key_parse;
mod model_ops;
mod policy_dir;

pub use key_parse::key_parse;
pub use model_ops::{Op, model_ops, run_model};
pub use policy_dir::policy_dir;
