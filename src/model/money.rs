//! Exact money amounts and budget periods.

use std::fmt;

use super::decimal::{Decimal, Unfit};
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

    /// Parses an amount under the one rule for money: JSON number syntax (`100`, `12.50`,
    /// `0.000001`, `1e3`, `2.5E-3`; blanks around it are ignored), read exactly as a decimal,
    /// with at most 6 decimals of value (`1.0000000` is 1), from 0 to 1000000000. `-0` is 0;
    /// any other negative amount is refused, and so are `.5`, `5.`, `+5`, `007`, `1,5`, `$5`.
    pub fn parse(text: &str) -> Result<Self, Error> {
        let bad = |why: &str| {
            Error::invalid(
                "amount",
                format!(
                    "{why}; give a dollar amount from 0 to 1000000000 with at most 6 decimals, \
                     such as 100, 12.50 or 1e3"
                ),
            )
        };
        let d = Decimal::parse(text.trim()).ok_or_else(|| bad("not a number"))?;
        if d.negative && !d.is_zero() {
            return Err(bad("is negative"));
        }
        let too_large = || bad("is above 1000000000");
        // Micro-dollars, at most 16 digits (the limit is 10^15 micro-dollars).
        let micros = d.scaled(6, 16).map_err(|e| match e {
            Unfit::TooPrecise => bad("has more than 6 decimals"),
            Unfit::TooLarge => too_large(),
        })?;
        let micros = i64::try_from(micros).map_err(|_| too_large())?;
        Self::from_micros(micros).map_err(|_| too_large())
    }

    /// Converts a JSON number exactly: the number's shortest decimal form is parsed, so
    /// `500.1` becomes 500_100_000 micro-dollars with no float rounding.
    pub(crate) fn from_json(n: &serde_json::Number) -> Result<Self, Error> {
        Self::parse(&n.to_string())
    }

    /// The amount as a JSON number (integral dollars stay integers). Applications write
    /// the [`Display`](fmt::Display) form, which is the same decimal text.
    pub(crate) fn to_json(self) -> serde_json::Value {
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
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
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
