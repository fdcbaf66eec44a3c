//! What the snapshot is fed: plain values describing a change of the store, applied with
//! [`super::SnapshotCell::apply`]. The snapshot never reads the store itself: the store
//! turns each commit (and the initial load, a policy reload and its close) into an
//! [`Update`], and takes drained spend back as [`Drained`] amounts to write. A replica
//! applying a change log can produce the same updates.

use std::sync::Arc;

use crate::config::OrgConfig;
use crate::keys::KeyDigest;
use crate::model::{Budget, KeyId, OrgId, OrgStatus, Period, Timestamp};
use crate::policy::Policies;

/// How far an update reaches.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Extent {
    /// The update carries every org and key: keys it does not carry leave the snapshot
    /// (the initial load, or a rebuild after an incremental update failed).
    Full,
    /// The update carries what changed; everything else stays as it is.
    Changes,
}

/// One change for the snapshot, as plain values. Applied in this order: `close`,
/// `policies`, then the orgs and keys.
pub(crate) struct Update {
    /// Whether `orgs` and `keys` are the whole state or only what changed.
    pub extent: Extent,
    /// Unix micros at which the spend in this update was read: budget windows and limit
    /// changes are taken at this instant.
    pub now: i64,
    /// Orgs whose record or active config changed, resolved.
    pub orgs: Vec<OrgState>,
    /// Keys whose resolved state may have changed, grouped by org (an org may head several
    /// groups). A change to an org changes what its keys inherit, so the store sends every
    /// key of a changed org too.
    pub keys: Vec<OrgKeys>,
    /// `(previous, current)` digests of keys whose secret changed: the previous entry
    /// leaves the snapshot and the key keeps its runtime (limits, spend) under the current.
    pub rotated: Vec<(KeyDigest, KeyDigest)>,
    /// A new policy set: every memoized decision is invalidated.
    pub policies: Option<Arc<Policies>>,
    /// The store was closed: from now on every check fails closed and nothing else is
    /// applied.
    pub close: bool,
}

impl Update {
    /// An update with nothing in it yet, of the given extent, read at `now`.
    pub fn new(extent: Extent, now: i64) -> Self {
        Self {
            extent,
            now,
            orgs: Vec::new(),
            keys: Vec::new(),
            rotated: Vec::new(),
            policies: None,
            close: false,
        }
    }

    /// An update that only installs a new policy set.
    pub fn policies(policies: Arc<Policies>) -> Self {
        Self {
            policies: Some(policies),
            ..Self::new(Extent::Changes, Timestamp::now().as_micros())
        }
    }

    /// The update that closes the snapshot for good.
    pub fn close() -> Self {
        Self {
            close: true,
            ..Self::new(Extent::Changes, Timestamp::now().as_micros())
        }
    }
}

/// One org as the gateway needs it.
pub(crate) struct OrgState {
    pub id: OrgId,
    pub status: OrgStatus,
    /// Its active config.
    pub config: OrgConfig,
    /// The ledger's spend in the current window of the org budget, when the config has an
    /// enabled budget with a limit.
    pub spent: Option<Spent>,
}

/// The period of an org's budget when its config has one the snapshot enforces (enabled,
/// with a limit): the window whose spend [`OrgState::spent`] must carry.
pub(crate) fn org_budget_period(config: &OrgConfig) -> Option<Period> {
    config
        .budgets()
        .filter(|b| b.enabled && b.limit.is_some())
        .map(|b| b.period)
}

/// Keys of one org.
pub(crate) struct OrgKeys {
    pub org: OrgId,
    pub keys: Vec<KeyState>,
}

/// One key as the gateway needs it. Kept small (a store of a million keys is loaded as a
/// million of these): what most keys do not have is out of line in [`KeyLimits`].
pub(crate) struct KeyState {
    pub id: KeyId,
    pub digest: KeyDigest,
    pub revoked: bool,
    pub expires_at: Option<Timestamp>,
    /// Its own limits and restrictions; `None` when it has none.
    pub own: Option<Box<KeyLimits>>,
}

/// A key's own limits and restrictions, as stored (validated when written).
#[derive(Default)]
pub(crate) struct KeyLimits {
    pub rpm: Option<u32>,
    pub tpm: Option<u64>,
    /// Its budget with the ledger's spend in the budget's current window.
    pub budget: Option<(Budget, Spent)>,
    /// Allowed models; empty means all.
    pub models: Vec<String>,
    /// Allowed client addresses or networks; empty means all.
    pub ips: Vec<String>,
}

/// Spend recorded in the ledger for one budget window (not counting what the snapshot
/// holds unflushed).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct Spent {
    /// Unix micros at which the window began.
    pub window_start: i64,
    /// Micro-dollars.
    pub micros: i64,
}

/// Whose spend: a key or an org.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub(crate) enum ScopeId {
    Key(KeyId),
    Org(OrgId),
}

/// Spend drained from the snapshot for the store to write (see
/// [`super::SnapshotCell::drain_spend`]); given back with
/// [`super::SnapshotCell::restore_spend`] when the write fails.
#[derive(Debug)]
pub(crate) struct Drained {
    pub scope: ScopeId,
    /// Micro-dollars (never zero).
    pub micros: i64,
    /// Where it came from, for giving it back.
    pub(super) from: super::Dirty,
}
