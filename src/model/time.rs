//! Wall-clock timestamps.

use serde::{Deserialize, Serialize};
use std::fmt;

use crate::error::Error;

/// A UTC instant with microsecond precision (microseconds since the Unix epoch).
///
/// ```
/// use orgstore::Timestamp;
/// let t = Timestamp::parse("2026-01-02T03:04:05Z").unwrap();
/// assert_eq!(t.to_string(), "2026-01-02T03:04:05Z");
/// assert!(Timestamp::parse("yesterday").is_err());
/// ```
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
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

    /// Parses an RFC 3339 timestamp such as `2026-12-31T23:59:59Z`.
    pub fn parse(s: &str) -> Result<Self, Error> {
        s.trim()
            .parse::<jiff::Timestamp>()
            .map(|t| Self(t.as_microsecond()))
            .map_err(|_| {
                Error::invalid(
                    "timestamp",
                    "use RFC 3339, for example 2026-12-31T23:59:59Z",
                )
            })
    }
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
