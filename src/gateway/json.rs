//! Gateway decisions as JSON: what `orgstore check` prints and the admin API's
//! `POST /v1/check` answers. Never the key itself, only its id when granted.

use serde_json::{Value, json};

use super::{Denial, Grant, Limits};
use crate::model::Usd;

/// An amount as a JSON number: its exact decimal form (integral dollars stay integers).
fn usd(u: Usd) -> Value {
    u.to_string()
        .parse::<serde_json::Number>()
        .map_or(Value::Null, Value::Number)
}

fn limits(l: &Limits) -> Value {
    json!({
        "key_rpm": l.key_rpm,
        "org_rpm": l.org_rpm,
        "key_tpm": l.key_tpm,
        "org_tpm": l.org_tpm,
        "key_budget": l.key_budget.map(usd),
        "org_budget": l.org_budget.map(usd),
    })
}

impl Grant<'_> {
    /// The grant as JSON: `allowed: true`, the org, the key id, the limits that apply, the
    /// rate-limit headers' values, the budget warning flags and the budget left.
    ///
    /// ```
    /// use orgstore::{Actor, Email, KeySpec, OrgId, Request, Store};
    /// let store = Store::open_temporary()?;
    /// let acme = OrgId::parse("acme")?;
    /// store.orgs().create(&Actor::Operator, &acme, "Acme", &Email::parse("o@acme.io")?)?;
    /// let k = store.keys().create(&Actor::Operator, &acme, KeySpec::new("svc"))?;
    /// let ip = "10.0.0.1".parse().unwrap();
    /// let grant = store.gateway().check(&Request::new(k.key.expose(), "gpt-4o", ip)).unwrap();
    /// assert_eq!(grant.to_json()["org"], "acme");
    /// # Ok::<(), orgstore::Error>(())
    /// ```
    pub fn to_json(&self) -> Value {
        let (key_left, org_left) = self.budget_remaining();
        json!({
            "allowed": true,
            "org": self.org_id().as_str(),
            "key_id": self.key_id().to_string(),
            "limits": limits(&self.limits()),
            "rate": self.rate_headers().map(|r| json!({
                "limit": r.limit,
                "remaining": r.remaining,
                "reset_ms": u64::try_from(r.reset.as_millis()).unwrap_or(u64::MAX),
            })),
            "budget_warning": self.budget_warning(),
            "over_soft_budget": self.over_soft_budget(),
            "budget_remaining": {
                "key": key_left.map(usd),
                "org": org_left.map(usd),
            },
        })
    }
}

impl Denial {
    /// The denial as JSON: `allowed: false`, its stable code, the message, and the
    /// details of policy, rate-limit and budget denials.
    ///
    /// ```
    /// use orgstore::{Request, Store};
    /// let store = Store::open_temporary()?;
    /// let ip = "10.0.0.1".parse().unwrap();
    /// let d = store.gateway().check(&Request::new("sk-nope", "gpt-4o", ip)).unwrap_err();
    /// assert_eq!(d.to_json()["code"], "malformed_key");
    /// # Ok::<(), orgstore::Error>(())
    /// ```
    pub fn to_json(&self) -> Value {
        let mut v = json!({
            "allowed": false,
            "code": self.code(),
            "reason": self.to_string(),
        });
        match self {
            Denial::PolicyDenied { policies } => {
                v["policies"] = json!(policies.as_ref());
            }
            Denial::RateLimited {
                scope,
                tokens,
                retry_after,
            } => {
                v["scope"] = json!(scope.as_str());
                v["limit"] = json!(if *tokens { "tpm" } else { "rpm" });
                v["retry_after_ms"] =
                    json!(u64::try_from(retry_after.as_millis()).unwrap_or(u64::MAX));
            }
            Denial::BudgetExceeded {
                scope,
                resets_at,
                remaining,
                requested,
            } => {
                v["scope"] = json!(scope.as_str());
                v["resets_at"] = json!(resets_at.map(|t| t.to_string()));
                v["remaining_usd"] = json!(remaining.to_string());
                v["requested_usd"] = json!(requested.to_string());
            }
            _ => {}
        }
        v
    }
}
