//! Per-minute rate limiting: GCRA with a burst from rest, on two atomic words.
//!
//! See the module documentation of [`super`] for the algorithm and its bound.

use std::sync::atomic::{AtomicU64, Ordering};

/// Length of the rate window: one minute in nanoseconds.
pub(crate) const WINDOW_NANOS: u64 = 60_000_000_000;

/// The largest accepted `limit_per_minute`: one unit per nanosecond.
/// Larger limits are clamped to this, so the emission interval is never 0.
pub const MAX_LIMIT_PER_MINUTE: u64 = WINDOW_NANOS;

/// The slack of the window bound for a limit: 2 % of it, at least 1. Any
/// 60-second window admits at most `limit + slack(limit)` units.
#[inline(always)]
pub const fn slack(limit: u64) -> u64 {
    let s = limit / 50;
    if s == 0 { 1 } else { s }
}

/// What a successful (or zero-cost) rate check reports; exactly the inputs
/// of the `x-ratelimit-limit-requests`, `x-ratelimit-remaining-requests` and
/// `x-ratelimit-reset-requests` headers (`-tokens` for a tokens-per-minute limit).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RateState {
    /// The configured limit per minute (after clamping).
    pub limit: u64,
    /// Nanoseconds of TAT the limiter could still advance right now:
    /// [`RateState::remaining`] whole units. Kept undivided so that a check
    /// pays no division for a figure only response headers read.
    pub headroom_nanos: u64,
    /// Nanoseconds of idleness after which the limiter is back at rest,
    /// with the whole limit available as one burst (0 when it already
    /// is).
    pub reset_after_nanos: u64,
}

impl RateState {
    /// Whole units that could still be admitted right now (all at once).
    pub fn remaining(&self) -> u64 {
        match self.limit {
            0 => 0,
            limit => self.headroom_nanos / WINDOW_NANOS.div_ceil(limit),
        }
    }
}

/// A denied rate check: when to try again.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RetryAfter {
    /// Nanoseconds after `now` at which the same request would be admitted
    /// (assuming no other traffic). `u64::MAX` when it never will: the
    /// requested cost exceeds the whole per-minute limit.
    pub after_nanos: u64,
}

/// Units admitted by [`RateLimiter::take`], which [`RateLimiter::give_back`]
/// can return when a later check refuses the request. The default is nothing taken (an
/// increment of 0), which gives back nothing.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct Taken {
    /// The TAT the admission replaced.
    before: u64,
    /// The TAT it installed.
    after: u64,
    /// What it added to the TAT (`cost * T`).
    increment: u64,
}

/// A rate limiter for one scope (e.g. requests per minute of one key).
///
/// State is two `AtomicU64`s in nanoseconds relative to a caller-chosen
/// monotonic origin (e.g. an `Instant` taken at startup; every method
/// takes `now_nanos` relative to the same origin): the theoretical arrival
/// time (TAT) of GCRA with emission interval `T = ceil(60 s / limit)`, and
/// the end of the current burst from rest. A limiter that admitted nothing
/// for a minute admits the whole limit at once; otherwise it admits at the
/// steady rate `1 / T` with a tolerance of `slack + 1` units. Any 60-second
/// window admits at most `limit + slack(limit)` units (see [`super`]).
///
/// The limit and `T` live together in a third atomic (see [`pack`]): a call
/// reads both with one load and no division, and a concurrent
/// [`RateLimiter::set_limit`] can never be observed half-applied (limit and
/// interval from different configurations).
///
/// A limit of 0 is unrepresentable: [`RateLimiter::new`] returns `None` for
/// it and [`RateLimiter::set_limit`] refuses it. "No limit" is modelled by
/// not having a limiter; "block everything" belongs to a different check.
#[derive(Debug)]
pub struct RateLimiter {
    /// Theoretical arrival time, nanoseconds since the caller's origin; 0
    /// for a limiter that never admitted anything.
    tat: AtomicU64,
    /// End of the last burst from rest: `start + burst` (0: none yet).
    burst_end: AtomicU64,
    /// Limit per minute, always in `1..=MAX_LIMIT_PER_MINUTE`, with its
    /// emission interval: [`pack`]ed.
    limit: AtomicU64,
}

/// Limits below this keep their interval in 35 bits; larger ones (only
/// tokens per minute get there) have intervals of at most 224 ns.
const SMALL_LIMIT: u64 = 1 << 28;

/// A limit (clamped to `1..=MAX_LIMIT_PER_MINUTE`) and its emission interval
/// `ceil(60 s / limit)` in one word. Limits below 2^28: bit 63 clear, the
/// limit in bits 35-62, the interval in bits 0-34 (0 standing for the whole
/// window, the interval of a limit of 1; every other fits). Larger limits:
/// bit 63 set, the limit in bits 27-62, the interval in bits 0-26.
const fn pack(limit: u64) -> u64 {
    let limit = if limit == 0 {
        1
    } else if limit > MAX_LIMIT_PER_MINUTE {
        MAX_LIMIT_PER_MINUTE
    } else {
        limit
    };
    let interval = WINDOW_NANOS.div_ceil(limit);
    if limit < SMALL_LIMIT {
        let interval = if interval == WINDOW_NANOS {
            0
        } else {
            interval
        };
        (limit << 35) | interval
    } else {
        (1 << 63) | (limit << 27) | interval
    }
}

/// The `(limit, interval)` of a [`pack`]ed word.
#[inline(always)]
const fn unpack(word: u64) -> (u64, u64) {
    if word >> 63 == 0 {
        let interval = word & ((1 << 35) - 1);
        (
            word >> 35,
            if interval == 0 {
                WINDOW_NANOS
            } else {
                interval
            },
        )
    } else {
        ((word >> 27) & ((1 << 36) - 1), word & ((1 << 27) - 1))
    }
}

/// Derived parameters for one call.
#[derive(Clone, Copy)]
struct Params {
    limit: u64,
    /// Emission interval `ceil(60 s / limit)` in nanoseconds, `>= 1`, so
    /// `limit * interval >= 60 s`.
    interval: u64,
    /// Steady tolerance: `(slack + 1) * interval`.
    tau: u64,
    /// The burst from rest: `limit * interval` (at least 60 s).
    burst: u64,
}

impl Params {
    /// Whether a limiter whose TAT is `tat` is at rest at `now`: it never
    /// admitted anything, or admitted nothing in the last minute (every
    /// admission leaves the TAT at least `T` past its time).
    #[inline(always)]
    fn rested(self, tat: u64, now: u64) -> bool {
        tat == 0 || tat.saturating_add(WINDOW_NANOS) <= now.saturating_add(self.interval)
    }

    /// Nanoseconds from `now` until a limiter with TAT `tat` (burst ending
    /// at `end`) could admit its whole limit at once: when it is at rest,
    /// or, for limits of 1 and 2 whose steady tolerance is the whole limit,
    /// when the burst is over and the TAT paid back to it.
    #[inline(always)]
    fn reset_after(self, tat: u64, now: u64, end: u64) -> u64 {
        if tat == 0 {
            return 0;
        }
        let rest = tat.saturating_add(WINDOW_NANOS - self.interval);
        let full = if self.tau >= self.burst {
            rest.min(end.max(tat.saturating_add(self.burst).saturating_sub(self.tau)))
        } else {
            rest
        };
        full.saturating_sub(now)
    }

    /// When a request adding `increment` that was refused at `now` (TAT
    /// `tat`, burst ending at `end`) would be admitted: at the steady rate
    /// once the burst is over if it fits in the tolerance, else only as a
    /// burst from rest, else never.
    #[cold]
    fn retry(self, tat: u64, now: u64, increment: u64, end: u64) -> RetryAfter {
        let steady = (increment <= self.tau).then(|| {
            tat.saturating_add(increment)
                .saturating_sub(self.tau)
                .max(end)
        });
        let rest =
            (increment <= self.burst).then(|| tat.saturating_add(WINDOW_NANOS - self.interval));
        let after_nanos = match (steady, rest) {
            (Some(a), Some(b)) => a.min(b).saturating_sub(now).max(1),
            (Some(a), None) | (None, Some(a)) => a.saturating_sub(now).max(1),
            (None, None) => u64::MAX,
        };
        RetryAfter { after_nanos }
    }
}

impl RateLimiter {
    /// A limiter at rest admitting `limit_per_minute` units per minute.
    /// `None` when the limit is 0; limits above [`MAX_LIMIT_PER_MINUTE`]
    /// are clamped to it.
    #[cfg_attr(not(test), allow(dead_code))]
    pub fn new(limit_per_minute: u64) -> Option<RateLimiter> {
        if limit_per_minute == 0 {
            return None;
        }
        Some(RateLimiter {
            tat: AtomicU64::new(0),
            burst_end: AtomicU64::new(0),
            limit: AtomicU64::new(pack(limit_per_minute)),
        })
    }

    /// A limiter at the highest limit, for slots whose real limit is set later with
    /// [`RateLimiter::set_limit`].
    pub fn unlimited() -> RateLimiter {
        RateLimiter {
            tat: AtomicU64::new(0),
            burst_end: AtomicU64::new(0),
            limit: AtomicU64::new(pack(MAX_LIMIT_PER_MINUTE)),
        }
    }

    /// The current limit per minute (after clamping).
    pub fn limit(&self) -> u64 {
        self.params().limit
    }

    /// Changes the limit while keeping the state. Returns `false` (and
    /// changes nothing) for 0; clamps like [`RateLimiter::new`].
    ///
    /// The TAT is kept as is, so time already owed stays owed: a limiter
    /// that is at rest stays so, one in the middle of a burst keeps that
    /// burst's end, and one paying back at the steady rate keeps paying
    /// back the same number of nanoseconds at the new rate.
    pub fn set_limit(&self, per_minute: u64) -> bool {
        if per_minute == 0 {
            return false;
        }
        self.limit.store(pack(per_minute), Ordering::Relaxed);
        true
    }

    #[inline(always)]
    fn params(&self) -> Params {
        let (limit, interval) = unpack(self.limit.load(Ordering::Relaxed));
        let tolerance = slack(limit) + 1;
        Params {
            limit,
            interval,
            tau: tolerance * interval,
            burst: limit * interval,
        }
    }

    /// The highest TAT an admission at `now` may leave (`now + burst` at
    /// rest, the burst's end during a burst, else `now + tau`), whether the
    /// limiter is at rest (then the admission starts a burst), and the end
    /// of the last burst.
    #[inline(always)]
    fn ceiling(&self, p: Params, tat: u64, now: u64) -> (u64, bool, u64) {
        if p.rested(tat, now) {
            (now.saturating_add(p.burst), true, 0)
        } else {
            let end = self.burst_end.load(Ordering::Acquire);
            let ceiling = if now < end {
                end
            } else {
                now.saturating_add(p.tau)
            };
            (ceiling, false, end)
        }
    }

    /// Admits `cost` units at `now_nanos` if they fit, atomically.
    ///
    /// Admits iff `max(tat, now) + cost * T` stays within the ceiling:
    /// `now + limit * T` at rest, `burst_end` during a burst, else
    /// `now + tau`. On success
    /// the TAT advances by `cost * T`, on failure nothing changes. Use
    /// `cost = 1` for requests. A cost of 0 behaves like
    /// [`RateLimiter::peek_allows`].
    #[inline(always)]
    #[cfg_attr(not(test), allow(dead_code))]
    pub fn try_acquire(&self, now_nanos: u64, cost: u64) -> Result<RateState, RetryAfter> {
        self.take(now_nanos, cost).map(|(s, _)| s)
    }

    /// [`RateLimiter::try_acquire`], also returning what to hand to
    /// [`RateLimiter::give_back`] if the request is refused later.
    #[inline(always)]
    pub(crate) fn take(&self, now: u64, cost: u64) -> Result<(RateState, Taken), RetryAfter> {
        let p = self.params();
        let increment = cost.saturating_mul(p.interval);
        if increment == 0 {
            let taken = Taken {
                before: 0,
                after: 0,
                increment: 0,
            };
            return self.peek_allows(now).map(|s| (s, taken));
        }
        let mut tat = self.tat.load(Ordering::Acquire);
        loop {
            let (ceiling, rested, end) = self.ceiling(p, tat, now);
            let new_tat = tat.max(now).saturating_add(increment);
            if new_tat > ceiling {
                return Err(p.retry(tat, now, increment, end));
            }
            match self
                .tat
                .compare_exchange_weak(tat, new_tat, Ordering::AcqRel, Ordering::Acquire)
            {
                Ok(_) => {
                    let end = if rested {
                        self.start_burst(p, now);
                        ceiling
                    } else {
                        end
                    };
                    let state = RateState {
                        limit: p.limit,
                        headroom_nanos: ceiling - new_tat,
                        reset_after_nanos: p.reset_after(new_tat, now, end),
                    };
                    let taken = Taken {
                        before: tat,
                        after: new_tat,
                        increment,
                    };
                    return Ok((state, taken));
                }
                Err(actual) => tat = actual,
            }
        }
    }

    /// Records that a burst from rest began at `now` (its first admission
    /// already moved the TAT). `fetch_max`: a late writer never shortens
    /// a newer burst.
    #[cold]
    fn start_burst(&self, p: Params, now: u64) {
        self.burst_end
            .fetch_max(now.saturating_add(p.burst), Ordering::AcqRel);
    }

    /// Returns units taken by [`RateLimiter::take`] for a request that a
    /// later check refused. Exact when nothing else was admitted in
    /// between (the previous TAT is restored); otherwise the TAT is lowered
    /// by what the admission added, which is exact unless the limiter's TAT
    /// fell behind another check's clock in between (see [`super`]).
    pub(crate) fn give_back(&self, taken: Taken) {
        if taken.increment == 0 {
            return;
        }
        if self
            .tat
            .compare_exchange(
                taken.after,
                taken.before,
                Ordering::AcqRel,
                Ordering::Acquire,
            )
            .is_ok()
        {
            return;
        }
        let mut tat = self.tat.load(Ordering::Acquire);
        loop {
            let new_tat = tat.saturating_sub(taken.increment);
            match self
                .tat
                .compare_exchange_weak(tat, new_tat, Ordering::AcqRel, Ordering::Acquire)
            {
                Ok(_) => return,
                Err(actual) => tat = actual,
            }
        }
    }

    /// A zero-cost check that changes nothing: denies only when the limiter
    /// is in debt (its TAT past the ceiling, which only
    /// [`RateLimiter::charge`] can cause). At exactly the limit it still
    /// admits. Meant for tokens per minute, where the cost is only known
    /// after the response and is then added with `charge`.
    #[inline(always)]
    pub fn peek_allows(&self, now_nanos: u64) -> Result<RateState, RetryAfter> {
        let p = self.params();
        let tat = self.tat.load(Ordering::Acquire);
        let (ceiling, _, end) = self.ceiling(p, tat, now_nanos);
        if tat > ceiling {
            // Not at rest: admitted once the burst is over and the debt paid
            // back to the tolerance.
            Err(RetryAfter {
                after_nanos: tat
                    .saturating_sub(p.tau)
                    .max(end)
                    .saturating_sub(now_nanos)
                    .max(1),
            })
        } else {
            Ok(RateState {
                limit: p.limit,
                headroom_nanos: ceiling - tat.max(now_nanos),
                reset_after_nanos: p.reset_after(tat, now_nanos, end),
            })
        }
    }

    /// [`RateLimiter::set_limit`] for a fleet's share of a limit: also rescales what is
    /// owed ahead of `now_nanos` to the new interval, so the units already admitted
    /// ahead of the clock stay the same number of units (a share raised from 1 to 600
    /// does not keep a whole minute owed at the old interval).
    #[cfg(feature = "fleet")]
    #[cfg_attr(not(any(test, feature = "fuzzing")), allow(dead_code))]
    pub(crate) fn set_share(&self, per_minute: u64, now_nanos: u64) -> bool {
        let old = self.params().interval;
        if !self.set_limit(per_minute) {
            return false;
        }
        let new = self.params().interval;
        if new == old {
            return true;
        }
        let mut tat = self.tat.load(Ordering::Acquire);
        while tat > now_nanos {
            let units = (tat - now_nanos).div_ceil(old);
            let rescaled = now_nanos.saturating_add(units.saturating_mul(new));
            match self
                .tat
                .compare_exchange_weak(tat, rescaled, Ordering::AcqRel, Ordering::Acquire)
            {
                Ok(_) => break,
                Err(actual) => tat = actual,
            }
        }
        true
    }

    /// The state as response headers report it at `now_nanos`, also while
    /// the limiter is in debt (then nothing remains). Changes nothing.
    pub(crate) fn state(&self, now_nanos: u64) -> RateState {
        let p = self.params();
        let tat = self.tat.load(Ordering::Acquire);
        let (ceiling, _, end) = self.ceiling(p, tat, now_nanos);
        RateState {
            limit: p.limit,
            headroom_nanos: ceiling.saturating_sub(tat.max(now_nanos)),
            reset_after_nanos: p.reset_after(tat, now_nanos, end),
        }
    }

    /// [`RateLimiter::peek_allows`] without the state: whether a request
    /// is admitted now, and when it would be if not. A TAT not ahead of
    /// the clock always passes (every ceiling is at or past `now`), so
    /// that case reads one word and skips the limit's parameters (a
    /// division).
    #[inline(always)]
    pub(crate) fn allows(&self, now_nanos: u64) -> Result<(), RetryAfter> {
        if self.tat.load(Ordering::Acquire) <= now_nanos {
            return Ok(());
        }
        self.peek_allows(now_nanos).map(|_| ())
    }

    /// Unconditionally adds `cost` units at `now_nanos`, going into debt if
    /// needed (saturating, never wrapping). Debt is paid back at the steady
    /// rate: after charging `n` units past the ceiling, [`peek_allows`]
    /// denies for `n * T`. Charging a limiter at rest starts a burst, like
    /// an admission.
    ///
    /// [`peek_allows`]: RateLimiter::peek_allows
    pub fn charge(&self, now_nanos: u64, cost: u64) {
        let p = self.params();
        let increment = cost.saturating_mul(p.interval);
        if increment == 0 {
            return;
        }
        let mut tat = self.tat.load(Ordering::Acquire);
        loop {
            let rested = p.rested(tat, now_nanos);
            let new_tat = tat.max(now_nanos).saturating_add(increment);
            match self
                .tat
                .compare_exchange_weak(tat, new_tat, Ordering::AcqRel, Ordering::Acquire)
            {
                Ok(_) => {
                    if rested {
                        self.start_burst(p, now_nanos);
                    }
                    return;
                }
                Err(actual) => tat = actual,
            }
        }
    }

    /// Units not yet paid back at the steady rate (rounded up): how far the
    /// TAT is ahead of `now`, in units. May exceed the limit after
    /// [`RateLimiter::charge`].
    pub fn used(&self, now_nanos: u64) -> u64 {
        let p = self.params();
        self.tat
            .load(Ordering::Acquire)
            .saturating_sub(now_nanos)
            .div_ceil(p.interval)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::sync::Arc;
    use std::sync::atomic::AtomicUsize;

    const SEC: u64 = 1_000_000_000;
    const W: u64 = WINDOW_NANOS;

    fn limiter(limit: u64) -> RateLimiter {
        RateLimiter::new(limit).unwrap_or_else(|| unreachable!())
    }

    /// The most units admitted in any half-open window `[t, t + 60 s)`.
    /// `events` are (time, units), in time order.
    fn max_in_any_window(events: &[(u64, u64)]) -> u64 {
        let (mut best, mut sum, mut lo) = (0u64, 0u64, 0usize);
        for (hi, &(t, units)) in events.iter().enumerate() {
            sum += units;
            while events[lo].0 + W <= t {
                sum -= events[lo].1;
                lo += 1;
            }
            debug_assert!(lo <= hi);
            best = best.max(sum);
        }
        best
    }

    /// Admission attempts of one unit at the given times; the admitted ones.
    fn run(l: &RateLimiter, times: impl IntoIterator<Item = u64>) -> Vec<(u64, u64)> {
        times
            .into_iter()
            .filter(|&t| l.try_acquire(t, 1).is_ok())
            .map(|t| (t, 1))
            .collect()
    }

    /// Arrival patterns for a limit: (name, attempt times), each in time order.
    fn patterns(limit: u64) -> Vec<(&'static str, Vec<u64>)> {
        let t = W.div_ceil(limit);
        let start = 1_000 * SEC;
        let n = |k: u64| k.min(400_000);
        let mut out: Vec<(&'static str, Vec<u64>)> = Vec::new();
        // Bursts of twice the limit just before and just after minute edges.
        let mut edges = Vec::new();
        for k in 1..=3u64 {
            let edge = start + k * W;
            edges.extend(std::iter::repeat_n(edge - 1, n(2 * limit) as usize));
            edges.extend(std::iter::repeat_n(edge, n(2 * limit) as usize));
        }
        out.push(("bursts at minute edges", edges));
        // A burst of the limit, then a steady stream at the limit's rate
        // (and at twice it).
        for (name, step) in [("burst then steady", t), ("burst then 2x rate", t / 2)] {
            let mut v = vec![start; n(limit) as usize];
            v.extend((1..=n(3 * limit)).map(|i| start + i * step.max(1)));
            out.push((name, v));
        }
        // Steady hammering at several spacings for three minutes.
        for (name, step) in [
            ("every T", t),
            ("every T/3", t / 3),
            ("every 7 s", 7 * SEC),
            ("every 59 s", 59 * SEC),
        ] {
            let step = step.max(1);
            let count = (3 * W / step).min(400_000);
            out.push((name, (0..count).map(|i| start + i * step).collect()));
        }
        // Bursts of half the limit every 30 s, and a burst after an
        // idle minute following a steady stream.
        let mut halves = Vec::new();
        for k in 0..6u64 {
            halves.extend(std::iter::repeat_n(
                start + k * 30 * SEC,
                n(limit / 2 + 1) as usize,
            ));
        }
        out.push(("half bursts every 30 s", halves));
        let mut rest = (0..n(limit)).map(|i| start + i * t).collect::<Vec<_>>();
        let after = start + limit * t + W;
        rest.extend(std::iter::repeat_n(after, n(2 * limit) as usize));
        out.push(("steady, idle minute, burst", rest));
        out
    }

    #[test]
    fn any_minute_admits_at_most_limit_plus_slack() {
        for limit in [1u64, 2, 3, 7, 50, 60, 1_000, 100_000] {
            for (name, times) in patterns(limit) {
                let l = limiter(limit);
                let admitted = run(&l, times);
                let max = max_in_any_window(&admitted);
                assert!(
                    max <= limit + slack(limit),
                    "limit {limit}, {name}: {max} admitted within 60 s"
                );
            }
        }
    }

    #[test]
    fn bursts_from_rest_and_steady_streams_pass() {
        for limit in [1u64, 2, 50, 60, 1_000, 100_000] {
            let t = W.div_ceil(limit);
            let l = limiter(limit);
            let start = 500 * SEC;
            // The whole limit at once from rest.
            assert!(
                (0..limit).all(|_| l.try_acquire(start, 1).is_ok()),
                "{limit}"
            );
            // A steady stream at the limit's rate is never refused, also
            // right after the burst has been paid back.
            let from = start + limit * t;
            assert!(
                (0..2 * limit).all(|i| l.try_acquire(from + i * t, 1).is_ok()),
                "{limit}"
            );
            // After an idle minute, the whole limit at once again.
            let later = from + 2 * limit * t + W;
            assert!(
                (0..limit).all(|_| l.try_acquire(later, 1).is_ok()),
                "{limit}"
            );
        }
    }

    #[test]
    fn packed_limits_keep_limit_and_interval_exactly() {
        let mut limits: Vec<u64> = vec![
            1,
            2,
            3,
            7,
            59,
            60,
            61,
            223,
            224,
            225,
            SMALL_LIMIT - 1,
            SMALL_LIMIT,
            SMALL_LIMIT + 1,
            MAX_LIMIT_PER_MINUTE - 1,
            MAX_LIMIT_PER_MINUTE,
        ];
        let mut x = 0x9e37_79b9_7f4a_7c15_u64;
        for _ in 0..10_000 {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            limits.push(1 + x % MAX_LIMIT_PER_MINUTE);
            limits.push(1 + x % 100_000);
        }
        for limit in limits {
            assert_eq!(
                unpack(pack(limit)),
                (limit, WINDOW_NANOS.div_ceil(limit)),
                "limit {limit}"
            );
        }
        assert_eq!(unpack(pack(0)), (1, WINDOW_NANOS));
        assert_eq!(
            unpack(pack(u64::MAX)),
            (MAX_LIMIT_PER_MINUTE, 1),
            "clamped to the window"
        );
    }

    #[test]
    fn zero_limit_is_impossible() {
        assert!(RateLimiter::new(0).is_none());
        let l = limiter(5);
        assert!(!l.set_limit(0));
        assert_eq!(l.limit(), 5);
        assert_eq!(limiter(u64::MAX).limit(), MAX_LIMIT_PER_MINUTE);
        assert_eq!(
            (slack(1), slack(99), slack(100), slack(100_000)),
            (1, 1, 2, 2_000)
        );
    }

    #[test]
    fn burst_then_steady_rate_and_headers() {
        // T = 6 s, slack 1, steady tolerance 2 units (12 s).
        let l = limiter(10);
        let now = 1_000 * SEC;
        for i in 0..10 {
            let st = l.try_acquire(now, 1).unwrap();
            assert_eq!(
                (st.limit, st.remaining(), st.reset_after_nanos),
                (10, 9 - i, (i + 1) * 6 * SEC + 54 * SEC)
            );
        }
        assert_eq!(l.used(now), 10);
        // Nothing more until the burst's minute is over; then the steady
        // rate with its tolerance of 2: 10 + 2 + 1 every 6 s, so no minute
        // holds more than 11 = limit + slack.
        assert_eq!(
            l.try_acquire(now, 1),
            Err(RetryAfter {
                after_nanos: 60 * SEC
            })
        );
        // Failure changed nothing.
        assert_eq!(l.used(now), 10);
        assert!(l.try_acquire(now + 60 * SEC - 1, 1).is_err());
        assert!(l.try_acquire(now + 60 * SEC, 1).is_ok());
        assert!(l.try_acquire(now + 60 * SEC, 1).is_ok());
        assert!(l.try_acquire(now + 60 * SEC, 1).is_err());
        assert!(l.try_acquire(now + 66 * SEC - 1, 1).is_err());
        assert!(l.try_acquire(now + 66 * SEC, 1).is_ok());
        assert!(l.try_acquire(now + 66 * SEC, 1).is_err());
        // After a full idle minute the whole burst is back.
        let later = now + 72 * SEC + W;
        assert_eq!(l.peek_allows(later).map(|s| s.remaining()), Ok(10));
        assert_eq!(l.peek_allows(later).map(|s| s.reset_after_nanos), Ok(0));
        for _ in 0..10 {
            assert!(l.try_acquire(later, 1).is_ok());
        }
        assert!(l.try_acquire(later, 1).is_err());
    }

    #[test]
    fn costs_and_impossible_costs() {
        let l = limiter(10);
        assert!(l.try_acquire(0, 4).is_ok());
        // Seven more only fit in a burst from rest: after an idle minute.
        assert_eq!(
            l.try_acquire(0, 7),
            Err(RetryAfter {
                after_nanos: 24 * SEC + 54 * SEC
            })
        );
        assert!(l.try_acquire(0, 6).is_ok());
        let fresh = limiter(10);
        assert_eq!(
            fresh.try_acquire(0, 11),
            Err(RetryAfter {
                after_nanos: u64::MAX
            })
        );
        assert!(fresh.try_acquire(0, u64::MAX).is_err());
        assert_eq!(fresh.used(0), 0);
        // A zero cost changes nothing, not even the rest.
        assert!(fresh.try_acquire(5 * SEC, 0).is_ok());
        assert!(fresh.try_acquire(5 * SEC, 10).is_ok());
    }

    #[test]
    fn tokens_per_minute_peek_and_charge() {
        // T = 60 ms, slack 20, steady tolerance 21 tokens (1.26 s).
        let l = limiter(1_000);
        let now = 5 * SEC;
        assert_eq!(l.peek_allows(now).map(|s| s.remaining()), Ok(1_000));
        l.charge(now, 1_000);
        // Exactly at the limit: still admitted, nothing remaining.
        assert_eq!(l.peek_allows(now).map(|s| s.remaining()), Ok(0));
        l.charge(now, 500);
        assert_eq!(l.used(now), 1_500);
        // In debt until the 1 500 tokens are paid back at 1 000 a minute,
        // down to the tolerance.
        let paid = now + 90 * SEC - 1_260_000_000;
        assert_eq!(
            l.peek_allows(now),
            Err(RetryAfter {
                after_nanos: paid - now
            })
        );
        assert!(l.peek_allows(paid - 1).is_err());
        assert!(l.peek_allows(paid).is_ok());
        // Huge charges saturate instead of wrapping.
        l.charge(now, u64::MAX);
        l.charge(now, u64::MAX);
        assert!(l.peek_allows(now).is_err());
        assert!(l.used(now) > 1_000_000);
    }

    #[test]
    fn state_matches_peek_and_reports_nothing_left_in_debt() {
        let l = limiter(1_000);
        let now = 5 * SEC;
        assert_eq!(l.peek_allows(now), Ok(l.state(now)));
        l.charge(now, 400);
        assert_eq!(l.peek_allows(now), Ok(l.state(now)));
        assert_eq!(l.state(now).remaining(), 600);
        l.charge(now, 5_000);
        assert!(l.peek_allows(now).is_err());
        let s = l.state(now);
        assert_eq!((s.limit, s.remaining()), (1_000, 0));
        assert!(s.reset_after_nanos > 60 * SEC);
    }

    #[test]
    fn allows_agrees_with_peek_allows() {
        for limit in [1u64, 2, 10, 1_000] {
            let l = limiter(limit);
            let mut now = 10 * SEC;
            for i in 0..200u64 {
                // Idle, bursts, debt and paying back, at uneven steps.
                if i % 3 == 0 {
                    l.charge(now, limit / 4 + 1);
                }
                let _ = l.try_acquire(now, 1);
                for at in [now, now + 1, now + SEC, now + 61 * SEC] {
                    assert_eq!(
                        l.allows(at),
                        l.peek_allows(at).map(|_| ()),
                        "limit {limit}, step {i}"
                    );
                }
                now += (i % 7) * SEC / 3;
            }
        }
    }

    #[test]
    fn tokens_in_any_minute_are_bounded_by_limit_slack_and_one_request() {
        for limit in [1u64, 50, 1_000, 100_000] {
            for size in [1u64, limit / 10 + 1, limit / 2 + 1, limit + 1, 3 * limit] {
                for step in [SEC / 10, SEC, 7 * SEC] {
                    let l = limiter(limit);
                    let mut admitted = Vec::new();
                    for i in 0..2_000u64 {
                        let t = 100 * SEC + i * step;
                        if l.peek_allows(t).is_ok() {
                            l.charge(t, size);
                            admitted.push((t, size));
                        }
                    }
                    let max = max_in_any_window(&admitted);
                    assert!(
                        max <= limit + slack(limit) + size,
                        "tpm {limit}, requests of {size} every {step} ns: {max} in 60 s"
                    );
                }
            }
        }
    }

    #[test]
    fn set_limit_keeps_state() {
        let l = limiter(100);
        for _ in 0..50 {
            assert!(l.try_acquire(0, 1).is_ok());
        }
        assert!(l.set_limit(200));
        assert_eq!(l.used(0), 100);
        assert_eq!(l.limit(), 200);
        assert!(l.set_limit(50));
        assert_eq!(l.used(0), 25);
        // The burst that began at 0 ends at 60 s whatever the limit: 25
        // more fit at the new rate.
        for _ in 0..25 {
            assert!(l.try_acquire(0, 1).is_ok());
        }
        assert!(l.try_acquire(0, 1).is_err());
    }

    #[test]
    fn clock_going_backwards_is_safe() {
        // T = 20 s, tolerance 2 units: a burst of 3 from rest.
        let l = limiter(3);
        assert!(l.try_acquire(100 * SEC, 1).is_ok());
        assert!(l.try_acquire(99 * SEC, 1).is_ok());
        assert!(l.try_acquire(98 * SEC, 1).is_ok());
        assert!(l.try_acquire(100 * SEC, 1).is_err());
        assert!(l.try_acquire(0, 1).is_err());
    }

    #[test]
    fn tiny_and_huge_clock_values_never_wrap() {
        for limit in [1u64, 2, 7, MAX_LIMIT_PER_MINUTE] {
            for now in [0u64, 1, SEC, u64::MAX - W, u64::MAX] {
                let l = limiter(limit);
                let _ = l.try_acquire(now, 1);
                l.charge(now, 5);
                let _ = l.peek_allows(now);
                let _ = l.try_acquire(now, 3);
                let _ = l.peek_allows(now.saturating_add(SEC));
                // Saturated at the end of time, otherwise the charge shows.
                assert!(l.used(now) >= 1 || now > u64::MAX - W, "{limit} at {now}");
            }
        }
    }

    #[test]
    fn give_back_restores_exactly() {
        let l = limiter(10);
        let (_, taken) = l.take(SEC, 1).unwrap_or_else(|_| unreachable!());
        l.give_back(taken);
        // Back at rest: the whole burst again.
        assert_eq!(l.peek_allows(SEC).map(|s| s.remaining()), Ok(10));
        assert_eq!(l.used(SEC), 0);
        // With admissions in between, exactly one unit comes back.
        let (_, taken) = l.take(SEC, 1).unwrap_or_else(|_| unreachable!());
        for _ in 0..9 {
            assert!(l.try_acquire(SEC, 1).is_ok());
        }
        assert!(l.try_acquire(SEC, 1).is_err());
        l.give_back(taken);
        assert!(l.try_acquire(SEC, 1).is_ok());
        assert!(l.try_acquire(SEC, 1).is_err());
        // A zero-cost take gives nothing back.
        let (_, zero) = l.take(SEC, 0).unwrap_or_else(|_| unreachable!());
        l.give_back(zero);
        assert!(l.try_acquire(SEC, 1).is_err());
    }

    #[test]
    fn concurrent_take_and_give_back_never_exceed_the_limit() {
        // Half the threads give their units back: exactly the limit is
        // held at the end, and never more than it at any time.
        let l = Arc::new(limiter(100));
        let kept = Arc::new(AtomicUsize::new(0));
        let start = Arc::new(std::sync::Barrier::new(8));
        let now = 42 * SEC;
        let threads: Vec<_> = (0..8)
            .map(|i| {
                let (l, kept, start) = (Arc::clone(&l), Arc::clone(&kept), Arc::clone(&start));
                std::thread::spawn(move || {
                    start.wait();
                    for _ in 0..2_000 {
                        if let Ok((_, taken)) = l.take(now, 1) {
                            if i % 2 == 0 {
                                l.give_back(taken);
                            } else {
                                kept.fetch_add(1, Ordering::Relaxed);
                            }
                        }
                    }
                })
            })
            .collect();
        for t in threads {
            assert!(t.join().is_ok());
        }
        assert_eq!(kept.load(Ordering::Relaxed), 100);
        assert!(l.try_acquire(now, 1).is_err());
    }

    #[test]
    fn concurrent_exactly_limit() {
        let l = Arc::new(limiter(100));
        let ok = Arc::new(AtomicUsize::new(0));
        let start = Arc::new(std::sync::Barrier::new(8));
        let now = 42 * SEC;
        let threads: Vec<_> = (0..8)
            .map(|_| {
                let (l, ok, start) = (Arc::clone(&l), Arc::clone(&ok), Arc::clone(&start));
                std::thread::spawn(move || {
                    start.wait();
                    for _ in 0..500 {
                        if l.try_acquire(now, 1).is_ok() {
                            ok.fetch_add(1, Ordering::Relaxed);
                        }
                    }
                })
            })
            .collect();
        for t in threads {
            assert!(t.join().is_ok());
        }
        assert_eq!(ok.load(Ordering::Relaxed), 100);
        // T = 0.6 s, tolerance 3 units: when the burst's minute is over,
        // 3 more fit at once.
        let next = now + 60 * SEC;
        assert!(l.try_acquire(next - 1, 1).is_err());
        for _ in 0..3 {
            assert!(l.try_acquire(next, 1).is_ok());
        }
        assert!(l.try_acquire(next, 1).is_err());
    }

    proptest! {
        /// Random arrivals and costs: every 60 s window holds at most
        /// `limit + slack` admitted units.
        #[test]
        fn admissions_respect_the_window_bound(
            limit in 1u64..300,
            steps in proptest::collection::vec((0u64..4 * SEC, 1u64..4), 1..400),
        ) {
            let l = limiter(limit);
            let mut now = 1_000 * SEC;
            let mut admitted: Vec<(u64, u64)> = Vec::new();
            for (dt, cost) in steps {
                now += dt;
                if l.try_acquire(now, cost).is_ok() {
                    admitted.push((now, cost));
                }
            }
            prop_assert!(max_in_any_window(&admitted) <= limit + slack(limit));
            // After a full idle minute the whole limit is admitted at once.
            let later = now + 2 * W + 4 * limit * W.div_ceil(limit);
            prop_assert_eq!(l.used(later), 0);
            prop_assert!(l.try_acquire(later, limit).is_ok());
            prop_assert!(l.try_acquire(later, 1).is_err());
        }
    }
}
