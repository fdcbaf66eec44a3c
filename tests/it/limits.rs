//! Rate limits and budgets: exact under concurrency, aligned to UTC periods, persistent.

use orgstore::*;
use std::net::IpAddr;
use std::sync::atomic::{AtomicU64, Ordering};

use crate::common::OP;

fn ip() -> IpAddr {
    "10.0.0.1".parse().unwrap()
}
fn usd(s: &str) -> Usd {
    Usd::parse(s).unwrap()
}

fn org_with(store: &Store, config: &str) -> OrgId {
    let org = OrgId::parse("acme").unwrap();
    store
        .orgs()
        .create(&OP, &org, "Acme", &Email::parse("o@acme.io").unwrap())
        .unwrap();
    if !config.is_empty() {
        store.org_configs().update(&OP, &org, config).unwrap();
    }
    org
}

#[test]
fn no_budget_overshoot_under_concurrency() {
    let store = Store::open_temporary().unwrap();
    let org = org_with(&store, "");
    let spec = KeySpec::new("k").budget(Budget::new(usd("1"), Period::Monthly));
    let key = store
        .keys()
        .create(&OP, &org, spec)
        .unwrap()
        .key
        .expose()
        .to_owned();
    let gw = store.gateway();
    let admitted = AtomicU64::new(0);
    std::thread::scope(|s| {
        for t in 0..8 {
            let (gw, key, admitted) = (gw.clone(), &key, &admitted);
            s.spawn(move || {
                for i in 0..200 {
                    let req = Request::new(key, "m", ip()).estimate(usd("0.03"));
                    if let Ok(g) = gw.check(&req) {
                        admitted.fetch_add(1, Ordering::Relaxed);
                        // Real cost differs from the estimate by at most a cent.
                        let cost = if (t + i) % 2 == 0 {
                            usd("0.02")
                        } else {
                            usd("0.04")
                        };
                        gw.record_usage(&g, Usage::new(10, 10, cost));
                    }
                }
            });
        }
    });
    let n = admitted.load(Ordering::Relaxed);
    let spent = store
        .keys()
        .usage(&OP, &store.keys().list(&OP, &org).unwrap()[0].id)
        .unwrap();
    let spent = spent.budget.unwrap().spent.micros();
    assert!(n >= 20, "too few admitted: {n}");
    // Admitted spend stays within the limit plus one request's estimate error per admission
    // that settled above its estimate; reservations alone never exceed the limit.
    assert!(
        n * 30_000 <= 1_000_000,
        "reservations exceeded the limit: {n}"
    );
    assert!(spent <= 1_000_000 + 10_000 * n as i64, "spent {spent}");
}

#[test]
fn budgets_reset_on_utc_calendar_boundaries() {
    let store = Store::open_temporary().unwrap();
    let org = org_with(&store, "");
    let spec = KeySpec::new("k").budget(Budget::new(usd("1"), Period::Monthly));
    let key = store
        .keys()
        .create(&OP, &org, spec)
        .unwrap()
        .key
        .expose()
        .to_owned();
    let gw = store.gateway();
    let at = |s: &str| Timestamp::parse(s).unwrap();
    let req = Request::new(&key, "m", ip()).estimate(usd("0.6"));
    let g = gw.check_at(&req, at("2031-01-31T23:00:00Z")).unwrap();
    gw.record_usage(&g, Usage::new(1, 1, usd("0.6")));
    let d = gw.check_at(&req, at("2031-01-31T23:59:59Z")).unwrap_err();
    match d {
        Denial::BudgetExceeded {
            scope: Scope::Key,
            resets_at,
            remaining,
            requested,
        } => {
            assert_eq!((remaining, requested), (usd("0.4"), usd("0.6")));
            assert_eq!(resets_at, Some(at("2031-02-01T00:00:00Z")));
        }
        other => panic!("{other:?}"),
    }
    assert!(gw.check_at(&req, at("2031-02-01T00:00:00Z")).is_ok());
}

#[test]
fn weekly_budget_resets_on_monday() {
    let store = Store::open_temporary().unwrap();
    let org = org_with(&store, r#"{"budgets":{"limit":1,"period":"weekly"}}"#);
    let key = store
        .keys()
        .create(&OP, &org, KeySpec::new("k"))
        .unwrap()
        .key
        .expose()
        .to_owned();
    let gw = store.gateway();
    let at = |s: &str| Timestamp::parse(s).unwrap();
    let req = Request::new(&key, "m", ip()).estimate(usd("0.7"));
    // 2031-03-09 is a Sunday.
    let g = gw.check_at(&req, at("2031-03-09T12:00:00Z")).unwrap();
    gw.record_usage(&g, Usage::new(1, 1, usd("0.7")));
    assert!(matches!(
        gw.check_at(&req, at("2031-03-09T23:59:00Z")),
        Err(Denial::BudgetExceeded {
            scope: Scope::Org,
            ..
        })
    ));
    assert!(gw.check_at(&req, at("2031-03-10T00:00:00Z")).is_ok());
}

#[test]
fn soft_budget_allows_and_flags() {
    let store = Store::open_temporary().unwrap();
    let org = org_with(
        &store,
        r#"{"budgets":{"limit":1,"hard":false,"warn_threshold":0.5}}"#,
    );
    let key = store
        .keys()
        .create(&OP, &org, KeySpec::new("k"))
        .unwrap()
        .key
        .expose()
        .to_owned();
    let gw = store.gateway();
    let g = gw
        .check(&Request::new(&key, "m", ip()).estimate(usd("0.6")))
        .unwrap();
    assert!(g.budget_warning());
    assert!(!g.over_soft_budget());
    gw.record_usage(&g, Usage::new(1, 1, usd("0.6")));
    let g = gw
        .check(&Request::new(&key, "m", ip()).estimate(usd("0.6")))
        .unwrap();
    assert!(g.over_soft_budget());
}

#[test]
fn tokens_per_minute_counts_recorded_usage() {
    let store = Store::open_temporary().unwrap();
    let org = org_with(&store, "");
    let key = store
        .keys()
        .create(&OP, &org, KeySpec::new("k").tpm(1000))
        .unwrap()
        .key
        .expose()
        .to_owned();
    let gw = store.gateway();
    let g = gw.check(&Request::new(&key, "m", ip())).unwrap();
    gw.record_usage(&g, Usage::new(800, 400, Usd::ZERO));
    let d = gw.check(&Request::new(&key, "m", ip())).unwrap_err();
    assert!(
        matches!(
            d,
            Denial::RateLimited {
                scope: Scope::Key,
                tokens: true,
                ..
            }
        ),
        "{d:?}"
    );
    // Recording the same grant twice does not count twice.
    gw.record_usage(&g, Usage::new(800, 400, Usd::ZERO));
}

#[test]
fn rate_limit_denial_carries_retry_after_and_headers() {
    let store = Store::open_temporary().unwrap();
    let org = org_with(&store, "");
    let key = store
        .keys()
        .create(&OP, &org, KeySpec::new("k").rpm(2))
        .unwrap()
        .key
        .expose()
        .to_owned();
    let gw = store.gateway();
    // All three at one instant, so the answer does not depend on how fast the test runs.
    let at = Timestamp::now();
    let h = gw
        .check_at(&Request::new(&key, "m", ip()), at)
        .unwrap()
        .rate_headers()
        .unwrap();
    assert_eq!((h.limit, h.remaining), (2, 1));
    gw.check_at(&Request::new(&key, "m", ip()), at).unwrap();
    match gw.check_at(&Request::new(&key, "m", ip()), at).unwrap_err() {
        Denial::RateLimited { retry_after, .. } => {
            // Both of the minute's requests were used at once: the next fits when that
            // minute is over.
            assert_eq!(retry_after.as_secs(), 60, "{retry_after:?}");
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn spend_survives_restart_and_new_budgets_count_this_period() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("s.redb");
    let (id, key);
    {
        let store = Store::open(&path).unwrap();
        let org = org_with(&store, "");
        let c = store.keys().create(&OP, &org, KeySpec::new("k")).unwrap();
        (id, key) = (c.info.id, c.key.expose().to_owned());
        let gw = store.gateway();
        let g = gw.check(&Request::new(&key, "m", ip())).unwrap();
        gw.record_usage(&g, Usage::new(1, 1, usd("0.5")));
        // Dropping the store flushes the spend.
    }
    let store = Store::open(&path).unwrap();
    // A budget added now counts the 0.5 already spent this month.
    let spec = KeySpec::new("k").budget(Budget::new(usd("0.6"), Period::Monthly));
    store.keys().update(&OP, &id, spec).unwrap();
    let gw = store.gateway();
    let d = gw
        .check(&Request::new(&key, "m", ip()).estimate(usd("0.2")))
        .unwrap_err();
    assert!(
        matches!(
            d,
            Denial::BudgetExceeded {
                scope: Scope::Key,
                ..
            }
        ),
        "{d:?}"
    );
    let u = store.keys().usage(&OP, &id).unwrap();
    assert_eq!(u.budget.unwrap().spent, usd("0.5"));
    assert!(
        gw.check(&Request::new(&key, "m", ip()).estimate(usd("0.1")))
            .is_ok()
    );
}

#[test]
fn explicit_flush_writes_spend() {
    let store = Store::open_temporary().unwrap();
    let org = org_with(&store, r#"{"budgets":{"limit":10}}"#);
    let key = store
        .keys()
        .create(&OP, &org, KeySpec::new("k"))
        .unwrap()
        .key
        .expose()
        .to_owned();
    let gw = store.gateway();
    let g = gw.check(&Request::new(&key, "m", ip())).unwrap();
    gw.record_usage(&g, Usage::new(1, 1, usd("1.25")));
    assert_eq!(store.flush().unwrap(), 2, "the key and its org");
    assert_eq!(store.flush().unwrap(), 0);
}

#[test]
fn dropped_grant_releases_its_reservation() {
    let store = Store::open_temporary().unwrap();
    let org = org_with(&store, "");
    let spec = KeySpec::new("k").budget(Budget::new(usd("1"), Period::Total));
    let key = store
        .keys()
        .create(&OP, &org, spec)
        .unwrap()
        .key
        .expose()
        .to_owned();
    let gw = store.gateway();
    for _ in 0..5 {
        // Each grant reserves 0.9 and is dropped (upstream failed): nothing is kept.
        let g = gw
            .check(&Request::new(&key, "m", ip()).estimate(usd("0.9")))
            .unwrap();
        drop(g);
    }
    assert!(
        gw.check(&Request::new(&key, "m", ip()).estimate(usd("0.9")))
            .is_ok()
    );
}

/// Budgets live in different places depending on when a scope got one (inline in a limited
/// key's runtime, in an arena for a key given its first budget later, inline in the org's
/// runtime); wherever it lives, changing the limit keeps the period's spend.
#[test]
fn changing_a_budget_keeps_the_spend_of_the_period() {
    let store = Store::open_temporary().unwrap();
    let org = org_with(&store, r#"{"budgets":{"limit":10,"period":"monthly"}}"#);
    let budget = |limit: &str| Budget::new(usd(limit), Period::Monthly);
    let from_start = store
        .keys()
        .create(&OP, &org, KeySpec::new("a").budget(budget("1")))
        .unwrap();
    let later = store.keys().create(&OP, &org, KeySpec::new("b")).unwrap();
    // Key b was published without limits (a plain runtime); its budget comes afterwards.
    let gw = store.gateway();
    assert!(
        gw.check(&Request::new(later.key.expose(), "m", ip()))
            .is_ok()
    );
    let set_budget = |name: &str, id: &KeyId, limit: &str| {
        let spec = KeySpec::new(name).budget(budget(limit));
        store.keys().update(&OP, id, spec).unwrap();
    };
    set_budget("b", &later.info.id, "1");
    for (name, created) in [("a", &from_start), ("b", &later)] {
        let key = created.key.expose();
        let check =
            |estimate: &str| gw.check(&Request::new(key, "m", ip()).estimate(usd(estimate)));
        let g = check("0.6").unwrap();
        gw.record_usage(&g, Usage::new(1, 1, usd("0.6")));
        assert!(check("0.5").is_err(), "{name}: 0.6 + 0.5 is over 1");
        set_budget(name, &created.info.id, "2");
        let u = store.keys().usage(&OP, &created.info.id).unwrap();
        assert_eq!(u.budget.unwrap().spent, usd("0.6"), "{name}");
        assert!(check("1.5").is_err(), "{name}: 0.6 + 1.5 is over 2");
        assert!(check("1.3").is_ok(), "{name}: 0.6 + 1.3 fits in 2");
        set_budget(name, &created.info.id, "0.5");
        let d = check("0.01").unwrap_err();
        assert!(
            matches!(
                d,
                Denial::BudgetExceeded {
                    scope: Scope::Key,
                    ..
                }
            ),
            "{name}: {d:?}"
        );
    }
    // The org's counter saw both keys' spend, and keeps it when its limit changes.
    let spent = |store: &Store| store.orgs().usage(&OP, &org).unwrap().budget.unwrap().spent;
    assert_eq!(spent(&store), usd("1.2"));
    let cfg = r#"{"budgets":{"limit":1.25,"period":"monthly"}}"#;
    store.org_configs().update(&OP, &org, cfg).unwrap();
    assert_eq!(spent(&store), usd("1.2"));
    let other = store.keys().create(&OP, &org, KeySpec::new("c")).unwrap();
    let req = Request::new(other.key.expose(), "m", ip());
    let d = gw.check(&req.estimate(usd("0.1"))).unwrap_err();
    assert!(
        matches!(
            d,
            Denial::BudgetExceeded {
                scope: Scope::Org,
                ..
            }
        ),
        "{d:?}"
    );
    assert!(gw.check(&req.estimate(usd("0.05"))).is_ok());
}
