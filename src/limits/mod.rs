//! Rate limits and spend budgets for keys and orgs.
//!
//! Everything here is lock-free on the check path, allocation-free and
//! clock-free: callers read the clocks once per request and pass `now`
//! (monotonic nanoseconds for rate limits, Unix microseconds for budgets,
//! whose windows follow the UTC calendar).
//!
//! # Rate limits: GCRA ([`RateLimiter`])
//!
//! The generic cell rate algorithm keeps one number per limiter, the
//! *theoretical arrival time* (TAT): the instant at which the limiter would
//! be back to full capacity. With `limit` units per minute the emission
//! interval is `T = 60 s / limit` and the burst tolerance is
//! `tau = limit * T` (about one minute), so a fresh limiter admits `limit`
//! units at once and then one every `T`. A request of `cost` units at `now`
//! is admitted iff
//!
//! ```text
//! new_tat = max(tat, now) + cost * T   and   new_tat - now <= tau
//! ```
//!
//! and then `tat := new_tat` by a compare-and-swap; a lost race re-reads
//! and re-decides, a refusal writes nothing. `remaining = (tau - (new_tat -
//! now)) / T`, `reset = new_tat - now` and `retry_after = new_tat - now -
//! tau` give the `x-ratelimit-*` and `retry-after` headers directly. Since
//! the TAT only grows by `T` per admitted unit and every admission leaves
//! it at most `tau` ahead of its `now`, any interval `[a, b]` admits at
//! most `limit + (b - a) / T` units (the bound the tests check).
//!
//! For tokens per minute the cost is only known after the response, so the
//! check is [`RateLimiter::peek_allows`] (cost 0: refuse only while in
//! debt) and the tokens are booked afterwards with [`RateLimiter::charge`],
//! which may push the TAT past `now + tau`; that debt is repaid at the
//! normal rate.
//!
//! # Budgets ([`BudgetCounter`])
//!
//! A budget tracks micro-dollars per calendar window ([`Period`]). Money
//! moves in two steps:
//!
//! 1. **Reserve** an estimate before calling the provider
//!    ([`BudgetCounter::reserve`]). The counter keeps
//!    `committed = spent + reserved` in one atomic word together with the
//!    window generation. A hard budget admits iff `committed + estimate <=
//!    limit` (and `committed < limit`), and the check and the increment
//!    are a single CAS.
//! 2. **Settle** with the actual cost afterwards
//!    ([`BudgetCounter::settle`]): `committed += actual - estimate`,
//!    `spent += actual`. `settle(r, 0)` cancels.
//!
//! **No overshoot.** `committed` only grows through a successful CAS whose
//! expected value was the very value the limit check was made against, so
//! every increment is judged against all increments before it: the sum of
//! admitted estimates in a window can never pass the limit, under any
//! interleaving. Settling can only lower `committed` while actual costs stay
//! within their estimates; a cost above its estimate is real spend and is
//! recorded anyway, so `spent` can exceed the limit by at most the sum of
//! such underestimates (callers should estimate high, e.g. from
//! `max_tokens`).
//!
//! **Windows.** The end of the current window is cached in an atomic, so
//! the hot path compares two integers. The first call at or past it takes
//! a mutex (once per window), re-checks, and installs the next window with
//! the next generation, zeroing the amounts. The generation tag in every
//! word makes stale updates fail their CAS instead of leaking into the new
//! window, and the re-check under the mutex makes a double reset
//! impossible. A reservation's cost belongs to the window it was reserved
//! in: settling it after that window ended changes nothing in memory and
//! returns [`Settled::WindowEnded`] (the store's ledger books spend by UTC
//! day on its own, so it needs no window from the reservation).
//!
//! # Persistence
//!
//! Counters live in memory; the store's spend ledger (`store::spend`) keeps
//! settled spend per scope and UTC day. At startup, and when a budget is
//! added, [`BudgetCounter::restore`] adds the ledger's spend for the current
//! window, and a period that ended while the process was down starts fresh.
//! Reservations are never persisted: in-flight requests die with the
//! process.
//!
//! # Design notes
//!
//! * Amounts are 52-bit (about 4.5 billion dollars per window, saturating)
//!   so that a 12-bit generation fits next to them in one `AtomicU64`; a
//!   generation wraps after 4096 windows, far longer than any reservation
//!   lives.
//! * Daily and weekly windows are integer arithmetic (UTC has fixed-length
//!   days); monthly windows use jiff. Both run only when a window ends.
//! * The rate limiter derives `T` from the stored limit with one division
//!   per call instead of storing it separately, so a concurrent limit change
//!   can never pair one configuration's limit with another's interval.

mod budget;
mod period;
mod rate;

pub use budget::{BudgetConfig, BudgetCounter, BudgetExceeded, Reservation};
pub(crate) use period::DAY_MICROS;
pub use rate::{RateLimiter, RateState};
