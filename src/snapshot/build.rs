//! Building snapshot entries from the plain states of an [`Update`]: the whole key set
//! (the initial load, or a rebuild), or incrementally what one commit changed.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use super::entry::{HAS_BUDGET, HAS_RPM, HAS_RULES, HAS_TPM, KeyRules, REVOKED, flag};
use super::update::{Extent, KeyLimits, KeyState, OrgKeys, OrgState, Spent, Update};
use super::{
    BudgetHome, KeyEntry, OrgRuntime, OrgView, PublishState, Shard, Snapshot, SnapshotCell,
    shard_count_for, shard_of,
};
use crate::config::ip::{IpRules, parse_nets};
use crate::error::Error;
use crate::keys::KeyDigest;
use crate::limits::{BudgetConfig, BudgetCounter};
use crate::model::{OrgId, Timestamp};

/// Entries sorted by shard.
type Groups = Vec<Vec<KeyEntry>>;

enum Edit {
    Remove(KeyDigest),
    Upsert(KeyEntry),
}

impl SnapshotCell {
    /// Applies the orgs and keys of an update (under the publish lock).
    pub(super) fn apply_states(&self, st: &mut PublishState, u: Update) -> Result<(), Error> {
        st.epoch = st.epoch.wrapping_add(1);
        let epoch = st.epoch;
        let now = u.now;
        let old = self.current.load_full();

        // Org indexes are stable for the cell's life; runtimes (limits) carry over.
        let mut orgs: Vec<Arc<OrgView>> = old.orgs.to_vec();
        for o in &u.orgs {
            let (ix, runtime) = self.org_index(st, &mut orgs, &o.id)?;
            let view = self.org_view(o, runtime, now)?;
            if let Some(slot) = orgs.get_mut(ix as usize) {
                *slot = Arc::new(view);
            }
        }
        let shards = match u.extent {
            Extent::Full => self.build_all(st, &orgs, u.keys, &old, epoch, now)?,
            Extent::Changes => {
                self.build_changes(st, &orgs, u.keys, &u.rotated, &old, epoch, now)?
            }
        };
        self.install(Snapshot {
            shards,
            orgs: orgs.into(),
            policy_epoch: old.policy_epoch,
            policies: old.policies.clone(),
            models: self.model_map(&old),
        });
        if u.extent == Extent::Full && !self.is_closed() {
            self.stale.store(false, Ordering::Release);
        }
        Ok(())
    }

    /// Every shard, from the whole key set. Resolving entries dominates: the groups are
    /// split in two halves built in parallel, each sorted into shards as it is built.
    fn build_all(
        &self,
        st: &PublishState,
        orgs: &[Arc<OrgView>],
        mut keys: Vec<OrgKeys>,
        old: &Snapshot,
        epoch: u32,
        now: i64,
    ) -> Result<Box<[Shard]>, Error> {
        let total: usize = keys.iter().map(|g| g.keys.len()).sum();
        let count = shard_count_for(total);
        let mut acc = 0;
        let split = keys
            .iter()
            .position(|g| {
                acc += g.keys.len();
                acc > total / 2
            })
            .unwrap_or(keys.len());
        let high_keys = keys.split_off(split);
        let build = |groups: Vec<OrgKeys>, n: usize| -> Result<Groups, Error> {
            let per_shard = n / count + 8;
            let mut out: Groups = (0..count).map(|_| Vec::with_capacity(per_shard)).collect();
            for g in groups {
                let (ix, org) = org_of(st, orgs, &g.org)?;
                for key in &g.keys {
                    let rt = old.find(&key.digest).map(|e| e.rt);
                    let entry = self.key_entry(key, org, ix, epoch, rt, now)?;
                    if let Some(s) = out.get_mut(shard_of(&entry.digest, count)) {
                        s.push(entry);
                    }
                }
            }
            Ok(out)
        };
        let high_n = high_keys.iter().map(|g| g.keys.len()).sum::<usize>();
        let (low, high) = std::thread::scope(|s| {
            let high = s.spawn(|| build(high_keys, high_n));
            let low = build(keys, total - high_n);
            (low, high.join())
        });
        let high =
            high.map_err(|_| Error::corrupt("key", "the snapshot loader stopped unexpectedly"))??;
        Ok(low?
            .into_iter()
            .zip(high)
            .map(|(a, b)| Shard::build(a.len() + b.len(), a.into_iter().chain(b)))
            .collect())
    }

    /// The shards after a change: costs in proportion to the change, since the touched
    /// shards are copied and the rest are shared with the previous snapshot.
    #[allow(clippy::too_many_arguments)]
    fn build_changes(
        &self,
        st: &PublishState,
        orgs: &[Arc<OrgView>],
        keys: Vec<OrgKeys>,
        rotated: &[(KeyDigest, KeyDigest)],
        old: &Snapshot,
        epoch: u32,
        now: i64,
    ) -> Result<Box<[Shard]>, Error> {
        let mut edits: HashMap<usize, Vec<Edit>> = HashMap::new();
        let count = old.shards.len();
        let push = |edits: &mut HashMap<usize, Vec<Edit>>, d: &KeyDigest, e: Edit| {
            edits.entry(shard_of(d, count)).or_default().push(e);
        };
        for (previous, _) in rotated.iter().filter(|(p, c)| p != c) {
            push(&mut edits, previous, Edit::Remove(*previous));
        }
        for g in &keys {
            let (ix, org) = org_of(st, orgs, &g.org)?;
            for key in &g.keys {
                // A rotated key keeps the runtime it had under its previous digest.
                let rt = old.find(&key.digest).map(|e| e.rt).or_else(|| {
                    rotated
                        .iter()
                        .find(|(_, c)| *c == key.digest)
                        .and_then(|(p, _)| old.find(p))
                        .map(|e| e.rt)
                });
                let entry = self.key_entry(key, org, ix, epoch, rt, now)?;
                push(&mut edits, &key.digest, Edit::Upsert(entry));
            }
        }

        let mut shards = old.shards.to_vec();
        for (i, list) in edits {
            let Some(shard) = shards.get_mut(i) else {
                continue;
            };
            let removed: Vec<KeyDigest> = list
                .iter()
                .filter_map(|e| match e {
                    Edit::Remove(d) => Some(*d),
                    Edit::Upsert(_) => None,
                })
                .collect();
            // Upserts come last: `Shard::build` keeps the later of two equal digests.
            let next: Vec<KeyEntry> = shard
                .entries()
                .filter(|e| !removed.contains(&e.digest))
                .cloned()
                .chain(list.into_iter().filter_map(|e| match e {
                    Edit::Upsert(entry) => Some(entry),
                    Edit::Remove(_) => None,
                }))
                .collect();
            *shard = Shard::build(next.len(), next);
        }
        Ok(shards.into_boxed_slice())
    }

    /// The index and runtime of an org, registering it (with a placeholder view the
    /// caller replaces) when it is new to the cell.
    fn org_index(
        &self,
        st: &mut PublishState,
        orgs: &mut Vec<Arc<OrgView>>,
        id: &OrgId,
    ) -> Result<(u32, Arc<OrgRuntime>), Error> {
        let ix = match st.org_ix.get(id) {
            Some(&ix) => ix,
            None => {
                let ix = self.org_rts.count();
                let ix32 = u32::try_from(ix)
                    .map_err(|_| Error::corrupt("org", "more orgs than the snapshot can index"))?;
                self.org_rts
                    .push_with(|_| Arc::new(OrgRuntime::new(ix32, id.clone())));
                st.org_ix.insert(id.clone(), ix32);
                ix32
            }
        };
        let runtime = self
            .org_rts
            .get(ix as usize)
            .cloned()
            .ok_or_else(|| Error::corrupt("org", "org runtime missing"))?;
        while orgs.len() <= ix as usize {
            orgs.push(Arc::new(placeholder(runtime.clone())));
        }
        Ok((ix, runtime))
    }

    fn org_view(&self, o: &OrgState, runtime: Arc<OrgRuntime>, now: i64) -> Result<OrgView, Error> {
        let cfg = &o.config;
        let rate = cfg.rate_limiting();
        let on = |v: Option<u64>| if rate.enabled { v.unwrap_or(0) } else { 0 };
        let (rpm, tpm) = (on(rate.rpm), on(rate.tpm));
        self.set_limit(&runtime.rpm, rpm);
        self.set_limit(&runtime.tpm, tpm);
        let budget = cfg.budgets().filter(|b| b.enabled).and_then(|b| {
            b.limit
                .map(|l| (l.micros(), b.period, b.hard, b.warn_threshold_ppm))
        });
        if let Some((limit, period, hard, warn)) = budget {
            let bc = BudgetConfig {
                limit_micros: limit,
                period,
                hard,
                warn_threshold_ppm: warn,
            };
            let spent = o.spent.ok_or_else(|| missing_spend("org"))?;
            let home = BudgetHome::Inline(&runtime.budget);
            self.configure_budget(home, &runtime.unflushed, bc, now, spent)?;
        } else if let Some(counter) = runtime.budget.get() {
            counter.detach();
        }
        Ok(OrgView {
            status: o.status,
            models: cfg
                .allowed_models()
                .map(|m| self.models.intern_all(m).unwrap_or_default()),
            ips: cfg.ip_acl().rules().cloned(),
            rpm,
            tpm,
            per_key_rpm: on(rate.per_key_rpm),
            per_key_tpm: on(rate.per_key_tpm),
            warn_ppm: cfg.budgets().map_or(800_000, |b| b.warn_threshold_ppm),
            budget,
            runtime,
        })
    }

    fn key_entry(
        &self,
        key: &KeyState,
        org: &Arc<OrgView>,
        org_ix: u32,
        epoch: u32,
        rt: Option<u32>,
        now: i64,
    ) -> Result<KeyEntry, Error> {
        static NONE: KeyLimits = KeyLimits {
            rpm: None,
            tpm: None,
            budget: None,
            models: Vec::new(),
            ips: Vec::new(),
        };
        let own = key.own.as_deref().unwrap_or(&NONE);
        let rpm = own.rpm.map_or(org.per_key_rpm, u64::from);
        let tpm = own.tpm.unwrap_or(org.per_key_tpm);
        let fresh = rt.is_none();
        let rt = match rt {
            Some(ix) => ix,
            None => self.push_key_rt(rpm > 0 || tpm > 0 || own.budget.is_some(), key.id, org_ix)?,
        };
        let runtime = self
            .key_rt(rt)
            .ok_or_else(|| Error::corrupt("key", "key runtime missing"))?;
        self.set_limit(&runtime.rpm, rpm);
        self.set_limit(&runtime.tpm, tpm);
        if let Some((b, spent)) = own.budget {
            let bc = BudgetConfig {
                limit_micros: b.limit.micros(),
                period: b.period,
                hard: b.hard,
                warn_threshold_ppm: org.warn_ppm,
            };
            let home = self
                .key_budget_home(runtime)
                .ok_or_else(|| Error::corrupt("key", "key runtime missing"))?;
            self.configure_budget(home, &runtime.unflushed, bc, now, spent)?;
        } else if let Some(counter) = self.key_budget_home(runtime).and_then(|h| h.get(self)) {
            counter.detach();
        }
        let models = (!own.models.is_empty())
            .then(|| self.models.intern_all(&own.models).unwrap_or_default());
        // Stored specs were validated at write time; an unparsable entry fails closed.
        let ips = (!own.ips.is_empty()).then(|| IpRules {
            allow: parse_nets("allowed_ips", &own.ips).unwrap_or_default(),
            deny: Vec::new(),
        });
        let ips = ips.map(|r| if r.allow.is_empty() { deny_all() } else { r });
        let has_rules = models.is_some() || ips.is_some();
        // Readers of an older snapshot may see the new rules a moment before the new
        // entry: the commit is already durable by then.
        if has_rules || (!fresh && runtime.rules.load().is_some()) {
            runtime
                .rules
                .store(has_rules.then(|| Arc::new(KeyRules { models, ips })));
        }
        Ok(KeyEntry {
            digest: key.digest,
            expires_at: key.expires_at.map_or(i64::MAX, Timestamp::as_micros),
            memo: AtomicU64::new(0),
            rt,
            org_ix,
            epoch,
            flags: flag(key.revoked, REVOKED)
                | flag(rpm > 0, HAS_RPM)
                | flag(tpm > 0, HAS_TPM)
                | flag(own.budget.is_some(), HAS_BUDGET)
                | flag(has_rules, HAS_RULES),
        })
    }
}

/// The index and view of a key group's org, which the snapshot must know by now.
fn org_of<'o>(
    st: &PublishState,
    orgs: &'o [Arc<OrgView>],
    id: &OrgId,
) -> Result<(u32, &'o Arc<OrgView>), Error> {
    let unknown = || Error::corrupt("key", "key of an unknown org");
    let ix = *st.org_ix.get(id).ok_or_else(unknown)?;
    Ok((ix, orgs.get(ix as usize).ok_or_else(unknown)?))
}

/// An update without the spend of a budget it configures: a defect of the feeder, refused
/// rather than starting the budget from zero.
#[cold]
fn missing_spend(what: &str) -> Error {
    Error::corrupt(
        "budget",
        format!("the {what} budget came without its spend; reopen the store to rebuild it"),
    )
}

fn deny_all() -> IpRules {
    let all = ["0.0.0.0/0", "::/0"];
    IpRules {
        allow: Vec::new(),
        deny: parse_nets("deny", &all).unwrap_or_default(),
    }
}

/// The view of an org index not (yet) known to the store: everything denied.
fn placeholder(runtime: Arc<OrgRuntime>) -> OrgView {
    OrgView {
        runtime,
        status: crate::model::OrgStatus::Deleted,
        models: Some(Box::new([])),
        ips: None,
        rpm: 0,
        tpm: 0,
        per_key_rpm: 0,
        per_key_tpm: 0,
        budget: None,
        warn_ppm: 0,
    }
}

impl SnapshotCell {
    /// Configures a rate limiter. When a fleet shares the cell's rate limits, the limiter
    /// holds this replica's share: the configured limit is recorded for the fleet, and
    /// the limiter is only ever lowered here (a new one starts at the least share).
    fn set_limit(&self, l: &crate::limits::RateLimiter, per_minute: u64) {
        if per_minute == 0 {
            return;
        }
        #[cfg(feature = "fleet")]
        if let Some(configured) = self.fleet_rates.lock().as_mut() {
            let fresh = configured
                .insert(std::ptr::from_ref(l) as usize, per_minute)
                .is_none();
            let share = if fresh { 1 } else { l.limit().min(per_minute) };
            if l.limit() != share {
                l.set_limit(share);
            }
            return;
        }
        if l.limit() != per_minute {
            l.set_limit(per_minute);
        }
    }
}

impl SnapshotCell {
    /// Configures a scope's budget counter. A new counter starts from the ledger's spend in the
    /// current period (`spent`, read by the store) plus spend not flushed yet, so a budget added to a key that already spent
    /// counts this period's spend, and a period that ended while the process was down starts
    /// fresh. A counter whose budget was disabled or removed (detached) is re-derived the same
    /// way when the budget comes back, keeping reservations in flight.
    fn configure_budget(
        &self,
        home: BudgetHome<'_>,
        unflushed: &std::sync::atomic::AtomicI64,
        cfg: BudgetConfig,
        now: i64,
        spent: Spent,
    ) -> Result<(), Error> {
        if let Some(counter) = home.get(self) {
            if counter.config() != cfg {
                counter.set_config(now, cfg);
            }
            // Re-enabled or re-added: spend made while it was off is only in the ledger.
            if counter.is_detached() {
                let pending = unflushed.load(Ordering::Acquire);
                counter.resync(
                    now,
                    spent.window_start,
                    spent.micros.saturating_add(pending),
                );
            }
            return Ok(());
        }
        let counter = BudgetCounter::new(cfg, now);
        #[cfg(feature = "fleet")]
        if cfg.hard && self.fleet_budgets.load(Ordering::Acquire) {
            counter.set_fleet_cap(cfg.period.window(now).0, Some(0));
        }
        let pending = unflushed.load(Ordering::Acquire);
        counter.restore(
            now,
            spent.window_start,
            spent.micros.saturating_add(pending),
        );
        // Only writers publish, under the publish lock, so the home is still empty here.
        home.install(self, counter)
    }
}
