//! Reading typed fields out of a JSON object with errors that name the field and the fix.

use serde_json::{Map, Value};

use crate::error::Error;
use crate::model::{Decimal, Usd};

/// One JSON object being read, with its dotted path for messages.
pub(super) struct Fields<'a> {
    pub path: &'a str,
    pub obj: &'a Map<String, Value>,
}

impl<'a> Fields<'a> {
    /// Checks that `v` is an object whose keys are all in `valid`.
    pub fn new(path: &'a str, v: &'a Value, valid: &[&str]) -> Result<Self, Error> {
        let obj = v.as_object().ok_or_else(|| {
            Error::invalid(
                path.to_owned(),
                "must be a JSON object such as {\"enabled\": true}",
            )
        })?;
        if let Some(bad) = obj.keys().find(|k| !valid.contains(&k.as_str())) {
            return Err(Error::invalid(
                format!("{path}.{bad}"),
                format!("unknown field; valid fields are {}", valid.join(", ")),
            ));
        }
        Ok(Self { path, obj })
    }

    fn field(&self, name: &str) -> String {
        format!("{}.{name}", self.path)
    }

    pub fn bool(&self, name: &str, default: bool) -> Result<bool, Error> {
        match self.obj.get(name) {
            None => Ok(default),
            Some(Value::Bool(b)) => Ok(*b),
            Some(_) => Err(Error::invalid(self.field(name), "must be true or false")),
        }
    }

    /// A positive integer up to `max`, under the rule for every integer field: a JSON
    /// number whose value is whole, in any spelling (`1000`, `1e3`, `1000.0`, `1.0E+3`);
    /// a fraction, a string, a negative number, 0 and anything above `max` are refused.
    pub fn positive(&self, name: &str, max: u64) -> Result<Option<u64>, Error> {
        match self.obj.get(name) {
            None => Ok(None),
            Some(v) => match v.as_number().and_then(|n| whole(&n.to_string())) {
                Some(n) if (1..=max).contains(&n) => Ok(Some(n)),
                _ => Err(Error::invalid(
                    self.field(name),
                    format!(
                        "must be a whole number from 1 to {max} (1000, 1e3 and 1000.0 all mean \
                         1000); omit it for no limit"
                    ),
                )),
            },
        }
    }

    /// A decimal under the rule for money: a JSON number or a string holding one
    /// (`12.5`, `"12.50"`, `1e3`), read exactly (see [`Usd::parse`]). The inner error (any
    /// other value included) is for the caller to word for its field.
    pub fn money(&self, name: &str) -> Option<Result<Usd, Error>> {
        match self.obj.get(name)? {
            Value::Number(n) => Some(Usd::from_json(n)),
            Value::String(s) => Some(Usd::parse(s)),
            _ => Some(Err(self.err(name, "must be a number or a string"))),
        }
    }

    pub fn str(&self, name: &str) -> Result<Option<&'a str>, Error> {
        match self.obj.get(name) {
            None => Ok(None),
            Some(Value::String(s)) => Ok(Some(s)),
            Some(_) => Err(Error::invalid(self.field(name), "must be a string")),
        }
    }

    pub fn strings(&self, name: &str) -> Result<Option<Vec<&'a str>>, Error> {
        match self.obj.get(name) {
            None => Ok(None),
            Some(Value::Array(items)) => items
                .iter()
                .map(|i| {
                    i.as_str().ok_or_else(|| {
                        Error::invalid(self.field(name), "must be a list of strings")
                    })
                })
                .collect::<Result<Vec<_>, _>>()
                .map(Some),
            Some(_) => Err(Error::invalid(
                self.field(name),
                "must be a list of strings",
            )),
        }
    }

    pub fn err(&self, name: &str, fix: &str) -> Error {
        Error::invalid(self.field(name), fix.to_owned())
    }
}

/// Renames `alias` keys of `obj` to their canonical names; both present is an error.
pub(super) fn apply_aliases(
    path: &str,
    obj: &mut Map<String, Value>,
    aliases: &[(&str, &str)],
) -> Result<(), Error> {
    for (alias, canonical) in aliases {
        if let Some(v) = obj.remove(*alias) {
            if obj.contains_key(*canonical) {
                return Err(Error::invalid(
                    format!("{path}.{alias}"),
                    format!("`{alias}` is another name for `{canonical}`; give only one of them"),
                ));
            }
            obj.insert((*canonical).to_owned(), v);
        }
    }
    Ok(())
}

/// The integer rule of every integer field (the config's rate limits, a key's
/// `rate_limit_rpm` / `rate_limit_tpm`): the exact value of text in JSON number syntax whose
/// value is whole, in any spelling (`1000`, `1e3`, `1000.0`, `1.0E+3`, `10000e-1`; `-0` is
/// 0), or `None` for a fraction, a negative number, a value above `u64::MAX` or text that
/// is not a JSON number (blanks, a sign `+`, leading zeros, `0x10`, `1_000`). Exported as
/// `orgstore::parse_whole_number`, for tools that take such numbers as text (command-line
/// flags, import files) and must read them as the store does. The range a field allows
/// (e.g. at least 1) is the field's to check.
///
/// ```
/// use orgstore::parse_whole_number;
/// assert_eq!(parse_whole_number("1e3"), Some(1000));
/// assert_eq!(parse_whole_number("1000.0"), Some(1000));
/// assert_eq!(parse_whole_number("1.5"), None);
/// assert_eq!(parse_whole_number("-1"), None);
/// assert_eq!(parse_whole_number("18446744073709551616"), None);
/// ```
pub fn whole(text: &str) -> Option<u64> {
    let d = Decimal::parse(text)?;
    if d.negative && !d.is_zero() {
        return None;
    }
    d.scaled(0, 20).ok()
}

#[cfg(test)]
mod tests {
    use super::whole;

    #[test]
    fn whole_numbers_by_value() {
        for (t, n) in [
            ("1000", 1000),
            ("1e3", 1000),
            ("1E+3", 1000),
            ("1000.0", 1000),
            ("1.000e3", 1000),
            ("10000e-1", 1000),
            ("0", 0),
            ("-0", 0),
            ("-0.0e5", 0),
            ("18446744073709551615", u64::MAX),
            ("1.8446744073709551615e19", u64::MAX),
        ] {
            assert_eq!(whole(t), Some(n), "{t}");
        }
        for t in [
            "1.5",
            "1e-3",
            "-1",
            "-1e3",
            "18446744073709551616",
            "1e20",
            "",
            "1e",
            "01",
            ".5",
            "5.",
            "+5",
            "0x10",
            "1_000",
            " 1",
            "1e9999999",
            "NaN",
        ] {
            assert_eq!(whole(t), None, "{t}");
        }
    }
}
