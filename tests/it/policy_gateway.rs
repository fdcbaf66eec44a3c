//! Gateway decisions: base permit, guard rails, operator forbids, arbitrary model names.

use orgstore::{GatewayContext, Policies};
use orgstore::{KeyId, OrgId};
use proptest::prelude::*;

const OPERATOR_RULES: &str = r#"
@id("customer-a-no-gpt-4o")
forbid (principal in Org::"customer-a", action == Action::"invoke", resource == Model::"gpt-4o");
"#;

fn ctx(ip_allowed: bool, model_allowed: bool) -> GatewayContext {
    GatewayContext {
        ip_allowed,
        model_allowed,
    }
}

#[test]
fn base_permit_and_guard_rails() {
    let p = Policies::default_set().unwrap();
    let org = OrgId::parse("customer-a").unwrap();
    let key = KeyId::random();
    let d = p.gateway_decide(&org, &key, "gpt-4o", ctx(true, true));
    assert!(d.allowed);
    assert_eq!(d.policies, vec!["gateway-allow-valid"]);
    let d = p.gateway_decide(&org, &key, "gpt-4o", ctx(false, true));
    assert!(!d.allowed);
    assert_eq!(d.policies, vec!["gateway-deny-ip"]);
    let d = p.gateway_decide(&org, &key, "gpt-4o", ctx(true, false));
    assert_eq!(d.policies, vec!["gateway-deny-model"]);
    let mut d = p.gateway_decide(&org, &key, "gpt-4o", ctx(false, false));
    d.policies.sort();
    assert_eq!(d.policies, vec!["gateway-deny-ip", "gateway-deny-model"]);
    assert!(d.errors.is_empty());
}

#[test]
fn operator_forbid_applies_to_its_org_and_model_only() {
    let p = Policies::default_set()
        .unwrap()
        .with_sources(&[("ops.cedar", OPERATOR_RULES)])
        .unwrap();
    let a = OrgId::parse("customer-a").unwrap();
    let b = OrgId::parse("customer-b").unwrap();
    let key = KeyId::random();
    let d = p.gateway_decide(&a, &key, "gpt-4o", ctx(true, true));
    assert!(!d.allowed);
    assert_eq!(d.policies, vec!["customer-a-no-gpt-4o"]);
    assert!(
        p.gateway_decide(&a, &key, "gpt-4o-mini", ctx(true, true))
            .allowed
    );
    assert!(
        p.gateway_decide(&a, &key, "GPT-4o", ctx(true, true))
            .allowed
    );
    assert!(
        p.gateway_decide(&b, &key, "gpt-4o", ctx(true, true))
            .allowed
    );
}

#[test]
fn operator_rule_on_one_key() {
    let key = KeyId::random();
    let rule = format!(
        "@id(\"block-one-key\")\nforbid (principal == Key::\"{key}\", action == Action::\"invoke\", resource);\n"
    );
    let p = Policies::default_set()
        .unwrap()
        .with_sources(&[("k.cedar", &rule)])
        .unwrap();
    let org = OrgId::parse("acme").unwrap();
    assert!(!p.gateway_decide(&org, &key, "m", ctx(true, true)).allowed);
    assert!(
        p.gateway_decide(&org, &KeyId::random(), "m", ctx(true, true))
            .allowed
    );
}

#[test]
fn hostile_model_names_are_plain_ids() {
    let p = Policies::default_set()
        .unwrap()
        .with_sources(&[("ops.cedar", OPERATOR_RULES)])
        .unwrap();
    let a = OrgId::parse("customer-a").unwrap();
    let key = KeyId::random();
    for m in [
        "",
        "gpt-4o\"",
        "gpt-4o\" || true",
        "\"gpt-4o\"",
        "a\nb",
        "Model::\"gpt-4o\"",
        "\u{0}",
        "\u{202e}x",
    ] {
        let d = p.gateway_decide(&a, &key, m, ctx(true, true));
        assert!(d.allowed, "{m:?}: {d:?}");
        assert!(d.errors.is_empty());
    }
}

static WITH_OPS: std::sync::LazyLock<Policies> = std::sync::LazyLock::new(|| {
    Policies::default_set()
        .unwrap()
        .with_sources(&[("ops.cedar", OPERATOR_RULES)])
        .unwrap()
});

proptest! {
    #[test]
    fn decision_is_the_expected_function(
        model in prop_oneof![Just("gpt-4o".to_owned()), Just("gpt-4o-mini".to_owned()), ".{0,20}"],
        org_a in any::<bool>(),
        ip in any::<bool>(),
        allowed_model in any::<bool>(),
    ) {
        let p = &*WITH_OPS;
        let org = OrgId::parse(if org_a { "customer-a" } else { "customer-b" }).unwrap();
        let key = KeyId::random();
        let mut d = p.gateway_decide(&org, &key, &model, ctx(ip, allowed_model));
        // Every forbid that applies is named; a grant names the base permit.
        let mut forbids = Vec::new();
        if !ip {
            forbids.push("gateway-deny-ip");
        }
        if !allowed_model {
            forbids.push("gateway-deny-model");
        }
        if org_a && model == "gpt-4o" {
            forbids.push("customer-a-no-gpt-4o");
        }
        forbids.sort_unstable();
        d.policies.sort();
        prop_assert_eq!(d.allowed, forbids.is_empty());
        if forbids.is_empty() {
            prop_assert_eq!(d.policies, vec!["gateway-allow-valid".to_owned()]);
        } else {
            prop_assert_eq!(d.policies, forbids);
        }
        prop_assert!(d.errors.is_empty());
    }
}
