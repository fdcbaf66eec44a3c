//! Spend that survives restarts: a ledger of micro-dollars per spender (a key or an org) per
//! UTC day, plus an all-time row. The gateway adds spend to in-memory counters; a flusher
//! moves it into redb in batched commits (every second by default, on `flush()` and when the
//! store closes). The store reads each budget's window from the ledger into the snapshot's
//! updates (at open and on every commit that configures it), so a new or re-enabled budget
//! counts the spend of its current period.

use std::collections::HashMap;

use redb::ReadableTable;

use super::tables::SPEND;
use super::tx::{ReadRecords, WriteTx};
use crate::error::Error;
use crate::limits::DAY_MICROS;
use crate::model::{KeyId, OrgId, Period};
use crate::snapshot::{Drained, SpenderId};

/// The row that accumulates all-time spend of a spender.
const TOTAL_ROW: i64 = i64::MIN;
/// Day rows older than this are pruned at flush time (the longest period is a month).
const KEEP_DAYS: i64 = 62;

/// Ledger name of a key (its form is part of the file format: `records.rs`).
pub(crate) fn key_ledger_name(id: &KeyId) -> String {
    super::records::key_ledger_name(id)
}

/// Ledger name of an org (its form is part of the file format: `records.rs`).
pub(crate) fn org_ledger_name(id: &OrgId) -> String {
    super::records::org_ledger_name(id)
}

/// Spend recorded for `ledger_name` in the window of `period` that contains `now`.
pub(crate) fn spent_in(
    r: &impl ReadRecords,
    ledger_name: &str,
    period: Period,
    now: i64,
) -> Result<(i64, i64), Error> {
    let io = |e: redb::StorageError| Error::storage("reading spend", e);
    let (start, end) = period.window(now);
    let t = r.table(SPEND)?;
    if period == Period::Total {
        let v = t
            .get((ledger_name, TOTAL_ROW))
            .map_err(io)?
            .map_or(0, |v| v.value());
        return Ok((start, v));
    }
    let mut sum = 0i64;
    for item in t
        .range((ledger_name, start)..(ledger_name, end))
        .map_err(io)?
    {
        let (_, v) = item.map_err(io)?;
        sum = sum.saturating_add(v.value());
    }
    Ok((start, sum))
}

impl super::Store {
    /// Writes the spend recorded by the gateway since the last flush to the store file in
    /// one transaction. Runs every second in the background (see
    /// [`super::StoreBuilder::spend_flush_interval`]) and when the store closes; call it to
    /// make spend durable now. On failure the amounts stay in memory for the next try.
    /// Returns the number of spenders (keys and orgs) written.
    ///
    /// ```
    /// # let store = orgstore::Store::open_temporary().unwrap();
    /// assert_eq!(store.flush().unwrap(), 0);
    /// ```
    pub fn flush(&self) -> Result<usize, Error> {
        flush(&self.inner)
    }
}

/// The ledger name of a spender.
fn ledger_name(s: &SpenderId) -> String {
    match s {
        SpenderId::Key(k) => key_ledger_name(k),
        SpenderId::Org(o) => org_ledger_name(o),
    }
}

/// Moves in-memory spend into the ledger (see [`super::Store::flush`]).
pub(crate) fn flush(inner: &super::Inner) -> Result<usize, Error> {
    let cell = &inner.snapshot;
    // Idle: no write transaction at all.
    if !cell.spend_queued() {
        return Ok(0);
    }
    let mut drained: Vec<Drained> = Vec::new();
    let mut written = 0;
    let now = crate::model::Timestamp::now().as_micros();
    let day = now.div_euclid(DAY_MICROS) * DAY_MICROS;
    let result = inner.write_unaudited(|tx: &mut WriteTx| {
        // Drained under the writer lock, which snapshot updates are applied under too: a
        // budget counter derived from the ledger plus unflushed spend sees every amount in
        // one of the two.
        drained = cell.drain_spend();
        let mut amounts: HashMap<String, i64> = HashMap::new();
        for d in &drained {
            let e = amounts.entry(ledger_name(&d.spender)).or_insert(0);
            *e = e.saturating_add(d.micros);
        }
        amounts.retain(|_, a| *a != 0);
        let io = |e: redb::StorageError| Error::storage("writing spend", e);
        let mut t = tx
            .txn
            .open_table(SPEND)
            .map_err(|e| Error::storage("writing spend", e))?;
        for (name, amount) in &amounts {
            for row in [day, TOTAL_ROW] {
                let cur = t
                    .get((name.as_str(), row))
                    .map_err(io)?
                    .map_or(0, |v| v.value());
                t.insert((name.as_str(), row), cur.saturating_add(*amount))
                    .map_err(io)?;
            }
            let cutoff = day - KEEP_DAYS * DAY_MICROS;
            let old: Vec<i64> = t
                .range((name.as_str(), TOTAL_ROW + 1)..(name.as_str(), cutoff))
                .map_err(io)?
                .map(|i| i.map(|(k, _)| k.value().1).map_err(io))
                .collect::<Result<_, _>>()?;
            for d in old {
                t.remove((name.as_str(), d)).map_err(io)?;
            }
        }
        written = amounts.len();
        Ok(())
    });
    match result {
        Ok(()) => {
            // A fleet replica also reports it for the fleet's totals.
            #[cfg(feature = "fleet")]
            if let Some(log) = inner.log.get() {
                let spent: Vec<_> = drained
                    .iter()
                    .map(|d| (d.spender.clone(), d.micros))
                    .collect();
                log.spent(&spent);
            }
            Ok(written)
        }
        Err(e) => {
            // Not written: the amounts wait in memory for the next try.
            cell.restore_spend(&drained);
            Err(e)
        }
    }
}

impl crate::gateway::SpendSink for super::Inner {
    fn flush_now(&self) {
        // The spend stays queued in memory when the write fails; the next flush retries.
        let _ = flush(self);
    }
}
