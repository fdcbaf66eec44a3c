//! Differences between two config versions.

use serde_json::Value;

use super::mask::{is_secret_field, mask_at};

/// One changed leaf between two config versions; secrets are masked as in
/// [`crate::OrgConfig::to_masked_json`].
///
/// ```
/// # let store = orgstore::Store::open_temporary().unwrap();
/// use orgstore::{Actor, Email, OrgId};
/// let acme = OrgId::parse("acme").unwrap();
/// store.orgs().create(&Actor::Operator, &acme, "Acme", &Email::parse("o@acme.io").unwrap()).unwrap();
/// let configs = store.org_configs();
/// let v1 = configs.update(&Actor::Operator, &acme, r#"{"rate_limiting": {"rpm": 60}}"#).unwrap();
/// let v2 = configs.update(&Actor::Operator, &acme, r#"{"rate_limiting": {"rpm": 90}}"#).unwrap();
/// let changes = configs.diff(&Actor::Operator, &acme, v1.version, v2.version).unwrap();
/// assert_eq!(changes[0].path, "rate_limiting.rpm");
/// assert_eq!(changes[0].old.as_deref(), Some("60"));
/// assert_eq!(changes[0].new.as_deref(), Some("90"));
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
#[non_exhaustive]
pub struct ConfigChange {
    /// Dotted path, e.g. `rate_limiting.rpm`.
    pub path: String,
    /// The value before, as JSON text (`None` when added).
    pub old: Option<String>,
    /// The value after, as JSON text (`None` when removed).
    pub new: Option<String>,
}

/// Lists the leaves that differ between `a` and `b`, masked.
pub(crate) fn diff(a: &Value, b: &Value) -> Vec<ConfigChange> {
    let mut out = Vec::new();
    walk("", a, b, false, &mut out);
    out
}

fn walk(path: &str, a: &Value, b: &Value, secret: bool, out: &mut Vec<ConfigChange>) {
    match (a, b) {
        (Value::Object(x), Value::Object(y)) => {
            let mut keys: Vec<&String> = x.keys().chain(y.keys()).collect();
            keys.sort_unstable();
            keys.dedup();
            for k in keys {
                let p = if path.is_empty() {
                    k.clone()
                } else {
                    format!("{path}.{k}")
                };
                let s = secret || is_secret_field(k);
                match (x.get(k), y.get(k)) {
                    (Some(va), Some(vb)) => walk(&p, va, vb, s, out),
                    (va, vb) => out.push(ConfigChange {
                        path: p,
                        old: va.map(|v| mask_at(v, s).to_string()),
                        new: vb.map(|v| mask_at(v, s).to_string()),
                    }),
                }
            }
        }
        _ if a == b => {}
        _ => out.push(ConfigChange {
            path: path.to_owned(),
            old: Some(mask_at(a, secret).to_string()),
            new: Some(mask_at(b, secret).to_string()),
        }),
    }
}
