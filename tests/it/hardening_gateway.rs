//! The gateway under hostile model names and after its store is gone: request-only model
//! names cost nothing permanent and publish nothing, names are bounded and follow one rule
//! everywhere, and a gateway handle that outlives its store fails closed without losing
//! the spend of grants in flight.

use std::net::IpAddr;
use std::time::Duration;

use crate::common::ConfigJson;
use crate::common::*;
use orgstore::{
    Budget, ErrorKind, GatewayContext, KeySpec, MAX_MODEL_NAME_BYTES, Period, Request, Store,
    StoreBuilder, Usage, Usd,
};

fn ip() -> IpAddr {
    "203.0.113.7".parse().unwrap()
}

fn usd(s: &str) -> Usd {
    Usd::parse(s).unwrap()
}

/// A name of exactly `len` bytes, distinct per `n`.
fn name(n: usize, len: usize) -> String {
    let mut s = format!("model-{n}-");
    while s.len() < len {
        s.push(char::from(b'a' + (s.len() % 26) as u8));
    }
    s.truncate(len);
    s
}

const POLICY: &str = r#"
@id("no-secret-model")
forbid (principal, action == Action::"invoke", resource == Model::"secret-model");

@id("no-listed-pair")
forbid (principal, action == Action::"invoke", resource)
when { [Model::"pair-a", Model::"pair-b"].contains(resource) };
"#;

/// A store with a policy that names models no config or key mentions, an org that allows
/// all models with an unrestricted key and a key limited to `gpt-4o`, and an org limited to
/// `gpt-4o-mini`.
fn hostile_names_fixture() -> (tempfile::TempDir, Store, [String; 3]) {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("ops.cedar"), POLICY).unwrap();
    let store = StoreBuilder::new().open_temporary().unwrap();
    store.policy_set().apply_dir(&OP, dir.path()).unwrap();
    let open = create_org(&store, "open", "o@open.io");
    let all = store
        .keys()
        .create(&OP, &open, KeySpec::new("all"))
        .unwrap();
    let narrow = store
        .keys()
        .create(&OP, &open, KeySpec::new("narrow").models(["gpt-4o"]))
        .unwrap();
    let closed = create_org(&store, "closed", "o@closed.io");
    store
        .org_configs()
        .update(&OP, &closed, r#"{"allowed_models":["gpt-4o-mini"]}"#)
        .unwrap();
    let listed = store
        .keys()
        .create(&OP, &closed, KeySpec::new("c"))
        .unwrap();
    let keys = [all, narrow, listed].map(|k| k.key.expose().to_owned());
    (dir, store, keys)
}

#[test]
fn request_only_model_names_are_never_interned_or_published() {
    let (_dir, store, [all, narrow, listed]) = hostile_names_fixture();
    let gw = store.gateway();
    let names_before = store.interned_model_names();
    let publications_before = store.snapshot_publications();
    // The allow-lists' names and the policy's three literals.
    assert_eq!(
        names_before, 5,
        "gpt-4o, gpt-4o-mini, secret-model, pair-a, pair-b"
    );

    // Thousands of distinct names of every allowed length, the longest at the bound.
    for n in 0..3000 {
        let len = [1, 17, 200, MAX_MODEL_NAME_BYTES][n % 4].max(format!("model-{n}-").len());
        let m = name(n, len.min(MAX_MODEL_NAME_BYTES));
        assert!(gw.check(&Request::new(&all, &m, ip())).is_ok(), "{m}");
        for key in [&narrow, &listed] {
            let code = gw.check(&Request::new(key, &m, ip())).unwrap_err().code();
            assert_eq!(code, "model_not_allowed", "{m}");
        }
    }
    // Names over the bound or empty are refused before anything else is done with them.
    for m in [
        String::new(),
        name(1, MAX_MODEL_NAME_BYTES + 1),
        name(2, 16 * 1024),
        name(3, 1 << 20),
        "é".repeat(MAX_MODEL_NAME_BYTES / 2 + 1),
    ] {
        for key in [&all, &narrow, &listed] {
            let d = gw.check(&Request::new(key, &m, ip())).unwrap_err();
            assert_eq!(
                (d.code(), d.http_status()),
                ("invalid_model", 400),
                "{}",
                m.len()
            );
            assert!(!d.to_string().contains(&m) || m.is_empty());
        }
    }
    assert_eq!(store.interned_model_names(), names_before);
    assert_eq!(store.snapshot_publications(), publications_before);

    // Names that are configured still decide as before, and a later config update (which
    // copies the names map) still carries only configured names.
    assert!(gw.check(&Request::new(&narrow, "gpt-4o", ip())).is_ok());
    assert!(
        gw.check(&Request::new(&listed, "gpt-4o-mini", ip()))
            .is_ok()
    );
    let closed = org("closed");
    store
        .org_configs()
        .update(&OP, &closed, r#"{"allowed_models":["gpt-4o-mini","o3"]}"#)
        .unwrap();
    assert_eq!(store.interned_model_names(), names_before + 1);
    assert!(gw.check(&Request::new(&listed, "o3", ip())).is_ok());
}

#[test]
fn policies_naming_unconfigured_models_are_honoured_without_interning_requests() {
    let (dir, store, [all, narrow, _]) = hostile_names_fixture();
    let gw = store.gateway();
    let lookup = gw.lookup(&all).unwrap();
    let fresh = |m: &str| {
        let ctx = GatewayContext {
            ip_allowed: true,
            model_allowed: true,
        };
        store
            .policies()
            .gateway_decide(&lookup.org_id, &lookup.key_id, m, ctx)
            .allowed
    };
    // Unknown names and policy-named names interleaved, so memoized words of every kind
    // are consulted again: each answer equals a fresh Cedar evaluation.
    for round in 0..3 {
        for (i, m) in [
            "unknown-1",
            "secret-model",
            "unknown-2",
            "pair-a",
            "Secret-model",
            "pair-b",
            "secret-model ",
            "pair-c",
        ]
        .into_iter()
        .enumerate()
        {
            let m = format!(
                "{m}{}",
                if i % 2 == 0 {
                    round.to_string()
                } else {
                    String::new()
                }
            );
            let got = gw.check(&Request::new(&all, &m, ip()));
            assert_eq!(got.is_ok(), fresh(&m), "{m:?} in round {round}");
            if let Err(d) = got {
                assert_eq!(d.code(), "policy_denied", "{m}");
            }
        }
    }
    let denied = gw
        .check(&Request::new(&all, "secret-model", ip()))
        .unwrap_err();
    assert_eq!(denied.code(), "policy_denied");
    assert!(denied.to_string().contains("no-secret-model"), "{denied}");
    // An allow-list is still applied before the policies.
    let d = gw
        .check(&Request::new(&narrow, "secret-model", ip()))
        .unwrap_err();
    assert_eq!(d.code(), "model_not_allowed");

    // A reload that drops the rule allows the name; adding a rule for a new name interns
    // it and denies it, while other unknown names stay allowed.
    std::fs::write(
        dir.path().join("ops.cedar"),
        r#"@id("no-fresh") forbid (principal, action == Action::"invoke", resource == Model::"fresh-model");"#,
    )
    .unwrap();
    store.policy_set().apply_dir(&OP, dir.path()).unwrap();
    assert!(gw.check(&Request::new(&all, "secret-model", ip())).is_ok());
    assert!(gw.check(&Request::new(&all, "unknown-9", ip())).is_ok());
    let d = gw
        .check(&Request::new(&all, "fresh-model", ip()))
        .unwrap_err();
    assert_eq!(d.code(), "policy_denied");
    assert!(gw.check(&Request::new(&all, "unknown-10", ip())).is_ok());
    assert_eq!(
        gw.check(&Request::new(&all, "fresh-model", ip()))
            .unwrap_err()
            .code(),
        "policy_denied"
    );
}

#[test]
fn model_names_follow_one_rule_in_org_configs_and_key_specs() {
    let f = Fixture::new();
    let active = |f: &Fixture| f.store.org_configs().retrieve(&OP, &f.org).unwrap();
    let before = active(&f);
    let keys_before = f.store.keys().list(&OP, &f.org).unwrap();
    let at_bound = "m".repeat(MAX_MODEL_NAME_BYTES);
    for bad in [
        String::new(),
        "   ".to_owned(),
        "m".repeat(MAX_MODEL_NAME_BYTES + 1),
        "é".repeat(MAX_MODEL_NAME_BYTES / 2 + 1),
        "gpt\u{0}4o".to_owned(),
        "gpt-4o\nmini".to_owned(),
        "gpt\u{1b}[31m".to_owned(),
        "gpt\u{200b}-4o".to_owned(),
        "gpt-4o\u{202e}".to_owned(),
        "\u{2066}gpt-4o".to_owned(),
        "gpt\u{feff}4o".to_owned(),
        "gpt\u{ad}4o".to_owned(),
    ] {
        let patch = serde_json::json!({ "allowed_models": ["gpt-4o", bad] }).to_string();
        let e = f
            .store
            .org_configs()
            .update(&OP, &f.org, &patch)
            .unwrap_err();
        assert_eq!(
            (e.kind(), e.field()),
            (ErrorKind::Invalid, "config.allowed_models[1]"),
            "{bad:?}: {e}"
        );
        assert!(e.to_string().contains("model name"), "{e}");
        let spec = KeySpec::new("k").models(["gpt-4o", bad.as_str()]);
        let e = f.store.keys().create(&OP, &f.org, spec).unwrap_err();
        assert_eq!(
            (e.kind(), e.field()),
            (ErrorKind::Invalid, "allowed_models[1]"),
            "{bad:?}: {e}"
        );
    }
    assert_eq!(active(&f).version, before.version, "nothing was written");
    assert_eq!(f.store.keys().list(&OP, &f.org).unwrap(), keys_before);

    // Blanks around a name are trimmed at both levels, and stored trimmed.
    let patch =
        serde_json::json!({ "allowed_models": ["  gpt-4o  ", "\tclaude-sonnet\n", at_bound] });
    f.update_config(&patch.to_string());
    let cfg = active(&f).config;
    assert_eq!(
        cfg.allowed_models().unwrap(),
        ["gpt-4o", "claude-sonnet", at_bound.as_str()]
    );
    assert_eq!(
        cfg.revealed_value()["allowed_models"],
        serde_json::json!(["gpt-4o", "claude-sonnet", at_bound])
    );
    let created = f
        .store
        .keys()
        .create(
            &OP,
            &f.org,
            KeySpec::new("k").models([" gpt-4o ", "claude-sonnet\u{3000}"]),
        )
        .unwrap();
    assert_eq!(
        created.info.spec.allowed_models,
        ["gpt-4o", "claude-sonnet"]
    );
    let key = created.key.expose();
    let gw = f.store.gateway();
    for m in ["gpt-4o", "claude-sonnet"] {
        assert!(gw.check(&Request::new(key, m, ip())).is_ok(), "{m}");
    }
    let other = f.create_key("other");
    assert!(
        gw.check(&Request::new(other.key.expose(), &at_bound, ip()))
            .is_ok()
    );
    for m in [" gpt-4o", "gpt-4o\t", "o3"] {
        let code = gw.check(&Request::new(key, m, ip())).unwrap_err().code();
        assert_eq!(code, "model_not_allowed", "{m:?}");
    }
}

#[test]
fn a_gateway_that_outlives_its_store_fails_closed() {
    let dir = tempfile::tempdir().unwrap();
    let store = open_file_fast(dir.path());
    let acme = create_org(&store, "acme", OWNER);
    let plain = store
        .keys()
        .create(&OP, &acme, KeySpec::new("plain"))
        .unwrap();
    let limited = store
        .keys()
        .create(
            &OP,
            &acme,
            KeySpec::new("limited")
                .rpm(1000)
                .budget(Budget::new(usd("50"), Period::Monthly)),
        )
        .unwrap();
    let keys = [plain.key.expose(), limited.key.expose()];
    let gw = store.gateway().clone();
    let second = store.clone();
    for k in keys {
        assert!(gw.check(&Request::new(k, "gpt-4o", ip())).is_ok());
    }
    // One store handle left: still open.
    drop(store);
    for k in keys {
        assert!(gw.check(&Request::new(k, "gpt-4o", ip())).is_ok());
    }
    assert_eq!(second.gateway().key_count(), 2);
    // The last store handle goes: every check and lookup fails closed, on every handle
    // and thread, whatever the key, model or time.
    drop(second);
    let threaded = gw.clone();
    let key = keys[1].to_owned();
    let from_thread = std::thread::spawn(move || {
        threaded
            .check(&Request::new(&key, "gpt-4o", ip()))
            .unwrap_err()
            .code()
    });
    assert_eq!(from_thread.join().unwrap(), "unavailable");
    for k in keys {
        for m in ["gpt-4o", "other"] {
            let d = gw.check(&Request::new(k, m, ip())).unwrap_err();
            assert_eq!((d.code(), d.http_status()), ("unavailable", 503), "{m}");
            let at = orgstore::Timestamp::now();
            let d = gw.check_at(&Request::new(k, m, ip()), at).unwrap_err();
            assert_eq!(d.code(), "unavailable");
        }
        assert_eq!(gw.lookup(k).unwrap_err().code(), "unavailable");
        assert_eq!(
            gw.clone()
                .check(&Request::new(k, "gpt-4o", ip()))
                .unwrap_err()
                .code(),
            "unavailable"
        );
    }
    assert_eq!(gw.key_count(), 0, "the key table is released");
    // The file is still held by the gateway, then released with it.
    let Err(err) = StoreBuilder::new().open(db_path(dir.path())) else {
        panic!("the file must still be held by the gateway");
    };
    assert_eq!(err.kind(), ErrorKind::Busy, "{err}");
    assert!(err.to_string().contains("Gateway handle"), "{err}");
    drop(gw);
    let again = open_file_fast(dir.path());
    assert!(
        again
            .gateway()
            .check(&Request::new(keys[0], "gpt-4o", ip()))
            .is_ok()
    );
}

/// Spend recorded after the last store handle was dropped reaches the file, in the default
/// batched mode (with a flush interval far beyond the test), in lossless mode and from
/// several gateway handles on several threads.
#[test]
fn spend_recorded_after_the_store_is_dropped_reaches_the_file() {
    for (mode, lossless, threads) in [
        ("batched", false, 1),
        ("lossless", true, 1),
        ("threads", false, 4),
    ] {
        let dir = tempfile::tempdir().unwrap();
        let open = || {
            let b = StoreBuilder::new()
                .non_durable()
                .spend_flush_interval(Duration::from_secs(3600));
            let b = if lossless { b.lossless_spend() } else { b };
            b.open(db_path(dir.path())).unwrap()
        };
        let store = open();
        let acme = create_org(&store, "acme", OWNER);
        store
            .org_configs()
            .update(
                &OP,
                &acme,
                r#"{"budgets":{"limit":100,"period":"monthly"}}"#,
            )
            .unwrap();
        let k = store
            .keys()
            .create(
                &OP,
                &acme,
                KeySpec::new("k").budget(Budget::new(usd("10"), Period::Monthly)),
            )
            .unwrap();
        let key = k.key.expose().to_owned();
        let gw = store.gateway().clone();
        // Spend before the store goes is flushed when it goes.
        let early = gw.check(&Request::new(&key, "gpt-4o", ip())).unwrap();
        gw.record_usage(&early, Usage::new(10, 10, usd("0.5")));
        drop(early);
        // Requests in flight when the store goes.
        let mut workers = Vec::new();
        let (go_tx, go_rx) = std::sync::mpsc::channel::<()>();
        let go_rx = std::sync::Arc::new(std::sync::Mutex::new(go_rx));
        for _ in 0..threads {
            let gw = gw.clone();
            let key = key.clone();
            let go = go_rx.clone();
            let (ready_tx, ready_rx) = std::sync::mpsc::channel::<()>();
            workers.push((
                std::thread::spawn(move || {
                    let grant = gw.check(&Request::new(&key, "gpt-4o", ip())).unwrap();
                    let unused = gw.check(&Request::new(&key, "gpt-4o", ip())).unwrap();
                    ready_tx.send(()).unwrap();
                    go.lock().unwrap().recv().unwrap();
                    assert_eq!(
                        gw.check(&Request::new(&key, "gpt-4o", ip()))
                            .unwrap_err()
                            .code(),
                        "unavailable"
                    );
                    gw.record_usage(&grant, Usage::new(100, 50, usd("1.25")));
                    drop(unused); // released without usage: nothing to persist
                }),
                ready_rx,
            ));
        }
        for (_, ready) in &workers {
            ready.recv().unwrap();
        }
        let report = store.keys().usage(&OP, &k.info.id).unwrap();
        assert_eq!(report.total, usd("0.5"), "{mode}");
        drop(store);
        for _ in 0..threads {
            go_tx.send(()).unwrap();
        }
        for (w, _) in workers {
            w.join().unwrap();
        }
        assert!(
            StoreBuilder::new().open(db_path(dir.path())).is_err(),
            "{mode}: still held"
        );
        drop(gw);

        let again = open();
        let want = usd("0.5").micros() + usd("1.25").micros() * threads as i64;
        let key_report = again.keys().usage(&OP, &k.info.id).unwrap();
        let org_report = again.orgs().usage(&OP, &acme).unwrap();
        assert_eq!(key_report.total.micros(), want, "{mode}: key spend");
        assert_eq!(org_report.total.micros(), want, "{mode}: org spend");
        let budget = key_report.budget.unwrap();
        assert_eq!(budget.spent.micros(), want, "{mode}: the budget counts it");
        assert_eq!(budget.reserved, usd("0"), "{mode}: nothing left reserved");
    }
}
