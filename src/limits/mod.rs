//! Rate limits and spend budgets for keys and orgs.
//!
//! Everything here is lock-free on the check path, allocation-free and
//! clock-free: callers read the clocks once per request and pass `now`
//! (monotonic nanoseconds for rate limits, Unix microseconds for budgets,
//! whose windows follow the UTC calendar).
//!
//! # Rate limits ([`RateLimiter`])
//!
//! **Contract.** With a limit of `L` units per minute, any 60-second
//! window `[a, a + 60 s)` admits at most `L + slack(L)` units, where
//! `slack(L) = max(1, L / 50)` (2 % of the limit, at least one). A limiter
//! at rest (nothing admitted for a minute) admits a burst of `L` at once;
//! a steady stream at `L` per minute (one unit every `T`) always passes.
//!
//! **Algorithm.** GCRA with a burst from rest. One atomic word holds the
//! *theoretical arrival time* `tat` of GCRA with emission interval
//! `T = ceil(60 s / L)` (so `L * T >= 60 s`); a second holds `end`, the end
//! of the last burst from rest. Every admission of `cost` units at `now`
//! sets `tat := max(tat, now) + cost * T` by a compare-and-swap, and is
//! allowed iff the new TAT stays under a ceiling:
//!
//! ```text
//! at rest (tat + 60 s <= now + T):  now + L * T     (and end := now + L * T)
//! during a burst (now < end):       end
//! otherwise (steady):               now + tau,   tau = (slack + 1) * T
//! ```
//!
//! A refusal writes nothing; a lost race re-reads and re-decides. Every
//! admission leaves the TAT at least `T` past its own time, so "at rest"
//! means nothing was admitted in the last minute. The check costs what
//! plain GCRA does plus one load and a comparison.
//!
//! **Bound (proof).** The TAT grows by at least `cost * T` per admission
//! and `max` only raises it, so after the admissions `u_1..u_n` at times
//! `t_1 <= .. <= t_n` of a window, `tat >= t_1 + U * T` with `U = sum u_i`.
//! The last admission left `tat <= ceiling(t_n)`. Cases on that ceiling:
//! (a) steady: `U * T <= t_n - t_1 + tau <= 60 s - 1 ns + (slack + 1) * T`,
//! and `60 s / T <= L`, so `U < L + slack + 1`; (b) at rest or during a
//! burst that began at `s = end - L * T`: nothing was admitted in the
//! minute before `s`, so `t_1 >= s` and `U * T <= end - s = L * T`, so
//! `U <= L`. Either way `U <= L + slack`. The unit tests sweep bursts on
//! both sides of minute edges, steady streams, burst-then-steady and random
//! arrivals for limits from 1 to 100 000 and count every window.
//!
//! **Headers.** `remaining = (ceiling - tat) / T` is exactly how many units
//! pass right now; `reset` is the quiet time until the whole limit passes
//! at once again (at rest); a refusal's `retry_after` is the exact wait
//! for the same request with no other traffic: the burst's end or the
//! steady rate, whichever admits it first.
//!
//! **Give-back.** The gateway takes the key's rpm, then the org's, then
//! the budgets, and gives back what a refused request took
//! ([`RateLimiter::give_back`]): the previous TAT is restored when nothing
//! else was admitted in between, else the TAT is lowered by exactly what
//! the request added. Concurrent checks judged against the higher TAT in
//! between were judged conservatively (they may be refused, never admitted
//! past the ceiling). The one inexact case is a give-back after the TAT
//! fell behind another check's clock (the limiter went idle between the
//! take and the give-back, which takes a whole emission interval): it then
//! returns at most the request's own units early.
//!
//! **Tokens per minute.** The cost is only known after the response, so
//! the check is [`RateLimiter::peek_allows`] (refuse only while the TAT is
//! past the ceiling) and the tokens are booked afterwards with
//! [`RateLimiter::charge`], which may push the TAT past the ceiling (debt,
//! repaid at the steady rate). The bound then holds for every request but
//! the last admitted in a window: tokens of requests admitted in any 60 s
//! window are at most `L + slack + ` that last request's tokens (and, with
//! requests in flight at once, those still in flight).
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
//! A counter whose budget is disabled or removed is [`BudgetCounter::detach`]ed
//! (spend then reaches only the ledger); when the budget comes back,
//! [`BudgetCounter::resync`] sets its spend to the ledger's for the window
//! plus what is not flushed yet, keeping reservations in flight. So the
//! counter always equals the ledger's spend for its window.
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
//! * The burst from rest is what a sliding-window log would allow but a
//!   single GCRA word cannot: plain GCRA with a burst tolerance of a whole
//!   minute admits up to `2L - 1` in a minute (a burst, then the steady
//!   rate). Remembering when the burst began (one more word, written once
//!   per burst) is enough to keep the window bound without a log.

mod budget;
pub(crate) mod clock;
mod period;
mod rate;

pub use budget::{BudgetConfig, BudgetCounter, BudgetExceeded, Reservation};
pub(crate) use period::DAY_MICROS;
pub(crate) use rate::Taken;
pub use rate::{RateLimiter, RateState};
