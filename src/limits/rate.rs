//! Per-minute rate limiting with GCRA on a single atomic word.
//!
//! See the module documentation of [`super`] for the algorithm.

use std::sync::atomic::{AtomicU64, Ordering};

/// Length of the rate window: one minute in nanoseconds.
const WINDOW_NANOS: u64 = 60_000_000_000;

/// The largest accepted `limit_per_minute`: one unit per nanosecond.
/// Larger limits are clamped to this, so the emission interval is never 0.
pub const MAX_LIMIT_PER_MINUTE: u64 = WINDOW_NANOS;

/// What a successful (or zero-cost) rate check reports; exactly the inputs
/// of the `x-ratelimit-limit`, `x-ratelimit-remaining` and
/// `x-ratelimit-reset` headers.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RateState {
    /// The configured limit per minute (after clamping).
    pub limit: u64,
    /// Whole units that could still be admitted right now.
    pub remaining: u64,
    /// Nanoseconds until the limiter is back to full capacity (0 when it
    /// is already full).
    pub reset_after_nanos: u64,
}

/// A denied rate check: when to try again.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RetryAfter {
    /// Nanoseconds after `now` at which the same request would be admitted
    /// (assuming no other traffic). `u64::MAX` when it never will: the
    /// requested cost exceeds the whole per-minute limit.
    pub after_nanos: u64,
}

/// A GCRA rate limiter for one scope (e.g. requests per minute of one key).
///
/// State is one `AtomicU64` holding the theoretical arrival time (TAT) in
/// nanoseconds relative to a caller-chosen monotonic origin (e.g. an
/// `Instant` taken at startup); every method takes `now_nanos` relative to
/// the same origin. The burst equals the full per-minute limit: a fresh
/// limiter admits `limit` units at once, then one every `60 s / limit`.
///
/// The limit lives in a second atomic; the emission interval `T = 60 s /
/// limit` is derived from it by one integer division per call, so a
/// concurrent [`RateLimiter::set_limit`] can never be observed half-applied
/// (limit and interval from different configurations).
///
/// A limit of 0 is unrepresentable: [`RateLimiter::new`] returns `None` for
/// it and [`RateLimiter::set_limit`] refuses it. "No limit" is modelled by
/// not having a limiter; "block everything" belongs to a different check.
#[derive(Debug)]
pub struct RateLimiter {
    /// Theoretical arrival time, nanoseconds since the caller's origin.
    tat: AtomicU64,
    /// Limit per minute, always in `1..=MAX_LIMIT_PER_MINUTE`.
    limit: AtomicU64,
}

/// Derived GCRA parameters for one call.
#[derive(Clone, Copy)]
struct Params {
    limit: u64,
    /// Emission interval in nanoseconds, `>= 1`.
    interval: u64,
    /// Burst tolerance: `limit * interval <= WINDOW_NANOS`.
    tau: u64,
}

impl RateState {
    /// The state when the TAT is `ahead` nanoseconds past `now`
    /// (`ahead <= tau`).
    #[inline(always)]
    fn at(p: Params, ahead: u64) -> RateState {
        RateState {
            limit: p.limit,
            remaining: p.tau.saturating_sub(ahead) / p.interval,
            reset_after_nanos: ahead,
        }
    }
}

impl RateLimiter {
    /// A full limiter admitting `limit_per_minute` units per minute with a
    /// burst of the same size. `None` when the limit is 0; limits above
    /// [`MAX_LIMIT_PER_MINUTE`] are clamped to it.
    #[cfg_attr(not(test), allow(dead_code))]
    pub fn new(limit_per_minute: u64) -> Option<RateLimiter> {
        if limit_per_minute == 0 {
            return None;
        }
        Some(RateLimiter {
            tat: AtomicU64::new(0),
            limit: AtomicU64::new(limit_per_minute.min(MAX_LIMIT_PER_MINUTE)),
        })
    }

    /// A limiter at the highest limit, for slots whose real limit is set later with
    /// [`RateLimiter::set_limit`].
    pub fn unlimited() -> RateLimiter {
        RateLimiter {
            tat: AtomicU64::new(0),
            limit: AtomicU64::new(MAX_LIMIT_PER_MINUTE),
        }
    }

    /// The current limit per minute (after clamping).
    pub fn limit(&self) -> u64 {
        self.params().limit
    }

    /// Changes the limit while keeping the state. Returns `false` (and
    /// changes nothing) for 0; clamps like [`RateLimiter::new`].
    ///
    /// The TAT is kept as is, so the *fraction* of the minute's capacity in
    /// use is preserved: a limiter at 50/100 becomes 100/200 when doubled
    /// and 25/50 when halved, and one that is empty or full stays so.
    pub fn set_limit(&self, per_minute: u64) -> bool {
        if per_minute == 0 {
            return false;
        }
        self.limit
            .store(per_minute.min(MAX_LIMIT_PER_MINUTE), Ordering::Relaxed);
        true
    }

    #[inline(always)]
    fn params(&self) -> Params {
        // The stored limit is never 0 and never above the window, but stay
        // total anyway: `max(1)` keeps the division defined.
        let limit = self
            .limit
            .load(Ordering::Relaxed)
            .clamp(1, MAX_LIMIT_PER_MINUTE);
        let interval = WINDOW_NANOS / limit;
        Params {
            limit,
            interval,
            tau: interval * limit,
        }
    }

    /// Admits `cost` units at `now_nanos` if they fit, atomically.
    ///
    /// Admits iff `max(tat, now) + cost * T <= now + tau`; on success the TAT
    /// advances by `cost * T`, on failure nothing changes. Use `cost = 1`
    /// for requests. A cost of 0 behaves like [`RateLimiter::peek_allows`].
    #[inline(always)]
    pub fn try_acquire(&self, now_nanos: u64, cost: u64) -> Result<RateState, RetryAfter> {
        let p = self.params();
        let increment = cost.saturating_mul(p.interval);
        let mut tat = self.tat.load(Ordering::Acquire);
        loop {
            let new_tat = tat.max(now_nanos).saturating_add(increment);
            let ahead = new_tat - now_nanos;
            if ahead > p.tau {
                let after_nanos = if increment > p.tau {
                    u64::MAX
                } else {
                    ahead - p.tau
                };
                return Err(RetryAfter { after_nanos });
            }
            match self
                .tat
                .compare_exchange_weak(tat, new_tat, Ordering::AcqRel, Ordering::Acquire)
            {
                Ok(_) => return Ok(RateState::at(p, ahead)),
                Err(actual) => tat = actual,
            }
        }
    }

    /// A zero-cost check that changes nothing: denies only when the limiter
    /// is already in debt (more than the whole limit used, which only
    /// [`RateLimiter::charge`] can cause). At exactly the limit it still
    /// admits. Meant for tokens per minute, where the cost is only known
    /// after the response and is then added with `charge`.
    #[inline(always)]
    pub fn peek_allows(&self, now_nanos: u64) -> Result<RateState, RetryAfter> {
        let p = self.params();
        let ahead = self.tat.load(Ordering::Acquire).saturating_sub(now_nanos);
        if ahead > p.tau {
            Err(RetryAfter {
                after_nanos: ahead - p.tau,
            })
        } else {
            Ok(RateState::at(p, ahead))
        }
    }

    /// Unconditionally adds `cost` units at `now_nanos`, going into debt if
    /// needed (saturating, never wrapping). Debt is paid back at the normal
    /// rate: after charging `n` units past the limit, [`peek_allows`]
    /// denies for `n * 60 s / limit`.
    ///
    /// [`peek_allows`]: RateLimiter::peek_allows
    pub fn charge(&self, now_nanos: u64, cost: u64) {
        let increment = cost.saturating_mul(self.params().interval);
        if increment == 0 {
            return;
        }
        let mut tat = self.tat.load(Ordering::Acquire);
        loop {
            let new_tat = tat.max(now_nanos).saturating_add(increment);
            match self
                .tat
                .compare_exchange_weak(tat, new_tat, Ordering::AcqRel, Ordering::Acquire)
            {
                Ok(_) => return,
                Err(actual) => tat = actual,
            }
        }
    }

    /// Units currently counted against the limit (rounded up), i.e. the
    /// usage within the sliding minute. May exceed the limit after
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

    fn limiter(limit: u64) -> RateLimiter {
        RateLimiter::new(limit).unwrap_or_else(|| unreachable!())
    }

    #[test]
    fn zero_limit_is_impossible() {
        assert!(RateLimiter::new(0).is_none());
        let l = limiter(5);
        assert!(!l.set_limit(0));
        assert_eq!(l.limit(), 5);
        assert_eq!(limiter(u64::MAX).limit(), MAX_LIMIT_PER_MINUTE);
    }

    #[test]
    fn burst_then_steady_rate() {
        let l = limiter(10);
        let now = 1_000 * SEC;
        for i in 0..10 {
            let st = l.try_acquire(now, 1);
            assert_eq!(
                st,
                Ok(RateState {
                    limit: 10,
                    remaining: 9 - i,
                    reset_after_nanos: (i + 1) * 6 * SEC,
                })
            );
        }
        assert_eq!(l.used(now), 10);
        assert_eq!(
            l.try_acquire(now, 1),
            Err(RetryAfter {
                after_nanos: 6 * SEC
            })
        );
        // Failure changed nothing.
        assert_eq!(l.used(now), 10);
        assert!(l.try_acquire(now + 6 * SEC - 1, 1).is_err());
        assert!(l.try_acquire(now + 6 * SEC, 1).is_ok());
        assert!(l.try_acquire(now + 6 * SEC, 1).is_err());
        // After a full idle minute the whole burst is back.
        let later = now + 6 * SEC + 60 * SEC;
        assert_eq!(l.used(later), 0);
        for _ in 0..10 {
            assert!(l.try_acquire(later, 1).is_ok());
        }
        assert!(l.try_acquire(later, 1).is_err());
    }

    #[test]
    fn costs_and_impossible_costs() {
        let l = limiter(10);
        assert!(l.try_acquire(0, 4).is_ok());
        assert_eq!(
            l.try_acquire(0, 7),
            Err(RetryAfter {
                after_nanos: 6 * SEC
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
    }

    #[test]
    fn tokens_per_minute_peek_and_charge() {
        let l = limiter(1_000);
        let now = 5 * SEC;
        assert_eq!(l.peek_allows(now).map(|s| s.remaining), Ok(1_000));
        l.charge(now, 1_000);
        // Exactly at the limit: still admitted, nothing remaining.
        assert_eq!(l.peek_allows(now).map(|s| s.remaining), Ok(0));
        l.charge(now, 500);
        assert_eq!(l.used(now), 1_500);
        assert_eq!(
            l.peek_allows(now),
            Err(RetryAfter {
                after_nanos: 30 * SEC
            })
        );
        assert!(l.peek_allows(now + 30 * SEC).is_ok());
        // Huge charges saturate instead of wrapping.
        l.charge(now, u64::MAX);
        l.charge(now, u64::MAX);
        assert!(l.peek_allows(now).is_err());
        assert!(l.used(now) > 1_000_000);
    }

    #[test]
    fn set_limit_keeps_state() {
        let l = limiter(100);
        for _ in 0..50 {
            assert!(l.try_acquire(0, 1).is_ok());
        }
        assert!(l.set_limit(200));
        assert_eq!(l.used(0), 100);
        assert_eq!(
            l.peek_allows(0).map(|s| (s.limit, s.remaining)),
            Ok((200, 100))
        );
        assert!(l.set_limit(50));
        assert_eq!(l.used(0), 25);
        for _ in 0..25 {
            assert!(l.try_acquire(0, 1).is_ok());
        }
        assert!(l.try_acquire(0, 1).is_err());
    }

    #[test]
    fn clock_going_backwards_is_safe() {
        // T = 20 s, tau = 60 s. A caller with an older `now` is judged
        // against the newer TAT, so it sees less capacity, never more.
        let l = limiter(3);
        assert!(l.try_acquire(100 * SEC, 1).is_ok());
        assert!(l.try_acquire(99 * SEC, 1).is_ok());
        assert!(l.try_acquire(98 * SEC, 1).is_err());
        assert!(l.try_acquire(100 * SEC, 1).is_ok());
        assert!(l.try_acquire(100 * SEC, 1).is_err());
        assert!(l.try_acquire(0, 1).is_err());
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
        let next = now + 60 * SEC / 100;
        assert!(l.try_acquire(next - 1, 1).is_err());
        assert!(l.try_acquire(next, 1).is_ok());
        assert!(l.try_acquire(next, 1).is_err());
    }

    proptest! {
        /// GCRA bound: in any interval [a, b] the admitted units are at most
        /// `limit + (b - a) / T`; and an idle limiter admits a full burst.
        #[test]
        fn admissions_respect_gcra_bound(
            limit in 1u64..200,
            steps in proptest::collection::vec((0u64..3 * SEC, 1u64..4), 1..300),
        ) {
            let l = limiter(limit);
            let interval = WINDOW_NANOS / limit;
            let mut now = 0u64;
            let mut admitted: Vec<(u64, u64)> = Vec::new();
            for (dt, cost) in steps {
                now += dt;
                if l.try_acquire(now, cost).is_ok() {
                    admitted.push((now, cost));
                }
            }
            for i in 0..admitted.len() {
                let mut units = 0u64;
                for j in i..admitted.len() {
                    units += admitted[j].1;
                    let span = admitted[j].0 - admitted[i].0;
                    prop_assert!(units <= limit + span / interval);
                }
            }
            // After a full idle minute the whole limit is admitted at once.
            let later = now + 2 * WINDOW_NANOS;
            prop_assert_eq!(l.used(later), 0);
            prop_assert!(l.try_acquire(later, limit).is_ok());
            prop_assert!(l.try_acquire(later, 1).is_err());
        }
    }
}
