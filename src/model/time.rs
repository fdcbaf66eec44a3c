//! Wall-clock timestamps.

use std::fmt;

use crate::error::Error;

/// The earliest instant that parses and prints (jiff's range, in microseconds).
const MIN_TEXT: &str = "-009999-01-02T01:59:59Z";
/// The latest instant that parses and prints.
const MAX_TEXT: &str = "9999-12-30T22:00:00Z";

/// A UTC instant with microsecond precision (microseconds since the Unix epoch).
///
/// ```
/// use orgstore::Timestamp;
/// let t = Timestamp::parse("2026-01-02T03:04:05Z").unwrap();
/// assert_eq!(t.to_string(), "2026-01-02T03:04:05Z");
/// assert!(Timestamp::parse("yesterday").is_err());
/// ```
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Timestamp(i64);

impl Timestamp {
    /// The current time.
    pub fn now() -> Self {
        Self(jiff::Timestamp::now().as_microsecond())
    }

    /// From microseconds since the Unix epoch.
    pub fn from_micros(us: i64) -> Self {
        Self(us)
    }

    /// Microseconds since the Unix epoch.
    pub fn as_micros(self) -> i64 {
        self.0
    }

    /// Parses an RFC 3339 timestamp such as `2026-12-31T23:59:59Z` (any offset; fractions
    /// beyond microseconds are cut). Times from `-009999-01-02T01:59:59Z` to
    /// `9999-12-30T22:00:00Z` are supported; a well-formed time outside them is refused with that range.
    ///
    /// ```
    /// use orgstore::Timestamp;
    /// let e = Timestamp::parse("9999-12-31T23:59:59Z").unwrap_err();
    /// assert!(e.message().contains("9999-12-30T22:00:00Z"));
    /// ```
    pub fn parse(s: &str) -> Result<Self, Error> {
        let t = s.trim();
        let parsed = t.parse::<jiff::Timestamp>().map(|ts| ts.as_microsecond());
        match parsed {
            // Inside jiff's range but not one it converts back from microseconds (a fraction
            // of a second after its last second): it would not print.
            Ok(us) if jiff::Timestamp::from_microsecond(us).is_ok() => Ok(Self(us)),
            Ok(_) => Err(out_of_range(t)),
            Err(_) if well_formed(t) => Err(out_of_range(t)),
            Err(e) => Err(Error::invalid(
                "timestamp",
                format!(
                    "`{}` is not an RFC 3339 time ({e}); use for example 2026-12-31T23:59:59Z",
                    cut(t)
                ),
            )),
        }
    }
}

fn out_of_range(t: &str) -> Error {
    Error::invalid(
        "timestamp",
        format!(
            "`{}` is a valid RFC 3339 time but outside the supported range, {MIN_TEXT} to \
             {MAX_TEXT}; give a time inside it",
            cut(t)
        ),
    )
}

/// Whether `t` has the form of an RFC 3339 time with an offset and a real calendar date and
/// time of day, whatever instant it names.
fn well_formed(t: &str) -> bool {
    jiff::fmt::temporal::Pieces::parse(t).is_ok_and(|p| p.time().is_some() && p.offset().is_some())
}

fn cut(s: &str) -> String {
    s.chars().take(64).collect()
}

impl fmt::Display for Timestamp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match jiff::Timestamp::from_microsecond(self.0) {
            Ok(t) => write!(f, "{t}"),
            Err(_) => write!(f, "@{}us", self.0),
        }
    }
}

impl fmt::Debug for Timestamp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Timestamp({self})")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_range_is_what_prints() {
        let max = jiff::Timestamp::MAX.as_second() * 1_000_000;
        let min = jiff::Timestamp::MIN.as_second() * 1_000_000;
        assert!(Timestamp::from_micros(max + 1).to_string().starts_with('@'));
        assert_eq!(Timestamp::from_micros(max).to_string(), MAX_TEXT);
        assert_eq!(Timestamp::from_micros(min).to_string(), MIN_TEXT);
        assert_eq!(Timestamp::parse(MAX_TEXT).unwrap().as_micros(), max);
        assert_eq!(Timestamp::parse(MIN_TEXT).unwrap().as_micros(), min);
        for bad in [
            "9999-12-31T23:59:59Z",
            "9999-12-30T22:00:01Z",
            "9999-12-30T22:00:00.5Z",
            "9999-12-31T00:00:00+01:00",
            "-009999-01-01T00:00:00Z",
        ] {
            let e = Timestamp::parse(bad).unwrap_err();
            assert!(
                e.message().contains("outside the supported range"),
                "{bad}: {e}"
            );
        }
        for bad in [
            "2026-02-30T00:00:00Z",
            "2026-01-01T00:00:00",
            "2026-01-01",
            "x",
        ] {
            let e = Timestamp::parse(bad).unwrap_err();
            assert!(e.message().contains("not an RFC 3339 time"), "{bad}: {e}");
            println!("{e}");
        }
    }
}
