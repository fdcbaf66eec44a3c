//! Strict reading of config JSON text: a key given twice in one object is refused, and so is
//! a number that would not be held exactly as written.
//!
//! `serde_json` keeps the last of two equal keys and turns an integer beyond the 64-bit
//! range into a float, both silently. The text is first parsed by `serde_json` (so syntax
//! errors and the nesting limit read as before), then walked once more here, with the path
//! of every value, to refuse both cases by name.

use std::collections::HashSet;

use serde_json::Value;

use crate::error::Error;

/// Parses `text` (already limited in size by the caller) into a value; `root` names the
/// document in errors (`config`).
pub(super) fn parse_strict(root: &str, text: &str) -> Result<Value, Error> {
    let value: Value = serde_json::from_str(text).map_err(|e| {
        Error::invalid(
            root.to_owned(),
            format!("is not valid JSON ({e}); check quoting and nesting (at most 128 levels)"),
        )
    })?;
    let mut walk = Walk {
        text,
        at: 0,
        path: root.to_owned(),
    };
    walk.value()?;
    Ok(value)
}

/// A walk over text that `serde_json` has already accepted, so its syntax is known to be
/// valid and its nesting at most 128 levels deep.
struct Walk<'a> {
    text: &'a str,
    at: usize,
    path: String,
}

impl Walk<'_> {
    fn peek(&self) -> u8 {
        self.text.as_bytes().get(self.at).copied().unwrap_or(0)
    }

    fn skip_ws(&mut self) {
        while matches!(self.peek(), b' ' | b'\t' | b'\n' | b'\r') {
            self.at += 1;
        }
    }

    fn value(&mut self) -> Result<(), Error> {
        self.skip_ws();
        match self.peek() {
            b'{' => self.object(),
            b'[' => self.array(),
            b'"' => {
                self.string();
                Ok(())
            }
            b'-' | b'0'..=b'9' => self.number(),
            // true, false, null
            _ => {
                while self.peek().is_ascii_alphabetic() {
                    self.at += 1;
                }
                Ok(())
            }
        }
    }

    /// Walks the elements of the object or array that starts here, up to its `close`
    /// byte, calling `element` at the start of each one with its index.
    fn elements(
        &mut self,
        close: u8,
        mut element: impl FnMut(&mut Self, usize) -> Result<(), Error>,
    ) -> Result<(), Error> {
        self.at += 1;
        let mut i = 0usize;
        loop {
            self.skip_ws();
            match self.peek() {
                b if b == close => {
                    self.at += 1;
                    return Ok(());
                }
                b',' => {
                    self.at += 1;
                    continue;
                }
                _ => {}
            }
            let len = self.path.len();
            element(self, i)?;
            self.path.truncate(len);
            i += 1;
        }
    }

    fn object(&mut self) -> Result<(), Error> {
        let mut seen: HashSet<String> = HashSet::new();
        self.elements(b'}', |w, _| {
            let raw = w.string();
            let key = if raw.contains('\\') {
                serde_json::from_str::<String>(raw).unwrap_or_else(|_| raw.to_owned())
            } else {
                raw.get(1..raw.len().saturating_sub(1))
                    .unwrap_or("")
                    .to_owned()
            };
            w.path.push('.');
            w.path.push_str(&key);
            if !seen.insert(key) {
                return Err(Error::invalid(
                    w.path.clone(),
                    "is given twice in the same object; give each key once (the value that \
                     counts would otherwise depend on the reader)",
                ));
            }
            w.skip_ws();
            w.at += 1; // ':'
            w.value()
        })
    }

    fn array(&mut self) -> Result<(), Error> {
        self.elements(b']', |w, i| {
            w.path.push_str(&format!("[{i}]"));
            w.value()
        })
    }

    /// Skips a string and returns it with its quotes, escapes undecoded.
    fn string(&mut self) -> &str {
        let start = self.at;
        self.at += 1;
        let bytes = self.text.as_bytes();
        while let Some(&b) = bytes.get(self.at) {
            self.at += 1;
            match b {
                b'\\' => self.at += 1,
                b'"' => break,
                _ => {}
            }
        }
        self.text.get(start..self.at).unwrap_or("\"\"")
    }

    fn number(&mut self) -> Result<(), Error> {
        let start = self.at;
        while matches!(self.peek(), b'-' | b'+' | b'.' | b'e' | b'E' | b'0'..=b'9') {
            self.at += 1;
        }
        let token = self.text.get(start..self.at).unwrap_or("");
        match exactness(token) {
            Exact::Yes => Ok(()),
            Exact::IntegerOutOfRange => Err(Error::invalid(
                self.path.clone(),
                format!(
                    "`{}` is a whole number outside -9223372036854775808 to 18446744073709551615, \
                     the range held exactly; write it as a string",
                    cut(token)
                ),
            )),
            Exact::TooPrecise => Err(Error::invalid(
                self.path.clone(),
                format!(
                    "`{}` has more significant digits than a 64-bit float holds (about 15), so \
                     it would be stored as a different number; write fewer digits or a string",
                    cut(token)
                ),
            )),
        }
    }
}

fn cut(s: &str) -> String {
    s.chars().take(64).collect()
}

/// Whether a JSON number token is held exactly.
#[derive(Debug, PartialEq, Eq)]
pub(super) enum Exact {
    /// As an integer (i64 or u64) or a float whose value is the token's.
    Yes,
    /// An integer token beyond the 64-bit range (it would become a float).
    IntegerOutOfRange,
    /// A token with a fraction or exponent whose value no 64-bit float has.
    TooPrecise,
}

/// How `serde_json` would hold a number token (valid JSON number syntax): integers as i64 or
/// u64, anything else (and integers beyond both) as the nearest f64.
pub(super) fn exactness(token: &str) -> Exact {
    let is_integer = !token.contains(['.', 'e', 'E']);
    if is_integer {
        let fits = if token.starts_with('-') {
            token.parse::<i64>().is_ok()
        } else {
            token.parse::<u64>().is_ok()
        };
        return if fits {
            Exact::Yes
        } else {
            Exact::IntegerOutOfRange
        };
    }
    let Ok(f) = token.parse::<f64>() else {
        return Exact::TooPrecise;
    };
    if f.is_finite() && decimal(token) == decimal(&format!("{f:e}")) {
        Exact::Yes
    } else {
        Exact::TooPrecise
    }
}

/// A decimal number's value as (negative, significant digits, exponent of the last digit),
/// zero as (false, "", 0): equal values give equal triples whatever their spelling.
fn decimal(s: &str) -> Option<(bool, String, i64)> {
    let (neg, s) = match s.strip_prefix('-') {
        Some(rest) => (true, rest),
        None => (false, s),
    };
    let (mantissa, exp) = match s.find(['e', 'E']) {
        Some(i) => (&s[..i], s[i + 1..].parse::<i64>().ok()?),
        None => (s, 0),
    };
    let (int, frac) = mantissa.split_once('.').unwrap_or((mantissa, ""));
    let digits = format!("{int}{frac}");
    let mut exp = exp.checked_sub(i64::try_from(frac.len()).ok()?)?;
    let trimmed_end = digits.trim_end_matches('0');
    exp = exp.checked_add(i64::try_from(digits.len() - trimmed_end.len()).ok()?)?;
    let sig = trimmed_end.trim_start_matches('0');
    if sig.is_empty() {
        return Some((false, String::new(), 0));
    }
    Some((neg, sig.to_owned(), exp))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exact_numbers() {
        for t in [
            "0",
            "-0",
            "18446744073709551615",
            "-9223372036854775808",
            "0.1",
            "1e3",
            "1.5E-7",
            "9007199254740993",
            "1e300",
            "-0.0",
            "100.000",
        ] {
            assert_eq!(exactness(t), Exact::Yes, "{t}");
        }
        for t in [
            "18446744073709551616",
            "-9223372036854775809",
            "1".repeat(400).as_str(),
        ] {
            assert_eq!(exactness(t), Exact::IntegerOutOfRange, "{t}");
        }
        for t in [
            "9007199254740993.0",
            "0.1000000000000000001",
            "1e-400",
            "1e400",
        ] {
            assert_eq!(exactness(t), Exact::TooPrecise, "{t}");
        }
    }

    #[test]
    fn duplicates_are_named() {
        let e = parse_strict("config", r#"{"a":{"b":[{"c":1,"c":2}]}}"#).unwrap_err();
        assert_eq!(e.field(), "config.a.b[0].c");
        let e = parse_strict("config", r#"{"a\u0062":1,"ab":2}"#).unwrap_err();
        assert_eq!(e.field(), "config.ab");
        assert!(parse_strict("config", r#"{"a":{"x":1},"b":{"x":1}}"#).is_ok());
        assert!(parse_strict("config", r#" [ {"a" : "}\"{" } , 1, [] , {} ] "#).is_ok());
    }
}
