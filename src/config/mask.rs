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
    // Masking is idempotent: an already masked value stays as it is.
    if s == "****" || (s.len() == 10 && s.get(3..6) == Some("...")) {
        return s.to_owned();
    }
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

/// In a patch, a secret-named field whose value is exactly the masked form of the current
/// value keeps the current value: a client that reads a (masked) config, edits it and sends
/// it back whole does not overwrite its provider keys with their masks.
pub(crate) fn keep_masked_secrets(patch: &mut Value, current: &Value) {
    let (Value::Object(p), Value::Object(c)) = (patch, current) else {
        return;
    };
    for (k, v) in p.iter_mut() {
        let Some(cur) = c.get(k) else { continue };
        match (v, cur) {
            (Value::String(masked), Value::String(clear))
                if is_secret_field(k) && *masked == mask_secret(clear) =>
            {
                *masked = clear.clone();
            }
            (v @ Value::Object(_), cur) => keep_masked_secrets(v, cur),
            _ => {}
        }
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
    fn a_masked_secret_sent_back_keeps_the_real_one() {
        let current =
            json!({"providers": {"openai": {"api_key": "sk-proj-abcdefghijklmnop", "timeout": 5}}});
        let mut patch = current.clone();
        mask_secrets(&mut patch);
        patch["providers"]["openai"]["timeout"] = json!(9);
        keep_masked_secrets(&mut patch, &current);
        assert_eq!(
            patch["providers"]["openai"]["api_key"],
            "sk-proj-abcdefghijklmnop"
        );
        let mut new_key = json!({"providers": {"openai": {"api_key": "sk-new-key-0000000000"}}});
        keep_masked_secrets(&mut new_key, &current);
        assert_eq!(
            new_key["providers"]["openai"]["api_key"],
            "sk-new-key-0000000000"
        );
    }

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
        assert_eq!(
            mask_secret(&mask_secret("sk-proj-abcdefghijklmnop")),
            "sk-...mnop"
        );
    }
}
