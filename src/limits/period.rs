//! Budget periods and their UTC calendar windows.
//!
//! A window is the half-open interval `[start, end)` of Unix microseconds
//! that contains a given instant. Daily and weekly windows are fixed-length
//! in UTC (UTC has no DST and jiff models no leap seconds), so they are
//! computed with plain integer arithmetic (in `i128`, so it cannot
//! overflow). Monthly windows need the calendar and use jiff. Either way the
//! computation only runs when a cached window has ended (see
//! [`super::BudgetCounter`]), never on the hot path.

use jiff::Timestamp;
use jiff::civil::{Date, Time};
use jiff::tz::Offset;

/// Microseconds in one day.
pub(crate) const DAY_MICROS: i64 = 86_400_000_000;

/// Microseconds in one week.
const WEEK_MICROS: i64 = 7 * DAY_MICROS;

/// 1970-01-01 was a Thursday; the first Monday after the epoch is
/// 1970-01-05, four days later. Weeks are aligned to that instant.
const MONDAY_OFFSET_MICROS: i64 = 4 * DAY_MICROS;

pub use crate::model::Period;

impl Period {
    /// The UTC calendar window `(start, end)` containing `now_unix_micros`,
    /// both in Unix microseconds, `start` inclusive and `end` exclusive.
    ///
    /// * `Daily`: `[00:00 UTC today, 00:00 UTC tomorrow)`.
    /// * `Weekly`: `[Monday 00:00 UTC, next Monday 00:00 UTC)`.
    /// * `Monthly`: `[1st 00:00 UTC, 1st of next month 00:00 UTC)`.
    /// * `Total`: `(i64::MIN, i64::MAX)` for every input: it never ends.
    ///
    /// `i64::MIN` as a start and `i64::MAX` as an end mean "unbounded":
    /// a boundary that is not representable (before/after the `i64`
    /// microsecond range, or for months outside jiff's supported years
    /// -9999..=9999) is replaced by them. Hence `start <= now < end` always
    /// holds, except that `now == i64::MAX` is reported inside a window whose
    /// end is `i64::MAX`. Never panics, for any input.
    ///
    /// Every start other than `i64::MIN` is a multiple of one day
    /// (midnight UTC).
    pub fn window(self, now_unix_micros: i64) -> (i64, i64) {
        let now = now_unix_micros;
        let (start, end) = match self {
            Period::Total => return (i64::MIN, i64::MAX),
            Period::Daily => fixed_window(now, DAY_MICROS, 0),
            Period::Weekly => fixed_window(now, WEEK_MICROS, MONDAY_OFFSET_MICROS),
            Period::Monthly => month_window(now),
        };
        // Enforce the documented invariant whatever the calendar said
        // (only relevant when `now` was clamped into jiff's range).
        let start = if start > now { i64::MIN } else { start };
        let end = if end <= now { i64::MAX } else { end };
        (start, end)
    }
}

/// A window of fixed length `len`, aligned so that `offset` is a boundary.
fn fixed_window(now: i64, len: i64, offset: i64) -> (i64, i64) {
    let (now, len, offset) = (i128::from(now), i128::from(len), i128::from(offset));
    let start = (now - offset).div_euclid(len) * len + offset;
    let end = start + len;
    (clamp_i64(start), clamp_i64(end))
}

/// Saturates an `i128` into the `i64` range.
fn clamp_i64(v: i128) -> i64 {
    i64::try_from(v).unwrap_or(if v < 0 { i64::MIN } else { i64::MAX })
}

/// The calendar month containing `now`, via jiff. Instants outside jiff's
/// range are clamped into it first; the caller fixes up the bounds.
fn month_window(now: i64) -> (i64, i64) {
    let min = Timestamp::MIN.as_microsecond();
    let max = Timestamp::MAX.as_microsecond();
    let clamped = now.clamp(min, max);
    let Ok(ts) = Timestamp::from_microsecond(clamped) else {
        return (i64::MIN, i64::MAX);
    };
    let date = Offset::UTC.to_datetime(ts).date();
    let first = date.first_of_month();
    let (next_year, next_month) = if first.month() == 12 {
        (first.year().checked_add(1), 1)
    } else {
        (Some(first.year()), first.month() + 1)
    };
    let start = midnight_micros(first).unwrap_or(i64::MIN);
    let end = next_year
        .and_then(|y| Date::new(y, next_month, 1).ok())
        .and_then(midnight_micros)
        .unwrap_or(i64::MAX);
    (start, end)
}

/// 00:00 UTC of `date` in Unix microseconds, if representable.
fn midnight_micros(date: Date) -> Option<i64> {
    Offset::UTC
        .to_timestamp(date.to_datetime(Time::midnight()))
        .ok()
        .map(Timestamp::as_microsecond)
}

#[cfg(test)]
mod tests {
    use super::*;
    use jiff::civil::{Weekday, date};
    use proptest::prelude::*;

    /// Unix micros of `y-m-d hh:mm:ss` UTC.
    fn at(y: i16, m: i8, d: i8, hh: i8, mm: i8, ss: i8) -> i64 {
        Offset::UTC
            .to_timestamp(date(y, m, d).at(hh, mm, ss, 0))
            .map(Timestamp::as_microsecond)
            .unwrap_or_default()
    }

    fn day(y: i16, m: i8, d: i8) -> i64 {
        at(y, m, d, 0, 0, 0)
    }

    #[test]
    fn daily_windows() {
        let now = at(2025, 3, 14, 15, 9, 26);
        assert_eq!(
            Period::Daily.window(now),
            (day(2025, 3, 14), day(2025, 3, 15))
        );
        // Exactly at midnight belongs to the new day.
        let midnight = day(2025, 3, 15);
        assert_eq!(Period::Daily.window(midnight), (midnight, day(2025, 3, 16)));
        assert_eq!(
            Period::Daily.window(midnight - 1),
            (day(2025, 3, 14), midnight)
        );
        // Year end.
        let nye = at(2025, 12, 31, 23, 59, 59);
        assert_eq!(
            Period::Daily.window(nye),
            (day(2025, 12, 31), day(2026, 1, 1))
        );
        // Leap day.
        let leap = at(2028, 2, 29, 12, 0, 0);
        assert_eq!(
            Period::Daily.window(leap),
            (day(2028, 2, 29), day(2028, 3, 1))
        );
        // Before the epoch.
        let old = at(1969, 12, 31, 23, 0, 0);
        assert_eq!(Period::Daily.window(old), (day(1969, 12, 31), 0));
    }

    #[test]
    fn weekly_windows() {
        // 2025-03-16 is a Sunday, 2025-03-17 a Monday.
        let sunday_late = at(2025, 3, 16, 23, 59, 59) + 999_999;
        assert_eq!(
            Period::Weekly.window(sunday_late),
            (day(2025, 3, 10), day(2025, 3, 17))
        );
        let monday = day(2025, 3, 17);
        assert_eq!(Period::Weekly.window(monday), (monday, day(2025, 3, 24)));
        // A week spanning the year end: 2025-12-29 is a Monday.
        let jan1 = at(2026, 1, 1, 8, 0, 0);
        assert_eq!(
            Period::Weekly.window(jan1),
            (day(2025, 12, 29), day(2026, 1, 5))
        );
        // The epoch (a Thursday) is in the week starting Monday 1969-12-29.
        assert_eq!(
            Period::Weekly.window(0),
            (day(1969, 12, 29), day(1970, 1, 5))
        );
    }

    #[test]
    fn monthly_windows() {
        let now = at(2025, 1, 31, 23, 59, 59);
        assert_eq!(
            Period::Monthly.window(now),
            (day(2025, 1, 1), day(2025, 2, 1))
        );
        assert_eq!(
            Period::Monthly.window(day(2025, 2, 1)),
            (day(2025, 2, 1), day(2025, 3, 1))
        );
        // Leap year February has 29 days.
        let leap = at(2028, 2, 29, 23, 59, 59);
        assert_eq!(
            Period::Monthly.window(leap),
            (day(2028, 2, 1), day(2028, 3, 1))
        );
        assert_eq!(day(2028, 3, 1) - day(2028, 2, 1), 29 * DAY_MICROS);
        // Non-leap.
        assert_eq!(day(2027, 3, 1) - day(2027, 2, 1), 28 * DAY_MICROS);
        // December rolls into the next year.
        let dec = at(2025, 12, 31, 23, 59, 59);
        assert_eq!(
            Period::Monthly.window(dec),
            (day(2025, 12, 1), day(2026, 1, 1))
        );
        assert_eq!(
            Period::Monthly.window(day(2026, 1, 1)),
            (day(2026, 1, 1), day(2026, 2, 1))
        );
        // 30-day months.
        assert_eq!(
            Period::Monthly.window(at(2025, 4, 30, 12, 0, 0)),
            (day(2025, 4, 1), day(2025, 5, 1))
        );
    }

    #[test]
    fn total_is_unbounded() {
        for now in [i64::MIN, -1, 0, 1, day(2025, 1, 1), i64::MAX] {
            assert_eq!(Period::Total.window(now), (i64::MIN, i64::MAX));
        }
    }

    #[test]
    fn absurd_timestamps_never_panic() {
        let extremes = [
            i64::MIN,
            i64::MIN + 1,
            Timestamp::MIN.as_microsecond() - 1,
            Timestamp::MIN.as_microsecond(),
            -1,
            0,
            Timestamp::MAX.as_microsecond(),
            Timestamp::MAX.as_microsecond() + 1,
            i64::MAX - 1,
            i64::MAX,
        ];
        for p in [
            Period::Daily,
            Period::Weekly,
            Period::Monthly,
            Period::Total,
        ] {
            for now in extremes {
                let (s, e) = p.window(now);
                assert!(s <= now, "{p:?} {now}: start {s}");
                assert!(now < e || e == i64::MAX, "{p:?} {now}: end {e}");
            }
        }
    }

    proptest! {
        #[test]
        fn windows_contain_now_and_are_aligned(now in any::<i64>()) {
            for p in [Period::Daily, Period::Weekly, Period::Monthly] {
                let (s, e) = p.window(now);
                prop_assert!(s <= now);
                prop_assert!(now < e || e == i64::MAX);
                prop_assert!(s == i64::MIN || s.rem_euclid(DAY_MICROS) == 0);
                // The window is stable for every instant inside it.
                if e != i64::MAX {
                    prop_assert_eq!(p.window(e - 1), (s, e));
                }
                if s != i64::MIN {
                    prop_assert_eq!(p.window(s), (s, e));
                }
            }
        }

        #[test]
        fn calendar_agrees_with_jiff(now in -62_000_000_000_000_000i64..250_000_000_000_000_000i64) {
            let dt = |micros: i64| {
                Timestamp::from_microsecond(micros).map(|t| Offset::UTC.to_datetime(t))
            };
            let (ws, we) = Period::Weekly.window(now);
            let (s, e) = (dt(ws), dt(we));
            prop_assert!(s.is_ok() && e.is_ok());
            if let (Ok(s), Ok(e)) = (s, e) {
                prop_assert_eq!(s.weekday(), Weekday::Monday);
                prop_assert_eq!(e.weekday(), Weekday::Monday);
                prop_assert_eq!(s.time(), Time::midnight());
            }
            let (ms, me) = Period::Monthly.window(now);
            let (s, e) = (dt(ms), dt(me));
            prop_assert!(s.is_ok() && e.is_ok());
            if let (Ok(s), Ok(e)) = (s, e) {
                prop_assert_eq!(s.day(), 1);
                prop_assert_eq!(e.day(), 1);
                prop_assert_eq!(s.time(), Time::midnight());
                prop_assert_eq!(s.date().last_of_month().tomorrow().ok(), Some(e.date()));
            }
        }
    }
}
