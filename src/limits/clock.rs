//! A cheap clock for the hot path: one coarse monotonic read (~5 ns) gives both the
//! monotonic nanoseconds that rate limiters use and the wall-clock microseconds that expiry
//! and budget windows use (anchored to the system clock once per process). It lives with
//! the limits it feeds; the gateway and the store's usage reports both read it.

/// One reading of the gateway clock.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Now {
    /// Unix microseconds.
    pub micros: i64,
    /// Monotonic nanoseconds since the process-wide origin.
    pub nanos: u64,
}

/// Anchors coarse monotonic time to wall time.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Clock {
    origin: coarsetime::Instant,
    wall_at_origin: i64,
}

fn origin() -> (coarsetime::Instant, i64) {
    static ORIGIN: std::sync::OnceLock<(coarsetime::Instant, i64)> = std::sync::OnceLock::new();
    *ORIGIN.get_or_init(|| {
        (
            coarsetime::Instant::now(),
            crate::model::Timestamp::now().as_micros(),
        )
    })
}

impl Clock {
    pub fn new() -> Self {
        let (origin, wall_at_origin) = origin();
        Self {
            origin,
            wall_at_origin,
        }
    }

    #[inline]
    pub fn now(&self) -> Now {
        let nanos = coarsetime::Instant::now()
            .duration_since(self.origin)
            .as_nanos();
        Now {
            micros: self.wall_at_origin + (nanos / 1000) as i64,
            nanos,
        }
    }

    /// The reading for a given wall-clock time (tests and replays).
    pub fn at(&self, t: crate::model::Timestamp) -> Now {
        let micros = t.as_micros();
        let nanos = (micros - self.wall_at_origin).max(0) as u64 * 1000;
        Now { micros, nanos }
    }
}

/// A clock reading taken on first use: checks of keys without expiry or limits never read
/// the clock.
pub(crate) struct LazyNow<'a> {
    clock: &'a Clock,
    now: std::cell::Cell<Option<Now>>,
}

impl<'a> LazyNow<'a> {
    #[inline]
    pub fn new(clock: &'a Clock) -> Self {
        Self {
            clock,
            now: std::cell::Cell::new(None),
        }
    }

    #[inline]
    pub fn fixed(clock: &'a Clock, now: Now) -> Self {
        Self {
            clock,
            now: std::cell::Cell::new(Some(now)),
        }
    }

    #[inline]
    pub fn get(&self) -> Now {
        match self.now.get() {
            Some(n) => n,
            None => {
                let n = self.clock.now();
                self.now.set(Some(n));
                n
            }
        }
    }
}
