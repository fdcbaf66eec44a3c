use super::*;
use serde_json::json;

#[test]
fn documented_and_upstream_shapes_are_both_accepted() {
    let doc = OrgConfig::parse(r#"{"rate_limiting":{"enabled":true,"rpm":1000},"budgets":{"limit":500.00,"period":"monthly"}}"#).unwrap();
    let up = OrgConfig::parse(r#"{"rate_limiting":{"enabled":true,"global_rpm":1000},"budgets":{"org_limit":500,"org_period":"monthly"}}"#).unwrap();
    assert_eq!(doc.rate_limiting(), up.rate_limiting());
    assert_eq!(doc.budgets(), up.budgets());
    assert_eq!(doc.json(), up.json());
    let soft = OrgConfig::parse(r#"{"budgets":{"org_limit":5,"hard_limit":false}}"#).unwrap();
    assert!(!soft.budgets().unwrap().hard);
}

#[test]
fn both_spellings_at_once_is_an_error() {
    let e = OrgConfig::parse(r#"{"rate_limiting":{"rpm":1,"global_rpm":2}}"#).unwrap_err();
    assert_eq!(e.field(), "config.rate_limiting.global_rpm");
}

#[test]
fn upstream_patch_replaces_canonical_field() {
    let c = OrgConfig::parse(r#"{"rate_limiting":{"rpm":1000}}"#).unwrap();
    let c = c
        .merge_patch(r#"{"rate_limiting":{"global_rpm":50}}"#)
        .unwrap();
    assert_eq!(c.rate_limiting().rpm, Some(50));
    let c = c.merge_patch(r#"{"caching":{"enabled":true}}"#).unwrap();
    assert_eq!(c.json()["cache"], json!({"enabled": true}));
}

#[test]
fn unknown_fields_name_themselves_and_the_valid_ones() {
    let e = OrgConfig::parse(r#"{"rate_limiting":{"rpmm":1}}"#).unwrap_err();
    assert_eq!(e.field(), "config.rate_limiting.rpmm");
    assert!(e.message().contains("per_key_rpm"));
    let e = OrgConfig::parse(r#"{"billing":{}}"#).unwrap_err();
    assert_eq!(e.field(), "config.billing");
    assert!(e.message().contains("model_map"));
}

#[test]
fn money_is_exact() {
    let c = OrgConfig::parse(r#"{"budgets":{"limit":0.1}}"#).unwrap();
    assert_eq!(c.budgets().unwrap().limit.unwrap().micros(), 100_000);
    let c = OrgConfig::parse(r#"{"budgets":{"limit":1e3}}"#).unwrap();
    assert_eq!(c.budgets().unwrap().limit.unwrap().micros(), 1_000_000_000);
    // Money may be a string holding a number (exact whatever the reader).
    let c = OrgConfig::parse(r#"{"budgets":{"limit":"12.50"}}"#).unwrap();
    assert_eq!(c.budgets().unwrap().limit.unwrap().micros(), 12_500_000);
    for bad in ["-1", "1e40", "0.0000001", "\"12,5\"", "true"] {
        let e = OrgConfig::parse(&format!(r#"{{"budgets":{{"limit":{bad}}}}}"#)).unwrap_err();
        assert_eq!(e.field(), "config.budgets.limit", "{bad}");
    }
}

#[test]
fn rpm_zero_and_bad_cidr_are_rejected() {
    assert_eq!(
        OrgConfig::parse(r#"{"rate_limiting":{"rpm":0}}"#)
            .unwrap_err()
            .field(),
        "config.rate_limiting.rpm"
    );
    assert_eq!(
        OrgConfig::parse(r#"{"ip_acl":{"allow":["10.0.0.0/40"]}}"#)
            .unwrap_err()
            .field(),
        "config.ip_acl.allow[0]"
    );
}

#[test]
fn oversized_and_deep_configs_fail_cleanly() {
    let big = format!(
        r#"{{"providers":{{"x":{{"blob":"{}"}}}}}}"#,
        "a".repeat(MAX_CONFIG_BYTES)
    );
    assert_eq!(OrgConfig::parse(&big).unwrap_err().field(), "config");
    let deep = format!(
        r#"{{"routing":{}1{}}}"#,
        "{\"a\":".repeat(5000),
        "}".repeat(5000)
    );
    assert_eq!(OrgConfig::parse(&deep).unwrap_err().field(), "config");
}

#[test]
fn failed_patch_leaves_original_untouched() {
    let c = OrgConfig::parse(r#"{"rate_limiting":{"rpm":10}}"#).unwrap();
    let before = c.clone();
    assert!(c.merge_patch(r#"{"rate_limiting":{"rpm":-5}}"#).is_err());
    assert_eq!(c, before);
}

#[test]
fn diff_masks_secrets() {
    let a = json!({"providers":{"openai":{"api_key":"sk-aaaaaaaaaaaaaaaa1111"}},"rate_limiting":{"rpm":1}});
    let b = json!({"providers":{"openai":{"api_key":"sk-bbbbbbbbbbbbbbbb2222"}},"rate_limiting":{"rpm":2}});
    let d = diff(&a, &b);
    assert_eq!(d.len(), 2);
    let s = format!("{d:?}");
    assert!(!s.contains("aaaaaaaa") && !s.contains("bbbbbbbb"), "{s}");
    assert!(s.contains("1111") && s.contains("2222"));
}

#[test]
fn stored_versions_keep_mapped_ranges_new_input_refuses() {
    let v = serde_json::json!({"ip_acl": {"deny": ["::ffff:10.0.0.0/80", "::ffff:10.0.0.0/104"]}});
    let e = OrgConfig::from_value(v.clone()).unwrap_err();
    assert_eq!(e.field(), "config.ip_acl.deny[0]");
    // A version an earlier build stored opens, with the meaning it had then (`::/80`).
    let c = OrgConfig::from_stored(v).unwrap();
    assert!(!c.ip_acl().allows("10.1.2.3".parse().unwrap()));
    assert!(!c.ip_acl().allows("::ffff:10.1.2.3".parse().unwrap()));
    assert!(!c.ip_acl().allows("::1".parse().unwrap()));
    assert!(c.ip_acl().allows("11.0.0.1".parse().unwrap()));
}

/// Stored configs whose model names break the naming rule (see `model::model_name`).
#[test]
fn stored_configs_that_break_the_rule_narrow_instead_of_failing() {
    let v = serde_json::json!({"allowed_models": [" gpt-4o ", "bad\u{0}name", "o3"]});
    let stored = OrgConfig::from_stored(v.clone()).unwrap();
    assert_eq!(stored.allowed_models().unwrap(), ["gpt-4o", "o3"]);
    let all_bad = serde_json::json!({"allowed_models": ["\u{202e}x"]});
    let stored = OrgConfig::from_stored(all_bad).unwrap();
    assert_eq!(stored.allowed_models().unwrap(), [] as [String; 0]);
    let e = OrgConfig::from_value(v).unwrap_err();
    assert_eq!(e.field(), "config.allowed_models[1]");
}
