//! Budgets held fleet-wide: the pure rules (no I/O, explicit clock). [`super::lease`] runs
//! the same rules against PostgreSQL.
//!
//! # Protocol
//!
//! Every hard budget window (a scope such as `org:acme` and the start of its current
//! period) has one **central counter** in the database: `limit` and `granted`, the part of
//! the limit handed to replicas. Each replica holds one **lease** row per window with three
//! amounts, all growing only:
//!
//! * `granted`: taken from the counter in **chunks**, each by one conditional update
//!   `granted := granted + least(chunk, limit - granted) where granted < limit`, so the
//!   counter's `granted` never passes `limit`;
//! * `claimed <= granted`: what the replica may have admitted. The replica writes a claim
//!   to its own lease row (no contention) **before** it raises its local admission limit to
//!   `base + claimed`, where `base` is what its counter held when it first saw the window;
//! * `used`: what it reports having admitted (`spent + reserved - base`).
//!
//! Admission stays local: the process's [`crate::limits::BudgetCounter`] admits iff
//! `spent + reserved + estimate <= base + claimed` (a fleet cap on the counter, set from
//! the background; the hot path still reads one limit word). Refills run in the background
//! ahead of need: the claim runs `ahead` of use (0.3 s of the measured spend rate, at
//! least [`ChunkPolicy::min_ahead`], at most a quarter of a fair part of what is left) and a chunk covers [`ChunkPolicy::chunk_secs`] of
//! demand, but never more than `remaining / (2 * replicas)` of what the counter has left,
//! so chunks shrink near the end and no replica strands much budget.
//!
//! * **Clean shutdown** freezes the local limit at what is committed and returns
//!   `granted - used` to the counter.
//! * **A dead replica** (its lease not renewed before `expires_at`) is reclaimed by any
//!   other replica: `granted - claimed` goes back to the counter and the claimed part stays
//!   spent. Nothing the dead replica could have admitted is handed out again, whatever it
//!   did after its last report; what it claimed but never used is the only loss (at most
//!   `ahead`).
//! * **Database unavailable**: no chunk and no claim; the replica keeps admitting within
//!   its last committed claim, then denies. It never admits beyond it.
//!
//! # Bound
//!
//! Every replica admits estimates within `base + claimed`, every claim is within that
//! replica's `granted`, and the sum of all `granted` (live leases, plus the claimed part of
//! reclaimed or returned ones) is the counter's `granted <= limit`. So the estimates the
//! fleet admits in a window never sum past the limit; settled costs pass it only by what
//! requests cost beyond their estimates, exactly the single-process bound.

/// Micro-dollars.
pub(crate) type Micros = i64;

/// How chunks and claims are sized.
#[derive(Clone, Copy, Debug)]
pub(crate) struct ChunkPolicy {
    /// Seconds of the replica's measured spend rate one chunk covers.
    pub chunk_secs: f64,
    /// Seconds of the spend rate the claim runs ahead of use (a few passes: claims are
    /// renewed every pass). Never more than a quarter of the counter's fair part of what
    /// is left, so a replica that dies strands little.
    pub ahead_secs: f64,
    /// The least the claim runs ahead (and the least chunk): room for a few requests
    /// before the first rate is measured.
    pub min_ahead: Micros,
    /// Weight of the newest sample in the spend rate (exponential average).
    pub smoothing: f64,
}

impl Default for ChunkPolicy {
    fn default() -> Self {
        Self {
            chunk_secs: 10.0,
            ahead_secs: 0.3,
            min_ahead: 50_000,
            smoothing: 0.3,
        }
    }
}

/// What a replica holds of one budget window.
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct Allowance {
    /// Start of the window (as the counter reports it).
    pub window_start: i64,
    /// The counter's `spent + reserved` when the replica first saw this window: spend that
    /// the fleet already counted (restored from the local ledger at startup).
    pub base: Micros,
    /// Taken from the central counter (after any reclaim the database reported).
    pub granted: Micros,
    /// Committed claim: the local limit is `base + claimed`.
    pub claimed: Micros,
    /// Spend rate, micro-dollars per second.
    rate: f64,
    last_used: Micros,
    last_at: i64,
}

/// What one background pass should do for a window.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Plan {
    /// Ask the central counter for this much more (0: nothing).
    pub take: Micros,
    /// The claim to commit (never below the current one).
    pub claim: Micros,
}

impl Allowance {
    /// A replica's first look at a window at `now_micros`, with its counter at `committed`.
    pub fn new(window_start: i64, committed: Micros, now_micros: i64) -> Self {
        Self {
            window_start,
            base: committed,
            granted: 0,
            claimed: 0,
            rate: 0.0,
            last_used: 0,
            last_at: now_micros,
        }
    }

    /// What the replica admitted in this window: `committed - base`.
    pub fn used(&self, committed: Micros) -> Micros {
        committed.saturating_sub(self.base).max(0)
    }

    /// The local admission limit (`spent + reserved` may reach it).
    pub fn cap(&self) -> Micros {
        self.base.saturating_add(self.claimed)
    }

    /// Feeds the spend rate with the use seen at `now_micros`.
    pub fn observe(&mut self, used: Micros, now_micros: i64, p: &ChunkPolicy) {
        let dt = (now_micros - self.last_at) as f64 / 1e6;
        if dt <= 0.0 {
            return;
        }
        let sample = (used - self.last_used).max(0) as f64 / dt;
        self.rate = p.smoothing * sample + (1.0 - p.smoothing) * self.rate;
        self.last_used = used;
        self.last_at = now_micros;
    }

    /// What to ask for, given the use now, what the central counter had left when last
    /// seen (`None`: unknown) and how many replicas share it.
    pub fn plan(
        &self,
        used: Micros,
        remaining: Option<Micros>,
        replicas: u32,
        p: &ChunkPolicy,
    ) -> Plan {
        let mut ahead = (self.rate * p.ahead_secs) as Micros;
        if let Some(rem) = remaining {
            let left = rem.saturating_add(self.granted.saturating_sub(used).max(0));
            ahead = ahead.min(left / (4 * i64::from(replicas.max(1))));
        }
        let ahead = ahead.max(p.min_ahead);
        let want = used.saturating_add(ahead);
        let claim = self.claimed.max(want.min(self.granted));
        let need = want.saturating_sub(self.granted);
        let take = if need > 0 {
            let demand = ((self.rate * p.chunk_secs) as Micros).max(p.min_ahead);
            let mut chunk = need.max(demand);
            if let Some(rem) = remaining {
                // Near the end, small chunks: what is left is shared, not stranded.
                let share = rem / (2 * i64::from(replicas.max(1)));
                chunk = chunk.min(need.max(share));
            }
            chunk
        } else {
            0
        };
        Plan { take, claim }
    }

    /// Records a chunk the counter granted.
    pub fn add_granted(&mut self, amount: Micros) {
        self.granted = self.granted.saturating_add(amount.max(0));
    }

    /// Records the lease as the database has it after a claim (`granted` may have shrunk
    /// if the lease was reclaimed while the replica was away).
    pub fn committed(&mut self, granted: Micros, claimed: Micros) {
        self.granted = granted;
        self.claimed = claimed;
    }
}

/// One lease as the database holds it.
#[cfg(test)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct Lease {
    pub granted: Micros,
    pub claimed: Micros,
    pub used: Micros,
    /// When it lapses unless renewed (Unix micros of the database's clock).
    pub expires_at: i64,
}

/// The central counter of one window and its leases: the model the SQL implements, used
/// by the simulations.
#[cfg(test)]
#[derive(Clone, Debug, Default)]
pub(crate) struct Pool {
    pub limit: Micros,
    pub granted: Micros,
    pub leases: std::collections::BTreeMap<u32, Lease>,
}

#[cfg(test)]
impl Pool {
    /// A counter with nothing granted.
    pub fn new(limit: Micros) -> Self {
        Self {
            limit,
            ..Self::default()
        }
    }

    /// What is left to grant.
    pub fn remaining(&self) -> Micros {
        (self.limit - self.granted).max(0)
    }

    /// One conditional update: grants `least(chunk, limit - granted)` when anything is
    /// left, renewing the lease. Returns the amount granted.
    pub fn take(&mut self, replica: u32, chunk: Micros, now: i64, ttl: i64) -> Micros {
        if chunk <= 0 || self.granted >= self.limit {
            return 0;
        }
        let amount = chunk.min(self.limit - self.granted);
        self.granted += amount;
        let l = self.leases.entry(replica).or_default();
        l.granted += amount;
        l.expires_at = now + ttl;
        amount
    }

    /// Commits a claim (capped at the lease's `granted`, never lowered) and the reported
    /// use, renewing the lease. Returns the lease's `(granted, claimed)`.
    pub fn claim(
        &mut self,
        replica: u32,
        claim: Micros,
        used: Micros,
        now: i64,
        ttl: i64,
    ) -> (Micros, Micros) {
        let l = self.leases.entry(replica).or_default();
        l.claimed = l.claimed.max(claim.min(l.granted));
        l.used = used;
        l.expires_at = now + ttl;
        (l.granted, l.claimed)
    }

    /// Clean shutdown: the replica stopped admitting at `used`; the rest goes back.
    pub fn release(&mut self, replica: u32, used: Micros) {
        if let Some(l) = self.leases.get_mut(&replica) {
            let keep = used.clamp(0, l.granted);
            self.granted -= l.granted - keep;
            l.granted = keep;
            l.claimed = keep;
            l.used = keep;
            l.expires_at = i64::MIN;
        }
    }

    /// Returns the unclaimed part of every lease that lapsed by `now`. Returns the amount.
    pub fn reclaim(&mut self, now: i64) -> Micros {
        let mut back = 0;
        for l in self.leases.values_mut() {
            if l.expires_at <= now && l.granted > l.claimed {
                back += l.granted - l.claimed;
                l.granted = l.claimed;
            }
        }
        self.granted -= back;
        back
    }
}

#[cfg(test)]
mod tests;
