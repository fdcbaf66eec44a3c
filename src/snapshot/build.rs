//! Building snapshot entries from store records: a full rebuild at open, and incremental
//! publication of what one commit changed.

use std::collections::{HashMap, HashSet};
use std::ops::Bound;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use redb::{ReadableTable, ReadableTableMetadata};

use super::entry::{HAS_BUDGET, HAS_RPM, HAS_RULES, HAS_TPM, KeyRules, REVOKED, flag};
use super::{
    BudgetHome, KeyEntry, OrgRuntime, OrgView, PublishState, Shard, Snapshot, SnapshotCell,
    shard_count_for, shard_of,
};
use crate::config::OrgConfig;
use crate::config::ip::{IpRules, parse_nets};
use crate::error::Error;
use crate::keys::KeyDigest;
use crate::limits::{BudgetConfig, BudgetCounter};
use crate::model::{KeyId, Org, OrgId, Timestamp};
use crate::store::records::KeyGate;
use crate::store::spend::{key_scope, org_scope, spent_in};
use crate::store::tables::{KEYS, ORGS};
use crate::store::tx::{Changes, Lookup};

/// Entries sorted by shard.
type Groups = Vec<Vec<KeyEntry>>;

enum Edit {
    Remove(KeyDigest),
    Upsert(KeyEntry),
}

impl SnapshotCell {
    /// Rebuilds the whole snapshot from the store (at open, or after a failed publication).
    pub(crate) fn rebuild(&self, r: &(impl Lookup + Sync)) -> Result<(), Error> {
        let mut st = self.state.lock();
        st.epoch = st.epoch.wrapping_add(1);
        let epoch = st.epoch;
        let now = Timestamp::now().as_micros();
        let old = self.current.load_full();
        let io = |e: redb::StorageError| Error::storage("loading the snapshot", e);

        // Org indexes are stable for the cell's life; runtimes (limits) carry over.
        let mut orgs: Vec<Arc<OrgView>> = old.orgs.to_vec();
        {
            let t = r.table(ORGS)?;
            for item in t.iter().map_err(io)? {
                let (_, v) = item.map_err(io)?;
                let org: Org = crate::store::codec::decode("org", v.value())?;
                let (_, cfg) = r.active_config(&org)?;
                let (ix, runtime) = self.org_index(&mut st, &mut orgs, &org.id)?;
                let view = self.org_view(r, &org, &cfg, runtime, now)?;
                if let Some(slot) = orgs.get_mut(ix as usize) {
                    *slot = Arc::new(view);
                }
            }
        }
        // Decoding dominates: scan the two halves of the (random) key id space in parallel,
        // each half sorted into shards as it is read.
        let count = shard_count_for(r.table(KEYS)?.len().map_err(io)? as usize);
        let scan = |range: (Bound<&[u8; 16]>, Bound<&[u8; 16]>)| -> Result<Groups, Error> {
            let t = r.table(KEYS)?;
            let per_shard = t.len().map_err(io)? as usize / count / 2 + 8;
            let mut out: Groups = (0..count).map(|_| Vec::with_capacity(per_shard)).collect();
            for item in t.range::<&[u8; 16]>(range).map_err(io)? {
                let (_, v) = item.map_err(io)?;
                let key = KeyGate::decode(v.value())?;
                let Some(&ix) = st.org_ix.get(key.org) else {
                    return Err(Error::corrupt("key", "key of an unknown org"));
                };
                let org = orgs
                    .get(ix as usize)
                    .ok_or_else(|| Error::corrupt("key", "key of an unknown org"))?;
                let rt = old.find(&key.digest).map(|e| e.rt);
                let entry = self.key_entry(r, &key, org, ix, epoch, rt, now)?;
                if let Some(g) = out.get_mut(shard_of(&entry.digest, count)) {
                    g.push(entry);
                }
            }
            Ok(out)
        };
        let mid = [0x80u8; 16];
        let (low, high) = std::thread::scope(|s| {
            let high = s.spawn(|| scan((Bound::Included(&mid), Bound::Unbounded)));
            let low = scan((Bound::Unbounded, Bound::Excluded(&mid)));
            (low, high.join())
        });
        let high =
            high.map_err(|_| Error::corrupt("key", "the snapshot loader stopped unexpectedly"))??;
        let shards = low?
            .into_iter()
            .zip(high)
            .map(|(a, b)| Shard::build(a.len() + b.len(), a.into_iter().chain(b)))
            .collect();
        self.install(Snapshot {
            shards,
            orgs: orgs.into(),
            policy_epoch: old.policy_epoch,
            policies: old.policies.clone(),
            models: self.model_map(&old),
        });
        if !self.is_closed() {
            self.stale.store(false, Ordering::Release);
        }
        Ok(())
    }

    /// Publishes what one commit changed. Costs in proportion to the change: the touched
    /// shards are copied, the rest are shared with the previous snapshot.
    pub(crate) fn publish(&self, r: &impl Lookup, changes: &Changes) -> Result<(), Error> {
        let mut st = self.state.lock();
        st.epoch = st.epoch.wrapping_add(1);
        let epoch = st.epoch;
        let now = Timestamp::now().as_micros();
        let old = self.current.load_full();
        let mut orgs: Vec<Arc<OrgView>> = old.orgs.to_vec();
        let mut edits: HashMap<usize, Vec<Edit>> = HashMap::new();
        let mut done: HashSet<KeyId> = HashSet::new();
        let count = old.shards.len();
        let push = |edits: &mut HashMap<usize, Vec<Edit>>, d: &KeyDigest, e: Edit| {
            edits.entry(shard_of(d, count)).or_default().push(e);
        };

        let mut org_ids: Vec<&OrgId> = changes.orgs.iter().collect();
        org_ids.sort_unstable();
        org_ids.dedup();
        for id in org_ids {
            let org = r.org_any(id)?;
            let (_, cfg) = r.active_config(&org)?;
            let (ix, runtime) = self.org_index(&mut st, &mut orgs, id)?;
            let view = Arc::new(self.org_view(r, &org, &cfg, runtime, now)?);
            if let Some(slot) = orgs.get_mut(ix as usize) {
                *slot = view.clone();
            }
            // Inherited settings changed: re-resolve every key of the org.
            for rec in r.keys_of(id)? {
                let rt = old.find(&rec.digest).map(|e| e.rt);
                let entry = self.key_entry(r, &KeyGate::of(&rec), &view, ix, epoch, rt, now)?;
                push(&mut edits, &rec.digest, Edit::Upsert(entry));
                done.insert(rec.info.id);
            }
        }
        for (id, old_digest) in &changes.keys {
            if !done.insert(*id) {
                continue;
            }
            let Some(rec) = r.key(id)? else { continue };
            let mut rt = old.find(&rec.digest).map(|e| e.rt);
            if let Some(od) = old_digest.filter(|d| *d != rec.digest) {
                if rt.is_none() {
                    rt = old.find(&od).map(|e| e.rt);
                }
                push(&mut edits, &od, Edit::Remove(od));
            }
            let ix = *st
                .org_ix
                .get(&rec.info.org)
                .ok_or_else(|| Error::corrupt("key", "key of an unknown org"))?;
            let org = orgs
                .get(ix as usize)
                .ok_or_else(|| Error::corrupt("key", "key of an unknown org"))?;
            let entry = self.key_entry(r, &KeyGate::of(&rec), org, ix, epoch, rt, now)?;
            push(&mut edits, &rec.digest, Edit::Upsert(entry));
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
        self.install(Snapshot {
            shards: shards.into_boxed_slice(),
            orgs: orgs.into(),
            policy_epoch: old.policy_epoch,
            policies: old.policies.clone(),
            models: self.model_map(&old),
        });
        Ok(())
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

    fn org_view(
        &self,
        r: &impl Lookup,
        org: &Org,
        cfg: &OrgConfig,
        runtime: Arc<OrgRuntime>,
        now: i64,
    ) -> Result<OrgView, Error> {
        let rate = cfg.rate_limiting();
        let on = |v: Option<u64>| if rate.enabled { v.unwrap_or(0) } else { 0 };
        let (rpm, tpm) = (on(rate.rpm), on(rate.tpm));
        set_limit(&runtime.rpm, rpm);
        set_limit(&runtime.tpm, tpm);
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
            let scope = org_scope(&org.id);
            let home = BudgetHome::Inline(&runtime.budget);
            self.configure_budget(home, &runtime.unflushed, bc, now, r, &scope)?;
        } else if let Some(counter) = runtime.budget.get() {
            counter.detach();
        }
        Ok(OrgView {
            status: org.status,
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

    #[allow(clippy::too_many_arguments)]
    fn key_entry(
        &self,
        r: &impl Lookup,
        key: &KeyGate<'_>,
        org: &Arc<OrgView>,
        org_ix: u32,
        epoch: u32,
        rt: Option<u32>,
        now: i64,
    ) -> Result<KeyEntry, Error> {
        let rpm = key.rpm.map_or(org.per_key_rpm, u64::from);
        let tpm = key.tpm.unwrap_or(org.per_key_tpm);
        let fresh = rt.is_none();
        let rt = match rt {
            Some(ix) => ix,
            None => self.push_key_rt(rpm > 0 || tpm > 0 || key.budget.is_some(), key.id, org_ix)?,
        };
        let runtime = self
            .key_rt(rt)
            .ok_or_else(|| Error::corrupt("key", "key runtime missing"))?;
        set_limit(&runtime.rpm, rpm);
        set_limit(&runtime.tpm, tpm);
        if let Some(b) = key.budget {
            let bc = BudgetConfig {
                limit_micros: b.limit.micros(),
                period: b.period,
                hard: b.hard,
                warn_threshold_ppm: org.warn_ppm,
            };
            let scope = key_scope(&key.id);
            let home = self
                .key_budget_home(runtime)
                .ok_or_else(|| Error::corrupt("key", "key runtime missing"))?;
            self.configure_budget(home, &runtime.unflushed, bc, now, r, &scope)?;
        } else if let Some(counter) = self.key_budget_home(runtime).and_then(|h| h.get(self)) {
            counter.detach();
        }
        let models = (!key.models.is_empty())
            .then(|| self.models.intern_all(&key.models).unwrap_or_default());
        // Stored specs were validated at write time; an unparsable entry fails closed.
        let ips = (!key.ips.is_empty()).then(|| IpRules {
            allow: parse_nets("allowed_ips", &key.ips).unwrap_or_default(),
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
                | flag(key.budget.is_some(), HAS_BUDGET)
                | flag(has_rules, HAS_RULES),
        })
    }
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

fn set_limit(l: &crate::limits::RateLimiter, per_minute: u64) {
    if per_minute > 0 && l.limit() != per_minute {
        l.set_limit(per_minute);
    }
}

impl SnapshotCell {
    /// Configures a scope's budget counter. A new counter starts from the ledger's spend in the
    /// current period plus spend not flushed yet, so a budget added to a key that already spent
    /// counts this period's spend, and a period that ended while the process was down starts
    /// fresh. A counter whose budget was disabled or removed (detached) is re-derived the same
    /// way when the budget comes back, keeping reservations in flight.
    fn configure_budget(
        &self,
        home: BudgetHome<'_>,
        unflushed: &std::sync::atomic::AtomicI64,
        cfg: BudgetConfig,
        now: i64,
        r: &impl Lookup,
        scope: &str,
    ) -> Result<(), Error> {
        if let Some(counter) = home.get(self) {
            if counter.config() != cfg {
                counter.set_config(now, cfg);
            }
            // Re-enabled or re-added: spend made while it was off is only in the ledger.
            if counter.is_detached() {
                let (window_start, stored) = spent_in(r, scope, cfg.period, now)?;
                let pending = unflushed.load(Ordering::Acquire);
                counter.resync(now, window_start, stored.saturating_add(pending));
            }
            return Ok(());
        }
        let (window_start, stored) = spent_in(r, scope, cfg.period, now)?;
        let counter = BudgetCounter::new(cfg, now);
        let pending = unflushed.load(Ordering::Acquire);
        counter.restore(now, window_start, stored.saturating_add(pending));
        // Only writers publish, under the writer lock, so the home is still empty here.
        home.install(self, counter)
    }
}
