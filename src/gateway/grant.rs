//! What a granted request carries: org, key, effective limits, rate-limit header values and
//! budget reservations that `record_usage` settles.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use super::denial::{Denial, Scope};
use crate::limits::clock::{Clock, LazyNow, Now};
use crate::limits::{BudgetExceeded, RateState, Reservation};
use crate::model::{KeyId, OrgId, Timestamp, Usd};
use crate::snapshot::{
    HAS_BUDGET, HAS_RPM, HAS_TPM, KeyEntry, KeyRuntime, OrgRuntime, OrgView, SnapshotCell,
    add_spend, flag,
};

/// A key's effective limits: the key's own and its org's, both enforced.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct Limits {
    /// Requests per minute for this key (its own limit, else the org's `per_key_rpm`).
    pub key_rpm: Option<u64>,
    /// Requests per minute shared by all keys of the org.
    pub org_rpm: Option<u64>,
    /// Tokens per minute for this key.
    pub key_tpm: Option<u64>,
    /// Tokens per minute shared by the org.
    pub org_tpm: Option<u64>,
    /// The key's budget per period.
    pub key_budget: Option<Usd>,
    /// The org's budget per period.
    pub org_budget: Option<Usd>,
}

impl Limits {
    pub(crate) fn of(cell: &SnapshotCell, rt: &KeyRuntime, e: &KeyEntry, org: &OrgView) -> Self {
        let org_budget = org.budget.map(|b| b.0);
        Self::from_parts(cell, Some(rt), e.flags, org.rpm, org.tpm, org_budget)
    }

    /// The key's limits from its runtime (values) and flags (which apply), plus the org's.
    fn from_parts(
        cell: &SnapshotCell,
        rt: Option<&KeyRuntime>,
        flags: u8,
        org_rpm: u64,
        org_tpm: u64,
        org_budget: Option<i64>,
    ) -> Self {
        let nz = |v: u64| (v > 0).then_some(v);
        let usd = |m: i64| Usd::from_micros(m).ok();
        let on = |f: u8| flags & f != 0;
        let rt = rt.filter(|_| on(HAS_RPM | HAS_TPM | HAS_BUDGET));
        Self {
            key_rpm: rt.filter(|_| on(HAS_RPM)).map(|rt| rt.rpm.limit()),
            org_rpm: nz(org_rpm),
            key_tpm: rt.filter(|_| on(HAS_TPM)).map(|rt| rt.tpm.limit()),
            org_tpm: nz(org_tpm),
            key_budget: rt
                .and_then(|rt| cell.key_budget(rt))
                .filter(|_| on(HAS_BUDGET))
                .and_then(|b| usd(b.config().limit_micros)),
            org_budget: org_budget.and_then(usd),
        }
    }
}

/// Values for the `x-ratelimit-limit-requests`, `x-ratelimit-remaining-requests` and
/// `x-ratelimit-reset-requests` response headers (OpenAI's names): the tighter of the key's and the
/// org's requests-per-minute limits ([`Grant::rate_headers`]); or for their `*-tokens`
/// siblings, of the tokens-per-minute limits ([`Grant::token_headers`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct RateHeaders {
    /// Requests (or tokens) per minute.
    pub limit: u64,
    /// Requests (or tokens) that would pass right now (all at once).
    pub remaining: u64,
    /// Quiet time after which the whole limit passes at once again.
    pub reset: Duration,
}

/// What a request really used, known after the response.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct Usage {
    /// Prompt tokens.
    pub input_tokens: u64,
    /// Completion tokens.
    pub output_tokens: u64,
    /// The request's cost.
    pub cost: Usd,
}

impl Usage {
    /// Usage of a request.
    pub fn new(input_tokens: u64, output_tokens: u64, cost: Usd) -> Self {
        Self {
            input_tokens,
            output_tokens,
            cost,
        }
    }
}

/// A granted request. Hand it to [`super::Gateway::record_usage`] when the response is done;
/// until then its cost estimate stays reserved against the budgets.
///
/// A grant borrows the [`super::Gateway`] it came from: it holds no reference count, so
/// admitting a request writes to no memory shared between threads or keys.
pub struct Grant<'g> {
    cell: &'g SnapshotCell,
    org: &'g OrgRuntime,
    core: Core,
}

/// What a grant knows besides where the runtimes are: shared by [`Grant`] (borrowed
/// runtimes) and [`OwnedGrant`] (owned ones).
struct Core {
    /// The key's runtime, in the cell's arena; read only when needed (limits, `key_id`).
    key: u32,
    /// The entry's flags, and which org limits applied at admission (`ORG_*`); `limits()`
    /// reads the values from the runtimes. Flags rather than values keep the grant small:
    /// gateways hold thousands in flight, and a limited check touches more memory.
    flags: u8,
    org_flags: u8,
    /// The tighter requests-per-minute state; `NO_RATE` (limit 0, which no limiter has)
    /// when none applied.
    rate: RateState,
    key_budget: Option<Reservation>,
    org_budget: Option<Reservation>,
    settled: AtomicBool,
}

impl std::fmt::Debug for Grant<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.core.debug(self.cell, self.org, f)
    }
}

impl<'g> Grant<'g> {
    /// The org the key belongs to.
    pub fn org_id(&self) -> &'g OrgId {
        &self.org.id
    }

    /// The key's id. Reads the key's runtime record (one more cache line than a `check` of
    /// a key without limits reads when its inline memoized decision answers).
    pub fn key_id(&self) -> KeyId {
        self.core.key_id(self.cell)
    }

    /// The effective limits.
    pub fn limits(&self) -> Limits {
        self.core.limits(self.cell, self.org)
    }

    /// Rate-limit header values, when a requests-per-minute limit applies.
    pub fn rate_headers(&self) -> Option<RateHeaders> {
        self.core.rate_headers()
    }

    /// Tokens-per-minute header values (`x-ratelimit-*-tokens`), when a tokens-per-minute
    /// limit applies: the tighter of the key's and the org's, as they stand now (a request's
    /// tokens are charged when its usage is recorded). Reads the clock and the limiters, so
    /// call it once per response.
    pub fn token_headers(&self) -> Option<RateHeaders> {
        self.core.token_headers(self.cell, self.org)
    }

    /// Whether a budget passed its warning threshold (default 80%).
    pub fn budget_warning(&self) -> bool {
        self.core.budget_warning()
    }

    /// Whether a soft budget is exceeded (the request was still allowed).
    pub fn over_soft_budget(&self) -> bool {
        self.core.over_soft_budget()
    }

    /// Remaining budget of the key and of the org, in that order, when they have one.
    pub fn budget_remaining(&self) -> (Option<Usd>, Option<Usd>) {
        self.core.budget_remaining()
    }

    /// Admits a request that passed every other check: tokens per minute (which take
    /// nothing), requests per minute, then budgets. A key and org without limits are
    /// admitted inline; the limits are taken out of line, so that the common case pays
    /// neither a call nor the limits' register pressure.
    #[inline(always)]
    pub(super) fn admit(
        cell: &'g SnapshotCell,
        entry: &KeyEntry,
        org: &OrgView,
        estimate: i64,
        now: &LazyNow<'_>,
    ) -> Result<Grant<'g>, Denial> {
        if !entry.has(HAS_RPM | HAS_TPM | HAS_BUDGET)
            && org.rpm == 0
            && org.tpm == 0
            && org.budget.is_none()
        {
            let org_rt = cell.org_rt(entry.org_ix).ok_or(Denial::Unavailable)?;
            return Ok(Grant {
                cell,
                org: org_rt,
                core: Core::admitted(entry, 0, NO_RATE, None, None),
            });
        }
        Self::admit_limited(cell, entry, org, estimate, now)
    }

    /// [`Grant::admit`] of a key or org with limits.
    #[inline(never)]
    fn admit_limited(
        cell: &'g SnapshotCell,
        entry: &KeyEntry,
        org: &OrgView,
        estimate: i64,
        now: &LazyNow<'_>,
    ) -> Result<Grant<'g>, Denial> {
        let org_rt = cell.org_rt(entry.org_ix).ok_or(Denial::Unavailable)?;
        let grant = |rate: Option<RateState>, key_budget, org_budget| Grant {
            cell,
            org: org_rt,
            core: Core::admitted(
                entry,
                flag(org.rpm > 0, ORG_RPM)
                    | flag(org.tpm > 0, ORG_TPM)
                    | flag(org.budget.is_some(), ORG_BUDGET),
                rate.unwrap_or(NO_RATE),
                key_budget,
                org_budget,
            ),
        };
        let (kr, kb) = cell
            .key_rt_and_budget(entry.rt)
            .ok_or(Denial::Unavailable)?;
        // Only an admitted request may consume a limit. Checks that take nothing (tokens per
        // minute) go first; then each limit is taken in turn, and a refusal gives back what
        // the request took before it (key rpm, org rpm, key budget), so a request refused by
        // the org's rpm or a budget leaves every limit as it found it.
        let at = now.get();
        if entry.has(HAS_TPM) {
            kr.tpm
                .allows(at.nanos)
                .map_err(|r| limited(Scope::Key, true, r.after_nanos))?;
        }
        if org.tpm > 0 {
            org.runtime
                .tpm
                .allows(at.nanos)
                .map_err(|r| limited(Scope::Org, true, r.after_nanos))?;
        }
        let mut rate = None;
        let mut taken = Taken::default();
        if entry.has(HAS_RPM) {
            let (s, t) = kr
                .rpm
                .take(at.nanos, 1)
                .map_err(|r| limited(Scope::Key, false, r.after_nanos))?;
            rate = Some(s);
            taken.key = t;
        }
        if org.rpm > 0 {
            match org.runtime.rpm.take(at.nanos, 1) {
                Ok((s, t)) => {
                    rate = tighter(rate, s);
                    taken.org = t;
                }
                Err(r) => {
                    return Err(taken.undo(kr, org, limited(Scope::Org, false, r.after_nanos)));
                }
            }
        }
        let key_budget = match kb.filter(|_| entry.has(HAS_BUDGET)) {
            Some(b) => match b.reserve(at.micros, estimate) {
                Ok(r) => Some(r),
                Err(e) => return Err(taken.undo(kr, org, over(Scope::Key, e))),
            },
            _ => None,
        };
        let org_budget = match (org.budget, org.runtime.budget.get()) {
            (Some(_), Some(b)) => match b.reserve(at.micros, estimate) {
                Ok(r) => Some(r),
                Err(e) => {
                    if let (Some(r), Some(kb)) = (key_budget, kb) {
                        kb.settle(&r, 0);
                    }
                    return Err(taken.undo(kr, org, over(Scope::Org, e)));
                }
            },
            _ => None,
        };
        Ok(grant(rate, key_budget, org_budget))
    }

    /// Settles once: charges tokens and replaces the reservations by the real cost.
    pub(super) fn settle(&self, usage: Usage, now: Now) {
        self.core.settle(self.cell, self.org, usage, now);
    }

    /// The same grant holding its runtimes itself, for holders that outlive a borrow of the
    /// gateway (a response streaming from another task). `None` only when the org's runtime
    /// is missing from the cell, which admission ruled out; the grant is then released.
    pub(super) fn into_owned(mut self, cell: Arc<SnapshotCell>) -> Option<OwnedGrant> {
        let org = cell.org_rts.get(self.org.ix as usize).cloned()?;
        let core = std::mem::replace(&mut self.core, Core::released());
        Some(OwnedGrant { cell, org, core })
    }
}

impl Drop for Grant<'_> {
    /// A grant dropped without [`super::Gateway::record_usage`] (an upstream error, an early
    /// return) releases its budget reservations, charging nothing.
    fn drop(&mut self) {
        self.core.release(self.cell, self.org);
    }
}

/// A [`Grant`] that holds its runtimes (an `Arc` of the gateway's cell and of the org's
/// runtime) instead of borrowing them: what the HTTP layer keeps while a response streams.
/// Dropping it unsettled releases its reservations, like a grant.
pub(crate) struct OwnedGrant {
    cell: Arc<SnapshotCell>,
    org: Arc<OrgRuntime>,
    core: Core,
}

impl std::fmt::Debug for OwnedGrant {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.core.debug(&self.cell, &self.org, f)
    }
}

#[cfg_attr(not(feature = "tower"), allow(dead_code))]
impl OwnedGrant {
    /// See [`Grant::org_id`].
    pub(crate) fn org_id(&self) -> &OrgId {
        &self.org.id
    }

    /// See [`Grant::key_id`].
    pub(crate) fn key_id(&self) -> KeyId {
        self.core.key_id(&self.cell)
    }

    /// See [`Grant::limits`].
    pub(crate) fn limits(&self) -> Limits {
        self.core.limits(&self.cell, &self.org)
    }

    /// See [`Grant::rate_headers`].
    pub(crate) fn rate_headers(&self) -> Option<RateHeaders> {
        self.core.rate_headers()
    }

    /// See [`Grant::token_headers`].
    pub(crate) fn token_headers(&self) -> Option<RateHeaders> {
        self.core.token_headers(&self.cell, &self.org)
    }

    /// See [`Grant::budget_warning`].
    pub(crate) fn budget_warning(&self) -> bool {
        self.core.budget_warning()
    }

    /// See [`Grant::over_soft_budget`].
    pub(crate) fn over_soft_budget(&self) -> bool {
        self.core.over_soft_budget()
    }

    /// See [`Grant::budget_remaining`].
    pub(crate) fn budget_remaining(&self) -> (Option<Usd>, Option<Usd>) {
        self.core.budget_remaining()
    }

    /// See [`Grant::settle`].
    pub(super) fn settle(&self, usage: Usage, now: Now) {
        self.core.settle(&self.cell, &self.org, usage, now);
    }
}

impl Drop for OwnedGrant {
    fn drop(&mut self) {
        self.core.release(&self.cell, &self.org);
    }
}

impl Core {
    /// The core of a grant just admitted for `entry`, not settled yet.
    #[inline(always)]
    fn admitted(
        entry: &KeyEntry,
        org_flags: u8,
        rate: RateState,
        key_budget: Option<Reservation>,
        org_budget: Option<Reservation>,
    ) -> Core {
        Core {
            key: entry.rt,
            flags: entry.flags,
            org_flags,
            rate,
            key_budget,
            org_budget,
            settled: AtomicBool::new(false),
        }
    }

    /// A core with nothing reserved and already settled: what a grant keeps after handing
    /// its own to an [`OwnedGrant`].
    fn released() -> Core {
        Core {
            key: 0,
            flags: 0,
            org_flags: 0,
            rate: NO_RATE,
            key_budget: None,
            org_budget: None,
            settled: AtomicBool::new(true),
        }
    }

    fn debug(
        &self,
        cell: &SnapshotCell,
        org: &OrgRuntime,
        f: &mut std::fmt::Formatter<'_>,
    ) -> std::fmt::Result {
        f.debug_struct("Grant")
            .field("org_id", &org.id)
            .field("key_id", &self.key_id(cell))
            .field("rate", &self.rate_headers())
            .field("key_budget", &self.key_budget)
            .field("org_budget", &self.org_budget)
            .finish()
    }

    fn key_id(&self, cell: &SnapshotCell) -> KeyId {
        cell.key_rt(self.key).map_or(KeyId::NIL, |k| k.id)
    }

    fn limits(&self, cell: &SnapshotCell, org: &OrgRuntime) -> Limits {
        let on = |f: u8| self.org_flags & f != 0;
        let org_budget = org
            .budget
            .get()
            .filter(|_| on(ORG_BUDGET))
            .map(|b| b.config().limit_micros);
        Limits::from_parts(
            cell,
            cell.key_rt(self.key),
            self.flags,
            if on(ORG_RPM) { org.rpm.limit() } else { 0 },
            if on(ORG_TPM) { org.tpm.limit() } else { 0 },
            org_budget,
        )
    }

    fn rate_headers(&self) -> Option<RateHeaders> {
        (self.rate.limit != 0).then(|| RateHeaders {
            limit: self.rate.limit,
            remaining: self.rate.remaining(),
            reset: Duration::from_nanos(self.rate.reset_after_nanos),
        })
    }

    fn token_headers(&self, cell: &SnapshotCell, org: &OrgRuntime) -> Option<RateHeaders> {
        if (self.flags & HAS_TPM == 0) && (self.org_flags & ORG_TPM == 0) {
            return None;
        }
        let now = Clock::new().now().nanos;
        let key = cell
            .key_rt(self.key)
            .filter(|_| self.flags & HAS_TPM != 0)
            .map(|k| k.tpm.state(now));
        let org = (self.org_flags & ORG_TPM != 0).then(|| org.tpm.state(now));
        let state = match org {
            Some(o) => tighter(key, o),
            None => key,
        }?;
        Some(RateHeaders {
            limit: state.limit,
            remaining: state.remaining(),
            reset: Duration::from_nanos(state.reset_after_nanos),
        })
    }

    fn budget_warning(&self) -> bool {
        self.key_budget.is_some_and(|r| r.warn) || self.org_budget.is_some_and(|r| r.warn)
    }

    fn over_soft_budget(&self) -> bool {
        self.key_budget.is_some_and(|r| r.over) || self.org_budget.is_some_and(|r| r.over)
    }

    fn budget_remaining(&self) -> (Option<Usd>, Option<Usd>) {
        let rem = |r: Option<Reservation>| {
            r.and_then(|r| Usd::from_micros(r.remaining_micros.max(0)).ok())
        };
        (rem(self.key_budget), rem(self.org_budget))
    }

    /// Settles once: charges tokens and replaces the reservations by the real cost.
    fn settle(&self, cell: &SnapshotCell, org: &OrgRuntime, usage: Usage, now: Now) {
        if self.settled.swap(true, Ordering::AcqRel) {
            return;
        }
        // The ledger's share first: a budget counter re-derived from the ledger meanwhile
        // then counts this cost twice (refusing early) rather than not at all.
        let kr = cell.key_rt(self.key);
        if let Some(kr) = kr {
            add_spend(kr, usage.cost.micros(), cell);
        }
        self.settle_budgets(cell, org, usage.cost.micros());
        let tokens = usage.input_tokens.saturating_add(usage.output_tokens);
        let Some(kr) = kr else { return };
        if self.flags & HAS_TPM != 0 {
            kr.tpm.charge(now.nanos, tokens);
        }
        if self.org_flags & ORG_TPM != 0 {
            org.tpm.charge(now.nanos, tokens);
        }
    }

    fn settle_budgets(&self, cell: &SnapshotCell, org: &OrgRuntime, cost: i64) {
        if let (Some(r), Some((_, Some(b)))) = (&self.key_budget, cell.key_rt_and_budget(self.key))
        {
            b.settle(r, cost);
        }
        if let (Some(r), Some(b)) = (&self.org_budget, org.budget.get()) {
            b.settle(r, cost);
        }
    }

    /// Releases the reservations of a grant dropped unsettled, charging nothing.
    fn release(&self, cell: &SnapshotCell, org: &OrgRuntime) {
        let reserved = self.key_budget.is_some() || self.org_budget.is_some();
        if reserved && !self.settled.swap(true, Ordering::AcqRel) {
            self.settle_budgets(cell, org, 0);
        }
    }
}

/// Requests-per-minute units a request took before a later limit refused it (the default:
/// nothing, which gives back nothing).
#[derive(Default)]
struct Taken {
    key: crate::limits::Taken,
    org: crate::limits::Taken,
}

impl Taken {
    /// Gives the units back and returns the refusal.
    #[cold]
    fn undo(self, kr: &KeyRuntime, org: &OrgView, denial: Denial) -> Denial {
        kr.rpm.give_back(self.key);
        org.runtime.rpm.give_back(self.org);
        denial
    }
}

/// `Grant::org_flags` bits: the org's shared limits that applied at admission.
const ORG_RPM: u8 = 1;
const ORG_TPM: u8 = 2;
const ORG_BUDGET: u8 = 4;

/// The grant's rate state when no requests-per-minute limit applies: a limiter's limit is
/// never 0, so `rate_headers` tells the two apart by it.
const NO_RATE: RateState = RateState {
    limit: 0,
    headroom_nanos: 0,
    reset_after_nanos: 0,
};

/// The state with fewer requests left: the one the headers should report.
#[inline(always)]
fn tighter(cur: Option<RateState>, s: RateState) -> Option<RateState> {
    match cur {
        Some(c) if c.remaining() <= s.remaining() => Some(c),
        _ => Some(s),
    }
}

#[cold]
fn limited(scope: Scope, tokens: bool, after_nanos: u64) -> Denial {
    Denial::RateLimited {
        scope,
        tokens,
        retry_after: Duration::from_nanos(after_nanos),
    }
}

#[cold]
fn over(scope: Scope, e: BudgetExceeded) -> Denial {
    let resets_at = (e.window_end != i64::MAX).then(|| Timestamp::from_micros(e.window_end));
    let usd = |m: i64| Usd::from_micros(m.max(0)).unwrap_or(Usd::ZERO);
    Denial::BudgetExceeded {
        scope,
        resets_at,
        remaining: usd(e.limit_micros - e.committed_micros),
        requested: usd(e.requested_micros),
    }
}

#[cfg(all(test, target_pointer_width = "64"))]
mod tests {
    /// Gateways hold a grant per request in flight and a limited check writes one: keep
    /// them from growing unnoticed.
    #[test]
    fn grants_stay_small() {
        assert_eq!(std::mem::size_of::<crate::limits::Reservation>(), 24);
        assert_eq!(std::mem::size_of::<super::Grant<'static>>(), 96);
        assert_eq!(
            std::mem::size_of::<Result<super::Grant<'static>, super::Denial>>(),
            96
        );
    }
}
