//! Limits only count admitted requests, rate limits hold in every 60-second window, and
//! budget counters always equal the ledger's spend for their window.

use std::net::IpAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use orgstore::*;

use crate::common::{Fixture, OP};

const SEC: i64 = 1_000_000;
const MINUTE: i64 = 60 * SEC;

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

fn usd(s: &str) -> Usd {
    Usd::parse(s).unwrap()
}

/// The documented slack of a per-minute limit: 2 % of it, at least one.
fn slack(limit: u64) -> u64 {
    (limit / 50).max(1)
}

/// A fixed instant an hour from now: every explicit-clock test starts there.
fn t0() -> i64 {
    Timestamp::now().as_micros() + 3_600 * SEC
}

fn at(micros: i64) -> Timestamp {
    Timestamp::from_micros(micros)
}

fn key(f: &Fixture, spec: KeySpec) -> (KeyId, String) {
    let c = f.store.keys().create(&OP, &f.org, spec).unwrap();
    (c.info.id, c.key.expose().to_owned())
}

fn is_rate_limited(d: &Denial, want: Scope) -> bool {
    matches!(d, Denial::RateLimited { scope, .. } if *scope == want)
}

/// Admissions at `t` until the first refusal (at most `cap`).
fn admit_all(gw: &Gateway, key: &str, t: i64, cap: u64) -> u64 {
    let mut n = 0;
    while n < cap
        && gw
            .check_at(&Request::new(key, "m", ip("10.0.0.1")), at(t))
            .is_ok()
    {
        n += 1;
    }
    n
}

// ---------------------------------------------------------------------------------------
// Refused requests consume nothing.
// ---------------------------------------------------------------------------------------

/// (name, org config, key spec, model, client address, estimate, the expected denial code)
type RefusalCase = (
    &'static str,
    &'static str,
    KeySpec,
    &'static str,
    &'static str,
    Option<&'static str>,
    &'static str,
);

/// Every kind of refusal (model, address, key budget, org budget, org rpm, key and org
/// tokens per minute) leaves the key's and the org's requests per minute exactly as they
/// were: afterwards the key still gets its whole burst, and a sibling the org's.
#[test]
fn refused_requests_consume_no_rate_limit() {
    let now = t0();
    let cases: Vec<RefusalCase> = vec![
        (
            "model of the key",
            "",
            KeySpec::new("k").rpm(5).models(["m"]),
            "other",
            "10.0.0.1",
            None,
            "model_not_allowed",
        ),
        (
            "model of the org",
            r#"{"allowed_models":["m"]}"#,
            KeySpec::new("k").rpm(5),
            "other",
            "10.0.0.1",
            None,
            "model_not_allowed",
        ),
        (
            "address of the key",
            "",
            KeySpec::new("k").rpm(5).ips(["10.0.0.0/8"]),
            "m",
            "192.0.2.1",
            None,
            "ip_not_allowed",
        ),
        (
            "address of the org",
            r#"{"ip_acl":{"deny":["192.0.2.0/24"]}}"#,
            KeySpec::new("k").rpm(5),
            "m",
            "192.0.2.1",
            None,
            "ip_not_allowed",
        ),
        (
            "key budget",
            "",
            KeySpec::new("k")
                .rpm(5)
                .budget(Budget::new(usd("1"), Period::Total)),
            "m",
            "10.0.0.1",
            Some("2"),
            "budget_exceeded",
        ),
        (
            "org budget",
            r#"{"budgets":{"limit":1,"period":"total"}}"#,
            KeySpec::new("k").rpm(5),
            "m",
            "10.0.0.1",
            Some("2"),
            "budget_exceeded",
        ),
        (
            "org budget, key budget fits",
            r#"{"budgets":{"limit":1,"period":"total"}}"#,
            KeySpec::new("k")
                .rpm(5)
                .budget(Budget::new(usd("5"), Period::Total)),
            "m",
            "10.0.0.1",
            Some("2"),
            "budget_exceeded",
        ),
    ];
    for (name, config, spec, model, addr, estimate, code) in cases {
        let f = Fixture::new();
        let org_rpm = r#"{"rate_limiting":{"rpm":8}}"#;
        f.update_config(org_rpm);
        if !config.is_empty() {
            f.update_config(config);
        }
        let (_, k) = key(&f, spec);
        let (_, sibling) = key(&f, KeySpec::new("sibling"));
        let gw = f.store.gateway();
        for _ in 0..50 {
            let mut req = Request::new(&k, model, ip(addr));
            if let Some(e) = estimate {
                req = req.estimate(usd(e));
            }
            let d = gw.check_at(&req, at(now)).unwrap_err();
            assert_eq!(d.code(), code, "{name}: {d:?}");
        }
        // The key's 5 from rest, then the org's remaining 3 for the sibling: nothing was used.
        let first = gw
            .check_at(&Request::new(&k, "m", ip("10.0.0.1")), at(now))
            .unwrap();
        let h = first.rate_headers().unwrap();
        assert_eq!(
            (h.limit, h.remaining),
            (5, 4),
            "{name}: key rpm after the refusals"
        );
        drop(first);
        assert_eq!(admit_all(gw, &k, now, 100), 4, "{name}");
        assert_eq!(admit_all(gw, &sibling, now, 100), 3, "{name}: org rpm");
    }
}

/// Refusals decided before any limit (a Cedar forbid, an expired or revoked key) consume
/// nothing either.
#[test]
fn policy_expiry_and_revocation_refusals_consume_nothing() {
    let now = t0();
    let f = Fixture::new();
    f.update_config(r#"{"rate_limiting":{"rpm":8}}"#);
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("ops.cedar"),
        r#"@id("acme-no-blocked")
forbid (principal in Org::"acme", action == Action::"invoke", resource == Model::"blocked");"#,
    )
    .unwrap();
    f.store
        .policy_set()
        .apply_dir(&orgstore::Actor::Operator, dir.path())
        .unwrap();
    let (_, k) = key(&f, KeySpec::new("k").rpm(5));
    let (_, expiring) = key(&f, KeySpec::new("e").rpm(5).expires_at(at(now + MINUTE)));
    let (revoked_id, revoked) = key(&f, KeySpec::new("r").rpm(5));
    f.store.keys().revoke(&OP, &revoked_id).unwrap();
    let gw = f.store.gateway();
    for (secret, model, t, code) in [
        (&k, "blocked", now, "policy_denied"),
        (&expiring, "m", now + 2 * MINUTE, "expired"),
        (&revoked, "m", now, "revoked"),
    ] {
        for _ in 0..30 {
            let d = gw
                .check_at(&Request::new(secret, model, ip("10.0.0.1")), at(t))
                .unwrap_err();
            assert_eq!(d.code(), code, "{d:?}");
        }
    }
    assert_eq!(admit_all(gw, &k, now, 100), 5, "the key's rpm");
    assert_eq!(admit_all(gw, &expiring, now, 100), 3, "the org's rpm");
}

/// Refused by the org's shared rpm, a key keeps its own rpm; refused by its tokens per
/// minute, a key takes nothing from either rpm. (Checked against the real clock: the usage
/// report reads the limiters at the present.)
#[test]
fn org_rpm_and_tpm_refusals_give_back_what_they_took() {
    let now = Timestamp::now().as_micros();
    let f = Fixture::new();
    f.update_config(r#"{"rate_limiting":{"rpm":4}}"#);
    let (a_id, a) = key(&f, KeySpec::new("a").rpm(10));
    let (_, b) = key(&f, KeySpec::new("b").rpm(10));
    let gw = f.store.gateway();
    assert_eq!(admit_all(gw, &b, now, 100), 4);
    for _ in 0..20 {
        let d = gw
            .check_at(&Request::new(&a, "m", ip("10.0.0.1")), at(now))
            .unwrap_err();
        assert!(is_rate_limited(&d, Scope::Org), "{d:?}");
    }
    let used = |id: &KeyId| f.store.keys().usage(&OP, id).unwrap().rpm.unwrap().used;
    assert_eq!(used(&a_id), 0, "key a took none of its rpm while refused");

    // Tokens per minute in debt (key, then org): rpm untouched.
    for (config, spec, scope) in [
        ("", KeySpec::new("t").rpm(3).tpm(100), Scope::Key),
        (
            r#"{"rate_limiting":{"tpm":100}}"#,
            KeySpec::new("t").rpm(3),
            Scope::Org,
        ),
    ] {
        let f = Fixture::new();
        f.update_config(r#"{"rate_limiting":{"rpm":5}}"#);
        if !config.is_empty() {
            f.update_config(config);
        }
        let (id, k) = key(&f, spec);
        let gw = f.store.gateway();
        let g = gw
            .check_at(&Request::new(&k, "m", ip("10.0.0.1")), at(now))
            .unwrap();
        gw.record_usage_at(&g, Usage::new(500, 500, Usd::ZERO), at(now));
        for _ in 0..20 {
            let d = gw
                .check_at(&Request::new(&k, "m", ip("10.0.0.1")), at(now))
                .unwrap_err();
            assert!(
                matches!(d, Denial::RateLimited { scope: s, tokens: true, .. } if s == scope),
                "{d:?}"
            );
        }
        // Only the one admitted request counts, against the key's 3 and the org's 5.
        let key_rpm = f.store.keys().usage(&OP, &id).unwrap().rpm.unwrap().used;
        let org_rpm = f.store.orgs().usage(&OP, &f.org).unwrap().rpm.unwrap().used;
        assert_eq!((key_rpm, org_rpm), (1, 1), "{scope:?}");
    }
}

/// One key that keeps being refused (its own rpm, budget or tokens exhausted) cannot use up
/// the org's shared limit: its siblings get all of it.
#[test]
fn an_exhausted_key_cannot_lock_out_its_siblings() {
    let now = t0();
    let exhausted: [(&str, KeySpec); 3] = [
        ("own rpm", KeySpec::new("x").rpm(2)),
        (
            "budget",
            KeySpec::new("x").budget(Budget::new(usd("0.05"), Period::Total)),
        ),
        ("tokens", KeySpec::new("x").tpm(10)),
    ];
    for (name, spec) in exhausted {
        let f = Fixture::new();
        f.update_config(r#"{"rate_limiting":{"rpm":20}}"#);
        let (_, x) = key(&f, spec);
        let siblings: Vec<String> = (0..3)
            .map(|i| key(&f, KeySpec::new(format!("s{i}"))).1)
            .collect();
        let gw = f.store.gateway();
        // Exhaust x once (this takes org capacity: it was admitted), then hammer it.
        let mut used = 0;
        for _ in 0..200 {
            let req = Request::new(&x, "m", ip("10.0.0.1")).estimate(usd("0.03"));
            if let Ok(g) = gw.check_at(&req, at(now)) {
                used += 1;
                gw.record_usage_at(&g, Usage::new(50, 50, usd("0.03")), at(now));
            }
        }
        assert!((1..=2).contains(&used), "{name}: {used}");
        let got: u64 = siblings.iter().map(|s| admit_all(gw, s, now, 100)).sum();
        assert_eq!(
            got,
            20 - used,
            "{name}: the siblings get the rest of the org's 20"
        );
    }
}

/// Under concurrency, give-backs neither leak capacity nor let more than the limit through:
/// with one key refused by its budget on every request, its siblings end up with exactly
/// the org's limit.
#[test]
fn give_backs_under_concurrency_are_exact() {
    let now = t0();
    let f = Fixture::new();
    f.update_config(r#"{"rate_limiting":{"rpm":300}}"#);
    let (_, broke) = key(
        &f,
        KeySpec::new("broke")
            .rpm(100_000)
            .budget(Budget::new(usd("0.01"), Period::Total)),
    );
    let siblings: Vec<String> = (0..2)
        .map(|i| key(&f, KeySpec::new(format!("s{i}")).rpm(100_000)).1)
        .collect();
    let gw = f.store.gateway();
    let admitted = AtomicU64::new(0);
    std::thread::scope(|s| {
        for t in 0..6 {
            let (gw, broke, siblings, admitted) = (&gw, &broke, &siblings, &admitted);
            s.spawn(move || {
                for _ in 0..400 {
                    if t < 4 {
                        let req = Request::new(broke, "m", ip("10.0.0.1")).estimate(usd("1"));
                        assert!(gw.check_at(&req, at(now)).is_err());
                    } else if gw
                        .check_at(
                            &Request::new(&siblings[t - 4], "m", ip("10.0.0.1")),
                            at(now),
                        )
                        .is_ok()
                    {
                        admitted.fetch_add(1, Ordering::Relaxed);
                    }
                }
            });
        }
    });
    let during = admitted.load(Ordering::Relaxed);
    assert!(during <= 300, "{during}");
    let after = admit_all(gw, &siblings[0], now, 1_000);
    assert_eq!(during + after, 300, "during {during}, after {after}");
}

// ---------------------------------------------------------------------------------------
// Rate limits hold in every 60-second window.
// ---------------------------------------------------------------------------------------

/// The most admitted units in any half-open window `[t, t + 60 s)`; `events` in time order.
fn max_in_any_minute(events: &[(i64, u64)]) -> u64 {
    let (mut best, mut sum, mut lo) = (0u64, 0u64, 0usize);
    for &(t, units) in events {
        sum += units;
        while events[lo].0 + MINUTE <= t {
            sum -= events[lo].1;
            lo += 1;
        }
        best = best.max(sum);
    }
    best
}

/// Arrival patterns (attempt times in micros, in order) for a per-minute limit.
fn patterns(limit: u64, start: i64) -> Vec<(&'static str, Vec<i64>)> {
    let t = (MINUTE as u64).div_ceil(limit) as i64;
    let n = |k: u64| k.min(250_000) as usize;
    let mut out = Vec::new();
    let mut edges = Vec::new();
    for k in 1..=2 {
        let edge = start + k * MINUTE;
        edges.extend(std::iter::repeat_n(edge - 1, n(2 * limit)));
        edges.extend(std::iter::repeat_n(edge, n(2 * limit)));
    }
    out.push(("bursts on both sides of minute edges", edges));
    let mut steady = vec![start; n(limit)];
    steady.extend((1..=n(2 * limit) as i64).map(|i| start + i * (t / 2).max(1)));
    out.push(("burst, then twice the rate", steady));
    if limit <= 1_000 {
        let step = (t / 3).max(1);
        let count = (3 * MINUTE / step).min(100_000);
        out.push((
            "hammering every T/3",
            (0..count).map(|i| start + i * step).collect(),
        ));
        let mut halves = Vec::new();
        for k in 0..5 {
            halves.extend(std::iter::repeat_n(start + k * 30 * SEC, n(limit / 2 + 1)));
        }
        out.push(("half the limit every 30 s", halves));
    }
    out
}

/// "N per minute" means at most N plus the slack in any 60-second window, for the key's
/// and the org's requests per minute, under bursts at window edges, steady streams and
/// burst-then-steady traffic.
#[test]
fn requests_per_minute_hold_in_every_minute() {
    for limit in [1u64, 2, 50, 60, 1_000, 100_000] {
        for org_level in [false, true] {
            let f = Fixture::new();
            let spec = if org_level {
                f.update_config(&format!(r#"{{"rate_limiting":{{"rpm":{limit}}}}}"#));
                KeySpec::new("k")
            } else {
                KeySpec::new("k").rpm(u32::try_from(limit).unwrap())
            };
            let (_, k) = key(&f, spec);
            let gw = f.store.gateway();
            let mut start = t0();
            for (name, offsets) in patterns(limit, 0) {
                let times: Vec<i64> = offsets.iter().map(|o| start + o).collect();
                let admitted: Vec<(i64, u64)> = times
                    .iter()
                    .filter(|&&t| {
                        gw.check_at(&Request::new(&k, "m", ip("10.0.0.1")), at(t))
                            .is_ok()
                    })
                    .map(|&t| (t, 1))
                    .collect();
                let max = max_in_any_minute(&admitted);
                let scope = if org_level { "org" } else { "key" };
                assert!(
                    max <= limit + slack(limit),
                    "{scope} rpm {limit}, {name}: {max} admitted within 60 s"
                );
                start = times.last().copied().unwrap_or(start) + 10 * MINUTE;
            }
            // A burst of the whole limit from rest passes, and so does a steady stream at
            // the limit's rate right after it.
            let t = (MINUTE as u64).div_ceil(limit) as i64;
            let n = limit.min(250_000);
            assert_eq!(
                admit_all(gw, &k, start, n),
                n,
                "rpm {limit}: burst from rest"
            );
            let from = start + limit as i64 * t;
            for i in 0..n.min(2_000) as i64 {
                let r = gw.check_at(&Request::new(&k, "m", ip("10.0.0.1")), at(from + i * t));
                assert!(r.is_ok(), "rpm {limit}: steady request {i}: {:?}", r.err());
            }
        }
    }
}

/// Tokens per minute: the tokens of the requests admitted in any 60-second window stay
/// within the limit plus the slack plus the last request's tokens (a request's tokens are
/// only known after it was admitted), for key and org limits.
#[test]
fn tokens_per_minute_hold_in_every_minute() {
    for limit in [50u64, 1_000, 100_000] {
        for org_level in [false, true] {
            let f = Fixture::new();
            let spec = if org_level {
                f.update_config(&format!(r#"{{"rate_limiting":{{"tpm":{limit}}}}}"#));
                KeySpec::new("k")
            } else {
                KeySpec::new("k").tpm(limit)
            };
            let (_, k) = key(&f, spec);
            let gw = f.store.gateway();
            let mut start = t0();
            for size in [1, limit / 10 + 1, limit / 2 + 1, 2 * limit] {
                for step in [SEC / 10, 3 * SEC, 31 * SEC] {
                    let mut admitted = Vec::new();
                    for i in 0..600 {
                        let t = start + i * step;
                        if let Ok(g) = gw.check_at(&Request::new(&k, "m", ip("10.0.0.1")), at(t)) {
                            gw.record_usage_at(&g, Usage::new(size, 0, Usd::ZERO), at(t));
                            admitted.push((t, size));
                        }
                    }
                    let max = max_in_any_minute(&admitted);
                    assert!(
                        max <= limit + slack(limit) + size,
                        "tpm {limit} (org: {org_level}), {size} tokens every {step} us: {max}"
                    );
                    assert!(!admitted.is_empty());
                    start += 600 * step + 10 * MINUTE;
                }
            }
        }
    }
}

/// The headers say what a client may do: `remaining` more requests pass right now (and one
/// more does not), a refusal's `retry_after` is exact, and after `reset` of quiet the whole
/// limit is back.
#[test]
fn rate_headers_and_retry_after_are_exact() {
    for limit in [1u32, 2, 10, 60, 1_000] {
        let f = Fixture::new();
        let (_, k) = key(&f, KeySpec::new("k").rpm(limit));
        let gw = f.store.gateway();
        let req = Request::new(&k, "m", ip("10.0.0.1"));
        let mut t = t0();
        for round in 0..4 {
            // At rest: the whole limit at once.
            let h = gw.check_at(&req, at(t)).unwrap().rate_headers().unwrap();
            assert_eq!(
                (h.limit, h.remaining),
                (u64::from(limit), u64::from(limit) - 1)
            );
            assert_eq!(
                admit_all(gw, &k, t, 10_000),
                h.remaining,
                "rpm {limit}, round {round}"
            );
            for _ in 0..3 {
                // Refused: `retry_after` to the microsecond, then `remaining` more at once.
                let Denial::RateLimited { retry_after, .. } = gw.check_at(&req, at(t)).unwrap_err()
                else {
                    panic!("not rate limited")
                };
                let wait = i64::try_from(retry_after.as_micros()).unwrap();
                assert!(wait > 0 && wait <= MINUTE, "rpm {limit}: {retry_after:?}");
                assert!(
                    gw.check_at(&req, at(t + wait - 1)).is_err(),
                    "rpm {limit}: early"
                );
                t += wait;
                let h = gw.check_at(&req, at(t)).unwrap().rate_headers().unwrap();
                assert!(
                    h.reset > Duration::ZERO && h.reset <= Duration::from_secs(120),
                    "rpm {limit}: {h:?}"
                );
                assert_eq!(admit_all(gw, &k, t, 10_000), h.remaining, "rpm {limit}");
            }
            // Two minutes later at rest; burn the whole limit, then after the last grant's
            // `reset` of quiet the whole limit is back (checked by the next round).
            let u = t + 2 * MINUTE;
            let mut reset = 0;
            while let Ok(g) = gw.check_at(&req, at(u)) {
                reset = i64::try_from(g.rate_headers().unwrap().reset.as_micros()).unwrap();
            }
            assert!(reset >= MINUTE, "rpm {limit}: reset {reset}");
            t = u + reset + i64::from(round) * 7 * SEC;
        }
    }
}

// ---------------------------------------------------------------------------------------
// Budget counters equal the ledger.
// ---------------------------------------------------------------------------------------

/// Spends `cost` through `key` (checked and recorded now).
fn spend(gw: &Gateway, key: &str, cost: &str) {
    let g = gw
        .check(&Request::new(key, "m", ip("10.0.0.1")).estimate(Usd::ZERO))
        .unwrap();
    gw.record_usage(&g, Usage::new(1, 1, usd(cost)));
}

/// The counter's spend and the ledger's, for the key `id` and for the org.
fn counters(store: &Store, org: &OrgId, id: &KeyId) -> [(Option<Usd>, Usd); 2] {
    let k = store.keys().usage(&OP, id).unwrap();
    let o = store.orgs().usage(&OP, org).unwrap();
    [
        (k.budget.map(|b| b.spent), k.total),
        (o.budget.map(|b| b.spent), o.total),
    ]
}

/// A budget disabled and enabled again, removed and added again, with or without a restart
/// (and a flush) in between, at key and org level and wherever the key's counter lives:
/// the counter always equals the ledger's spend for the window, and the gateway decides by it.
#[test]
fn budgets_switched_off_and_on_count_the_spend_made_meanwhile() {
    let org_on = r#"{"budgets":{"enabled":true,"limit":10,"period":"total"}}"#;
    let org_offs = [
        r#"{"budgets":{"enabled":false}}"#,
        r#"{"budgets":{"limit":null}}"#,
        r#"{"budgets":null}"#,
    ];
    let key_budget = || Budget::new(usd("1"), Period::Total);
    for restart in [false, true] {
        for flush in [false, true] {
            for org_off in org_offs {
                let dir = tempfile::tempdir().unwrap();
                let path = dir.path().join("s.redb");
                let label = format!("restart {restart}, flush {flush}, org off by {org_off}");
                let (org, limited, plain);
                {
                    let f = Fixture::with_store(Store::open(&path).unwrap());
                    f.update_config(org_on);
                    org = f.org.clone();
                    // One key with a budget from the start (inline counter), one given it later
                    // (arena counter).
                    limited = key(&f, KeySpec::new("limited").budget(key_budget()));
                    plain = key(&f, KeySpec::new("plain"));
                    let gw = f.store.gateway();
                    spend(gw, &plain.1, "0.1");
                    f.store
                        .keys()
                        .update(&OP, &plain.0, KeySpec::new("plain").budget(key_budget()))
                        .unwrap();
                    spend(gw, &limited.1, "0.2");
                    spend(gw, &plain.1, "0.2");
                    // Off: the org's budget, and both keys' (removed from their specs).
                    f.update_config(org_off);
                    for (id, name) in [(&limited.0, "limited"), (&plain.0, "plain")] {
                        f.store.keys().update(&OP, id, KeySpec::new(name)).unwrap();
                    }
                    spend(gw, &limited.1, "0.3");
                    spend(gw, &plain.1, "0.4");
                    if flush {
                        f.store.flush().unwrap();
                    }
                    if !restart {
                        // Back on in the same process.
                        f.update_config(org_on);
                        for (id, name) in [(&limited.0, "limited"), (&plain.0, "plain")] {
                            let spec = KeySpec::new(name).budget(key_budget());
                            f.store.keys().update(&OP, id, spec).unwrap();
                        }
                        check_counters(&f.store, &org, &[&limited, &plain], &label);
                    }
                }
                let store = Store::open(&path).unwrap();
                if restart {
                    let gw = store.gateway();
                    spend(gw, &limited.1, "0.05");
                    store.org_configs().update(&OP, &org, org_on).unwrap();
                    for (id, name) in [(&limited.0, "limited"), (&plain.0, "plain")] {
                        let spec = KeySpec::new(name).budget(key_budget());
                        store.keys().update(&OP, id, spec).unwrap();
                    }
                }
                // After a restart the counters still agree with the ledger (and with what the
                // process that wrote them decided).
                check_counters(&store, &org, &[&limited, &plain], &label);
            }
        }
    }
}

fn check_counters(store: &Store, org: &OrgId, keys: &[&(KeyId, String)], label: &str) {
    let gw = store.gateway();
    for (id, secret) in keys {
        for (what, (counter, ledger)) in ["key", "org"].iter().zip(counters(store, org, id)) {
            assert_eq!(counter, Some(ledger), "{label}: {what} counter vs ledger");
        }
        // The decision follows: the key's remaining budget is 1 - its spend.
        let k = store.keys().usage(&OP, id).unwrap();
        let left = usd("1").micros() - k.total.micros();
        let fits = Usd::from_micros(left).unwrap();
        let over = Usd::from_micros(left + 1).unwrap();
        let req = |e| Request::new(secret, "m", ip("10.0.0.1")).estimate(e);
        let d = gw.check(&req(over)).unwrap_err();
        assert_eq!(d.code(), "budget_exceeded", "{label}");
        assert!(gw.check(&req(fits)).is_ok(), "{label}: {fits:?} fits");
    }
}
