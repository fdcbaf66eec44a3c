//! Money budgets per scope with lock-free reservations.
//!
//! See the module documentation of [`super`] for the protocol and the
//! no-overshoot argument.

use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, Ordering};

use parking_lot::Mutex;

use super::period::Period;
use words::*;

mod words;

/// The largest amount a counter can hold, in micro-dollars
/// (`2^52 - 1`, about 4.5 billion dollars per window). Limits, estimates,
/// actual costs and restored spend are clamped to `0..=MAX_AMOUNT_MICROS`;
/// counters saturate at it instead of wrapping.
pub const MAX_AMOUNT_MICROS: i64 = AMOUNT_MASK as i64;

/// Parts per million: a `warn_threshold_ppm` of this is 100 %.
const PPM: u128 = 1_000_000;

/// The hard bit of [`BudgetCounter::gate`]; the other bits are the warn threshold.
const GATE_HARD: u64 = 1 << 63;

/// The gate word for an enforced `limit` (clamped) and a packed policy: [`GATE_HARD`] for
/// a hard budget, and the smallest committed amount at which a reservation warns, that is
/// `sum * PPM >= limit * warn_ppm`; above any amount when the warning is off.
fn gate(limit: i64, policy: u64) -> u64 {
    let hard = if policy_hard(policy) { GATE_HARD } else { 0 };
    let warn_ppm = u128::from(policy_warn_ppm(policy));
    let warn_at = if warn_ppm == 0 {
        !GATE_HARD
    } else {
        // Up to 2^52 * 2^32 / 10^6, a little over 2^64 (thresholds far above 100 %): kept
        // below the hard bit, which is still above any sum (< 2^53), so it never warns.
        let at = (u128::from(clamp_amount(limit)) * warn_ppm).div_ceil(PPM);
        u64::try_from(at).unwrap_or(u64::MAX).min(!GATE_HARD)
    };
    hard | warn_at
}

/// Configuration of one budget.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BudgetConfig {
    /// Maximum spend per window in micro-dollars (clamped to
    /// `0..=MAX_AMOUNT_MICROS`). With `hard`, a limit of 0 blocks
    /// everything.
    pub limit_micros: i64,
    /// When the spend resets.
    pub period: Period,
    /// Hard budgets deny reservations that do not fit; soft budgets admit
    /// everything and only flag `over`.
    pub hard: bool,
    /// Spend share at which reservations carry `warn`, in parts per million
    /// of the limit (0.8 is `800_000`). 0 disables the warning.
    pub warn_threshold_ppm: u32,
}

/// An admitted reservation; hand it back to [`BudgetCounter::settle`]
/// exactly once (it is `Copy`, so settling a copy twice would release the
/// amount twice).
///
/// 24 bytes: a gateway holds one or two per request in flight.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Reservation {
    /// The reserved amount (the clamped estimate), micro-dollars.
    pub amount: i64,
    /// `spent + reserved` (including this reservation) reached the warn
    /// threshold.
    pub warn: bool,
    /// `spent + reserved` (including this reservation) exceeds the limit;
    /// only possible for soft budgets.
    pub over: bool,
    /// `limit - (spent + reserved)` after admission, floored at 0.
    pub remaining_micros: i64,
    /// Generation of the window, checked by `settle`.
    generation: u16,
}

/// A hard budget refused a reservation.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BudgetExceeded {
    /// Start of the current window (Unix micros).
    pub window_start: i64,
    /// End of the current window (Unix micros, exclusive; `i64::MAX` for
    /// a window that never ends): when the budget resets.
    pub window_end: i64,
    /// The configured limit.
    pub limit_micros: i64,
    /// `spent + reserved` at the time of the refusal.
    pub committed_micros: i64,
    /// The (clamped) estimate that did not fit.
    pub requested_micros: i64,
}

/// Where a settled cost was counted.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Settled {
    /// Counted in the reservation's window, which is still current.
    Counted,
    /// The reservation's window ended before the cost could be recorded
    /// (the reservation vanished with the window's reset). The cost is not
    /// added to the new window.
    WindowEnded {
        /// The (clamped) cost that was not counted in memory.
        actual_micros: i64,
    },
}

/// A point-in-time view of a budget, for reports and persistence.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BudgetUsage {
    /// The configured period.
    pub period: Period,
    /// Start of the current window (Unix micros; `i64::MIN` = unbounded).
    pub window_start: i64,
    /// End of the current window (Unix micros, exclusive; `i64::MAX` =
    /// never).
    pub window_end: i64,
    /// Settled spend in the window.
    pub spent_micros: i64,
    /// Reserved but not yet settled amounts in the window.
    pub reserved_micros: i64,
    /// The configured limit.
    pub limit_micros: i64,
    /// `limit - (spent + reserved)`, floored at 0.
    pub remaining_micros: i64,
}

/// A lock-free money budget for one scope (a key or an org).
///
/// Three packed `AtomicU64` words carry the state, each tagged with a
/// 12-bit window generation in its top bits:
///
/// * `state`: generation and `committed = spent + reserved` (52 bits);
///   the only word admission looks at, updated by one CAS.
/// * `spent`: generation and settled spend (52 bits), for reports.
/// * `window`: generation and the window start (as a day number).
///
/// The cached end of the window sits in an `AtomicI64`, so the hot path
/// only compares integers. When `now` reaches it, one thread takes a mutex
/// (cold path, once per window) and installs the next window with the next
/// generation, zeroing `state` and `spent`. Every CAS carries the
/// generation it read, so an update computed against an old window can
/// never land in a new one, and a reset can only happen once.
///
/// Configuration lives in atomics too (`limit` and a packed policy word)
/// and can change at any time with [`BudgetCounter::set_config`] without
/// losing spend. A reader may see the limit of one configuration with the
/// flags of the other for the duration of the update; each is valid.
#[derive(Debug)]
pub struct BudgetCounter {
    /// Generation | committed (spent + reserved).
    state: AtomicU64,
    /// Generation | settled spend.
    spent: AtomicU64,
    /// Generation | encoded window start.
    window: AtomicU64,
    /// Exclusive end of the current window, Unix micros.
    window_end: AtomicI64,
    /// The limit admission enforces, in `0..=MAX_AMOUNT_MICROS`: the configured limit,
    /// or less while a fleet cap is set (see [`BudgetCounter::set_fleet_cap`]).
    limit: AtomicI64,
    /// The configured limit (what [`BudgetCounter::config`] reports).
    #[cfg(feature = "fleet")]
    configured: AtomicI64,
    /// What this process may admit in the current window when its budget is shared by a
    /// fleet (`NO_CAP`: not shared). Changed under `roll_lock`; a new window zeroes it.
    #[cfg(feature = "fleet")]
    cap: AtomicI64,
    /// Packed `period | hard | warn_threshold_ppm`.
    policy: AtomicU64,
    /// What admission reads of the policy, derived from it and `limit` whenever either
    /// changes ([`gate`]): the hard bit and the committed amount at which a reservation
    /// warns, so a reservation pays a comparison, not a multiplication.
    gate: AtomicU64,
    /// Serialises window changes (roll, restore, set_config, snapshot).
    roll_lock: Mutex<()>,
    /// Set while no published budget uses the counter (the budget was
    /// disabled or removed): spend then reaches only the ledger, so the
    /// counter must be re-derived from it before it is enforced again.
    detached: AtomicBool,
}

const SC: Ordering = Ordering::SeqCst;

/// `BudgetCounter::cap` of a counter whose budget is not shared by a fleet.
#[cfg(feature = "fleet")]
const NO_CAP: i64 = i64::MAX;

impl BudgetCounter {
    /// A counter with no spend, in the window of `config.period` containing
    /// `now_micros` (Unix microseconds).
    pub fn new(config: BudgetConfig, now_micros: i64) -> BudgetCounter {
        let (start, end) = config.period.window(now_micros);
        let limit = config.limit_micros.clamp(0, MAX_AMOUNT_MICROS);
        let policy = encode_policy(&config);
        BudgetCounter {
            state: AtomicU64::new(pack(0, 0)),
            spent: AtomicU64::new(pack(0, 0)),
            window: AtomicU64::new(pack(0, encode_start(start))),
            window_end: AtomicI64::new(end),
            limit: AtomicI64::new(limit),
            #[cfg(feature = "fleet")]
            configured: AtomicI64::new(limit),
            #[cfg(feature = "fleet")]
            cap: AtomicI64::new(NO_CAP),
            policy: AtomicU64::new(policy),
            gate: AtomicU64::new(gate(limit, policy)),
            roll_lock: Mutex::new(()),
            detached: AtomicBool::new(false),
        }
    }

    /// The current configuration (limit clamped).
    pub fn config(&self) -> BudgetConfig {
        let policy = self.policy.load(SC);
        #[cfg(feature = "fleet")]
        let limit_micros = self.configured.load(SC);
        #[cfg(not(feature = "fleet"))]
        let limit_micros = self.limit.load(SC);
        BudgetConfig {
            limit_micros,
            period: policy_period(policy),
            hard: policy_hard(policy),
            warn_threshold_ppm: policy_warn_ppm(policy),
        }
    }

    /// Replaces the configuration, keeping spend and reservations.
    ///
    /// * Limit, hardness and threshold apply to the next reservation;
    ///   spend already above a lowered limit stays (hard budgets then deny
    ///   until the window ends).
    /// * A new period moves the counter to the new period's window
    ///   containing `now_micros`, carrying the current spend and
    ///   reservations over (outstanding reservations still settle). If the
    ///   current window has already ended by `now_micros`, it resets as
    ///   usual instead.
    pub fn set_config(&self, now_micros: i64, config: BudgetConfig) {
        let _guard = self.roll_lock.lock();
        let old_period = policy_period(self.policy.load(SC));
        let limit = config.limit_micros.clamp(0, MAX_AMOUNT_MICROS);
        #[cfg(feature = "fleet")]
        let limit = {
            self.configured.store(limit, SC);
            limit.min(self.cap.load(SC))
        };
        self.policy.store(encode_policy(&config), SC);
        self.set_limit_locked(limit);
        let ended = now_micros >= self.window_end.load(SC);
        if ended || old_period != config.period {
            self.install_window_locked(config.period, now_micros, !ended);
        }
    }

    /// Moves to the window of `period` containing `now`. With `carry`, the
    /// amounts stay (same generation); otherwise they reset (next
    /// generation). Caller holds `roll_lock`.
    fn install_window_locked(&self, period: Period, now: i64, carry: bool) {
        let (start, end) = period.window(now);
        let window = self.window.load(SC);
        let generation = generation_of(window);
        if start == decode_start(window) {
            self.window_end.store(end, SC);
            return;
        }
        let generation = if carry {
            generation
        } else {
            next_generation(generation)
        };
        // Order matters: `window` first, then the amounts, then the end.
        // A reader that sees the new generation in `state` therefore also
        // sees the new `window`; one that sees an old `state` with a new
        // `window` notices the generation mismatch and waits for the lock.
        self.window.store(pack(generation, encode_start(start)), SC);
        // A fleet's allowance belongs to the window it was leased for: the new window
        // admits nothing until the fleet leases in it.
        #[cfg(feature = "fleet")]
        if self.cap.load(SC) != NO_CAP {
            self.cap.store(0, SC);
            self.set_limit_locked(0);
        }
        if !carry {
            self.state.store(pack(generation, 0), SC);
            self.spent.store(pack(generation, 0), SC);
        }
        self.window_end.store(end, SC);
    }

    /// Sets the limit admission enforces and the gate derived from it and the policy.
    /// Caller holds `roll_lock` (or owns the counter).
    fn set_limit_locked(&self, limit: i64) {
        self.limit.store(limit, SC);
        self.gate.store(gate(limit, self.policy.load(SC)), SC);
    }

    /// Rolls into a new window if the cached one has ended. Hot path: one
    /// load and one comparison.
    #[inline]
    fn roll_if_needed(&self, now: i64) {
        if now >= self.window_end.load(SC) {
            self.roll_slow(now);
        }
    }

    #[cold]
    fn roll_slow(&self, now: i64) {
        let _guard = self.roll_lock.lock();
        // Another thread may have rolled while we waited.
        if now >= self.window_end.load(SC) {
            let period = policy_period(self.policy.load(SC));
            self.install_window_locked(period, now, false);
        }
    }

    /// Waits for a window change in progress to finish.
    #[cold]
    fn wait_for_window_change(&self) {
        drop(self.roll_lock.lock());
    }

    /// Reserves `estimate_micros` at `now_micros` (Unix microseconds).
    ///
    /// Hard budgets admit iff `spent + reserved + estimate <= limit` and
    /// something is left (`spent + reserved < limit`, so a zero estimate is
    /// refused by an exhausted budget and a zero limit blocks everything).
    /// Soft budgets always admit and set `over` when the sum exceeds the
    /// limit. The decision and the increment are one CAS, so concurrent
    /// reservations can never jointly overshoot a hard limit. Negative
    /// estimates count as 0.
    #[inline(always)]
    pub fn reserve(
        &self,
        now_micros: i64,
        estimate_micros: i64,
    ) -> Result<Reservation, BudgetExceeded> {
        self.roll_if_needed(now_micros);
        let estimate = clamp_amount(estimate_micros);
        let limit = clamp_amount(self.limit.load(SC));
        let gate = self.gate.load(SC);
        let hard = gate & GATE_HARD != 0;
        let warn_at = gate & !GATE_HARD;
        let mut state = self.state.load(SC);
        loop {
            let generation = generation_of(state);
            let window = self.window.load(SC);
            if generation_of(window) != generation {
                self.wait_for_window_change();
                state = self.state.load(SC);
                continue;
            }
            let committed = amount_of(state);
            // Both are < 2^52: no overflow.
            let sum = committed + estimate;
            let over = sum > limit;
            if hard && (over || committed >= limit) {
                return Err(BudgetExceeded {
                    window_start: decode_start(window),
                    window_end: self.window_end.load(SC),
                    limit_micros: to_i64(limit),
                    committed_micros: to_i64(committed),
                    requested_micros: to_i64(estimate),
                });
            }
            let new = sum.min(AMOUNT_MASK);
            match self
                .state
                .compare_exchange_weak(state, pack(generation, new), SC, SC)
            {
                Ok(_) => {
                    return Ok(Reservation {
                        amount: to_i64(estimate),
                        warn: sum >= warn_at,
                        over,
                        remaining_micros: to_i64(limit.saturating_sub(sum)),
                        generation,
                    });
                }
                Err(actual) => state = actual,
            }
        }
    }

    /// Releases `r` and records the actual cost (negative counts as 0;
    /// `settle(r, 0)` cancels a reservation).
    ///
    /// The cost belongs to the reservation's window. If that window is
    /// still current, `spent + reserved` changes by `actual - amount` and
    /// `spent` by `actual`. If it has ended, the reservation already
    /// vanished with the reset and nothing is added to the new window; the
    /// result says so, for a persister that wants to book the cost on the
    /// old window. Settle every reservation exactly once.
    pub fn settle(&self, r: &Reservation, actual_micros: i64) -> Settled {
        let actual = clamp_amount(actual_micros);
        let ended = Settled::WindowEnded {
            actual_micros: to_i64(actual),
        };
        let amount = clamp_amount(r.amount);
        let mut state = self.state.load(SC);
        loop {
            if generation_of(state) != r.generation {
                return ended;
            }
            let committed = amount_of(state).saturating_sub(amount) + actual;
            match self.state.compare_exchange_weak(
                state,
                pack(r.generation, committed.min(AMOUNT_MASK)),
                SC,
                SC,
            ) {
                Ok(_) => break,
                Err(current) => state = current,
            }
        }
        if actual == 0 {
            return Settled::Counted;
        }
        if !self.add_spent(r.generation, actual) {
            return ended;
        }
        Settled::Counted
    }

    /// Adds to `spent` if its generation is still `generation`.
    fn add_spent(&self, generation: u16, amount: u64) -> bool {
        add_tagged(&self.spent, generation, amount)
    }

    /// Adds to `committed` if its generation is still `generation`.
    fn add_committed(&self, generation: u16, amount: u64) -> bool {
        add_tagged(&self.state, generation, amount)
    }

    /// Loads persisted spend for `window_start` (as stored from
    /// [`BudgetUsage::window_start`]), typically right after construction.
    ///
    /// First rolls to the window containing `now_micros`. If `window_start`
    /// is that window, `spent_micros` is *added* to spend (so spend recorded
    /// since startup is kept) and `true` is returned. Otherwise the stored
    /// window has ended (e.g. while the process was down): nothing changes,
    /// the budget starts fresh, and `false` is returned.
    pub fn restore(&self, now_micros: i64, window_start: i64, spent_micros: i64) -> bool {
        self.roll_if_needed(now_micros);
        let _guard = self.roll_lock.lock();
        let window = self.window.load(SC);
        if decode_start(window) != window_start {
            return false;
        }
        let amount = clamp_amount(spent_micros);
        if amount > 0 {
            // Generations only change under the lock we hold.
            let generation = generation_of(window);
            self.add_committed(generation, amount);
            self.add_spent(generation, amount);
        }
        true
    }

    /// Caps what the counter admits in the window starting at `window_start` at
    /// `cap_micros` of `spent + reserved` (the configured limit still applies when lower),
    /// or lifts the cap with `None`. Returns `false` and changes nothing when the counter
    /// is not in that window (it rolled since the caller read it).
    ///
    /// This is how a fleet shares one budget: each process admits within what it holds
    /// of the shared counter. The cap is a cold-path write (under the window lock); the
    /// hot path keeps reading the one limit word. A new window zeroes the cap, so an
    /// allowance never leaks into the next window.
    #[cfg(feature = "fleet")]
    pub(crate) fn set_fleet_cap(&self, window_start: i64, cap_micros: Option<i64>) -> bool {
        let _guard = self.roll_lock.lock();
        if decode_start(self.window.load(SC)) != window_start {
            return false;
        }
        let cap = cap_micros.map_or(NO_CAP, |c| c.clamp(0, MAX_AMOUNT_MICROS));
        self.cap.store(cap, SC);
        self.set_limit_locked(self.configured.load(SC).min(cap));
        true
    }

    /// The cap set by [`BudgetCounter::set_fleet_cap`], if any (zeroed by a new window).
    #[cfg(feature = "fleet")]
    pub(crate) fn fleet_cap(&self) -> Option<i64> {
        let cap = self.cap.load(SC);
        (cap != NO_CAP).then_some(cap)
    }

    /// Marks the counter as unused by any published budget (its budget was
    /// disabled or removed). Spend made meanwhile reaches only the ledger;
    /// [`BudgetCounter::is_detached`] tells the writer that enables the
    /// budget again to [`BudgetCounter::resync`] it first.
    pub fn detach(&self) {
        self.detached.store(true, SC);
    }

    /// Whether the counter was detached and not resynchronised since.
    pub fn is_detached(&self) -> bool {
        self.detached.load(SC)
    }

    /// Sets the settled spend of the current window to `spent_micros` (the
    /// ledger's spend for `window_start` plus spend not flushed yet),
    /// keeping outstanding reservations, and clears the detached mark.
    ///
    /// First rolls to the window containing `now_micros`. Returns `false`
    /// and changes no amount when `window_start` is not that window.
    pub fn resync(&self, now_micros: i64, window_start: i64, spent_micros: i64) -> bool {
        self.roll_if_needed(now_micros);
        let _guard = self.roll_lock.lock();
        self.detached.store(false, SC);
        let window = self.window.load(SC);
        if decode_start(window) != window_start {
            return false;
        }
        // Generations only change under the lock we hold.
        let generation = generation_of(window);
        let target = clamp_amount(spent_micros);
        let old = amount_of(self.spent.swap(pack(generation, target), SC));
        // `committed` moves by the same difference, so reservations stay.
        let mut state = self.state.load(SC);
        loop {
            let committed = (amount_of(state) + target)
                .saturating_sub(old)
                .min(AMOUNT_MASK);
            match self
                .state
                .compare_exchange_weak(state, pack(generation, committed), SC, SC)
            {
                Ok(_) => return true,
                Err(actual) => state = actual,
            }
        }
    }

    /// The budget's state at `now_micros` (rolling first if the window has
    /// ended). Consistent with respect to windows; with traffic in flight,
    /// `reserved_micros` may be off by a settle that is half done.
    pub fn snapshot(&self, now_micros: i64) -> BudgetUsage {
        self.roll_if_needed(now_micros);
        let _guard = self.roll_lock.lock();
        let window = self.window.load(SC);
        let committed = amount_of(self.state.load(SC));
        let spent = amount_of(self.spent.load(SC));
        let limit = clamp_amount(self.limit.load(SC));
        BudgetUsage {
            period: policy_period(self.policy.load(SC)),
            window_start: decode_start(window),
            window_end: self.window_end.load(SC),
            spent_micros: to_i64(spent),
            reserved_micros: to_i64(committed.saturating_sub(spent)),
            // The configured limit; `remaining` is what this process may still admit.
            limit_micros: self.config().limit_micros,
            remaining_micros: to_i64(limit.saturating_sub(committed)),
        }
    }
}

#[cfg(test)]
mod tests;
