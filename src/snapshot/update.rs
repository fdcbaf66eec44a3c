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
pub(crate) enum SpenderId {
    Key(KeyId),
    Org(OrgId),
}

/// Spend drained from the snapshot for the store to write (see
/// [`super::SnapshotCell::drain_spend`]); given back with
/// [`super::SnapshotCell::restore_spend`] when the write fails.
#[derive(Debug)]
pub(crate) struct Drained {
    pub spender: SpenderId,
    /// Micro-dollars (never zero).
    pub micros: i64,
    /// Where it came from, for giving it back.
    pub(super) from: super::UnflushedSpender,
}

/// The snapshot fed by hand, without any store: what a replica applying a change log does.
#[cfg(test)]
mod tests {
    use super::super::{SnapshotCell, add_spend};
    use super::*;
    use crate::model::{Period, Usd};

    const NOW: i64 = 1_750_000_000_000_000;

    fn org(id: &OrgId) -> OrgState {
        let config =
            OrgConfig::parse(r#"{"budgets":{"enabled":true,"limit":5,"period":"monthly"}}"#)
                .unwrap();
        let period = org_budget_period(&config).unwrap();
        OrgState {
            id: id.clone(),
            status: OrgStatus::Active,
            config,
            spent: Some(Spent {
                window_start: period.window(NOW).0,
                micros: 400_000,
            }),
        }
    }

    fn key(id: KeyId, digest: KeyDigest, spent: Option<i64>) -> KeyState {
        let budget = Budget::new(Usd::parse("1").unwrap(), Period::Monthly);
        KeyState {
            id,
            digest,
            revoked: false,
            expires_at: None,
            own: spent.map(|micros| {
                let window_start = Period::Monthly.window(NOW).0;
                Box::new(KeyLimits {
                    budget: Some((
                        budget,
                        Spent {
                            window_start,
                            micros,
                        },
                    )),
                    ..KeyLimits::default()
                })
            }),
        }
    }

    fn changes(org: &OrgId, keys: Vec<KeyState>) -> Update {
        let mut u = Update::new(Extent::Changes, NOW);
        u.keys.push(OrgKeys {
            org: org.clone(),
            keys,
        });
        u
    }

    fn key_spent(cell: &SnapshotCell, d: &KeyDigest) -> Option<i64> {
        let snap = cell.current.load();
        let rt = cell.key_rt(snap.find(d)?.rt)?;
        let b = cell.key_budget(rt)?;
        (!b.is_detached()).then(|| b.snapshot(NOW).spent_micros)
    }

    #[test]
    fn plain_updates_load_change_rotate_drain_and_close() {
        let cell = SnapshotCell::new(Arc::new(Policies::default_set().unwrap()));
        let acme = OrgId::parse("acme").unwrap();
        let id = KeyId::random();
        let (d1, d2) = ([1u8; 32], [2u8; 32]);

        let mut full = Update::new(Extent::Full, NOW);
        full.orgs.push(org(&acme));
        full.keys.push(OrgKeys {
            org: acme.clone(),
            keys: vec![key(id, d1, Some(900_000))],
        });
        cell.apply(full).unwrap();
        assert_eq!(cell.current.load().key_count(), 1);
        assert_eq!(
            key_spent(&cell, &d1),
            Some(900_000),
            "budget starts from the spend given"
        );
        let org_rt = cell.org_rt(0).unwrap();
        let org_spent = org_rt.budget.get().unwrap().snapshot(NOW).spent_micros;
        assert_eq!(org_spent, 400_000);

        // Budget removed, then back: the counter is re-derived from the spend handed in.
        cell.apply(changes(&acme, vec![key(id, d1, None)])).unwrap();
        assert_eq!(key_spent(&cell, &d1), None);
        cell.apply(changes(&acme, vec![key(id, d1, Some(950_000))]))
            .unwrap();
        assert_eq!(key_spent(&cell, &d1), Some(950_000));

        // Rotation: the previous digest leaves, the runtime (and its budget) stays.
        let rt = cell.current.load().find(&d1).unwrap().rt;
        let mut rotate = changes(&acme, vec![key(id, d2, Some(0))]);
        rotate.rotated.push((d1, d2));
        cell.apply(rotate).unwrap();
        let snap = cell.current.load();
        assert!(snap.find(&d1).is_none());
        assert_eq!(snap.find(&d2).unwrap().rt, rt);
        assert_eq!(
            key_spent(&cell, &d2),
            Some(950_000),
            "an existing counter keeps its spend"
        );

        // Spend comes back as plain amounts, and can be given back.
        add_spend(cell.key_rt(rt).unwrap(), 7, &cell);
        assert!(cell.spend_queued());
        let drained = cell.drain_spend();
        let mut got: Vec<(SpenderId, i64)> = drained
            .iter()
            .map(|d| (d.spender.clone(), d.micros))
            .collect();
        got.sort_by_key(|(s, _)| matches!(s, SpenderId::Org(_)));
        assert_eq!(
            got,
            [(SpenderId::Key(id), 7), (SpenderId::Org(acme.clone()), 7)]
        );
        assert!(cell.drain_spend().is_empty());
        cell.restore_spend(&drained);
        assert_eq!(cell.drain_spend().len(), 2);

        // A key of an org the snapshot never saw is refused, and nothing is installed.
        let before = cell.publications();
        let other = OrgId::parse("other").unwrap();
        assert!(
            cell.apply(changes(&other, vec![key(KeyId::random(), [3; 32], None)]))
                .is_err()
        );
        assert_eq!(cell.publications(), before);

        cell.apply(Update::close()).unwrap();
        assert!(cell.is_stale() && cell.is_closed());
        assert_eq!(cell.current.load().key_count(), 0);
    }
}
