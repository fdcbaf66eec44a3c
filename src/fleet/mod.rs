//! The fleet: gateway replicas sharing one truth on PostgreSQL (feature `fleet`).
//!
//! This file only declares the parts; see each for its design.

// Started by the store's fleet mode (and the test hooks of the `fuzzing` feature).
#[cfg_attr(not(any(test, feature = "fuzzing")), allow(dead_code))]
pub(crate) mod budget;
#[cfg_attr(not(any(test, feature = "fuzzing")), allow(dead_code))]
pub(crate) mod lease;
#[cfg_attr(not(any(test, feature = "fuzzing")), allow(dead_code))]
pub(crate) mod lease_rate;
#[cfg_attr(not(any(test, feature = "fuzzing")), allow(dead_code))]
mod lease_sql;
#[cfg_attr(not(any(test, feature = "fuzzing")), allow(dead_code))]
pub(crate) mod rate;

#[allow(unused_imports)]
pub(crate) use lease::{LIMITS_SCHEMA, LimitsHandle, LimitsOptions, start_limits};
