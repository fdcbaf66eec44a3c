//! The packed words of a budget counter: an amount tagged with its window's generation,
//! a window start as a day number, and the budget's policy (period, hard, warning level)
//! in one word each, so that every field is one atomic.

use std::sync::atomic::AtomicU64;

use super::{BudgetConfig, MAX_AMOUNT_MICROS, SC};
use crate::limits::period::{DAY_MICROS, Period};

/// Bits of the window generation in the packed words.
pub(super) const GEN_BITS: u32 = 12;
/// Bits of the amount in the packed words.
pub(super) const AMOUNT_BITS: u32 = 64 - GEN_BITS;
/// Mask of the amount bits.
pub(super) const AMOUNT_MASK: u64 = (1 << AMOUNT_BITS) - 1;
/// Mask of a generation after shifting it down.
pub(super) const GEN_MASK: u64 = (1 << GEN_BITS) - 1;

/// Adds `amount` to a generation-tagged word if its generation is still `generation`
/// (saturating at the largest amount).
#[inline]
pub(super) fn add_tagged(word: &AtomicU64, generation: u16, amount: u64) -> bool {
    let mut cur = word.load(SC);
    loop {
        if generation_of(cur) != generation {
            return false;
        }
        let new = (amount_of(cur) + amount).min(AMOUNT_MASK);
        match word.compare_exchange_weak(cur, pack(generation, new), SC, SC) {
            Ok(_) => return true,
            Err(actual) => cur = actual,
        }
    }
}

#[inline]
pub(super) fn pack(generation: u16, amount: u64) -> u64 {
    ((u64::from(generation) & GEN_MASK) << AMOUNT_BITS) | (amount & AMOUNT_MASK)
}

#[inline]
pub(super) fn generation_of(word: u64) -> u16 {
    // Truncation is exact: only GEN_BITS (< 16) bits remain after the shift.
    (word >> AMOUNT_BITS) as u16
}

#[inline]
pub(super) fn amount_of(word: u64) -> u64 {
    word & AMOUNT_MASK
}

#[inline]
pub(super) fn next_generation(generation: u16) -> u16 {
    // The mask keeps the value below 2^GEN_BITS, so the cast is exact.
    ((u64::from(generation) + 1) & GEN_MASK) as u16
}

/// Clamps a money amount into `0..=MAX_AMOUNT_MICROS`.
#[inline]
pub(super) fn clamp_amount(micros: i64) -> u64 {
    micros.clamp(0, MAX_AMOUNT_MICROS).unsigned_abs()
}

/// An amount known to be `<= AMOUNT_MASK` as `i64`.
#[inline]
pub(super) fn to_i64(amount: u64) -> i64 {
    i64::try_from(amount.min(AMOUNT_MASK)).unwrap_or(MAX_AMOUNT_MICROS)
}

/// Window starts are midnights UTC (or `i64::MIN`), so a day number fits
/// in 32 bits; `i32::MIN` encodes `i64::MIN`.
#[inline]
pub(super) fn encode_start(start: i64) -> u64 {
    let day = if start == i64::MIN {
        i32::MIN
    } else {
        i32::try_from(start.div_euclid(DAY_MICROS)).unwrap_or(i32::MIN)
    };
    u64::from(day.cast_unsigned())
}

#[inline]
pub(super) fn decode_start(word: u64) -> i64 {
    // Only the low 32 bits hold the day number; the truncation is intended.
    let day = (word as u32).cast_signed();
    if day == i32::MIN {
        i64::MIN
    } else {
        // Encoded starts are valid i64 micros; saturate for any other word.
        i64::from(day).checked_mul(DAY_MICROS).unwrap_or(i64::MIN)
    }
}

pub(super) const HARD_BIT: u64 = 1 << 32;
pub(super) const PERIOD_SHIFT: u32 = 40;

pub(super) fn encode_policy(config: &BudgetConfig) -> u64 {
    let period: u64 = match config.period {
        Period::Daily => 0,
        Period::Weekly => 1,
        Period::Monthly => 2,
        Period::Total => 3,
    };
    (period << PERIOD_SHIFT)
        | if config.hard { HARD_BIT } else { 0 }
        | u64::from(config.warn_threshold_ppm)
}

#[inline]
pub(super) fn policy_period(policy: u64) -> Period {
    match (policy >> PERIOD_SHIFT) & 0xff {
        0 => Period::Daily,
        1 => Period::Weekly,
        2 => Period::Monthly,
        _ => Period::Total,
    }
}

#[inline]
pub(super) fn policy_hard(policy: u64) -> bool {
    policy & HARD_BIT != 0
}

#[inline]
pub(super) fn policy_warn_ppm(policy: u64) -> u32 {
    // The low 32 bits are the threshold; the truncation is intended.
    policy as u32
}
