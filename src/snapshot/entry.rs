//! What the snapshot holds per key and per org.

use once_cell::race::OnceBox;
use std::sync::Arc;
use std::sync::atomic::AtomicU64;

use crate::config::ip::IpRules;
use crate::keys::KeyDigest;
use crate::limits::{BudgetCounter, RateLimiter};
use crate::model::{KeyId, OrgId, OrgStatus, Period};

/// Number of memoized gateway decisions kept per key (one per recently used model).
pub(crate) const MEMO_SLOTS: usize = 4;

/// Mutable per-key state that outlives snapshot versions: rate limiters, budget, memo.
pub(crate) struct KeyRuntime {
    pub id: KeyId,
    pub org: Arc<OrgRuntime>,
    pub memo: [AtomicU64; MEMO_SLOTS],
    pub rpm: RateLimiter,
    pub tpm: RateLimiter,
    pub budget: OnceBox<BudgetCounter>,
    /// Spend not yet written to the ledger, micro-dollars.
    pub unflushed: std::sync::atomic::AtomicI64,
}

/// Mutable per-org state that outlives snapshot versions: the org-wide shared limits.
pub(crate) struct OrgRuntime {
    pub id: OrgId,
    pub rpm: RateLimiter,
    pub tpm: RateLimiter,
    pub budget: OnceBox<BudgetCounter>,
    /// Spend not yet written to the ledger, micro-dollars.
    pub unflushed: std::sync::atomic::AtomicI64,
}

/// `KeyEntry::flags` bits.
pub(crate) const REVOKED: u8 = 1;
/// The key has a requests-per-minute limit (own or inherited); its value is in the limiter.
pub(crate) const HAS_RPM: u8 = 2;
/// The key has a tokens-per-minute limit.
pub(crate) const HAS_TPM: u8 = 4;
/// The key has its own budget; its configuration is in the counter.
pub(crate) const HAS_BUDGET: u8 = 8;

/// Restrictions that most keys do not have, kept out of line.
pub(crate) struct KeyRules {
    /// Sorted model ids, `None` = all models; an empty set denies every model.
    pub models: Option<Box<[u32]>>,
    pub ips: Option<IpRules>,
}

/// One key as the gateway sees it: inline in the snapshot's hash table, 72 bytes. Limit
/// values live in the runtime's limiters and counter; the entry only says which apply.
#[derive(Clone)]
pub(crate) struct KeyEntry {
    pub digest: KeyDigest,
    pub runtime: Arc<KeyRuntime>,
    pub rules: Option<Arc<KeyRules>>,
    /// Unix micros; `i64::MAX` when the key never expires.
    pub expires_at: i64,
    pub org_ix: u32,
    /// Publication epoch of this entry (memo tag).
    pub epoch: u32,
    /// `REVOKED`, `HAS_RPM`, `HAS_TPM`, `HAS_BUDGET`.
    pub flags: u8,
}

impl KeyEntry {
    #[inline]
    pub fn has(&self, flag: u8) -> bool {
        self.flags & flag != 0
    }

    /// The key's own budget counter, when it has a budget.
    #[inline]
    pub fn budget(&self) -> Option<&BudgetCounter> {
        if self.has(HAS_BUDGET) {
            self.runtime.budget.get()
        } else {
            None
        }
    }
}

/// One org as the gateway sees it.
pub(crate) struct OrgView {
    pub runtime: Arc<OrgRuntime>,
    pub status: OrgStatus,
    /// Sorted model ids; `None` = all models.
    pub models: Option<Box<[u32]>>,
    pub ips: Option<IpRules>,
    /// Org-wide shared limits, 0 meaning none.
    pub rpm: u64,
    pub tpm: u64,
    /// Defaults for keys without their own limit.
    pub per_key_rpm: u64,
    pub per_key_tpm: u64,
    /// Org budget (limit micros, period, hard, warn ppm), if enabled with a limit.
    pub budget: Option<(i64, Period, bool, u32)>,
    pub warn_ppm: u32,
}

impl KeyRuntime {
    pub fn new(id: KeyId, org: Arc<OrgRuntime>) -> Self {
        Self {
            id,
            org,
            memo: Default::default(),
            rpm: RateLimiter::unlimited(),
            tpm: RateLimiter::unlimited(),
            budget: OnceBox::new(),
            unflushed: Default::default(),
        }
    }
}

impl OrgRuntime {
    pub fn new(id: OrgId) -> Self {
        Self {
            id,
            rpm: RateLimiter::unlimited(),
            tpm: RateLimiter::unlimited(),
            budget: OnceBox::new(),
            unflushed: Default::default(),
        }
    }
}

/// A scope whose in-memory spend waits for the flusher.
pub(crate) enum SpendScope {
    Key(Arc<KeyRuntime>),
    Org(Arc<OrgRuntime>),
}

impl SpendScope {
    pub fn unflushed(&self) -> &std::sync::atomic::AtomicI64 {
        match self {
            SpendScope::Key(k) => &k.unflushed,
            SpendScope::Org(o) => &o.unflushed,
        }
    }

    pub fn scope_name(&self) -> String {
        match self {
            SpendScope::Key(k) => crate::store::spend::key_scope(&k.id),
            SpendScope::Org(o) => crate::store::spend::org_scope(&o.id),
        }
    }

    /// Adds spend and queues the scope for the flusher when it was clean.
    pub fn add_unflushed(&self, micros: i64, cell: &super::SnapshotCell) {
        if micros == 0 {
            return;
        }
        if self
            .unflushed()
            .fetch_add(micros, std::sync::atomic::Ordering::AcqRel)
            == 0
        {
            cell.queue_spend(match self {
                SpendScope::Key(k) => SpendScope::Key(k.clone()),
                SpendScope::Org(o) => SpendScope::Org(o.clone()),
            });
        }
    }
}

/// Adds spend to a key and its org, queueing them for the flusher when they were clean.
pub(crate) fn add_spend(key: &Arc<KeyRuntime>, micros: i64, cell: &super::SnapshotCell) {
    use std::sync::atomic::Ordering;
    if micros <= 0 {
        return;
    }
    if key.unflushed.fetch_add(micros, Ordering::AcqRel) == 0 {
        cell.queue_spend(SpendScope::Key(key.clone()));
    }
    if key.org.unflushed.fetch_add(micros, Ordering::AcqRel) == 0 {
        cell.queue_spend(SpendScope::Org(key.org.clone()));
    }
}
