//! Tests of the budget counter: reservations, settlement, window rolls and races.

use super::*;
use crate::limits::period::DAY_MICROS;
use proptest::prelude::*;
use std::collections::HashMap;
use std::sync::{Arc, Barrier};

const DAY: i64 = DAY_MICROS;
/// 2025-01-15T12:00:00Z, a Wednesday.
const NOON: i64 = 1_736_942_400_000_000;

fn hard(limit: i64) -> BudgetConfig {
    BudgetConfig {
        limit_micros: limit,
        period: Period::Daily,
        hard: true,
        warn_threshold_ppm: 800_000,
    }
}

/// (spent, reserved, remaining) of `b` at `now`.
fn amounts(b: &BudgetCounter, now: i64) -> (i64, i64, i64) {
    let u = b.snapshot(now);
    (u.spent_micros, u.reserved_micros, u.remaining_micros)
}

fn ok(r: Result<Reservation, BudgetExceeded>) -> Reservation {
    r.unwrap_or_else(|e| unreachable!("denied: {e:?}"))
}

#[test]
fn packing_round_trips() {
    for g in [0u16, 1, 4095] {
        for a in [0u64, 1, AMOUNT_MASK] {
            let w = pack(g, a);
            assert_eq!((generation_of(w), amount_of(w)), (g, a));
        }
    }
    assert_eq!(next_generation(4095), 0);
    for s in [i64::MIN, 0, NOON - NOON % DAY, -DAY, -106_751_991 * DAY] {
        assert_eq!(decode_start(encode_start(s)), s);
    }
    for p in [
        Period::Daily,
        Period::Weekly,
        Period::Monthly,
        Period::Total,
    ] {
        for hard in [false, true] {
            let c = BudgetConfig {
                limit_micros: 5,
                period: p,
                hard,
                warn_threshold_ppm: u32::MAX,
            };
            let policy = encode_policy(&c);
            assert_eq!(policy_period(policy), p);
            assert_eq!(policy_hard(policy), hard);
            assert_eq!(policy_warn_ppm(policy), u32::MAX);
        }
    }
}

#[test]
fn hard_reserve_settle() {
    let b = BudgetCounter::new(hard(1_000), NOON);
    let r1 = ok(b.reserve(NOON, 500));
    assert_eq!(
        (r1.amount, r1.warn, r1.over, r1.remaining_micros),
        (500, false, false, 500)
    );
    let r2 = ok(b.reserve(NOON, 300));
    assert!(r2.warn);
    let denied = b.reserve(NOON, 201);
    assert_eq!(
        denied,
        Err(BudgetExceeded {
            window_start: NOON - DAY / 2,
            window_end: NOON + DAY / 2,
            limit_micros: 1_000,
            committed_micros: 800,
            requested_micros: 201,
        })
    );
    assert_eq!(b.settle(&r1, 400), Settled::Counted);
    assert_eq!(amounts(&b, NOON), (400, 300, 300));
    let r3 = ok(b.reserve(NOON, 300));
    assert_eq!(r3.remaining_micros, 0);
    // Exhausted: even a zero estimate is refused.
    assert!(b.reserve(NOON, 0).is_err());
    // Cancelling frees the amount.
    assert_eq!(b.settle(&r3, 0), Settled::Counted);
    assert_eq!(b.settle(&r2, 300), Settled::Counted);
    assert_eq!(amounts(&b, NOON), (700, 0, 300));
    // Actual above the estimate is still recorded (real spend).
    let r4 = ok(b.reserve(NOON, 100));
    b.settle(&r4, 900);
    let u = b.snapshot(NOON);
    assert_eq!((u.spent_micros, u.remaining_micros), (1_600, 0));
    assert!(b.reserve(NOON, 1).is_err());
}

#[test]
fn zero_limit_blocks_and_negative_inputs_clamp() {
    let b = BudgetCounter::new(hard(0), NOON);
    assert!(b.reserve(NOON, 0).is_err());
    assert!(b.reserve(NOON, -5).is_err());
    let b = BudgetCounter::new(hard(-10), NOON);
    assert_eq!(b.config().limit_micros, 0);
    let b = BudgetCounter::new(hard(i64::MAX), NOON);
    assert_eq!(b.config().limit_micros, MAX_AMOUNT_MICROS);
    let r = ok(b.reserve(NOON, -5));
    assert_eq!(r.amount, 0);
    b.settle(&r, -7);
    assert_eq!(b.snapshot(NOON).spent_micros, 0);
    let r = ok(b.reserve(NOON, i64::MAX));
    assert_eq!(r.amount, MAX_AMOUNT_MICROS);
    assert!(b.reserve(NOON, 0).is_err());
}

#[test]
fn soft_budget_flags_over() {
    let b = BudgetCounter::new(
        BudgetConfig {
            hard: false,
            ..hard(100)
        },
        NOON,
    );
    let r = ok(b.reserve(NOON, 90));
    assert!(r.warn && !r.over);
    let r = ok(b.reserve(NOON, 20));
    assert!(r.warn && r.over);
    assert_eq!(r.remaining_micros, 0);
    // Saturates instead of wrapping.
    ok(b.reserve(NOON, i64::MAX));
    ok(b.reserve(NOON, i64::MAX));
    let u = b.snapshot(NOON);
    assert_eq!(u.reserved_micros, MAX_AMOUNT_MICROS);
}

#[test]
fn warn_disabled_with_zero_ppm() {
    let b = BudgetCounter::new(
        BudgetConfig {
            warn_threshold_ppm: 0,
            ..hard(100)
        },
        NOON,
    );
    assert!(!ok(b.reserve(NOON, 100)).warn);
}

#[test]
fn window_roll_resets_and_drops_stale_settles() {
    let b = BudgetCounter::new(hard(1_000), NOON);
    let r = ok(b.reserve(NOON, 600));
    let done = ok(b.reserve(NOON, 100));
    b.settle(&done, 100);
    let tomorrow = NOON + DAY;
    let u = b.snapshot(tomorrow);
    assert_eq!(u.window_start, NOON + DAY / 2);
    assert_eq!(
        (u.spent_micros, u.reserved_micros, u.remaining_micros),
        (0, 0, 1_000)
    );
    // The old reservation is gone with its window.
    assert_eq!(
        b.settle(&r, 550),
        Settled::WindowEnded { actual_micros: 550 }
    );
    assert_eq!(b.snapshot(tomorrow).spent_micros, 0);
    // A full new window is available.
    ok(b.reserve(tomorrow, 1_000));
    // A caller with a slightly stale clock does not roll back.
    assert!(b.reserve(NOON, 1).is_err());
}

#[test]
fn total_never_resets() {
    let b = BudgetCounter::new(
        BudgetConfig {
            period: Period::Total,
            ..hard(10)
        },
        NOON,
    );
    let r = ok(b.reserve(NOON, 4));
    b.settle(&r, 4);
    for now in [NOON + 400 * DAY, i64::MAX, i64::MIN] {
        let u = b.snapshot(now);
        assert_eq!((u.window_start, u.window_end), (i64::MIN, i64::MAX));
        assert_eq!(u.spent_micros, 4);
    }
    assert!(b.restore(NOON, i64::MIN, 5));
    assert_eq!(b.snapshot(NOON).spent_micros, 9);
}

#[test]
fn restore_only_into_current_window() {
    let b = BudgetCounter::new(hard(1_000), NOON);
    let r = ok(b.reserve(NOON, 10));
    let today = NOON - DAY / 2;
    assert!(!b.restore(NOON, today - DAY, 700));
    assert!(b.restore(NOON, today, 700));
    assert_eq!(amounts(&b, NOON), (700, 10, 290));
    b.settle(&r, 10);
    assert_eq!(b.snapshot(NOON).spent_micros, 710);
    // Restoring after the window ended starts fresh.
    let b = BudgetCounter::new(hard(1_000), NOON);
    assert!(!b.restore(NOON + DAY, today, 700));
    assert_eq!(b.snapshot(NOON + DAY).spent_micros, 0);
}

#[test]
fn set_config_keeps_spend() {
    let b = BudgetCounter::new(hard(1_000), NOON);
    let r = ok(b.reserve(NOON, 300));
    b.settle(&r, 300);
    let pending = ok(b.reserve(NOON, 100));
    b.set_config(NOON, hard(350));
    assert_eq!(b.snapshot(NOON).spent_micros, 300);
    assert!(b.reserve(NOON, 1).is_err());
    b.set_config(
        NOON,
        BudgetConfig {
            hard: false,
            ..hard(350)
        },
    );
    assert!(ok(b.reserve(NOON, 1)).over);
    // Period change: carried into the month; reservations still settle.
    let monthly = BudgetConfig {
        period: Period::Monthly,
        ..hard(10_000)
    };
    b.set_config(NOON, monthly);
    let u = b.snapshot(NOON);
    // 2025-01-01 is 14.5 days before NOON.
    assert_eq!(u.window_start, NOON - 14 * DAY - DAY / 2);
    assert_eq!(u.window_end, u.window_start + 31 * DAY);
    assert_eq!((u.spent_micros, u.reserved_micros), (300, 101));
    assert_eq!(b.settle(&pending, 50), Settled::Counted);
    assert_eq!(b.snapshot(NOON).spent_micros, 350);
    assert_eq!(b.config(), monthly);
    // Changing the period after the window ended resets.
    let feb = NOON + 20 * DAY;
    b.set_config(feb, hard(10_000));
    let u = b.snapshot(feb);
    assert_eq!(
        (u.period, u.spent_micros, u.reserved_micros),
        (Period::Daily, 0, 0)
    );
    assert_eq!(u.window_start, feb - DAY / 2);
}

/// The key property: admitted reservations never jointly exceed a hard
/// limit, whatever the interleaving.
#[test]
fn concurrent_reservations_never_overshoot() {
    for estimate_max in [1i64, 7] {
        let b = Arc::new(BudgetCounter::new(hard(1_000), NOON));
        let start = Arc::new(Barrier::new(8));
        let threads: Vec<_> = (0..8i64)
            .map(|t| {
                let (b, start) = (Arc::clone(&b), Arc::clone(&start));
                std::thread::spawn(move || {
                    start.wait();
                    let mut admitted = 0i64;
                    for i in 0..2_000i64 {
                        let estimate = 1 + (i * 7 + t) % estimate_max;
                        if let Ok(r) = b.reserve(NOON, estimate) {
                            admitted += r.amount;
                        }
                    }
                    admitted
                })
            })
            .collect();
        let total: i64 = threads
            .into_iter()
            .map(|t| t.join().unwrap_or(i64::MAX))
            .sum();
        assert!(total <= 1_000, "admitted {total}");
        if estimate_max == 1 {
            assert_eq!(total, 1_000);
        }
        let u = b.snapshot(NOON);
        assert_eq!((u.spent_micros, u.reserved_micros), (0, total));
    }
}

/// Reserve/settle traffic from 8 threads across several day
/// boundaries: every window's counted spend stays within the limit and
/// matches what the counter reports, and no reset is applied twice.
#[test]
fn concurrent_traffic_across_rolls() {
    let b = Arc::new(BudgetCounter::new(hard(5_000), NOON));
    const STEPS: i64 = 4_000;
    let start = Arc::new(Barrier::new(8));
    let threads: Vec<_> = (0..8i64)
        .map(|t| {
            let (b, start) = (Arc::clone(&b), Arc::clone(&start));
            std::thread::spawn(move || {
                start.wait();
                let mut counted: HashMap<u16, i64> = HashMap::new();
                for i in 0..STEPS {
                    // Time advances through three day boundaries.
                    let now = NOON + i * 3 * DAY / STEPS + t;
                    let estimate = 1 + (i + t) % 5;
                    if let Ok(r) = b.reserve(now, estimate) {
                        let actual = (i * 13 + t) % (estimate + 1);
                        if b.settle(&r, actual) == Settled::Counted {
                            *counted.entry(r.generation).or_default() += actual;
                        }
                    }
                }
                counted
            })
        })
        .collect();
    let mut per_window: HashMap<u16, i64> = HashMap::new();
    for t in threads {
        for (w, v) in t.join().unwrap_or_default() {
            *per_window.entry(w).or_default() += v;
        }
    }
    assert!(per_window.len() >= 3);
    for (w, spent) in &per_window {
        assert!(*spent <= 5_000, "window {w} spent {spent}");
    }
    let u = b.snapshot(NOON + 3 * DAY);
    assert_eq!(u.reserved_micros, 0);
    assert_eq!(
        u.spent_micros,
        per_window
            .get(&generation_of(b.state.load(SC)))
            .copied()
            .unwrap_or(0)
    );
}

/// The warn rule, stated once: `spent + reserved` (this reservation included) reached
/// `warn_ppm` parts per million of the enforced limit; never with a threshold of 0.
fn warns(sum: u64, limit: u64, warn_ppm: u32) -> bool {
    warn_ppm > 0 && u128::from(sum) * PPM >= u128::from(limit) * u128::from(warn_ppm)
}

proptest! {
    /// A reservation's `warn` follows the rule exactly, whatever the limit and threshold
    /// (including above 100 % and at the largest amounts) and after the configuration
    /// changes between reservations.
    #[test]
    fn warn_follows_the_threshold_exactly(
        configs in proptest::collection::vec(
            (prop_oneof![0i64..3_000, Just(MAX_AMOUNT_MICROS), Just(i64::MAX)],
             prop_oneof![Just(0u32), 1u32..1_000, 700_000u32..1_300_000, Just(u32::MAX)]),
            1..4,
        ),
        estimates in proptest::collection::vec(
            prop_oneof![0i64..400, Just(MAX_AMOUNT_MICROS / 3)], 1..20),
    ) {
        let soft = |(limit, warn): (i64, u32)| BudgetConfig {
            limit_micros: limit,
            period: Period::Daily,
            hard: false,
            warn_threshold_ppm: warn,
        };
        let b = BudgetCounter::new(soft(configs[0]), NOON);
        // What the counter holds saturates; the sum a reservation is judged by does not.
        let mut committed = 0u64;
        for (i, e) in estimates.iter().enumerate() {
            let (limit, warn) = configs[i % configs.len()];
            b.set_config(NOON, soft((limit, warn)));
            let r = ok(b.reserve(NOON, *e));
            let sum = committed + clamp_amount(*e);
            committed = sum.min(AMOUNT_MASK);
            prop_assert_eq!(r.warn, warns(sum, clamp_amount(limit.min(MAX_AMOUNT_MICROS)), warn));
        }
    }
}

proptest! {
    /// Sequential model check: with actual costs never above their
    /// estimates, spent + reserved never exceeds a hard limit and
    /// always equals the model's bookkeeping.
    #[test]
    fn sequential_model(
        limit in 0i64..2_000,
        ops in proptest::collection::vec((0u8..4, 0i64..400, 0i64..DAY / 2), 1..200),
    ) {
        let b = BudgetCounter::new(hard(limit), NOON);
        let mut now = NOON;
        let mut open: Vec<Reservation> = Vec::new();
        let (mut spent, mut reserved) = (0i64, 0i64);
        for (op, amount, dt) in ops {
            match op {
                0 | 1 => {
                    let fits = spent + reserved < limit && spent + reserved + amount <= limit;
                    match b.reserve(now, amount) {
                        Ok(r) => {
                            prop_assert!(fits);
                            reserved += amount;
                            open.push(r);
                        }
                        Err(_) => prop_assert!(!fits),
                    }
                }
                2 => {
                    if let Some(r) = open.pop() {
                        let actual = amount.min(r.amount);
                        let res = b.settle(&r, actual);
                        prop_assert_eq!(res, Settled::Counted);
                        reserved -= r.amount;
                        spent += actual;
                    }
                }
                _ => {
                    let before = b.snapshot(now).window_start;
                    now += dt;
                    if b.snapshot(now).window_start != before {
                        spent = 0;
                        reserved = 0;
                        for r in open.drain(..) {
                            let res = b.settle(&r, r.amount);
                            prop_assert!(matches!(res, Settled::WindowEnded { .. }), "stale settle counted");
                        }
                    }
                }
            }
            let u = b.snapshot(now);
            prop_assert_eq!((u.spent_micros, u.reserved_micros), (spent, reserved));
            prop_assert!(spent + reserved <= limit);
            prop_assert_eq!(u.remaining_micros, limit - spent - reserved);
        }
    }
}

/// A fleet cap bounds admission below the configured limit, survives config changes,
/// never lifts the configured limit, and is zeroed by a new window.
#[cfg(feature = "fleet")]
#[test]
fn fleet_cap_bounds_admission_and_dies_with_its_window() {
    // Warnings follow the enforced limit: what this process may admit.
    let w = BudgetCounter::new(hard(1_000), NOON);
    let start = w.snapshot(NOON).window_start;
    assert!(w.set_fleet_cap(start, Some(100)));
    assert!(!ok(w.reserve(NOON, 79)).warn);
    assert!(ok(w.reserve(NOON, 1)).warn);
    assert!(w.set_fleet_cap(start, None));
    assert!(!ok(w.reserve(NOON, 1)).warn);

    let b = BudgetCounter::new(hard(1_000), NOON);
    let start = b.snapshot(NOON).window_start;
    assert!(b.set_fleet_cap(start, Some(300)));
    assert_eq!(b.fleet_cap(), Some(300));
    let r = ok(b.reserve(NOON, 200));
    assert!(b.reserve(NOON, 101).is_err(), "the cap holds");
    ok(b.reserve(NOON, 100));
    // A config change keeps the cap; the configured limit is still reported.
    b.set_config(NOON, hard(5_000));
    assert_eq!(b.config().limit_micros, 5_000);
    assert_eq!(b.snapshot(NOON).limit_micros, 5_000);
    assert!(b.reserve(NOON, 1).is_err());
    // A cap above the configured limit does not lift it.
    b.set_config(NOON, hard(400));
    assert!(b.set_fleet_cap(start, Some(10_000)));
    ok(b.reserve(NOON, 100));
    assert!(b.reserve(NOON, 1).is_err());
    b.settle(&r, 0);
    // A stale window is refused.
    assert!(!b.set_fleet_cap(start - DAY, Some(1)));
    // The next window starts with nothing to admit until the fleet leases in it.
    let tomorrow = NOON + DAY;
    assert!(b.reserve(tomorrow, 1).is_err());
    assert_eq!(b.fleet_cap(), Some(0));
    let next = b.snapshot(tomorrow).window_start;
    assert!(b.set_fleet_cap(next, Some(50)));
    ok(b.reserve(tomorrow, 50));
    // Lifted: the configured limit alone applies.
    assert!(b.set_fleet_cap(next, None));
    ok(b.reserve(tomorrow, 350));
    assert!(b.reserve(tomorrow, 1).is_err());
}
