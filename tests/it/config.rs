//! Org config: merge patches (RFC 7396), documented and upstream spellings, validation,
//! the size limit, history, diff, rollback, secret masking and exact money.

use crate::common::ConfigJson;
use crate::common::*;
use orgstore::{ConfigChange, ErrorKind, MAX_CONFIG_BYTES, OrgConfig, Period};
use serde_json::{Value, json};

const SECRET: &str = "sk-proj-Abcdefghijklmnopqrstuvwx1234";

/// The active config as canonical JSON (secrets included).
fn active(f: &Fixture) -> Value {
    f.store
        .org_configs()
        .reveal(&OP, &f.org, None)
        .unwrap()
        .config
        .revealed_value()
}

/// Applies `patch` to a fresh org whose config is `base`, returning the merged JSON.
fn merged(base: Value, patch: Value) -> Value {
    let f = Fixture::new();
    f.update_config(&base.to_string());
    f.update_config(&patch.to_string());
    active(&f)
}

#[test]
fn a_new_org_has_an_empty_version_1() {
    let f = Fixture::new();
    let v = f.store.org_configs().retrieve(&OP, &f.org).unwrap();
    assert_eq!(
        (v.version, v.active, v.note.as_str(), v.created_by.as_str()),
        (1, true, "initial", "operator")
    );
    assert_eq!(v.org, f.org);
    assert_eq!(v.config.masked_value(), json!({}));
    assert!(!v.config.rate_limiting().enabled);
    assert!(v.config.budgets().is_none());
    assert!(v.config.allowed_models().is_none());
    assert!(!v.config.ip_acl().is_active());
}

#[test]
fn update_creates_the_next_version_and_activates_it() {
    let f = Fixture::new();
    let v2 = f.update_config(
        r#"{"rate_limiting":{"enabled":true,"rpm":1000},"allowed_models":["gpt-4o-mini"]}"#,
    );
    assert_eq!(
        (v2.version, v2.active, v2.note.as_str()),
        (2, true, "update")
    );
    let got = f.store.org_configs().retrieve(&OP, &f.org).unwrap();
    assert_eq!(got.version, 2);
    assert_eq!(got.config, v2.config);
    assert_eq!(got.config.rate_limiting().rpm, Some(1000));
    assert_eq!(
        got.config.allowed_models(),
        Some(&["gpt-4o-mini".to_owned()][..])
    );
    let org = f.store.orgs().get(&OP, &f.org).unwrap();
    assert_eq!((org.config_version, org.latest_version), (2, 2));

    let log = f.audit();
    assert_eq!(log[0].action, "UpdateConfig");
    assert!(log[0].summary.contains("version 2"), "{}", log[0].summary);
    assert!(
        log[0]
            .summary
            .contains("changed allowed_models, rate_limiting"),
        "{}",
        log[0].summary
    );
}

#[test]
fn merge_patch_follows_rfc_7396() {
    // Nested objects merge; other members are kept.
    assert_eq!(
        merged(
            json!({"rate_limiting": {"rpm": 10, "tpm": 99}, "routing": {"strategy": "cost"}}),
            json!({"rate_limiting": {"rpm": 20}})
        ),
        json!({"rate_limiting": {"rpm": 20, "tpm": 99}, "routing": {"strategy": "cost"}})
    );
    // null removes a member, at any depth, and a whole section.
    assert_eq!(
        merged(
            json!({"rate_limiting": {"rpm": 10, "tpm": 99}, "routing": {"strategy": "cost"}}),
            json!({"rate_limiting": {"tpm": null}, "routing": null})
        ),
        json!({"rate_limiting": {"rpm": 10}})
    );
    // Removing something absent is a no-op.
    assert_eq!(
        merged(
            json!({"routing": {"a": 1}}),
            json!({"routing": {"b": null}, "cache": null})
        ),
        json!({"routing": {"a": 1}})
    );
    // The RFC's own example, inside a pass-through section.
    assert_eq!(
        merged(
            json!({"routing": {"a": "b", "c": {"d": "e", "f": "g"}}}),
            json!({"routing": {"a": "z", "c": {"f": null}}})
        ),
        json!({"routing": {"a": "z", "c": {"d": "e"}}})
    );
    // Deep nesting in providers merges member by member.
    assert_eq!(
        merged(
            json!({"providers": {"openai": {"base_url": "https://a", "models": ["x"], "timeout": 30}}}),
            json!({"providers": {"openai": {"timeout": 60}, "anthropic": {"base_url": "https://b"}}})
        ),
        json!({"providers": {
            "openai": {"base_url": "https://a", "models": ["x"], "timeout": 60},
            "anthropic": {"base_url": "https://b"}
        }})
    );
    // Arrays are replaced, never merged.
    assert_eq!(
        merged(
            json!({"allowed_models": ["a", "b"], "ip_acl": {"allow": ["10.0.0.0/8"]}}),
            json!({"allowed_models": ["c"]})
        ),
        json!({"allowed_models": ["c"], "ip_acl": {"allow": ["10.0.0.0/8"]}})
    );
    // A non-object value replaces an object member wholesale (here inside a pass-through
    // section, where anything goes).
    assert_eq!(
        merged(
            json!({"routing": {"x": {"y": 1}}}),
            json!({"routing": {"x": 5}})
        ),
        json!({"routing": {"x": 5}})
    );
}

#[test]
fn a_patch_must_be_an_object() {
    let f = Fixture::new();
    for bad in ["[1]", "\"x\"", "null", "5", "", "{", "{\"a\":1,}"] {
        let err = f.store.org_configs().update(&OP, &f.org, bad).unwrap_err();
        assert_eq!(
            (err.kind(), err.field()),
            (ErrorKind::Invalid, "config"),
            "{bad:?}: {err}"
        );
    }
    assert_eq!(f.store.orgs().get(&OP, &f.org).unwrap().latest_version, 1);
}

#[test]
fn documented_and_upstream_spellings_are_both_accepted() {
    let documented = merged(
        json!({}),
        json!({"rate_limiting": {"rpm": 1000, "tpm": 50000}, "budgets": {"limit": 500, "period": "weekly", "hard": false}, "cache": {"enabled": true}}),
    );
    let upstream = merged(
        json!({}),
        json!({"rate_limiting": {"global_rpm": 1000, "global_tpm": 50000}, "budgets": {"org_limit": 500, "org_period": "weekly", "hard_limit": false}, "caching": {"enabled": true}}),
    );
    assert_eq!(
        documented, upstream,
        "aliases are stored under their canonical names"
    );
    assert_eq!(documented["rate_limiting"]["rpm"], json!(1000));
    assert_eq!(documented["budgets"]["limit"], json!(500));
    assert_eq!(documented["cache"], json!({"enabled": true}));

    let c = OrgConfig::parse(&upstream.to_string()).unwrap();
    assert_eq!(
        (c.rate_limiting().rpm, c.rate_limiting().tpm),
        (Some(1000), Some(50_000))
    );
    let b = c.budgets().unwrap();
    assert_eq!(
        (b.limit.unwrap().micros(), b.period, b.hard),
        (500_000_000, Period::Weekly, false)
    );
}

#[test]
fn an_upstream_patch_replaces_the_canonical_field() {
    let f = Fixture::new();
    f.update_config(r#"{"rate_limiting":{"rpm":1000},"budgets":{"limit":5},"cache":{"ttl":1}}"#);
    f.update_config(
        r#"{"rate_limiting":{"global_rpm":50},"budgets":{"org_limit":7},"caching":{"ttl":2}}"#,
    );
    assert_eq!(
        active(&f),
        json!({"rate_limiting": {"rpm": 50}, "budgets": {"limit": 7}, "cache": {"ttl": 2}})
    );
    // And `caching: null` removes `cache`.
    f.update_config(r#"{"caching":null}"#);
    assert_eq!(
        active(&f),
        json!({"rate_limiting": {"rpm": 50}, "budgets": {"limit": 7}})
    );
}

#[test]
fn both_spellings_at_once_are_rejected() {
    let f = Fixture::new();
    for (patch, field) in [
        (
            r#"{"rate_limiting":{"rpm":1,"global_rpm":2}}"#,
            "config.rate_limiting.global_rpm",
        ),
        (
            r#"{"budgets":{"limit":1,"org_limit":2}}"#,
            "config.budgets.org_limit",
        ),
        (r#"{"cache":{},"caching":{}}"#, "config.caching"),
    ] {
        let err = f
            .store
            .org_configs()
            .update(&OP, &f.org, patch)
            .unwrap_err();
        assert_eq!(
            (err.kind(), err.field()),
            (ErrorKind::Invalid, field),
            "{patch}"
        );
        assert!(err.message().contains("give only one"), "{err}");
    }
}

#[test]
fn unknown_sections_and_fields_are_named_with_the_valid_ones() {
    let f = Fixture::new();
    let err = f
        .store
        .org_configs()
        .update(&OP, &f.org, r#"{"billing":{"x":1}}"#)
        .unwrap_err();
    assert_eq!(
        (err.kind(), err.field()),
        (ErrorKind::Invalid, "config.billing")
    );
    for valid in [
        "rate_limiting",
        "budgets",
        "ip_acl",
        "allowed_models",
        "providers",
        "cache",
        "model_map",
    ] {
        assert!(err.message().contains(valid), "{valid} missing from: {err}");
    }

    for (patch, field, valid) in [
        (
            r#"{"rate_limiting":{"rpmm":1}}"#,
            "config.rate_limiting.rpmm",
            &["enabled", "rpm", "tpm", "per_key_rpm", "per_key_tpm"][..],
        ),
        (
            r#"{"budgets":{"limt":1}}"#,
            "config.budgets.limt",
            &["enabled", "limit", "period", "hard", "warn_threshold"][..],
        ),
        (
            r#"{"ip_acl":{"allowed":[]}}"#,
            "config.ip_acl.allowed",
            &["enabled", "allow", "deny"][..],
        ),
    ] {
        let err = f
            .store
            .org_configs()
            .update(&OP, &f.org, patch)
            .unwrap_err();
        assert_eq!(
            (err.kind(), err.field()),
            (ErrorKind::Invalid, field),
            "{patch}"
        );
        for v in valid {
            assert!(err.message().contains(v), "{v} missing from: {err}");
        }
    }
    // An unknown field already in the stored config cannot sneak in through a nested patch
    // either: the merged result is validated whole.
    f.update_config(r#"{"rate_limiting":{"rpm":5}}"#);
    let err = f
        .store
        .org_configs()
        .update(&OP, &f.org, r#"{"rate_limiting":{"burst":5}}"#)
        .unwrap_err();
    assert_eq!(err.field(), "config.rate_limiting.burst");
}

#[test]
fn typed_values_are_validated_with_the_field_named() {
    let f = Fixture::new();
    for (patch, field) in [
        (r#"{"rate_limiting":{"rpm":0}}"#, "config.rate_limiting.rpm"),
        (
            r#"{"rate_limiting":{"tpm":-1}}"#,
            "config.rate_limiting.tpm",
        ),
        (
            r#"{"rate_limiting":{"per_key_rpm":1.5}}"#,
            "config.rate_limiting.per_key_rpm",
        ),
        (
            r#"{"rate_limiting":{"enabled":"yes"}}"#,
            "config.rate_limiting.enabled",
        ),
        (r#"{"rate_limiting":5}"#, "config.rate_limiting"),
        (
            r#"{"budgets":{"period":"yearly"}}"#,
            "config.budgets.period",
        ),
        (
            r#"{"budgets":{"warn_threshold":1.5}}"#,
            "config.budgets.warn_threshold",
        ),
        (
            r#"{"ip_acl":{"allow":["10.0.0.0/8","10.0.0.300"]}}"#,
            "config.ip_acl.allow[1]",
        ),
        (
            r#"{"ip_acl":{"deny":["fe80::/129"]}}"#,
            "config.ip_acl.deny[0]",
        ),
        (r#"{"allowed_models":"gpt-4o"}"#, "config.allowed_models"),
        (
            r#"{"allowed_models":["gpt-4o",""]}"#,
            "config.allowed_models[1]",
        ),
        (r#"{"routing":5}"#, "config.routing"),
        (r#"{"providers":["openai"]}"#, "config.providers"),
    ] {
        let err = f
            .store
            .org_configs()
            .update(&OP, &f.org, patch)
            .unwrap_err();
        assert_eq!(
            (err.kind(), err.field()),
            (ErrorKind::Invalid, field),
            "{patch}: {err}"
        );
    }
    assert_eq!(f.store.orgs().get(&OP, &f.org).unwrap().latest_version, 1);
}

#[test]
fn ip_acl_and_models_are_understood() {
    let f = Fixture::new();
    let v = f.update_config(
        r#"{"ip_acl":{"allow":["10.0.0.0/8","2001:db8::/32"],"deny":["10.9.9.9"]}}"#,
    );
    let acl = v.config.ip_acl();
    assert!(acl.is_active());
    assert!(acl.allows("10.1.2.3".parse().unwrap()));
    assert!(!acl.allows("10.9.9.9".parse().unwrap()), "deny wins");
    assert!(!acl.allows("11.0.0.1".parse().unwrap()));
    assert!(acl.allows("2001:db8::7".parse().unwrap()));
    let v = f.update_config(r#"{"ip_acl":{"enabled":false}}"#);
    assert!(v.config.ip_acl().allows("11.0.0.1".parse().unwrap()));
}

#[test]
fn configs_over_one_mib_are_rejected() {
    let f = Fixture::new();
    // A patch whose text alone is too large.
    let big = json!({"providers": {"x": {"blob": "a".repeat(MAX_CONFIG_BYTES)}}}).to_string();
    let err = f.store.org_configs().update(&OP, &f.org, &big).unwrap_err();
    assert_eq!((err.kind(), err.field()), (ErrorKind::Invalid, "config"));
    assert!(err.message().contains("1 MiB"), "{err}");

    // Two patches that each fit but together do not: the merged result is checked.
    let half = "b".repeat(MAX_CONFIG_BYTES / 2 + 1000);
    f.update_config(&json!({"providers": {"x": {"blob": half}}}).to_string());
    let err = f
        .store
        .org_configs()
        .update(
            &OP,
            &f.org,
            &json!({"providers": {"y": {"blob": half}}}).to_string(),
        )
        .unwrap_err();
    assert_eq!((err.kind(), err.field()), (ErrorKind::Invalid, "config"));
    assert!(err.message().contains("1 MiB"), "{err}");
    assert_eq!(f.store.orgs().get(&OP, &f.org).unwrap().latest_version, 2);
    assert!(active(&f)["providers"].get("y").is_none());

    // Just under the limit is fine.
    let fits = "c".repeat(MAX_CONFIG_BYTES - 200);
    let g = Fixture::new();
    g.update_config(&json!({"providers": {"x": {"blob": fits}}}).to_string());
}

#[test]
fn a_failed_update_changes_nothing() {
    let f = Fixture::new();
    f.update_config(
        &json!({"rate_limiting": {"rpm": 10}, "providers": {"openai": {"api_key": SECRET}}})
            .to_string(),
    );
    let before = active(&f);
    let org_before = f.store.orgs().get(&OP, &f.org).unwrap();
    let audit_before = f.audit();
    let history_before = f.store.org_configs().history(&OP, &f.org).unwrap().len();

    for bad in [
        r#"{"rate_limiting":{"rpm":-5}}"#,
        r#"{"rate_limiting":{"rpm":20},"budgets":{"limit":-1}}"#,
        r#"{"providers":{"openai":{"api_key":"sk-new"}},"nonsense":{}}"#,
        r#"{"ip_acl":{"allow":["nope"]}}"#,
        "not json",
    ] {
        assert!(
            f.store.org_configs().update(&OP, &f.org, bad).is_err(),
            "{bad}"
        );
        assert_eq!(active(&f), before, "{bad}");
        assert_eq!(
            f.store.orgs().get(&OP, &f.org).unwrap(),
            org_before,
            "{bad}"
        );
        assert_eq!(f.audit(), audit_before, "{bad}");
        assert_eq!(
            f.store.org_configs().history(&OP, &f.org).unwrap().len(),
            history_before
        );
    }
    // The next good update is version 3: no version number was used up.
    assert_eq!(
        f.update_config(r#"{"rate_limiting":{"rpm":20}}"#).version,
        3
    );
}

#[test]
fn history_lists_every_version_oldest_first() {
    let f = Fixture::new();
    for rpm in [10, 20, 30] {
        f.update_config(&format!(r#"{{"rate_limiting":{{"rpm":{rpm}}}}}"#));
    }
    let h = f.store.org_configs().history(&OP, &f.org).unwrap();
    let versions: Vec<(u64, bool, &str)> = h
        .iter()
        .map(|v| (v.version, v.active, v.note.as_str()))
        .collect();
    assert_eq!(
        versions,
        [
            (1, false, "initial"),
            (2, false, "update"),
            (3, false, "update"),
            (4, true, "update")
        ]
    );
    let rpms: Vec<Option<u64>> = h.iter().map(|v| v.config.rate_limiting().rpm).collect();
    assert_eq!(rpms, [None, Some(10), Some(20), Some(30)]);
    assert!(h.windows(2).all(|w| w[0].created_at <= w[1].created_at));
    assert!(
        h.iter()
            .all(|v| v.created_by == "operator" && v.org == f.org)
    );

    // Any one version can be read back; an absent one is NotFound naming the version.
    let v2 = f.store.org_configs().version(&OP, &f.org, Some(2)).unwrap();
    assert_eq!(
        (v2.version, v2.active, v2.config.rate_limiting().rpm),
        (2, false, Some(10))
    );
    let err = f
        .store
        .org_configs()
        .version(&OP, &f.org, Some(9))
        .unwrap_err();
    assert_eq!((err.kind(), err.field()), (ErrorKind::NotFound, "version"));
}

#[test]
fn diff_lists_changed_leaves_with_secrets_masked() {
    let f = Fixture::new();
    f.update_config(&json!({"rate_limiting": {"rpm": 1}, "providers": {"openai": {"api_key": SECRET, "base_url": "https://a"}}}).to_string());
    let second = "sk-proj-Zyxwvutsrqponmlkjihgfedc9876";
    f.update_config(&json!({"rate_limiting": {"rpm": 2}, "providers": {"openai": {"api_key": second}}, "routing": {"strategy": "cost"}}).to_string());

    let d = f.store.org_configs().diff(&OP, &f.org, 2, 3).unwrap();
    let paths: Vec<&str> = d.iter().map(|c| c.path.as_str()).collect();
    assert_eq!(
        paths,
        ["providers.openai.api_key", "rate_limiting.rpm", "routing"]
    );
    assert_eq!(
        (d[1].old.as_deref(), d[1].new.as_deref()),
        (Some("1"), Some("2"))
    );
    assert_eq!(
        (d[2].old.clone(), d[2].new.clone()),
        (None, Some(json!({"strategy": "cost"}).to_string()))
    );
    assert_eq!(d[0].old.as_deref(), Some(r#""sk-...1234""#));
    assert_eq!(d[0].new.as_deref(), Some(r#""sk-...9876""#));

    // A whole section added or removed carries its secrets masked too.
    let d = f.store.org_configs().diff(&OP, &f.org, 1, 3).unwrap();
    let text = format!("{d:?}");
    assert!(!text.contains("Zyxwvutsrqponmlkj"), "{text}");
    let d = f.store.org_configs().diff(&OP, &f.org, 3, 1).unwrap();
    let providers = d.iter().find(|c| c.path == "providers").unwrap();
    assert_eq!(providers.new, None);
    assert_eq!(
        providers.old,
        Some(json!({"openai": {"api_key": "sk-...9876", "base_url": "https://a"}}).to_string())
    );

    assert_eq!(
        f.store.org_configs().diff(&OP, &f.org, 3, 3).unwrap(),
        Vec::<ConfigChange>::new()
    );
    let err = f.store.org_configs().diff(&OP, &f.org, 1, 7).unwrap_err();
    assert_eq!((err.kind(), err.field()), (ErrorKind::NotFound, "version"));

    // The audit log of the updates never saw a secret either.
    let log = format!("{:?}", f.audit());
    assert!(
        !log.contains("Abcdefghijklmnop") && !log.contains("Zyxwvutsrqponmlkj"),
        "{log}"
    );
}

#[test]
fn rollback_creates_a_new_version_with_the_old_content() {
    let f = Fixture::new();
    f.update_config(r#"{"rate_limiting":{"rpm":10},"routing":{"strategy":"cost"}}"#);
    f.update_config(r#"{"rate_limiting":{"rpm":20},"routing":null,"allowed_models":["m"]}"#);
    let v2 = f.store.org_configs().version(&OP, &f.org, Some(2)).unwrap();

    let v4 = f.store.org_configs().rollback(&OP, &f.org, 2).unwrap();
    assert_eq!(
        (v4.version, v4.active, v4.note.as_str()),
        (4, true, "rollback to 2")
    );
    assert_eq!(v4.config, v2.config);
    assert_eq!(
        active(&f),
        json!({"rate_limiting": {"rpm": 10}, "routing": {"strategy": "cost"}})
    );

    // Nothing was rewritten: version 3 is still there, inactive.
    let h = f.store.org_configs().history(&OP, &f.org).unwrap();
    assert_eq!(h.len(), 4);
    assert_eq!(h[2].config.rate_limiting().rpm, Some(20));
    assert!(!h[2].active && h[3].active);
    let log = f.audit();
    assert_eq!(log[0].action, "UpdateConfig");
    assert!(
        log[0].summary.contains("rollback to 2"),
        "{}",
        log[0].summary
    );

    // Rolling back to the initial empty config works; to a missing version changes nothing.
    let v5 = f.store.org_configs().rollback(&OP, &f.org, 1).unwrap();
    assert_eq!(v5.config.masked_value(), json!({}));
    let err = f.store.org_configs().rollback(&OP, &f.org, 42).unwrap_err();
    assert_eq!((err.kind(), err.field()), (ErrorKind::NotFound, "version"));
    assert_eq!(f.store.orgs().get(&OP, &f.org).unwrap().latest_version, 5);

    // An update after a rollback patches the rolled-back content.
    let v6 = f.update_config(r#"{"rate_limiting":{"tpm":7}}"#);
    assert_eq!(v6.version, 6);
    assert_eq!(active(&f), json!({"rate_limiting": {"tpm": 7}}));
}

#[test]
fn provider_secrets_are_masked_unless_revealed() {
    let f = Fixture::new();
    let v = f.update_config(
        &json!({"providers": {
            "openai": {"api_key": SECRET, "base_url": "https://api.openai.com"},
            "azure": {"api_key": "short"},
            "bedrock": {"aws_secret_access_key": "AKIAsupersecretvalue99"}
        }})
        .to_string(),
    );
    let masked = v.config.masked_value();
    assert_eq!(
        masked["providers"]["openai"]["api_key"],
        json!("sk-...1234")
    );
    assert_eq!(
        masked["providers"]["openai"]["base_url"],
        json!("https://api.openai.com")
    );
    assert_eq!(masked["providers"]["azure"]["api_key"], json!("****"));
    let text = masked.to_string();
    assert!(
        !text.contains("Abcdefghijklmnop") && !text.contains("supersecret"),
        "{text}"
    );

    let retrieved = f.store.org_configs().retrieve(&OP, &f.org).unwrap();
    assert_eq!(retrieved.config.masked_value(), masked);
    for listed in f.store.org_configs().history(&OP, &f.org).unwrap() {
        assert!(
            !listed
                .config
                .masked_value()
                .to_string()
                .contains("Abcdefghijklmnop")
        );
    }

    let revealed = f.store.org_configs().reveal(&OP, &f.org, None).unwrap();
    assert_eq!(
        revealed.config.revealed_value()["providers"]["openai"]["api_key"],
        json!(SECRET)
    );
    let old = f.store.org_configs().reveal(&OP, &f.org, Some(1)).unwrap();
    assert_eq!(old.config.revealed_value(), json!({}));
}

#[test]
fn debug_output_never_shows_a_secret() {
    let f = Fixture::new();
    f.update_config(&json!({"providers": {"openai": {"api_key": SECRET}}}).to_string());
    let v = f.store.org_configs().retrieve(&OP, &f.org).unwrap();
    let dbg = format!("{v:?} {:?}", v.config);
    assert!(!dbg.contains("Abcdefghijklmnop"), "{dbg}");
    assert!(dbg.contains("sk-...1234"), "{dbg}");
    let err = f
        .store
        .org_configs()
        .update(
            &OP,
            &f.org,
            &json!({"providers": {"openai": {"api_key": SECRET}}, "x": {}}).to_string(),
        )
        .unwrap_err();
    assert!(!format!("{err} {err:?}").contains("Abcdefghijklmnop"));
}

#[test]
fn money_is_exact() {
    let f = Fixture::new();
    for (text, micros, stored) in [
        ("0.1", 100_000, json!(0.1)),
        ("500.00", 500_000_000, json!(500)),
        ("1e3", 1_000_000_000, json!(1000)),
        ("0.000001", 1, json!(0.000001)),
        ("1234.56", 1_234_560_000, json!(1234.56)),
        (
            "999999999.999999",
            999_999_999_999_999,
            json!(999999999.999999),
        ),
        ("0", 0, json!(0)),
        ("2.5E-1", 250_000, json!(0.25)),
    ] {
        let v = f.update_config(&format!(
            r#"{{"budgets":{{"limit":{text},"period":"monthly"}}}}"#
        ));
        assert_eq!(
            v.config.budgets().unwrap().limit.unwrap().micros(),
            micros,
            "{text}"
        );
        assert_eq!(active(&f)["budgets"]["limit"], stored, "{text}");
        // Stored text round-trips to the same amount.
        let again = OrgConfig::parse(&active(&f).to_string()).unwrap();
        assert_eq!(
            again.budgets().unwrap().limit.unwrap().micros(),
            micros,
            "{text}"
        );
    }
    let version = f.store.orgs().get(&OP, &f.org).unwrap().latest_version;
    for bad in [
        "-1",
        "-0.5",
        "0.0000001",
        "1.1234567",
        "1e10",
        "1000000000.000001",
        "\"100 USD\"",
        "\".5\"",
        "true",
    ] {
        let err = f
            .store
            .org_configs()
            .update(&OP, &f.org, &format!(r#"{{"budgets":{{"limit":{bad}}}}}"#))
            .unwrap_err();
        assert_eq!(
            (err.kind(), err.field()),
            (ErrorKind::Invalid, "config.budgets.limit"),
            "{bad}: {err}"
        );
    }
    assert_eq!(
        f.store.orgs().get(&OP, &f.org).unwrap().latest_version,
        version
    );
}

#[test]
fn unknown_or_deleted_org_is_not_found() {
    let f = Fixture::new();
    let err = f
        .store
        .org_configs()
        .update(&OP, &org("ghost"), "{}")
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::NotFound);
    f.store.orgs().delete(&OP, &f.org).unwrap();
    for err in [
        f.store.org_configs().update(&OP, &f.org, "{}").unwrap_err(),
        f.store.org_configs().rollback(&OP, &f.org, 1).unwrap_err(),
        f.store.org_configs().history(&OP, &f.org).unwrap_err(),
        f.store.org_configs().diff(&OP, &f.org, 1, 1).unwrap_err(),
    ] {
        assert_eq!(err.kind(), ErrorKind::NotFound, "{err}");
    }
}
