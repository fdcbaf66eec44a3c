//! The typed config sections the store enforces.

use serde_json::{Map, Value};

use super::fields::{Fields, apply_aliases};
use super::ip::{IpRules, Rules, parse_nets_as};
use crate::error::Error;
use crate::model::{Period, Usd};
use std::net::IpAddr;

const RATE_FIELDS: &[&str] = &["enabled", "rpm", "tpm", "per_key_rpm", "per_key_tpm"];
const RATE_ALIASES: &[(&str, &str)] = &[("global_rpm", "rpm"), ("global_tpm", "tpm")];
const BUDGET_FIELDS: &[&str] = &["enabled", "limit", "period", "hard", "warn_threshold"];
const BUDGET_ALIASES: &[(&str, &str)] = &[
    ("org_limit", "limit"),
    ("org_period", "period"),
    ("hard_limit", "hard"),
];
const IP_FIELDS: &[&str] = &["enabled", "allow", "deny"];
const MAX_RPM: u64 = 100_000_000;
const MAX_TPM: u64 = 1_000_000_000_000;

/// Rewrites the aliases inside typed sections (whole configs and patches alike).
pub(super) fn canonicalize_sections(obj: &mut Map<String, Value>) -> Result<(), Error> {
    if let Some(Value::Object(o)) = obj.get_mut("rate_limiting") {
        apply_aliases("config.rate_limiting", o, RATE_ALIASES)?;
    }
    if let Some(Value::Object(o)) = obj.get_mut("budgets") {
        apply_aliases("config.budgets", o, BUDGET_ALIASES)?;
    }
    Ok(())
}

/// `rate_limiting { enabled, rpm, tpm, per_key_rpm, per_key_tpm }`. `rpm`/`tpm` are shared
/// by all keys of the org; `per_key_*` apply to each key that has no limit of its own.
/// `enabled` defaults to `true` when the section is present.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct RateLimiting {
    /// Whether any of these limits apply.
    pub enabled: bool,
    /// Org-wide requests per minute (alias `global_rpm`).
    pub rpm: Option<u64>,
    /// Org-wide tokens per minute (alias `global_tpm`).
    pub tpm: Option<u64>,
    /// Default requests per minute for a key without its own limit.
    pub per_key_rpm: Option<u64>,
    /// Default tokens per minute for a key without its own limit.
    pub per_key_tpm: Option<u64>,
}

impl RateLimiting {
    pub(super) fn parse(v: &Value) -> Result<Self, Error> {
        let f = Fields::new("config.rate_limiting", v, RATE_FIELDS)?;
        Ok(Self {
            enabled: f.bool("enabled", true)?,
            rpm: f.positive("rpm", MAX_RPM)?,
            tpm: f.positive("tpm", MAX_TPM)?,
            per_key_rpm: f.positive("per_key_rpm", MAX_RPM)?,
            per_key_tpm: f.positive("per_key_tpm", MAX_TPM)?,
        })
    }
}

/// `budgets { enabled, limit, period, hard, warn_threshold }`: the org-wide spend limit in
/// USD (held exactly as micro-dollars). `period` defaults to monthly, `hard` to true,
/// `warn_threshold` to 0.8, `enabled` to true when the section is present.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct BudgetPolicy {
    /// Whether the budget applies.
    pub enabled: bool,
    /// Limit per period; `None` means no cap (spend is still tracked).
    pub limit: Option<Usd>,
    /// Calendar period in UTC.
    pub period: Period,
    /// Deny at the limit (`true`) or allow and flag (`false`).
    pub hard: bool,
    /// Fraction of the limit (in millionths) at which grants carry a warning.
    pub warn_threshold_ppm: u32,
}

impl BudgetPolicy {
    pub(super) fn parse(v: &Value) -> Result<Self, Error> {
        let f = Fields::new("config.budgets", v, BUDGET_FIELDS)?;
        let limit = f
            .money("limit")
            .map(|r| {
                r.map_err(|_| {
                    f.err(
                        "limit",
                        "must be a dollar amount from 0 to 1000000000 with at most 6 decimals, \
                         as a number (12.5, 1e3) or a string (\"12.50\")",
                    )
                })
            })
            .transpose()?;
        let period = match f.str("period")? {
            None => Period::Monthly,
            Some(p) => p
                .parse::<Period>()
                .map_err(|_| f.err("period", "use one of daily, weekly, monthly, total"))?,
        };
        let warn = match f.money("warn_threshold") {
            None => 800_000,
            Some(n) => {
                let micros = n.map(Usd::micros).unwrap_or(-1);
                if !(1..=1_000_000).contains(&micros) {
                    return Err(f.err(
                        "warn_threshold",
                        "must be a fraction above 0 and at most 1 with at most 6 decimals, such as 0.8",
                    ));
                }
                micros as u32
            }
        };
        Ok(Self {
            enabled: f.bool("enabled", true)?,
            limit,
            period,
            hard: f.bool("hard", true)?,
            warn_threshold_ppm: warn,
        })
    }

    /// Writes the limit back in its canonical exact form.
    pub(super) fn write_canonical(&self, o: &mut Map<String, Value>) {
        if let Some(l) = self.limit {
            o.insert("limit".into(), l.to_json());
        }
    }
}

/// `ip_acl { enabled, allow: [..], deny: [..] }` of addresses and CIDRs, IPv4 or IPv6.
/// Deny wins; an empty allow list allows every address not denied.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct IpAcl {
    enabled: bool,
    rules: IpRules,
}

impl IpAcl {
    pub(super) fn parse(v: &Value, strictness: Rules) -> Result<Self, Error> {
        let f = Fields::new("config.ip_acl", v, IP_FIELDS)?;
        let allow = f.strings("allow")?.unwrap_or_default();
        let deny = f.strings("deny")?.unwrap_or_default();
        Ok(Self {
            enabled: f.bool("enabled", true)?,
            rules: IpRules {
                allow: parse_nets_as("config.ip_acl.allow", &allow, strictness)?,
                deny: parse_nets_as("config.ip_acl.deny", &deny, strictness)?,
            },
        })
    }

    /// Whether `ip` may connect under this ACL (always true when disabled).
    ///
    /// ```
    /// use orgstore::OrgConfig;
    /// let c = OrgConfig::parse(r#"{"ip_acl":{"allow":["10.0.0.0/8"],"deny":["10.9.9.9"]}}"#).unwrap();
    /// assert!(c.ip_acl().allows("10.1.2.3".parse().unwrap()));
    /// assert!(!c.ip_acl().allows("10.9.9.9".parse().unwrap()));
    /// ```
    pub fn allows(&self, ip: IpAddr) -> bool {
        !self.enabled || self.rules.allows(ip)
    }

    /// Whether the ACL checks anything.
    pub fn is_active(&self) -> bool {
        self.enabled && !self.rules.is_empty()
    }

    pub(crate) fn rules(&self) -> Option<&IpRules> {
        self.is_active().then_some(&self.rules)
    }
}
