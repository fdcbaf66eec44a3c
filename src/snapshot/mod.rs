//! The gateway's in-memory view of the store: digest -> resolved key, published atomically
//! after each commit. Readers do one `arc-swap` load and one hash lookup; they never lock,
//! never read redb and never wait for writers.
//!
//! The snapshot is a pure in-memory index: it knows nothing of the store. Everything comes
//! in as plain values through [`SnapshotCell::apply`] (see [`update`]), and spend goes out
//! as plain amounts through [`SnapshotCell::drain_spend`].
//!
//! Keys live inline in at least 512 shards (open-addressing tables of one-cache-line
//! entries keyed by the SHA-256 digest, see [`table`]). A commit copies only the shards it
//! touches plus the shard array, so a write costs in proportion to what changed, and a whole
//! commit becomes visible at once. Per-key and per-org mutable state (rate limiters,
//! budgets, more memo slots) lives in append-only arenas of the cell that carry over from
//! one snapshot to the next; entries point at it by index.

mod build;
mod entry;
mod models;
mod table;
mod update;

pub(crate) use entry::{
    BudgetHome, BudgetSlot, HAS_BUDGET, HAS_RPM, HAS_RULES, HAS_TPM, KeyEntry, KeyRuntime,
    MEMO_SLOTS, OrgRuntime, OrgView, REVOKED, Spender, UnflushedSpender, add_spend, flag,
};
pub(crate) use models::{ModelInterner, ModelMap, UNMENTIONED};
pub(crate) use table::Shard;
pub(crate) use update::{
    Drained, Extent, KeyLimits, KeyState, OrgKeys, OrgState, SpenderId, Spent, Update,
    org_budget_period,
};

use arc_swap::ArcSwap;
use parking_lot::Mutex;
use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use crate::error::Error;
use crate::keys::KeyDigest;
use crate::model::{KeyId, OrgId};
use crate::policy::Policies;
use entry::{InlineBudget, LimitedRuntime};

/// Fewest shards; a rebuild uses more for large stores (see [`shard_count_for`]).
pub(crate) const MIN_SHARDS: usize = 512;

/// `KeyEntry::rt` bit: the runtime is in the limited keys' arena.
const LIMITED: u32 = 1 << 31;
/// Keys per shard a rebuild aims at: small enough that copying a shard on a write is cheap
/// (about 100 KB, some microseconds against a commit's hundreds), large enough that the
/// shard array fits the L1 data cache: a [`Shard`] is 24 bytes, so 1M keys take 976
/// shards, 23 KB. With 175 keys per shard the array was 5 714 shards and a check paid an
/// L1 miss for it.
const KEYS_PER_SHARD: usize = 1024;

/// The shard count for a store of `keys` keys.
pub(crate) fn shard_count_for(keys: usize) -> usize {
    (keys / KEYS_PER_SHARD).max(MIN_SHARDS)
}

/// One published version of the gateway's view.
pub(crate) struct Snapshot {
    pub shards: Box<[Shard]>,
    /// Indexed by `KeyEntry::org_ix`; deleted orgs keep their slot.
    pub orgs: Arc<[Arc<OrgView>]>,
    /// Epoch at which the current policy set was published (memo tag).
    pub policy_epoch: u32,
    pub policies: Arc<GatewayPolicies>,
    /// Model names interned when this snapshot was published (every name an org or key
    /// allow-list or a gateway policy mentions).
    pub models: Arc<ModelMap>,
}

impl Snapshot {
    /// The entry of a digest.
    #[inline]
    pub fn find(&self, d: &KeyDigest) -> Option<&KeyEntry> {
        self.shards.get(shard_of(d, self.shards.len()))?.find(d)
    }

    /// Every entry.
    pub fn entries(&self) -> impl Iterator<Item = &KeyEntry> {
        self.shards.iter().flat_map(Shard::entries)
    }

    /// Number of keys.
    pub fn key_count(&self) -> usize {
        self.entries().count()
    }
}

/// The shard of a digest among `count` shards (multiply-shift of the first 4 bytes).
#[inline]
pub(crate) fn shard_of(d: &KeyDigest, count: usize) -> usize {
    let x = u64::from(u32::from_le_bytes([d[0], d[1], d[2], d[3]]));
    ((x * count as u64) >> 32) as usize
}

/// The policy set as the gateway uses it, with the table of denial reasons that memoized
/// decisions point into.
pub(crate) struct GatewayPolicies {
    pub policies: Arc<Policies>,
    /// Append-only, so checks read a memoized reason without a lock.
    reasons: boxcar::Vec<Arc<[String]>>,
    /// Serializes additions to `reasons`.
    adding: Mutex<()>,
    /// Whether every model name these policies mention is interned, so that names
    /// without an id may share the `UNMENTIONED` memo word (false only when the interner
    /// is full: such checks are then evaluated every time, still exactly).
    pub memo_unmentioned: bool,
}

/// Memo reason index meaning "too many distinct reasons; evaluate again for the reason".
pub(crate) const NO_REASON: u8 = u8::MAX;

impl GatewayPolicies {
    /// The set as the gateway uses it; the model names its policies mention are interned
    /// into `models`.
    pub fn new(policies: Arc<Policies>, models: &ModelInterner) -> Self {
        let memo_unmentioned = models.intern_all(&policies.invoke_model_names()).is_some();
        Self {
            policies,
            reasons: boxcar::Vec::new(),
            adding: Mutex::new(()),
            memo_unmentioned,
        }
    }

    /// The reason list stored at `ix`. Lock-free.
    pub fn reason(&self, ix: u8) -> Option<Arc<[String]>> {
        self.reasons.get(usize::from(ix)).cloned()
    }

    /// Stores a reason list, returning its index (or `NO_REASON` when full).
    pub fn reason_index(&self, ids: &[String]) -> u8 {
        let find = || {
            self.reasons
                .iter()
                .find(|(_, r)| &r[..] == ids)
                .and_then(|(i, _)| u8::try_from(i).ok())
        };
        if let Some(i) = find() {
            return i;
        }
        let _adding = self.adding.lock();
        if let Some(i) = find() {
            return i;
        }
        if self.reasons.count() >= usize::from(NO_REASON) {
            return NO_REASON;
        }
        u8::try_from(self.reasons.push(ids.into())).unwrap_or(NO_REASON)
    }
}

/// Writer-side bookkeeping, touched only while publishing.
#[derive(Default)]
struct PublishState {
    org_ix: HashMap<OrgId, u32>,
    epoch: u32,
}

/// The published snapshot and everything needed to publish the next one.
pub(crate) struct SnapshotCell {
    pub current: ArcSwap<Snapshot>,
    pub models: ModelInterner,
    state: Mutex<PublishState>,
    /// Set when a commit could not be published: checks fail closed until a rebuild works.
    /// Also set for good when the store is closed (see [`Update::close`]).
    pub stale: AtomicBool,
    /// Set when the last handle of the store is dropped: nothing can publish any more.
    closed: AtomicBool,
    /// How many snapshots were published (observability for tests: a request must never
    /// cause one).
    publications: AtomicU64,
    /// Scopes with spend waiting for the flusher.
    spend_dirty: Mutex<Vec<UnflushedSpender>>,
    /// Every runtime ever created for a key without limits, by `KeyEntry::rt`;
    /// append-only, so references stay valid for the cell's life.
    key_rts: boxcar::Vec<KeyRuntime>,
    /// Runtimes of keys that had limits or a budget when first seen, by `KeyEntry::rt`
    /// with the `LIMITED` bit set, with their budget counters inline. A check of such a
    /// key reads its runtime every time; keeping those few runtimes together keeps them on
    /// few pages (measured at 1M keys: scattered among all runtimes, each limited check
    /// paid a TLB miss for its runtime).
    limited_rts: boxcar::Vec<LimitedRuntime>,
    /// Budget counters of keys in the plain arena that were given a budget later, by
    /// `BudgetSlot` index. Orgs and limited keys keep theirs inline.
    budgets: boxcar::Vec<crate::limits::BudgetCounter>,
    /// Every org runtime, by `KeyEntry::org_ix`.
    pub(crate) org_rts: boxcar::Vec<Arc<OrgRuntime>>,
    /// Set when a fleet shares this cell's hard budgets: a new budget counter then starts
    /// with nothing to admit until the fleet leases for it.
    #[cfg(feature = "fleet")]
    pub(crate) fleet_budgets: AtomicBool,
    /// Set (to `Some`) when a fleet shares this cell's rate limits: the configured limit of
    /// each shared limiter, by its address (limiters live in append-only arenas). A
    /// limiter then holds the replica's share; publishing only ever lowers it.
    #[cfg(feature = "fleet")]
    pub(crate) fleet_rates: Mutex<Option<HashMap<usize, u64>>>,
}

impl SnapshotCell {
    pub fn new(policies: Arc<Policies>) -> Self {
        let models = ModelInterner::new();
        let policies = Arc::new(GatewayPolicies::new(policies, &models));
        let empty = Snapshot {
            shards: (0..MIN_SHARDS).map(|_| Shard::default()).collect(),
            orgs: Arc::from(Vec::new()),
            policy_epoch: 0,
            policies,
            models: models.map_after(&Arc::new(ModelMap::default())),
        };
        Self {
            current: ArcSwap::from_pointee(empty),
            models,
            state: Mutex::new(PublishState::default()),
            stale: AtomicBool::new(false),
            closed: AtomicBool::new(false),
            publications: AtomicU64::new(0),
            spend_dirty: Mutex::new(Vec::new()),
            key_rts: boxcar::Vec::new(),
            limited_rts: boxcar::Vec::new(),
            budgets: boxcar::Vec::new(),
            org_rts: boxcar::Vec::new(),
            #[cfg(feature = "fleet")]
            fleet_budgets: AtomicBool::new(false),
            #[cfg(feature = "fleet")]
            fleet_rates: Mutex::new(None),
        }
    }

    /// A key's runtime.
    #[inline]
    pub fn key_rt(&self, ix: u32) -> Option<&KeyRuntime> {
        if ix & LIMITED == 0 {
            self.key_rts.get(ix as usize)
        } else {
            self.limited(ix).map(|l| &l.rt)
        }
    }

    /// A limited key's runtime with its inline budget counter, by its tagged index.
    #[inline]
    fn limited(&self, ix: u32) -> Option<&LimitedRuntime> {
        self.limited_rts.get((ix & !LIMITED) as usize)
    }

    /// A key's runtime and its budget counter, when it has one (whether the key's
    /// current version has a budget is the entry's `HAS_BUDGET`).
    #[inline]
    pub fn key_rt_and_budget(
        &self,
        ix: u32,
    ) -> Option<(&KeyRuntime, Option<&crate::limits::BudgetCounter>)> {
        if ix & LIMITED == 0 {
            let rt = self.key_rts.get(ix as usize)?;
            Some((rt, self.arena_budget(&rt.budget)))
        } else {
            let l = self.limited(ix)?;
            Some((&l.rt, l.budget.get()))
        }
    }

    /// A key's budget counter, when it has one.
    #[inline]
    pub fn key_budget<'a>(
        &'a self,
        rt: &'a KeyRuntime,
    ) -> Option<&'a crate::limits::BudgetCounter> {
        self.key_budget_home(rt)?.get(self)
    }

    /// Where a key's budget counter lives: inline for a limited key, else in the arena.
    pub fn key_budget_home<'a>(&'a self, rt: &'a KeyRuntime) -> Option<BudgetHome<'a>> {
        if rt.ix & LIMITED == 0 {
            Some(BudgetHome::Arena(&rt.budget))
        } else {
            Some(BudgetHome::Inline(&self.limited(rt.ix)?.budget))
        }
    }

    /// The arena counter a slot points at.
    #[inline]
    pub(crate) fn arena_budget(&self, slot: &BudgetSlot) -> Option<&crate::limits::BudgetCounter> {
        self.budgets.get(slot.index()? as usize)
    }

    /// Adds a budget counter to the arena and points `slot` at it.
    pub(crate) fn set_arena_budget(
        &self,
        slot: &BudgetSlot,
        counter: crate::limits::BudgetCounter,
    ) -> Result<(), Error> {
        let ix = u32::try_from(self.budgets.push(counter))
            .ok()
            .filter(|&ix| ix != BudgetSlot::NONE)
            .ok_or_else(|| {
                Error::corrupt(
                    "budget",
                    "more budgets than the snapshot can index; reopen the store to rebuild it",
                )
            })?;
        slot.set(ix);
        Ok(())
    }

    /// Creates a key's runtime, among the limited keys' when `limited`, and returns its
    /// index for `KeyEntry::rt`.
    pub fn push_key_rt(&self, limited: bool, id: KeyId, org_ix: u32) -> Result<u32, Error> {
        let (ix, tag) = if limited {
            let ix = self.limited_rts.push_with(|ix| LimitedRuntime {
                rt: KeyRuntime::new(ix as u32 | LIMITED, id, org_ix),
                budget: InlineBudget::new(),
            });
            (ix, LIMITED)
        } else {
            let ix = self
                .key_rts
                .push_with(|ix| KeyRuntime::new(ix as u32, id, org_ix));
            (ix, 0)
        };
        match u32::try_from(ix) {
            Ok(ix) if ix < LIMITED => Ok(ix | tag),
            _ => Err(Error::corrupt(
                "key",
                "more key runtimes than the snapshot can index; reopen the store to rebuild it",
            )),
        }
    }

    /// An org's runtime.
    #[inline]
    pub fn org_rt(&self, ix: u32) -> Option<&OrgRuntime> {
        self.org_rts.get(ix as usize).map(|o| &**o)
    }

    /// Queues a scope whose spend went from zero to non-zero.
    pub fn queue_spend(&self, s: UnflushedSpender) {
        self.spend_dirty.lock().push(s);
    }

    /// Whether any scope has spend waiting for the flusher.
    pub fn spend_queued(&self) -> bool {
        !self.spend_dirty.lock().is_empty()
    }

    /// Takes the spend of every queued scope, leaving it at zero in memory, for the store to
    /// write. Call it under the same lock as [`SnapshotCell::apply`] (the store's writer
    /// lock): a budget counter derived from the ledger plus unflushed spend then sees every
    /// amount in exactly one of the two.
    pub fn drain_spend(&self) -> Vec<Drained> {
        let dirty = std::mem::take(&mut *self.spend_dirty.lock());
        dirty
            .into_iter()
            .filter_map(|d| {
                let (spender, unflushed) = match d {
                    UnflushedSpender::Key(ix) => {
                        let k = self.key_rt(ix)?;
                        (SpenderId::Key(k.id), &k.unflushed)
                    }
                    UnflushedSpender::Org(ix) => {
                        let o = self.org_rt(ix)?;
                        (SpenderId::Org(o.id.clone()), &o.unflushed)
                    }
                };
                let micros = unflushed.swap(0, Ordering::AcqRel);
                (micros != 0).then_some(Drained {
                    spender,
                    micros,
                    from: d,
                })
            })
            .collect()
    }

    /// Gives back spend that [`SnapshotCell::drain_spend`] took and the store could not
    /// write: it waits in memory for the next flush.
    pub fn restore_spend(&self, drained: &[Drained]) {
        for d in drained {
            let scope = match d.from {
                UnflushedSpender::Key(ix) => self.key_rt(ix).map(Spender::Key),
                UnflushedSpender::Org(ix) => self.org_rt(ix).map(Spender::Org),
            };
            if let Some(s) = scope {
                s.add_unflushed(d.micros, self);
            }
        }
    }

    /// Every enforced hard budget counter with its spender (orgs, then keys): what a fleet
    /// shares through leases. Background use only: it walks every key runtime.
    #[cfg(feature = "fleet")]
    #[cfg_attr(not(feature = "fuzzing"), allow(dead_code))]
    pub(crate) fn hard_budgets(&self) -> Vec<(SpenderId, &crate::limits::BudgetCounter)> {
        let enforced = |b: &&crate::limits::BudgetCounter| !b.is_detached() && b.config().hard;
        let orgs = self.org_rts.iter().filter_map(|(_, o)| {
            let b = o.budget.get().filter(enforced)?;
            Some((SpenderId::Org(o.id.clone()), b))
        });
        let limited = self.limited_rts.iter().filter_map(|(_, l)| {
            let b = l.budget.get().filter(enforced)?;
            Some((SpenderId::Key(l.rt.id), b))
        });
        let plain = self.key_rts.iter().filter_map(|(_, k)| {
            let b = self.arena_budget(&k.budget).filter(enforced)?;
            Some((SpenderId::Key(k.id), b))
        });
        orgs.chain(limited).chain(plain).collect()
    }

    /// Every rate limiter in force with its spender and whether it counts tokens (else
    /// requests): what a fleet shares. Background use only: it walks every key.
    #[cfg(feature = "fleet")]
    #[cfg_attr(not(feature = "fuzzing"), allow(dead_code))]
    pub(crate) fn shared_rates(&self) -> Vec<(SpenderId, bool, &crate::limits::RateLimiter)> {
        let snap = self.current.load();
        let mut out = Vec::new();
        for o in snap.orgs.iter() {
            let Some(rt) = self.org_rt(o.runtime.ix) else {
                continue;
            };
            if o.rpm > 0 {
                out.push((SpenderId::Org(rt.id.clone()), false, &rt.rpm));
            }
            if o.tpm > 0 {
                out.push((SpenderId::Org(rt.id.clone()), true, &rt.tpm));
            }
        }
        for e in snap.entries() {
            if !e.has(HAS_RPM | HAS_TPM) || e.has(REVOKED) {
                continue;
            }
            let Some(rt) = self.key_rt(e.rt) else {
                continue;
            };
            if e.has(HAS_RPM) {
                out.push((SpenderId::Key(rt.id), false, &rt.rpm));
            }
            if e.has(HAS_TPM) {
                out.push((SpenderId::Key(rt.id), true, &rt.tpm));
            }
        }
        out
    }

    /// Starts sharing rate limits: records every limiter's configured limit (what it holds
    /// now) and sets it to `first_share` until the fleet assigns its share.
    #[cfg(feature = "fleet")]
    #[cfg_attr(not(feature = "fuzzing"), allow(dead_code))]
    pub(crate) fn share_rates(&self, first_share: u64) {
        let _publishing = self.state.lock();
        let mut map = self.fleet_rates.lock();
        let configured = map.get_or_insert_with(HashMap::new);
        for (_, _, l) in self.shared_rates() {
            let addr = std::ptr::from_ref(l) as usize;
            configured.entry(addr).or_insert_with(|| l.limit());
            l.set_limit(first_share.min(l.limit()));
        }
    }

    /// A shared limiter's configured limit (`None`: not shared, or never configured).
    #[cfg(feature = "fleet")]
    #[cfg_attr(not(feature = "fuzzing"), allow(dead_code))]
    pub(crate) fn configured_rate(&self, l: &crate::limits::RateLimiter) -> Option<u64> {
        let addr = std::ptr::from_ref(l) as usize;
        self.fleet_rates.lock().as_ref()?.get(&addr).copied()
    }

    /// Heap bytes the snapshot holds for keys: table slots, runtimes in the arena, budget
    /// counters and rules, counting 16 bytes of allocator overhead per separate allocation.
    pub fn key_memory_bytes(&self) -> usize {
        const ALLOC: usize = 16;
        let snap = self.current.load();
        let mut bytes: usize = snap.shards.iter().map(|s| s.heap_bytes() + 48).sum();
        // Arena entries carry a flag word next to the value.
        bytes += self.key_rts.count() * (std::mem::size_of::<KeyRuntime>() + 8);
        bytes += self.limited_rts.count() * (std::mem::size_of::<LimitedRuntime>() + 8);
        bytes += self.budgets.count() * (std::mem::size_of::<crate::limits::BudgetCounter>() + 8);
        let limited = self.limited_rts.iter().map(|(_, l)| &l.rt);
        for k in self.key_rts.iter().map(|(_, k)| k).chain(limited) {
            if let Some(r) = &*k.rules.load() {
                bytes += std::mem::size_of_val(&**r) + 16 + ALLOC;
                bytes += r.models.as_ref().map_or(0, |m| m.len() * 4 + ALLOC);
                bytes += r
                    .ips
                    .as_ref()
                    .map_or(0, |i| (i.allow.len() + i.deny.len()) * 20 + ALLOC);
            }
        }
        bytes
    }

    /// Whether the snapshot may be behind the store.
    #[inline]
    pub fn is_stale(&self) -> bool {
        self.stale.load(Ordering::Acquire)
    }

    /// Applies one change of the store: the single way anything gets into the snapshot
    /// (the initial load, every commit, a policy reload and the close). Serialized with
    /// other updates; checks keep reading the previous snapshot until the new one is
    /// installed whole. On an error no new snapshot is installed (the caller rebuilds with
    /// a full update, or marks the snapshot stale).
    pub(crate) fn apply(&self, mut u: Update) -> Result<(), Error> {
        let mut st = self.state.lock();
        if u.close {
            self.close_locked();
            return Ok(());
        }
        let has_states = u.extent == Extent::Full
            || !u.orgs.is_empty()
            || !u.keys.is_empty()
            || !u.rotated.is_empty();
        if let Some(p) = u.policies.take() {
            self.install_policies(&mut st, p);
        }
        if has_states {
            self.apply_states(&mut st, u)?;
        }
        Ok(())
    }

    /// Publishes a new policy set; every memoized decision is invalidated.
    fn install_policies(&self, st: &mut PublishState, policies: Arc<Policies>) {
        st.epoch = st.epoch.wrapping_add(1);
        let old = self.current.load_full();
        let policies = Arc::new(GatewayPolicies::new(policies, &self.models));
        self.install(Snapshot {
            shards: old.shards.clone(),
            orgs: old.orgs.clone(),
            policy_epoch: st.epoch,
            policies,
            models: self.model_map(&old),
        });
    }

    /// The model map for a new snapshot: the previous one unless names were interned since.
    pub(crate) fn model_map(&self, old: &Snapshot) -> Arc<ModelMap> {
        self.models.map_after(&old.models)
    }

    /// Makes `snap` the published snapshot.
    pub(crate) fn install(&self, snap: Snapshot) {
        self.current.store(Arc::new(snap));
        self.publications.fetch_add(1, Ordering::Relaxed);
    }

    /// How many snapshots were published since the cell was created.
    pub fn publications(&self) -> u64 {
        self.publications.load(Ordering::Relaxed)
    }

    /// Whether the store was closed.
    pub fn is_closed(&self) -> bool {
        self.closed.load(Ordering::Acquire)
    }

    /// Applied when the last handle of the store is dropped ([`Update::close`]): from now
    /// on every check fails closed (`unavailable`), since the file may change under a store
    /// opened later, and the keys' table is released (runtimes stay: grants in flight still
    /// settle).
    fn close_locked(&self) {
        self.closed.store(true, Ordering::Release);
        self.stale.store(true, Ordering::Release);
        let old = self.current.load_full();
        self.install(Snapshot {
            shards: Box::new([]),
            orgs: Arc::from(Vec::new()),
            policy_epoch: old.policy_epoch,
            policies: old.policies.clone(),
            models: Arc::new(ModelMap::default()),
        });
    }
}
