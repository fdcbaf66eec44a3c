//! Rate limits held fleet-wide: per-replica shares of a per-minute limit, leased in
//! proportion to demand and rebalanced about once a second. The pure rules (no I/O,
//! explicit clock); [`super::lease`] keeps the rows in PostgreSQL.
//!
//! # Algorithm
//!
//! Each limited scope (a key's or an org's rpm or tpm, limit `L` per minute) has one row
//! per replica: its **share** `s` (what its local [`crate::limits::RateLimiter`] is set
//! to with `set_limit`), its reported **want**, a **lease** end, and **holds**. Every
//! replica renews its row about ten times a second; about once a second one of them (the
//! first to find the scope due, under a row lock) rebalances all rows of the scope:
//!
//! 1. **Wants** are measured locally without touching the hot path: the replica samples
//!    its limiter ten times a second (nothing `remaining` means it is at its ceiling) and
//!    keeps a running average of how often it was. Often at the ceiling (over 40 %), it
//!    asks for `1.1 s + 1`; almost never (under 5 %), for `0.95 s`; otherwise for `s`.
//!    Shares are applied with [`crate::limits::RateLimiter::set_share`], which keeps what
//!    is owed ahead of the clock in units, not nanoseconds.
//! 2. **Targets** are the max-min fair split of `L` over the wants (small wants are met in
//!    full, the rest is split evenly among the hungry). A replica whose lease lapsed wants
//!    only the minimum share (1), which it falls back to by itself at its lease end.
//! 3. **Decreases**: a replica that asks for less than its share gets its target at once;
//!    one that wants more gives way by at most 5 % per rebalance, and only when it is more
//!    than 5 % over its target. Either way the old share stays **held** until `hold`
//!    after the replica could last have used it (its lease end, or now if later).
//! 4. **Increases** come only from `free = L - sum(reserved)`, where `reserved` is a
//!    replica's share or its largest hold still in force, whichever is larger (also for
//!    growth back into a replica's own hold, so capacity given up goes to whoever needs
//!    it once the hold ends).
//!
//! This is what stops the sliding-minute overshoot of naive rebalancing (A uses 80 % in
//! the first half-minute, then B is given 80 % for the second half): capacity that A
//! held stays reserved for `hold`, so B can only grow into it once no 60-second window
//! can contain both A's and B's use of it.
//!
//! # Bound
//!
//! Invariant after every rebalance: `sum(reserved) <= L + j`, where `j <= replicas` counts
//! replicas that joined while everything was leased (a limiter's least share is 1, never
//! 0). A limiter whose limit stayed at most `M` during a window and the minute before it
//! admits at most `M + slack(M)` in that window (the limiter's own bound;
//! `slack(M) = max(1, M / 50)`; a burst from rest begun in the minute before the window
//! is bounded by the limit it began with). With `hold = 120 s`, every share a replica
//! applied in `[t - 60 s, t + 60 s)` is still reserved at `t + 60 s`. So any 60-second
//! window of the fleet admits at most
//!
//! ```text
//! sum(M_i + slack(M_i)) <= L + j + L / 50 + replicas   (requests; tokens add one
//!                                                       request's tokens per replica)
//! ```
//!
//! which is within the promised `1.05 L + replicas` once `L >= 34 * replicas` (or no
//! replica joined a fully leased scope in the last two minutes). The simulations check it over
//! thousands of simulated minutes with skewed and shifting load, dying replicas and an
//! unreachable database (no renewals: every replica falls back to 1 at its lease end).
//! Under steady demand above `L`, shares converge within minutes: with 80/15/5 % of twice
//! the limit on three replicas the simulated fleet admits 98 % of `L` per minute on
//! average and never under 93 % once settled (the tests require 90 %). A shift of demand
//! from one replica to another takes up to `hold` to follow: the safe direction, fewer
//! admissions, never more.

/// Tuning of the share allocation (times in microseconds).
#[derive(Clone, Copy, Debug)]
pub(crate) struct SharePolicy {
    /// How long a lowered share stays reserved after the replica could last use it.
    pub hold: i64,
    /// How long a replica may use a share without renewing its row.
    pub lease: i64,
    /// Least time between two rebalances of a scope.
    pub rebalance_every: i64,
}

impl Default for SharePolicy {
    fn default() -> Self {
        Self {
            hold: 120_000_000,
            lease: 3_000_000,
            rebalance_every: 1_000_000,
        }
    }
}

/// The least share a replica holds: a limiter cannot be set to 0.
pub(crate) const MIN_SHARE: u64 = 1;

/// A lowered share still reserved until `until`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Hold {
    pub amount: u64,
    pub until: i64,
}

/// One replica's row of one scope.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct ShareRow {
    /// The share its limiter is set to (per minute).
    pub share: u64,
    /// What it asked for at its last renewal.
    pub want: u64,
    /// Until when it may use `share` without renewing.
    pub lease_until: i64,
    /// Earlier, larger shares still reserved.
    pub holds: Vec<Hold>,
}

impl ShareRow {
    /// A replica's first row: the minimum share, wanting `want`.
    #[cfg(test)]
    pub fn new(want: u64, now: i64, p: &SharePolicy) -> Self {
        Self {
            share: MIN_SHARE,
            want: want.max(MIN_SHARE),
            lease_until: now + p.lease,
            holds: Vec::new(),
        }
    }

    /// The share or the largest hold in force, whichever is larger.
    pub fn reserved(&self, now: i64) -> u64 {
        self.holds
            .iter()
            .filter(|h| h.until > now)
            .map(|h| h.amount)
            .fold(self.share, u64::max)
    }

    /// Lowers the share to `to`, holding the old one.
    fn lower(&mut self, to: u64, now: i64, p: &SharePolicy) {
        let hold = Hold {
            amount: self.share,
            until: self.lease_until.max(now) + p.hold,
        };
        self.share = to;
        // Keep a staircase: drop holds the new one covers.
        self.holds
            .retain(|h| h.until > now && (h.amount > hold.amount || h.until > hold.until));
        if !self
            .holds
            .iter()
            .any(|h| h.amount >= hold.amount && h.until >= hold.until)
        {
            self.holds.push(hold);
        }
    }
}

/// Max-min fair split of `capacity` over `wants`.
fn fair(wants: &[u64], capacity: u64) -> Vec<u64> {
    let mut order: Vec<usize> = (0..wants.len()).collect();
    order.sort_by_key(|&i| wants[i]);
    let mut out = vec![0; wants.len()];
    let mut left = capacity;
    for (k, &i) in order.iter().enumerate() {
        let even = left / (wants.len() - k) as u64;
        let give = wants[i].min(even);
        out[i] = give;
        left -= give;
    }
    out
}

/// Rebalances the rows of one scope at `now` (see the module documentation). Rows whose
/// lease lapsed and whose holds ended can be dropped by the caller ([`is_gone`]).
pub(crate) fn rebalance(rows: &mut [ShareRow], limit: u64, now: i64, p: &SharePolicy) {
    if rows.is_empty() {
        return;
    }
    for r in rows.iter_mut() {
        r.holds.retain(|h| h.until > now);
    }
    let wants: Vec<u64> = rows
        .iter()
        .map(|r| {
            if r.lease_until <= now {
                MIN_SHARE
            } else {
                r.want.max(MIN_SHARE)
            }
        })
        .collect();
    let floor = MIN_SHARE * rows.len() as u64;
    let spare = limit.saturating_sub(floor);
    let extra: Vec<u64> = wants.iter().map(|w| w - MIN_SHARE).collect();
    let targets: Vec<u64> = fair(&extra, spare)
        .into_iter()
        .map(|e| e + MIN_SHARE)
        .collect();
    for ((r, &t), &w) in rows.iter_mut().zip(&targets).zip(&wants) {
        // A replica that asks for less gets less at once. One that wants more than the
        // fair split gives way gradually, and only when it is more than a twentieth over
        // it: each lowering is held, so lowering it for every wobble of the others' wants
        // would keep capacity idle for ever.
        if w < r.share && t < r.share {
            r.lower(t, now, p);
        } else if t + t / 20 < r.share {
            r.lower(t.max(r.share - r.share / 20), now, p);
        }
    }
    let reserved: u64 = rows.iter().map(|r| r.reserved(now)).sum();
    let free = limit.saturating_sub(reserved);
    // Growth is paid from what is free, also within a row's own holds: capacity a row gave
    // up goes to whoever needs it once the hold ends, rather than back to the row when its
    // target wobbles (which would renew the hold for ever).
    let cost: Vec<u64> = rows
        .iter()
        .zip(&targets)
        .map(|(r, &t)| t.saturating_sub(r.share))
        .collect();
    let paid = fair(&cost, free);
    for (r, pay) in rows.iter_mut().zip(paid) {
        r.share += pay;
    }
}

/// Whether a row can be deleted: its lease lapsed and nothing it held is still reserved.
pub(crate) fn is_gone(r: &ShareRow, now: i64) -> bool {
    r.lease_until <= now && r.holds.iter().all(|h| h.until <= now)
}

/// A replica's local view of its demand on one limiter: how often samples taken off the
/// hot path found it at its ceiling, smoothed over renewals.
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct Pressure {
    samples: u32,
    at_ceiling: u32,
    /// Share of samples at the ceiling, in thousandths, averaged over renewals.
    heat: u32,
}

impl Pressure {
    /// Records one sample: the units the limiter could admit right now (0: at its ceiling,
    /// or in debt for tokens).
    pub fn sample(&mut self, remaining: u64) {
        self.samples += 1;
        if remaining == 0 {
            self.at_ceiling += 1;
        }
    }

    /// The want for share `share` from the samples since the last call: a tenth more (and
    /// one) while the limiter is often at its ceiling, a twentieth less while it almost
    /// never is, else the share.
    pub fn want(&mut self, share: u64) -> u64 {
        if let Some(window) = (self.at_ceiling * 1000).checked_div(self.samples) {
            self.heat = (self.heat * 7 + window * 3) / 10;
        }
        self.samples = 0;
        self.at_ceiling = 0;
        if self.heat > 400 {
            share + share / 10 + 1
        } else if self.heat < 50 {
            (share - share / 20).max(MIN_SHARE)
        } else {
            share
        }
    }
}

#[cfg(test)]
mod tests;
