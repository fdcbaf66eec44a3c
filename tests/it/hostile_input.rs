//! Bad input: for each row of the table in `docs/hostile-input.md`, a clear error that names
//! the field, nothing changed in the store, and no panic. One module per kind of input; the
//! fixture and the before/after check are shared here.

mod config;
mod keys;
mod names;
mod store_file;

use std::net::{IpAddr, Ipv4Addr};
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::path::Path;

use orgstore::{
    Budget, Email, Error, ErrorKind, ImportKey, KeyFormatError, KeyId, KeySpec, OrgId, Period,
    Request, Role, SecretKey, Store, Timestamp, Usd, key_from_headers,
};
use serde_json::json;

use crate::common::ConfigJson;
use crate::common::{OP, email, org};

/// A store with org `acme` (owner `owner@acme.io`, one admin, one key, a config version 2).
fn fixture() -> (Store, OrgId) {
    let store = Store::open_temporary().unwrap();
    let acme = org("acme");
    store
        .orgs()
        .create(&OP, &acme, "Acme", &email("owner@acme.io"))
        .unwrap();
    store
        .members()
        .add(&OP, &acme, &email("admin@acme.io"), Role::Admin)
        .unwrap();
    store
        .keys()
        .create(&OP, &acme, KeySpec::new("svc").rpm(10))
        .unwrap();
    store
        .org_configs()
        .update(&OP, &acme, r#"{"rate_limiting":{"rpm":100},"providers":{"openai":{"api_key":"sk-hostile-0123456789"}}}"#)
        .unwrap();
    (store, acme)
}

/// Everything observable through the API, for before/after comparisons.
fn observe(store: &Store) -> String {
    let mut out = String::new();
    for o in store.orgs().list(&OP).unwrap() {
        out.push_str(&format!("{o:?}\n"));
        for v in store.org_configs().history(&OP, &o.id).unwrap() {
            out.push_str(&format!(
                "{} {} {}\n",
                v.version,
                v.active,
                v.config.revealed_value()
            ));
        }
        out.push_str(&format!(
            "{:?}\n",
            store.members().list(&OP, &o.id).unwrap()
        ));
        out.push_str(&format!("{:?}\n", store.keys().list(&OP, &o.id).unwrap()));
        out.push_str(&format!(
            "{:?}\n",
            store.audit().list(&OP, &o.id, usize::MAX).unwrap()
        ));
    }
    out
}

/// Runs `f` against the fixture: it must fail with `kind` naming `field`, change nothing
/// and not panic. Returns the error for further checks.
fn refused<T: std::fmt::Debug>(
    kind: ErrorKind,
    field: &str,
    f: impl FnOnce(&Store, &OrgId) -> Result<T, Error>,
) -> Error {
    let (store, acme) = fixture();
    let before = observe(&store);
    let got = catch_unwind(AssertUnwindSafe(|| f(&store, &acme)))
        .unwrap_or_else(|_| panic!("panicked (field {field})"));
    let err = got.expect_err("hostile input was accepted");
    assert_eq!((err.kind(), err.field()), (kind, field), "{err}");
    assert!(!err.message().is_empty());
    assert!(
        observe(&store) == before,
        "a refused call changed the store ({err})"
    );
    err
}
