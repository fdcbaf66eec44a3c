//! The one rule for model names: org config `allowed_models`, key `allowed_models` and (its
//! cheap part) the gateway's requests.

use std::borrow::Cow;

use super::ids::is_invisible;
use crate::error::Error;

/// The longest model name, in bytes of UTF-8, that an allow-list may hold and that the
/// gateway looks up. A longer name in a request is refused as `invalid_model` before anything
/// else is done with it; in an org config or key spec it is an `Invalid` error.
pub const MAX_MODEL_NAME_BYTES: usize = 256;

/// Checks a model name given in an org config or a key spec and returns it trimmed.
///
/// The rule, the same everywhere: blanks around the name are removed; what is left must be
/// 1 to [`MAX_MODEL_NAME_BYTES`] bytes and hold no control, invisible (zero-width, soft
/// hyphen, BOM) or text-direction characters, so that two names that look the same are the
/// same name. The error names `field`.
pub(crate) fn validate_model_name(
    field: impl Into<Cow<'static, str>>,
    raw: &str,
) -> Result<&str, Error> {
    let name = raw.trim();
    let bad = |c: char| c.is_control() || is_invisible(c);
    if name.is_empty() || name.len() > MAX_MODEL_NAME_BYTES || name.chars().any(bad) {
        return Err(Error::invalid(
            field,
            format!(
                "give a model name of 1 to {MAX_MODEL_NAME_BYTES} bytes without control, \
                 invisible or text-direction characters"
            ),
        ));
    }
    Ok(name)
}

/// The part of the rule a gateway request is held to: not empty and at most
/// [`MAX_MODEL_NAME_BYTES`] bytes. Two comparisons, no allocation. A name that breaks the
/// rest of the rule can be in no allow-list, so it is refused there like any unlisted name.
#[inline]
pub(crate) fn model_name_fits(name: &str) -> bool {
    !name.is_empty() && name.len() <= MAX_MODEL_NAME_BYTES
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_rule_for_model_names() {
        assert_eq!(validate_model_name("m", "  gpt-4o\t").unwrap(), "gpt-4o");
        assert_eq!(
            validate_model_name("m", "claude 3 opus").unwrap(),
            "claude 3 opus"
        );
        assert_eq!(validate_model_name("m", "modèle-😀").unwrap(), "modèle-😀");
        let long = "m".repeat(MAX_MODEL_NAME_BYTES);
        assert!(validate_model_name("m", &long).is_ok());
        for bad in [
            String::new(),
            "   ".into(),
            "m".repeat(MAX_MODEL_NAME_BYTES + 1),
            "é".repeat(MAX_MODEL_NAME_BYTES / 2 + 1),
            "gpt\u{0}4o".into(),
            "gpt-4o\n-mini".into(),
            "gpt\u{7f}".into(),
            "gpt\u{200b}-4o".into(),
            "gpt-4o\u{202e}".into(),
            "\u{feff}gpt-4o".into(),
            "gpt\u{ad}4o".into(),
        ] {
            let e = validate_model_name("config.allowed_models[0]", &bad).unwrap_err();
            assert_eq!(e.field(), "config.allowed_models[0]", "{bad:?}");
        }
        assert!(model_name_fits("gpt-4o"));
        assert!(model_name_fits(&long));
        assert!(!model_name_fits(""));
        assert!(!model_name_fits(&format!("{long}x")));
    }
}
