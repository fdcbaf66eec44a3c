//! Masking of secrets (provider API keys and similar) for display.

use serde_json::Value;

/// Whether a JSON field name holds a secret.
pub(crate) fn is_secret_field(name: &str) -> bool {
    let n = name.to_ascii_lowercase();
    const EXACT: &[&str] = &[
        "api_key",
        "apikey",
        "key",
        "secret",
        "password",
        "token",
        "credentials",
    ];
    const SUFFIX: &[&str] = &["_key", "_secret", "_token", "_password", "_credentials"];
    EXACT.contains(&n.as_str())
        || SUFFIX.iter().any(|s| n.ends_with(s))
        || n.contains("secret")
        || n.contains("password")
}

/// `sk-proj-abcdef123456` -> `sk-...3456`; short values are hidden entirely.
///
/// A secret shorter than 12 characters shows nothing of itself.
pub(crate) fn mask_secret(s: &str) -> String {
    let n = s.chars().count();
    if n < 12 {
        return "****".to_owned();
    }
    let head: String = s.chars().take(3).collect();
    let tail: String = s.chars().skip(n - 4).collect();
    format!("{head}...{tail}")
}

/// Masks every secret-named field anywhere in `v`, in place.
pub(crate) fn mask_secrets(v: &mut Value) {
    match v {
        Value::Object(o) => {
            for (k, val) in o.iter_mut() {
                if is_secret_field(k) {
                    mask_value(val);
                } else {
                    mask_secrets(val);
                }
            }
        }
        Value::Array(items) => items.iter_mut().for_each(mask_secrets),
        _ => {}
    }
}

fn mask_value(v: &mut Value) {
    match v {
        Value::String(s) => *s = mask_secret(s),
        Value::Object(_) | Value::Array(_) => {
            // A secret-named object (e.g. `credentials: {...}`): mask every string inside.
            match v {
                Value::Object(o) => o.values_mut().for_each(mask_value),
                Value::Array(a) => a.iter_mut().for_each(mask_value),
                _ => {}
            }
        }
        Value::Number(_) => *v = Value::String("****".into()),
        Value::Bool(_) | Value::Null => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn provider_keys_are_masked_everywhere() {
        let mut v = json!({"providers": {"openai": {"api_key": "sk-proj-abcdefghijklmnop", "base_url": "https://x"},
            "aws": {"credentials": {"aws_secret_access_key": "AKIAverysecretvalue", "region": "eu"}}}});
        mask_secrets(&mut v);
        let s = v.to_string();
        assert!(s.contains("sk-...mnop"), "{s}");
        assert!(!s.contains("abcdefghijkl"));
        assert!(!s.contains("verysecret"));
        assert!(s.contains("https://x"));
        assert_eq!(mask_secret("short"), "****");
    }
}
