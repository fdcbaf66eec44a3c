//! The integration tests, one binary (Cedar is linked once): a module per concern.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

#[cfg(feature = "server")]
mod admin_cli_policy;
#[cfg(feature = "server")]
mod admin_http;
#[cfg(feature = "server")]
mod admin_server;
mod cli;
mod cli_policy;
mod common;
mod compat;
mod concurrency;
mod config;
mod crash;
#[cfg(feature = "fleet")]
mod fleet;
#[cfg(feature = "fleet")]
mod fleet_cli;
#[cfg(feature = "fleet")]
mod fleet_failures;
#[cfg(all(feature = "fleet", feature = "fuzzing"))]
mod fleet_limits;
#[cfg(feature = "fleet")]
mod fleet_races;
mod fuzz_corpus;
mod gateway;
mod gateway_equivalence;
mod gateway_threads;
mod hardening_gateway;
mod hardening_inputs;
mod hardening_limits;
mod hardening_policy;
mod hardening_secrets;
mod hardening_store;
mod hostile_input;
#[cfg(feature = "tower")]
mod http_layer;
#[cfg(feature = "tower")]
mod http_layer_alloc;
mod invites;
mod isolation;
mod keys;
mod limits;
mod members;
mod module_graph;
mod orgs;
#[cfg(feature = "fleet")]
#[path = "../support/pg_cluster.rs"]
mod pg_cluster;
mod policy_export;
mod policy_gateway;
mod policy_load;
mod policy_matrix;
mod policy_store;
mod records;
mod reopen;
mod secrets;
