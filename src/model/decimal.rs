//! JSON number syntax read exactly as a decimal: the one reading behind money amounts and
//! whole-number fields, with no float rounding.

/// A number written in JSON number syntax, as `significand * 10^exponent`.
pub(crate) struct Decimal {
    /// Written with a leading `-`.
    pub(crate) negative: bool,
    /// The significant digits without leading or trailing zeros; empty for zero.
    pub(crate) significand: String,
    /// The power of ten the significand is multiplied by; `None` when the written exponent
    /// has more than 6 digits.
    pub(crate) exponent: Option<i64>,
    /// The written exponent is negative (`1e-9`): a value too precise rather than too large.
    pub(crate) exponent_negative: bool,
}

/// Why a decimal does not fit a scale.
pub(crate) enum Unfit {
    /// It has digits below the smallest unit.
    TooPrecise,
    /// It is above the largest value.
    TooLarge,
}

impl Decimal {
    /// Reads `t` (no blanks) in JSON number syntax, or `None` when it is not a JSON number
    /// (a sign `+`, leading zeros, `.5`, `5.`, `0x10`, `1_000`).
    pub(crate) fn parse(t: &str) -> Option<Self> {
        let (negative, body) = match t.strip_prefix('-') {
            Some(rest) => (true, rest),
            None => (false, t),
        };
        let (mantissa, exp) = match body.find(['e', 'E']) {
            Some(i) => (body.get(..i)?, body.get(i + 1..)?),
            None => (body, "0"),
        };
        let (int, frac) = mantissa.split_once('.').unwrap_or((mantissa, ""));
        let digits_ok = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
        let exp_digits = exp.strip_prefix(['+', '-']).unwrap_or(exp);
        if !digits_ok(int)
            || (int.len() > 1 && int.starts_with('0'))
            || (mantissa.contains('.') && !digits_ok(frac))
            || !digits_ok(exp_digits)
        {
            return None;
        }
        let digits = format!("{int}{frac}");
        let sig = digits.trim_start_matches('0');
        let kept = sig.trim_end_matches('0');
        let exponent = if exp_digits.len() > 6 {
            None
        } else {
            let e: i64 = exp.parse().ok()?;
            let frac_len = i64::try_from(frac.len()).ok()?;
            let zeros = i64::try_from(sig.len() - kept.len()).ok()?;
            Some(e - frac_len + zeros)
        };
        Some(Self {
            negative,
            significand: kept.to_owned(),
            exponent,
            exponent_negative: exp.starts_with('-'),
        })
    }

    /// Whether the value is zero (`0`, `-0`, `0.000`, `0e5`).
    pub(crate) fn is_zero(&self) -> bool {
        self.significand.is_empty()
    }

    /// The value in units of `10^-decimals`, if it is a whole number of them with at most
    /// `max_digits` digits (and fits a `u64`). Zero is 0; the sign is the caller's to check.
    pub(crate) fn scaled(&self, decimals: i64, max_digits: i64) -> Result<u64, Unfit> {
        if self.is_zero() {
            return Ok(0);
        }
        let Some(exponent) = self.exponent else {
            return Err(if self.exponent_negative {
                Unfit::TooPrecise
            } else {
                Unfit::TooLarge
            });
        };
        let shift = exponent + decimals;
        if shift < 0 {
            return Err(Unfit::TooPrecise);
        }
        let len = i64::try_from(self.significand.len()).map_err(|_| Unfit::TooLarge)?;
        if len + shift > max_digits {
            return Err(Unfit::TooLarge);
        }
        let mut n: u64 = self.significand.parse().map_err(|_| Unfit::TooLarge)?;
        for _ in 0..shift {
            n = n.checked_mul(10).ok_or(Unfit::TooLarge)?;
        }
        Ok(n)
    }
}
