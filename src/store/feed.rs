//! Feeding the gateway snapshot: the store reads what a commit changed (or, at open and
//! for a rebuild, everything) and hands it to [`SnapshotCell::apply`] as plain values,
//! with the ledger's spend of every budget it configures. The snapshot never reads the
//! file.

use std::collections::{HashMap, HashSet};
use std::ops::Bound;

use redb::{ReadableTable, ReadableTableMetadata};

use super::records::KeyView;
use super::spend::{key_ledger_name, org_ledger_name, spent_in};
use super::tables::{KEYS, ORGS};
use super::tx::{Changes, ReadRecords};
use crate::error::Error;
use crate::model::{KeyId, Org, OrgId};
use crate::snapshot::{
    Extent, KeyLimits, KeyState, OrgKeys, OrgState, SnapshotCell, Spent, Update, org_budget_period,
};

/// The update of everything in the store, read at `now` (unix micros).
pub(crate) fn full(r: &(impl ReadRecords + Sync), now: i64) -> Result<Update, Error> {
    let io = |e: redb::StorageError| Error::storage("loading the snapshot", e);
    let mut u = Update::new(Extent::Full, now);
    {
        let t = r.table(ORGS)?;
        for item in t.iter().map_err(io)? {
            let (_, v) = item.map_err(io)?;
            let org: Org = super::codec::decode("org", v.value())?;
            u.orgs.push(org_state(r, &org, now)?);
        }
    }
    let org_ix: HashMap<&str, usize> = u
        .orgs
        .iter()
        .enumerate()
        .map(|(i, o)| (o.id.as_str(), i))
        .collect();
    // Decoding dominates: scan the two halves of the (random) key id space in parallel,
    // each half grouped by org as it is read.
    let scan = |range: (Bound<&[u8; 16]>, Bound<&[u8; 16]>)| -> Result<Vec<Vec<KeyState>>, Error> {
        let t = r.table(KEYS)?;
        // About the half's share per org, so the capacities add up to the half's keys.
        let per_org = t.len().map_err(io)? as usize / org_ix.len().max(1) / 2;
        let mut out: Vec<Vec<KeyState>> = (0..org_ix.len())
            .map(|_| Vec::with_capacity(per_org))
            .collect();
        for item in t.range::<&[u8; 16]>(range).map_err(io)? {
            let (_, v) = item.map_err(io)?;
            let key = KeyView::decode(v.value())?;
            let group = org_ix
                .get(key.org)
                .and_then(|&i| out.get_mut(i))
                .ok_or_else(|| Error::corrupt("key", "key of an unknown org"))?;
            group.push(key_state(r, &key, now)?);
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
    for half in [low?, high] {
        for (keys, o) in half.into_iter().zip(&u.orgs) {
            if !keys.is_empty() {
                u.keys.push(OrgKeys {
                    org: o.id.clone(),
                    keys,
                });
            }
        }
    }
    Ok(u)
}

/// The update of what one commit changed, read at `now` after the commit: each changed org
/// with all its keys (they inherit its settings), then each other changed key.
pub(crate) fn changes(r: &impl ReadRecords, changes: &Changes, now: i64) -> Result<Update, Error> {
    let mut u = Update::new(Extent::Changes, now);
    let mut org_ids: Vec<&OrgId> = changes.orgs.iter().collect();
    org_ids.sort_unstable();
    org_ids.dedup();
    let mut done: HashSet<KeyId> = HashSet::new();
    for id in org_ids {
        let org = r.org_including_deleted(id)?;
        u.orgs.push(org_state(r, &org, now)?);
        let keys = r
            .keys_of(id)?
            .iter()
            .map(|rec| {
                done.insert(rec.info.id);
                key_state(r, &KeyView::of(rec), now)
            })
            .collect::<Result<_, Error>>()?;
        u.keys.push(OrgKeys {
            org: id.clone(),
            keys,
        });
    }
    for (id, old_digest) in &changes.keys {
        let Some(rec) = r.key(id)? else { continue };
        if let Some(od) = old_digest.filter(|d| *d != rec.digest) {
            u.rotated.push((od, rec.digest));
        }
        if !done.insert(*id) {
            continue;
        }
        let state = key_state(r, &KeyView::of(&rec), now)?;
        match u.keys.iter_mut().find(|g| g.org == rec.info.org) {
            Some(g) => g.keys.push(state),
            None => u.keys.push(OrgKeys {
                org: rec.info.org.clone(),
                keys: vec![state],
            }),
        }
    }
    Ok(u)
}

/// Applies the update of a commit; if that fails, a full one (a rebuild).
pub(crate) fn publish(
    cell: &SnapshotCell,
    r: &(impl ReadRecords + Sync),
    c: &Changes,
    now: i64,
) -> Result<(), Error> {
    changes(r, c, now)
        .and_then(|u| cell.apply(u))
        .or_else(|_| cell.apply(full(r, now)?))
}

/// An org resolved against its active config, with the spend of its budget.
fn org_state(r: &impl ReadRecords, org: &Org, now: i64) -> Result<OrgState, Error> {
    let (_, config) = r.active_config(org)?;
    let spent = match org_budget_period(&config) {
        Some(period) => Some(spent(r, &org_ledger_name(&org.id), period, now)?),
        None => None,
    };
    Ok(OrgState {
        id: org.id.clone(),
        status: org.status,
        config,
        spent,
    })
}

/// A key's state from its stored view, with the spend of its budget.
fn key_state(r: &impl ReadRecords, g: &KeyView<'_>, now: i64) -> Result<KeyState, Error> {
    let plain = g.rpm.is_none()
        && g.tpm.is_none()
        && g.budget.is_none()
        && g.models.is_empty()
        && g.ips.is_empty();
    let own = if plain {
        None
    } else {
        let budget = match g.budget {
            Some(b) => Some((b, spent(r, &key_ledger_name(&g.id), b.period, now)?)),
            None => None,
        };
        Some(Box::new(KeyLimits {
            rpm: g.rpm,
            tpm: g.tpm,
            budget,
            models: g.models.iter().map(|m| (*m).to_owned()).collect(),
            ips: g.ips.iter().map(|m| (*m).to_owned()).collect(),
        }))
    };
    Ok(KeyState {
        id: g.id,
        digest: g.digest,
        revoked: g.revoked,
        expires_at: g.expires_at,
        own,
    })
}

fn spent(
    r: &impl ReadRecords,
    scope: &str,
    period: crate::model::Period,
    now: i64,
) -> Result<Spent, Error> {
    let (window_start, micros) = spent_in(r, scope, period, now)?;
    Ok(Spent {
        window_start,
        micros,
    })
}
