//! Hostile config input: oversized and deeply nested JSON, bad CIDRs, absurd budgets, a zero rate.

use super::*;

#[test]
fn oversized_config_json() {
    let big = format!(r#"{{"routing":{{"blob":"{}"}}}}"#, "x".repeat(1 << 20));
    let e = refused(ErrorKind::Invalid, "config", |s, o| {
        s.org_configs().update(&OP, o, &big)
    });
    assert!(e.message().contains("1 MiB"), "{e}");
    // Two patches that only add up to too much: the merged result is refused.
    let (store, acme) = fixture();
    let half = format!(r#"{{"routing":{{"a":"{}"}}}}"#, "y".repeat(600 * 1024));
    store.org_configs().update(&OP, &acme, &half).unwrap();
    let before = observe(&store);
    let e = store
        .org_configs()
        .update(&OP, &acme, &half.replace("\"a\"", "\"b\""))
        .unwrap_err();
    assert_eq!((e.kind(), e.field()), (ErrorKind::Invalid, "config"));
    assert!(observe(&store) == before);
}

#[test]
fn deeply_nested_config_json() {
    for depth in [200, 10_000, 100_000] {
        let deep = format!(
            r#"{{"routing":{}1{}}}"#,
            r#"{"a":"#.repeat(depth),
            "}".repeat(depth)
        );
        let e = refused(ErrorKind::Invalid, "config", |s, o| {
            s.org_configs().update(&OP, o, &deep)
        });
        assert!(e.message().contains("128 levels"), "{e}");
        let arrays = format!(
            r#"{{"routing":{{"a":{}{}}}}}"#,
            "[".repeat(depth),
            "]".repeat(depth)
        );
        refused(ErrorKind::Invalid, "config", |s, o| {
            s.org_configs().update(&OP, o, &arrays)
        });
    }
    // Nesting within the limit is stored and read back.
    let (store, acme) = fixture();
    let ok = format!(
        r#"{{"routing":{}1{}}}"#,
        r#"{"a":"#.repeat(100),
        "}".repeat(100)
    );
    store.org_configs().update(&OP, &acme, &ok).unwrap();
    assert_eq!(store.org_configs().retrieve(&OP, &acme).unwrap().version, 3);
}

#[test]
fn invalid_cidr() {
    for (bad, i) in [
        ("10.0.0.0/33", 0),
        ("300.1.1.1", 0),
        ("fe80::/129", 0),
        ("", 0),
        ("10.0.0.1 ", 99),
    ] {
        let field = format!("config.ip_acl.allow[{i}]");
        let mut list: Vec<&str> = vec!["10.0.0.0/8"; i];
        list.push(bad);
        if bad.ends_with(' ') {
            // Surrounding blanks are trimmed: this one is fine.
            let (store, acme) = fixture();
            store
                .org_configs()
                .update(&OP, &acme, &json!({"ip_acl": {"allow": list}}).to_string())
                .unwrap();
            continue;
        }
        let patch = json!({"ip_acl": {"allow": list}}).to_string();
        let e = refused(ErrorKind::Invalid, &field, |s, o| {
            s.org_configs().update(&OP, o, &patch)
        });
        assert!(e.message().contains("not an IP address or CIDR"), "{e}");
        refused(ErrorKind::Invalid, "allowed_ips[1]", |s, o| {
            s.keys()
                .create(&OP, o, KeySpec::new("k").ips(["10.0.0.1", bad]))
        });
    }
    // A 1 MB "address" is quoted back truncated, not whole.
    let huge = "1".repeat(1 << 20);
    let e = refused(ErrorKind::Invalid, "allowed_ips[0]", |s, o| {
        s.keys()
            .create(&OP, o, KeySpec::new("k").ips([huge.as_str()]))
    });
    assert!(e.message().len() < 1000, "{} bytes", e.message().len());
    refused(ErrorKind::Invalid, "allowed_ips", |s, o| {
        s.keys()
            .create(&OP, o, KeySpec::new("k").ips(vec!["10.0.0.1"; 10_001]))
    });
}

#[test]
fn negative_nan_or_absurd_budgets() {
    let field = "config.budgets.limit";
    for limit in [
        "-5",
        "-0.000001",
        "\"NaN\"",
        "\"Infinity\"",
        "1000000000.000001",
        "1e30",
        "0.0000001",
        "\"100 USD\"",
        "null",
    ] {
        let patch = format!(r#"{{"budgets":{{"limit":{limit}}}}}"#);
        if limit == "null" {
            // null removes the limit (merge patch): fine.
            let (store, acme) = fixture();
            store.org_configs().update(&OP, &acme, &patch).unwrap();
            continue;
        }
        let e = refused(ErrorKind::Invalid, field, |s, o| {
            s.org_configs().update(&OP, o, &patch)
        });
        assert!(
            e.message().contains("dollar amount") || e.message().contains("number"),
            "{limit}: {e}"
        );
    }
    // JSON has no NaN or infinity; a literal that overflows a float is not valid JSON.
    for limit in ["NaN", "Infinity", "1e400", "-1e400"] {
        let patch = format!(r#"{{"budgets":{{"limit":{limit}}}}}"#);
        let e = refused(ErrorKind::Invalid, "config", |s, o| {
            s.org_configs().update(&OP, o, &patch)
        });
        assert!(e.message().contains("not valid JSON"), "{limit}: {e}");
    }
    for threshold in ["0", "1.5", "-0.1", "\"high\""] {
        let patch = format!(r#"{{"budgets":{{"limit":10,"warn_threshold":{threshold}}}}}"#);
        refused(
            ErrorKind::Invalid,
            "config.budgets.warn_threshold",
            |s, o| s.org_configs().update(&OP, o, &patch),
        );
    }
    refused(ErrorKind::Invalid, "config.budgets.period", |s, o| {
        s.org_configs()
            .update(&OP, o, r#"{"budgets":{"limit":10,"period":"fortnightly"}}"#)
    });
    // Key budgets are typed: the amount parser refuses what the CLI and imports could pass.
    for amount in [
        "-1",
        "NaN",
        "inf",
        "1e400",
        "1e10",
        "0.0000001",
        "",
        "1,5",
        "$5",
    ] {
        let e = Usd::parse(amount).unwrap_err();
        assert_eq!(e.kind(), ErrorKind::Invalid, "{amount}");
        assert!(Usd::from_micros(-1).is_err());
    }
    let e = refused(ErrorKind::Invalid, "keys[0].sha256", |s, o| {
        let spec = KeySpec::new("k").budget(Budget::new(
            Usd::parse("1000000000").unwrap(),
            Period::Total,
        ));
        s.keys().import(&OP, o, &[ImportKey::new("zz", spec)])
    });
    assert!(e.message().contains("64 hex digits"), "{e}");
}

#[test]
fn rpm_zero() {
    for field in ["rpm", "tpm", "per_key_rpm", "per_key_tpm"] {
        for bad in ["0", "-1", "1.5", "\"100\"", "100000000000000000000"] {
            let patch = format!(r#"{{"rate_limiting":{{"{field}":{bad}}}}}"#);
            let e = refused(
                ErrorKind::Invalid,
                &format!("config.rate_limiting.{field}"),
                |s, o| s.org_configs().update(&OP, o, &patch),
            );
            // 1e20 written out is refused while reading the JSON (it is beyond what is held
            // exactly), naming the same field.
            assert!(e.message().contains("whole number"), "{e}");
        }
    }
    refused(ErrorKind::Invalid, "rate_limit_rpm", |s, o| {
        s.keys().create(&OP, o, KeySpec::new("k").rpm(0))
    });
    refused(ErrorKind::Invalid, "rate_limit_tpm", |s, o| {
        s.keys().create(&OP, o, KeySpec::new("k").tpm(0))
    });
    // A key's rpm 0 is refused on edit too, and the key keeps its settings.
    refused(ErrorKind::Invalid, "rate_limit_rpm", |s, o| {
        let id = s.keys().list(&OP, o)?[0].id;
        s.keys().update(&OP, &id, KeySpec::new("svc").rpm(0))
    });
}
