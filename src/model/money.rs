//! Exact money amounts and budget periods.

use serde::{Deserialize, Serialize};
use std::fmt;

use crate::error::Error;

/// The largest amount accepted anywhere: one billion dollars.
const MAX_MICROS: i64 = 1_000_000_000 * 1_000_000;

/// A non-negative amount of US dollars held as integer micro-dollars (never a float).
///
/// ```
/// use orgstore::Usd;
/// let a = Usd::parse("500.25").unwrap();
/// assert_eq!(a.micros(), 500_250_000);
/// assert_eq!(a.to_string(), "500.25");
/// assert!(Usd::parse("-1").is_err());
/// assert!(Usd::parse("0.0000001").is_err());
/// ```
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Usd(i64);

/// Human-readable formats (JSON) see exact decimal dollars as a string (`"12.5"`); binary
/// formats (the store's records) see integer micro-dollars.
impl Serialize for Usd {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        if s.is_human_readable() {
            s.collect_str(self)
        } else {
            s.serialize_i64(self.0)
        }
    }
}

impl<'de> Deserialize<'de> for Usd {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        use serde::de::Error as _;
        if d.is_human_readable() {
            let v = serde_json::Value::deserialize(d)?;
            let text = match &v {
                serde_json::Value::String(s) => s.clone(),
                serde_json::Value::Number(n) => n.to_string(),
                _ => return Err(D::Error::custom("expected a dollar amount")),
            };
            Usd::parse(&text).map_err(D::Error::custom)
        } else {
            let micros = i64::deserialize(d)?;
            Usd::from_micros(micros).map_err(D::Error::custom)
        }
    }
}

impl Usd {
    /// Zero dollars.
    pub const ZERO: Usd = Usd(0);
    /// One cent.
    pub const CENT: Usd = Usd(10_000);

    /// From micro-dollars; fails when negative or above one billion dollars.
    pub fn from_micros(micros: i64) -> Result<Self, Error> {
        if !(0..=MAX_MICROS).contains(&micros) {
            return Err(Error::invalid(
                "amount",
                "give a dollar amount between 0 and 1000000000",
            ));
        }
        Ok(Self(micros))
    }

    /// Micro-dollars.
    pub const fn micros(self) -> i64 {
        self.0
    }

    /// Parses a plain decimal such as `100`, `0.5` or `1e3` exactly, to at most 6 decimals.
    pub fn parse(text: &str) -> Result<Self, Error> {
        let fix =
            "give a plain dollar amount such as 100 or 12.50 (at most 6 decimals, 0 to 1000000000)";
        let bad = || Error::invalid("amount", fix);
        let t = text.trim();
        let (mantissa, exp) = match t.find(['e', 'E']) {
            Some(i) => {
                let e: i32 = t[i + 1..].parse().map_err(|_| bad())?;
                (&t[..i], e)
            }
            None => (t, 0),
        };
        let (int, frac) = mantissa.split_once('.').unwrap_or((mantissa, ""));
        if int.is_empty() && frac.is_empty()
            || !int.bytes().all(|b| b.is_ascii_digit())
            || !frac.bytes().all(|b| b.is_ascii_digit())
            || !(-30..=30).contains(&exp)
        {
            return Err(bad());
        }
        // digits * 10^(exp - frac.len()) dollars, in micro-dollars: shift by exp - frac + 6.
        let digits = format!("{int}{frac}");
        let digits = digits.trim_start_matches('0');
        let shift = exp + 6 - frac.len() as i32;
        let mut value: i128 = 0;
        if digits.len() > 30 {
            return Err(bad());
        }
        for b in digits.bytes() {
            value = value * 10 + i128::from(b - b'0');
        }
        if shift >= 0 {
            let scale = 10i128.checked_pow(shift as u32).ok_or_else(bad)?;
            value = value.checked_mul(scale).ok_or_else(bad)?;
        } else {
            let div = 10i128.checked_pow((-shift) as u32).ok_or_else(bad)?;
            if value % div != 0 {
                return Err(bad());
            }
            value /= div;
        }
        let micros = i64::try_from(value).map_err(|_| bad())?;
        Self::from_micros(micros).map_err(|_| bad())
    }

    /// Converts a JSON number exactly: the number's shortest decimal form is parsed, so
    /// `500.1` becomes 500_100_000 micro-dollars with no float rounding.
    pub fn from_json(n: &serde_json::Number) -> Result<Self, Error> {
        Self::parse(&n.to_string())
    }

    /// The amount as a JSON number (integral dollars stay integers).
    pub fn to_json(self) -> serde_json::Value {
        if self.0 % 1_000_000 == 0 {
            serde_json::Value::from(self.0 / 1_000_000)
        } else {
            self.to_string()
                .parse::<serde_json::Number>()
                .map(serde_json::Value::Number)
                .unwrap_or(serde_json::Value::Null)
        }
    }
}

impl fmt::Display for Usd {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let whole = self.0 / 1_000_000;
        let frac = self.0 % 1_000_000;
        if frac == 0 {
            write!(f, "{whole}")
        } else {
            let s = format!("{frac:06}");
            write!(f, "{whole}.{}", s.trim_end_matches('0'))
        }
    }
}

impl fmt::Debug for Usd {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "${self}")
    }
}

/// The window a budget counts spend over, aligned to UTC calendar boundaries.
///
/// ```
/// use orgstore::Period;
/// assert_eq!("monthly".parse::<Period>().unwrap(), Period::Monthly);
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Period {
    /// 00:00 UTC to 00:00 UTC.
    Daily,
    /// Monday 00:00 UTC to the next Monday.
    Weekly,
    /// The 1st of the month 00:00 UTC to the next 1st.
    Monthly,
    /// Never resets.
    Total,
}

impl Period {
    /// Lower-case name.
    pub fn as_str(self) -> &'static str {
        match self {
            Period::Daily => "daily",
            Period::Weekly => "weekly",
            Period::Monthly => "monthly",
            Period::Total => "total",
        }
    }
}

impl std::str::FromStr for Period {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self, Error> {
        match s.trim() {
            "daily" => Ok(Period::Daily),
            "weekly" => Ok(Period::Weekly),
            "monthly" => Ok(Period::Monthly),
            "total" => Ok(Period::Total),
            _ => Err(Error::invalid(
                "period",
                "use one of daily, weekly, monthly, total",
            )),
        }
    }
}

impl fmt::Display for Period {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}
