//! Differences between two config versions.

use serde::Serialize;
use serde_json::Value;

use super::mask::{is_secret_field, mask_at};

/// One changed leaf between two config versions; secrets are masked as in
/// [`crate::OrgConfig::to_masked_json`].
#[derive(Clone, Debug, PartialEq, Serialize)]
#[non_exhaustive]
pub struct ConfigChange {
    /// Dotted path, e.g. `rate_limiting.rpm`.
    pub path: String,
    /// The value before (`None` when added).
    pub old: Option<Value>,
    /// The value after (`None` when removed).
    pub new: Option<Value>,
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
                        old: va.map(|v| mask_at(v, s)),
                        new: vb.map(|v| mask_at(v, s)),
                    }),
                }
            }
        }
        _ if a == b => {}
        _ => out.push(ConfigChange {
            path: path.to_owned(),
            old: Some(mask_at(a, secret)),
            new: Some(mask_at(b, secret)),
        }),
    }
}
