//! When `revoke`, `rotate`, a config update or an org deletion returns, every later check on
//! every thread sees it.

use orgstore::*;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use crate::common::OP;

/// Runs `change` while two readers check `key`/`model` in a loop, once they have been
/// granted 1 000 times between them; after `change` returns, no reader may be granted
/// (checked over the next 10 000 checks).
fn no_grant_after(store: &Store, key: &str, model: &str, change: impl FnOnce()) {
    let gw = store.gateway();
    let done = Arc::new(AtomicBool::new(false));
    let stop = Arc::new(AtomicBool::new(false));
    let stale = Arc::new(AtomicU64::new(0));
    let checked_after = Arc::new(AtomicU64::new(0));
    let granted_before = Arc::new(AtomicU64::new(0));
    let ip = "10.0.0.1".parse().unwrap();
    std::thread::scope(|s| {
        for _ in 0..2 {
            let (gw, done, stop, stale, after, before) = (
                gw.clone(),
                done.clone(),
                stop.clone(),
                stale.clone(),
                checked_after.clone(),
                granted_before.clone(),
            );
            s.spawn(move || {
                while !stop.load(Ordering::Acquire) {
                    let changed = done.load(Ordering::Acquire);
                    let ok = gw.check(&Request::new(key, model, ip)).is_ok();
                    if changed {
                        after.fetch_add(1, Ordering::Relaxed);
                        if ok {
                            stale.fetch_add(1, Ordering::Relaxed);
                        }
                    } else if ok {
                        before.fetch_add(1, Ordering::Relaxed);
                    }
                }
            });
        }
        // The readers are running and the key works: the change has something to stop.
        while granted_before.load(Ordering::Relaxed) < 1_000 {
            std::thread::yield_now();
        }
        change();
        done.store(true, Ordering::Release);
        while checked_after.load(Ordering::Relaxed) < 10_000 {
            std::thread::yield_now();
        }
        stop.store(true, Ordering::Release);
    });
    assert_eq!(
        stale.load(Ordering::Relaxed),
        0,
        "a grant was given after the change returned"
    );
}

fn setup() -> (Store, OrgId) {
    let store = Store::open_temporary().unwrap();
    let org = OrgId::parse("acme").unwrap();
    store
        .orgs()
        .create(&OP, &org, "Acme", &Email::parse("o@acme.io").unwrap())
        .unwrap();
    (store, org)
}

#[test]
fn revoke_is_seen_by_every_thread() {
    let (store, org) = setup();
    let k = store.keys().create(&OP, &org, KeySpec::new("k")).unwrap();
    let key = k.key.expose().to_owned();
    no_grant_after(&store, &key, "m", || {
        store.keys().revoke(&OP, &k.info.id).unwrap();
    });
}

#[test]
fn rotate_is_seen_by_every_thread() {
    let (store, org) = setup();
    let k = store.keys().create(&OP, &org, KeySpec::new("k")).unwrap();
    let key = k.key.expose().to_owned();
    no_grant_after(&store, &key, "m", || {
        store.keys().rotate(&OP, &k.info.id).unwrap();
    });
}

#[test]
fn config_update_is_seen_by_every_thread() {
    let (store, org) = setup();
    let k = store.keys().create(&OP, &org, KeySpec::new("k")).unwrap();
    let key = k.key.expose().to_owned();
    no_grant_after(&store, &key, "gpt-4o", || {
        store
            .org_configs()
            .update(&OP, &org, r#"{"allowed_models":["gpt-4o-mini"]}"#)
            .unwrap();
    });
}

#[test]
fn org_deletion_is_seen_by_every_thread() {
    let (store, org) = setup();
    let k = store.keys().create(&OP, &org, KeySpec::new("k")).unwrap();
    let key = k.key.expose().to_owned();
    no_grant_after(&store, &key, "m", || {
        store.orgs().delete(&OP, &org).unwrap();
    });
}
