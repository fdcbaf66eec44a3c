//! What each demo key may do: the org's settings and the key's own, combined.

use super::*;

/// What one key may do: the org's settings and the key's own, combined (a key can only
/// narrow its org).
pub(crate) struct Capability {
    pub(super) org: String,
    pub(super) pattern: &'static str,
    pub(super) key: String,
    pub(super) prefix: String,
    /// Effective model allow-list; `None` means all models.
    pub(super) models: Option<Vec<String>>,
    pub(super) rpm: String,
    pub(super) budget: String,
    pub(super) ips: String,
}

/// One [`Capability`] per demo key, from the store's records.
pub(crate) fn capabilities(demo: &Demo) -> Result<Vec<Capability>, Error> {
    let op = Actor::Operator;
    let mut out = Vec::with_capacity(demo.keys.len());
    for k in &demo.keys {
        let info = &k.created.info;
        let config = demo.store.org_configs().retrieve(&op, &info.org)?.config;
        out.push(Capability {
            org: info.org.to_string(),
            pattern: k.pattern,
            key: info.spec.name.clone(),
            prefix: info.prefix.clone(),
            models: effective_models(config.allowed_models(), &info.spec.allowed_models),
            rpm: rpm_text(&config, info.spec.rate_limit_rpm),
            budget: budget_text(&config, info.spec.budget.as_ref()),
            ips: ips_text(&config, &info.spec.allowed_ips),
        });
    }
    Ok(out)
}

/// Org allow-list intersected with the key's (absent or empty = no restriction there).
pub(super) fn effective_models(org: Option<&[String]>, key: &[String]) -> Option<Vec<String>> {
    match (org, key.is_empty()) {
        (None, true) => None,
        (None, false) => Some(key.to_vec()),
        (Some(o), true) => Some(o.to_vec()),
        (Some(o), false) => Some(o.iter().filter(|m| key.contains(m)).cloned().collect()),
    }
}

pub(super) fn rpm_text(config: &OrgConfig, key_rpm: Option<u32>) -> String {
    let rl = config.rate_limiting();
    let key = key_rpm
        .map(u64::from)
        .or(if rl.enabled { rl.per_key_rpm } else { None });
    let org = if rl.enabled { rl.rpm } else { None };
    match (key, org) {
        (None, None) => "unlimited".into(),
        (Some(k), None) => k.to_string(),
        (None, Some(o)) => format!("{o} (org)"),
        (Some(k), Some(o)) => format!("{k} (org {o})"),
    }
}

pub(super) fn budget_text(config: &OrgConfig, key: Option<&orgstore::Budget>) -> String {
    let mut parts = Vec::new();
    if let Some(b) = config.budgets()
        && b.enabled
        && let Some(limit) = b.limit
    {
        parts.push(format!("${limit}{} (org)", per(b.period)));
    }
    if let Some(b) = key {
        parts.push(format!("${}{} (key)", b.limit, per(b.period)));
    }
    if parts.is_empty() {
        "unlimited".into()
    } else {
        parts.join(" + ")
    }
}

/// The org's IP rules and the key's allow-list, `any` when neither restricts.
pub(super) fn ips_text(config: &OrgConfig, key: &[String]) -> String {
    let mut parts = Vec::new();
    if config.ip_acl().is_active() {
        let masked = json_value(&config.to_masked_json()).unwrap_or_default();
        let acl = &masked["ip_acl"];
        let list = |field: &str| -> Vec<String> {
            acl[field]
                .as_array()
                .map(|a| {
                    a.iter()
                        .filter_map(|v| v.as_str().map(str::to_owned))
                        .collect()
                })
                .unwrap_or_default()
        };
        let (allow, deny) = (list("allow"), list("deny"));
        if !allow.is_empty() {
            parts.push(format!("{} (org)", allow.join(",")));
        }
        if !deny.is_empty() {
            parts.push(format!("not {} (org)", deny.join(",")));
        }
    }
    if !key.is_empty() {
        parts.push(format!("{} (key)", key.join(",")));
    }
    if parts.is_empty() {
        "any".into()
    } else {
        parts.join(" + ")
    }
}
