//! Usage reports: spend per period, budget left, current rate use.

use std::sync::atomic::Ordering;

use super::spend::{key_ledger_name, org_ledger_name, spent_in};
use super::tx::ReadTx;
use crate::error::Error;
use crate::limits::clock::Clock;
use crate::limits::{BudgetCounter, RateLimiter};
use crate::model::{Actor, KeyId, OrgId, Period, Timestamp, Usd};
use crate::policy::{AdminAction, Target};
use crate::snapshot::{HAS_RPM, HAS_TPM, SpenderId};

/// A budget's state in its current period.
#[derive(Clone, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
#[non_exhaustive]
pub struct BudgetStatus {
    /// The limit per period.
    pub limit: Usd,
    /// The period.
    pub period: Period,
    /// Settled spend this period.
    pub spent: Usd,
    /// Estimates reserved by requests still in flight.
    pub reserved: Usd,
    /// What is left.
    pub remaining: Usd,
    /// When the period resets (`None` for a total budget).
    pub resets_at: Option<Timestamp>,
}

/// Requests or tokens used in the current minute.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
#[non_exhaustive]
pub struct RateUse {
    /// The limit per minute.
    pub limit: u64,
    /// Used in the trailing minute.
    pub used: u64,
}

/// Usage of a key or an org.
#[derive(Clone, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
#[non_exhaustive]
pub struct UsageReport {
    /// The key id or the org id.
    pub scope: String,
    /// Spend today (UTC).
    pub today: Usd,
    /// Spend this week (from Monday, UTC).
    pub this_week: Usd,
    /// Spend this month (UTC).
    pub this_month: Usd,
    /// Spend since the scope was created.
    pub total: Usd,
    /// The budget, when one applies.
    pub budget: Option<BudgetStatus>,
    /// Requests per minute, when limited.
    pub rpm: Option<RateUse>,
    /// Tokens per minute, when limited.
    pub tpm: Option<RateUse>,
}

impl super::Keys<'_> {
    /// Spend, budget and rate use of one key.
    ///
    /// ```
    /// # let store = orgstore::Store::open_temporary().unwrap();
    /// use orgstore::{Actor, Email, KeySpec, OrgId};
    /// let op = Actor::Operator;
    /// let acme = OrgId::parse("acme").unwrap();
    /// store.orgs().create(&op, &acme, "Acme", &Email::parse("o@acme.io").unwrap()).unwrap();
    /// let k = store.keys().create(&op, &acme, KeySpec::new("svc").rpm(50)).unwrap();
    /// let u = store.keys().usage(&op, &k.info.id).unwrap();
    /// assert_eq!(u.rpm.unwrap().limit, 50);
    /// ```
    pub fn usage(&self, actor: &Actor, id: &KeyId) -> Result<UsageReport, Error> {
        let store = self.store;
        store.read(|r| {
            let (rec, o) = store.key_for(r, actor, id, AdminAction::ReadAnalytics)?;
            // ReadAnalytics is decided on the key's org (see the schema).
            store.authorize(r, actor, AdminAction::ReadAnalytics, &o, Target::Org)?;
            let snap = store.inner.snapshot.current.load();
            let entry = snap.find(&rec.digest);
            let now = Clock::new().now();
            let cell = &store.inner.snapshot;
            let rt = entry.and_then(|e| cell.key_rt(e.rt).map(|rt| (e, rt)));
            let pending = rt.map_or(0, |(_, k)| k.unflushed.load(Ordering::Acquire));
            let spender = SpenderId::Key(*id);
            let fleet = store.fleet_spend(&spender, now.micros)?;
            let scope = key_ledger_name(id);
            let mut rep = report(r, id.to_string(), &scope, pending, now.micros, fleet)?;
            if let Some((e, rt)) = rt {
                rep.budget = e
                    .budget(rt, cell)
                    .map(|b| status(b, now.micros, fleet, pending));
                rep.rpm = e.has(HAS_RPM).then(|| rate(&rt.rpm, now.nanos));
                rep.tpm = e.has(HAS_TPM).then(|| rate(&rt.tpm, now.nanos));
            }
            Ok(rep)
        })
    }
}

impl super::Orgs<'_> {
    /// Spend, budget and rate use of an org (all its keys together).
    pub fn usage(&self, actor: &Actor, id: &OrgId) -> Result<UsageReport, Error> {
        let store = self.store;
        store.read(|r| {
            let o = store.org_for(r, actor, id, AdminAction::ReadAnalytics)?;
            store.authorize(r, actor, AdminAction::ReadAnalytics, &o, Target::Org)?;
            let snap = store.inner.snapshot.current.load();
            let view = snap.orgs.iter().find(|v| v.runtime.id == *id);
            let now = Clock::new().now();
            let pending = view.map_or(0, |v| v.runtime.unflushed.load(Ordering::Acquire));
            let fleet = store.fleet_spend(&SpenderId::Org(id.clone()), now.micros)?;
            let scope = org_ledger_name(id);
            let mut rep = report(r, id.to_string(), &scope, pending, now.micros, fleet)?;
            if let Some(v) = view {
                rep.budget = v
                    .budget
                    .and(v.runtime.budget.get())
                    .map(|b| status(b, now.micros, fleet, pending));
                rep.rpm = (v.rpm > 0).then(|| rate(&v.runtime.rpm, now.nanos));
                rep.tpm = (v.tpm > 0).then(|| rate(&v.runtime.tpm, now.nanos));
            }
            Ok(rep)
        })
    }
}

fn usd(micros: i64) -> Usd {
    Usd::from_micros(micros.max(0)).unwrap_or(Usd::ZERO)
}

impl super::Store {
    /// The fleet's spend of `spender` in the windows of [`FLEET_PERIODS`], when this store
    /// is a replica that shares its spend.
    #[cfg_attr(not(feature = "fleet"), allow(clippy::unnecessary_wraps))]
    fn fleet_spend(&self, spender: &SpenderId, now: i64) -> Result<Option<[i64; 4]>, Error> {
        #[cfg(feature = "fleet")]
        if let Some(log) = self.inner.log.get() {
            return log.fleet_spend(spender, now).transpose();
        }
        let _ = (spender, now);
        Ok(None)
    }
}

/// The windows of the fleet's spend (`replica::Log::fleet_spend`), in its order.
pub(crate) const FLEET_PERIODS: [Period; 4] = [
    Period::Daily,
    Period::Weekly,
    Period::Monthly,
    Period::Total,
];

/// The fleet's spend in `period` (from `fleet`, in [`FLEET_PERIODS`] order).
fn fleet_in(fleet: &[i64; 4], period: Period) -> i64 {
    FLEET_PERIODS
        .iter()
        .position(|p| *p == period)
        .map_or(0, |i| fleet[i])
}

/// The report of the ledger `scope`, with the spend not yet written (`pending`). A fleet
/// replica (`fleet`: every replica's written spend) reports the fleet's totals.
fn report(
    r: &ReadTx,
    name: String,
    scope: &str,
    pending: i64,
    now: i64,
    fleet: Option<[i64; 4]>,
) -> Result<UsageReport, Error> {
    let spent = |p| {
        let written = match &fleet {
            Some(f) => Ok(fleet_in(f, p)),
            None => spent_in(r, scope, p, now).map(|(_, s)| s),
        };
        written.map(|s| usd(s.saturating_add(pending)))
    };
    Ok(UsageReport {
        scope: name,
        today: spent(Period::Daily)?,
        this_week: spent(Period::Weekly)?,
        this_month: spent(Period::Monthly)?,
        total: spent(Period::Total)?,
        budget: None,
        rpm: None,
        tpm: None,
    })
}

/// A budget's state; a fleet replica's (`fleet`) counts every replica's spend.
fn status(b: &BudgetCounter, now: i64, fleet: Option<[i64; 4]>, pending: i64) -> BudgetStatus {
    let u = b.snapshot(now);
    let (spent, remaining) = match fleet {
        Some(f) => {
            let spent = fleet_in(&f, u.period).saturating_add(pending);
            let left = u
                .limit_micros
                .saturating_sub(spent)
                .saturating_sub(u.reserved_micros);
            (spent, left)
        }
        None => (u.spent_micros, u.remaining_micros),
    };
    BudgetStatus {
        limit: usd(u.limit_micros),
        period: u.period,
        spent: usd(spent),
        reserved: usd(u.reserved_micros),
        remaining: usd(remaining),
        resets_at: (u.window_end != i64::MAX).then(|| Timestamp::from_micros(u.window_end)),
    }
}

fn rate(l: &RateLimiter, now_nanos: u64) -> RateUse {
    RateUse {
        limit: l.limit(),
        used: l.used(now_nanos),
    }
}
