//! A store that is one replica of a fleet (feature `fleet`): its file is a durable copy of
//! the fleet's records, kept by applying the fleet's change log in order, and every change
//! it makes is committed to that log first.
//!
//! The store knows the log only through [`Log`] (the fleet module implements it): a write
//! takes the log's head, catches this replica up to it, runs the operation on exactly that
//! state, and hands the operation's [`journal`](super::journal) to the log; the redb
//! transaction, which also records the applied position in `meta`, commits only after the
//! log did. Entries from the log are applied byte for byte (raw puts and removals, so
//! applying one twice changes nothing), and published to the snapshot through the same
//! path as a local commit.

use std::sync::{Arc, Weak};

use redb::{Key, ReadableTable, TableDefinition, TableHandle, Value};

use super::bootstrap::{Chunk, write_chunks};
use super::journal::Entry;
use super::policy_set::{ACTIVE, POLICY_AUDIT, POLICY_SETS};
use super::tables::*;
use super::tx::{Changes, ReadRecords, WriteTx};
use super::{Inner, Store, contain_damage};
use crate::error::Error;
use crate::model::{KeyId, OrgId};

/// `meta` entry: the id of the fleet this file is a replica of (local, never shipped).
const FLEET_ID: &str = "fleet_id";
/// `meta` entry: the position of the last log entry applied to this file (local).
const FLEET_POSITION: &str = "fleet_position";
/// `meta` entry: [`entry_hash`] of that entry, when known (local): a replica compares it
/// with the log's entry at its position, and copies the whole state again when they
/// differ (an engine that lost acknowledged commits and reused their positions).
const FLEET_HASH: &str = "fleet_entry_hash";

/// The first 8 bytes (big-endian) of the SHA-256 of a log entry's bytes: what the engine
/// computes as `substring(sha256(entry) from 1 for 8)`.
pub(crate) fn entry_hash(bytes: &[u8]) -> u64 {
    use sha2::Digest;
    let d = sha2::Sha256::digest(bytes);
    u64::from_be_bytes([d[0], d[1], d[2], d[3], d[4], d[5], d[6], d[7]])
}

/// Where a replica is in the fleet's log.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Applied {
    /// The fleet this file is a replica of (`None`: not one yet).
    pub fleet: Option<u64>,
    /// The position of the last applied entry.
    pub position: u64,
    /// [`entry_hash`] of that entry, when known.
    pub hash: Option<u64>,
}

/// The fleet's change log, as a replicated store uses it.
pub(crate) trait Log: Send + Sync {
    /// Appends one write, serialized fleet-wide: takes the log's head (no other writer of
    /// the fleet can append until this returns), brings `inner` up to it with
    /// [`Inner::apply_log`], then calls `stage` with the position the write will have.
    /// `stage` runs the operation in a redb transaction it keeps uncommitted and returns its
    /// journal: empty means nothing changed and nothing is appended. An error of `stage` is
    /// returned as is, after the log's transaction was rolled back; a log that cannot be
    /// reached is `Unavailable`.
    fn append(
        &self,
        inner: &Inner,
        stage: &mut dyn FnMut(u64) -> Result<Vec<Entry>, Error>,
    ) -> Result<(), Error>;

    /// The last store handle was dropped: stop the background work.
    fn close(&self);

    /// Spend this replica just wrote to its own ledger (per spender, micro-dollars), for
    /// the fleet's totals.
    fn spent(&self, drained: &[(crate::snapshot::SpenderId, i64)]);

    /// The fleet's spend of `spender` (every replica's, micro-dollars) in the windows of
    /// [`super::usage::FLEET_PERIODS`] containing `now` (Unix micros): an admin read that asks the engine.
    /// `None` when this replica does not share its spend (no limits thread).
    fn fleet_spend(
        &self,
        spender: &crate::snapshot::SpenderId,
        now: i64,
    ) -> Option<Result<[i64; 4], Error>>;

    /// The implementation, for the fleet's own queries.
    fn as_any(&self) -> &dyn std::any::Any;
}

/// [`Inner::commit`] of a replica: the log first, then the redb transaction.
pub(crate) fn commit<T>(
    inner: &Inner,
    log: &dyn Log,
    f: impl FnOnce(&mut WriteTx) -> Result<T, Error>,
) -> Result<(T, Changes), Error> {
    let mut f = Some(f);
    let mut staged: Option<(WriteTx, T)> = None;
    log.append(inner, &mut |position| {
        let f = f
            .take()
            .ok_or_else(|| Error::corrupt("fleet write", "a write was staged twice"))?;
        let mut tx = inner.begin_tx(true)?;
        let v = f(&mut tx)?;
        let entries = tx.journal.take();
        if !entries.is_empty() {
            set_meta(&tx.txn, FLEET_POSITION, position)?;
            let hash = entry_hash(&super::journal::encode(&entries));
            set_meta(&tx.txn, FLEET_HASH, hash)?;
        }
        staged = Some((tx, v));
        Ok(entries)
    })?;
    let (tx, v) = staged.ok_or_else(|| Error::corrupt("fleet write", "no write was staged"))?;
    let WriteTx { txn, changes, .. } = tx;
    // Committed in the log already: if this fails, the tailer applies the entry again.
    txn.commit().map_err(|e| Error::storage("committing", e))?;
    Ok((v, changes))
}

/// A handle on a replica's store that does not keep it open (held by its background
/// threads, which stop once the store is gone).
#[derive(Clone)]
pub(crate) struct Replica(Weak<Inner>);

impl Replica {
    /// The store, while it is open.
    pub(crate) fn upgrade(&self) -> Option<Arc<Inner>> {
        self.0.upgrade()
    }
}

impl Store {
    /// A handle on this store that does not keep it open.
    pub(crate) fn replica(&self) -> Replica {
        Replica(Arc::downgrade(&self.inner))
    }

    /// Makes this store a replica: from now on every change goes through `log`.
    pub(crate) fn attach_log(&self, log: Arc<dyn Log>) -> Result<(), Error> {
        self.inner
            .log
            .set(log)
            .map_err(|_| Error::invalid("fleet", "this store is already a fleet replica"))
    }

    /// The inner store, for the fleet's own work on it.
    pub(crate) fn inner(&self) -> &Inner {
        &self.inner
    }

    /// Watches `dir` as [`super::StoreBuilder::watch_policies`] does.
    pub(crate) fn watch_policies(&self, dir: std::path::PathBuf) {
        super::watch::spawn(&self.inner, dir);
    }

    /// The fleet's log, when this store is a replica.
    pub(crate) fn log(&self) -> Option<&Arc<dyn Log>> {
        self.inner.log.get()
    }
}

fn rio(e: impl Into<Box<dyn std::error::Error + Send + Sync>>) -> Error {
    Error::storage("reading the replica", e)
}

fn wio(e: impl Into<Box<dyn std::error::Error + Send + Sync>>) -> Error {
    Error::storage("writing the replica", e)
}

fn set_meta(txn: &redb::WriteTransaction, name: &str, v: u64) -> Result<(), Error> {
    txn.open_table(META)
        .map_err(wio)?
        .insert(name, v)
        .map_err(wio)?;
    Ok(())
}

/// The tables whose records every replica holds (`meta` only for the active policy
/// version: its other entries are this file's own).
fn clear_replicated(txn: &redb::WriteTransaction) -> Result<(), Error> {
    fn clear<K: Key + 'static, V: Value + 'static>(
        def: TableDefinition<'static, K, V>,
        txn: &redb::WriteTransaction,
    ) -> Result<(), Error> {
        txn.delete_table(def).map_err(wio)?;
        txn.open_table(def).map_err(wio)?;
        Ok(())
    }
    clear(ORGS, txn)?;
    clear(CONFIGS, txn)?;
    clear(MEMBERS, txn)?;
    clear(MEMBER_ORGS, txn)?;
    clear(KEYS, txn)?;
    clear(KEYS_BY_ORG, txn)?;
    clear(KEY_DIGESTS, txn)?;
    clear(ISSUED_DIGESTS, txn)?;
    clear(AUDIT, txn)?;
    clear(POLICY_SETS, txn)?;
    clear(POLICY_AUDIT, txn)?;
    clear(INVITES, txn)?;
    clear(INVITES_BY_ORG, txn)?;
    clear(INVITE_DIGESTS, txn)?;
    txn.open_table(META)
        .map_err(wio)?
        .remove(ACTIVE)
        .map_err(wio)?;
    Ok(())
}

/// One raw write: the key and value bytes as redb's byte forms of `def`'s types.
type Row<'a> = (&'a [u8], Option<&'a [u8]>);

pub(crate) fn put_rows<K: Key + 'static, V: Value + 'static>(
    def: TableDefinition<'static, K, V>,
    txn: &redb::WriteTransaction,
    rows: &[Row<'_>],
) -> Result<(), Error> {
    let bad = || Error::corrupt("fleet log", "an entry does not fit its table");
    let mut t = txn.open_table(def).map_err(wio)?;
    for (k, v) in rows {
        if K::fixed_width().is_some_and(|w| w != k.len()) {
            return Err(bad());
        }
        let key = K::from_bytes(k);
        match v {
            Some(v) => {
                if V::fixed_width().is_some_and(|w| w != v.len()) {
                    return Err(bad());
                }
                t.insert(key, V::from_bytes(v)).map_err(wio)?;
            }
            None => {
                t.remove(key).map_err(wio)?;
            }
        }
    }
    Ok(())
}

/// Applies `rows` to the replicated table named `table`.
fn write_rows(txn: &redb::WriteTransaction, table: &str, rows: &[Row<'_>]) -> Result<(), Error> {
    struct Put<'a, 'r> {
        txn: &'a redb::WriteTransaction,
        rows: &'a [Row<'r>],
    }
    impl RowSink for Put<'_, '_> {
        fn rows<K: Key + 'static, V: Value + 'static>(
            &mut self,
            def: TableDefinition<'static, K, V>,
        ) -> Result<(), Error> {
            put_rows(def, self.txn, self.rows)
        }
    }
    let only_active = rows.iter().all(|(k, _)| *k == ACTIVE.as_bytes());
    for_table(table, only_active, &mut Put { txn, rows })
}

/// What is done with the rows of one replicated table, given its definition.
pub(crate) trait RowSink {
    /// Handles the rows of `def`.
    fn rows<K: Key + 'static, V: Value + 'static>(
        &mut self,
        def: TableDefinition<'static, K, V>,
    ) -> Result<(), Error>;
}

/// Calls `sink` with the definition of the replicated table named `table`; `meta` is one
/// only when every row is its active policy version (`only_active`), the rest of it being
/// the file's own.
pub(crate) fn for_table(
    table: &str,
    only_active: bool,
    sink: &mut impl RowSink,
) -> Result<(), Error> {
    match table {
        t if t == ORGS.name() => sink.rows(ORGS),
        t if t == CONFIGS.name() => sink.rows(CONFIGS),
        t if t == MEMBERS.name() => sink.rows(MEMBERS),
        t if t == MEMBER_ORGS.name() => sink.rows(MEMBER_ORGS),
        t if t == KEYS.name() => sink.rows(KEYS),
        t if t == KEYS_BY_ORG.name() => sink.rows(KEYS_BY_ORG),
        t if t == KEY_DIGESTS.name() => sink.rows(KEY_DIGESTS),
        t if t == ISSUED_DIGESTS.name() => sink.rows(ISSUED_DIGESTS),
        t if t == AUDIT.name() => sink.rows(AUDIT),
        t if t == POLICY_SETS.name() => sink.rows(POLICY_SETS),
        t if t == POLICY_AUDIT.name() => sink.rows(POLICY_AUDIT),
        t if t == INVITES.name() => sink.rows(INVITES),
        t if t == INVITES_BY_ORG.name() => sink.rows(INVITES_BY_ORG),
        t if t == INVITE_DIGESTS.name() => sink.rows(INVITE_DIGESTS),
        // Only the active policy version is shipped; the rest of `meta` is local.
        t if t == META.name() && only_active => sink.rows(META),
        other => Err(Error::corrupt(
            "fleet log",
            format!(
                "the log names a table `{other}` this build does not replicate; upgrade orgstore"
            ),
        )),
    }
}

fn dump_rows<K: Key + 'static, V: Value + 'static>(
    def: TableDefinition<'static, K, V>,
    r: &redb::ReadTransaction,
    out: &mut Vec<Entry>,
) -> Result<(), Error> {
    let t = match r.open_table(def) {
        Ok(t) => t,
        Err(redb::TableError::TableDoesNotExist(_)) => return Ok(()),
        Err(e) => return Err(rio(e)),
    };
    for item in t.iter().map_err(rio)? {
        let (k, v) = item.map_err(rio)?;
        let key = K::as_bytes(&k.value()).as_ref().to_vec();
        if def.name() == META.name() && key != ACTIVE.as_bytes() {
            continue;
        }
        out.push(Entry {
            table: def.name().to_owned(),
            key,
            value: Some(V::as_bytes(&v.value()).as_ref().to_vec()),
        });
    }
    Ok(())
}

impl Inner {
    /// The writer lock: the fleet's tailer holds it while it applies entries.
    pub(crate) fn lock_writer(&self) -> parking_lot::MutexGuard<'_, ()> {
        self.writer.lock()
    }

    /// Where this file is in the fleet's log.
    pub(crate) fn applied(&self) -> Result<Applied, Error> {
        let r = self.db.begin_read().map_err(rio)?;
        let t = r.open_table(META).map_err(rio)?;
        let get = |k: &str| -> Result<Option<u64>, Error> {
            Ok(t.get(k).map_err(rio)?.map(|v| v.value()))
        };
        Ok(Applied {
            fleet: get(FLEET_ID)?,
            position: get(FLEET_POSITION)?.unwrap_or(0),
            hash: get(FLEET_HASH)?,
        })
    }

    /// Whether the file holds no org (a fresh file, which may become any fleet's replica).
    pub(crate) fn has_no_orgs(&self) -> Result<bool, Error> {
        use redb::ReadableTableMetadata;
        let r = self.db.begin_read().map_err(rio)?;
        r.open_table(ORGS).map_err(rio)?.is_empty().map_err(rio)
    }

    /// The fingerprint of the key sealing provider secrets (see `Sealer::fingerprint`).
    pub(crate) fn key_fingerprint(&self) -> String {
        self.sealer.fingerprint()
    }

    /// Applies log entries `(position, journal bytes)` in order in one transaction that
    /// also records the last position, then publishes what they changed. Entries at or
    /// below the applied position are skipped (applied already); a gap is an error. Called
    /// with the writer lock held. Returns the applied position.
    pub(crate) fn apply_log(&self, batch: &[(u64, Vec<u8>)]) -> Result<u64, Error> {
        contain_damage(|| {
            let mut pos = self.applied()?.position;
            let mut hash = None;
            let tx = self.begin_tx(false)?;
            let mut changes = Changes::default();
            let mut policies = false;
            let mut applied = 0;
            for (p, bytes) in batch {
                if *p <= pos {
                    continue;
                }
                if *p != pos + 1 {
                    return Err(Error::corrupt(
                        "fleet log",
                        format!("entry {p} follows {pos}: the log has a gap"),
                    ));
                }
                for e in super::journal::decode(bytes)? {
                    note_change(&tx, &e, &mut changes, &mut policies)?;
                    write_rows(&tx.txn, &e.table, &[(&e.key, e.value.as_deref())])?;
                }
                pos = *p;
                hash = Some(entry_hash(bytes));
                applied += 1;
            }
            if applied == 0 {
                return Ok(pos);
            }
            set_meta(&tx.txn, FLEET_POSITION, pos)?;
            if let Some(h) = hash {
                set_meta(&tx.txn, FLEET_HASH, h)?;
            }
            tx.txn
                .commit()
                .map_err(|e| Error::storage("committing", e))?;
            self.publish(&changes);
            if policies {
                self.reload_policies()?;
            }
            Ok(pos)
        })
    }

    /// Replaces every replicated record with `chunks` (a consistent copy of the fleet's
    /// state at `position`, table by table as [`super::bootstrap::shipped_tables`] lists
    /// them, whose entry has `hash` when the log still holds it) in one transaction,
    /// rebuilds the key records' indexes, marks the file a replica of `fleet_id` at
    /// `position`, and reloads the snapshot and the policy set. Called with the writer lock
    /// held.
    pub(crate) fn bootstrap(
        &self,
        fleet_id: u64,
        position: u64,
        hash: Option<u64>,
        chunks: &mut dyn Iterator<Item = Result<Chunk, Error>>,
    ) -> Result<(), Error> {
        contain_damage(|| {
            let tx = self.begin_tx(false)?;
            clear_replicated(&tx.txn)?;
            write_chunks(&tx.txn, chunks)?;
            set_meta(&tx.txn, FLEET_ID, fleet_id)?;
            set_meta(&tx.txn, FLEET_POSITION, position)?;
            let mut meta = tx.txn.open_table(META).map_err(wio)?;
            match hash {
                Some(h) => meta.insert(FLEET_HASH, h).map(drop),
                None => meta.remove(FLEET_HASH).map(drop),
            }
            .map_err(wio)?;
            drop(meta);
            tx.txn
                .commit()
                .map_err(|e| Error::storage("committing", e))?;
            self.rebuild_snapshot()?;
            self.reload_policies()
        })
    }

    /// Marks this file a replica of `fleet_id` at `position` without changing its records
    /// (the file a fleet was created from). Called with the writer lock held.
    pub(crate) fn mark_replica(&self, fleet_id: u64, position: u64) -> Result<(), Error> {
        let tx = self.begin_tx(false)?;
        set_meta(&tx.txn, FLEET_ID, fleet_id)?;
        set_meta(&tx.txn, FLEET_POSITION, position)?;
        tx.txn.commit().map_err(|e| Error::storage("committing", e))
    }

    /// Every replicated record of this file, table by table in key order: what a fleet is
    /// created from, and what two converged replicas hold alike.
    pub(crate) fn replicated_rows(&self) -> Result<Vec<Entry>, Error> {
        contain_damage(|| {
            let r = self.db.begin_read().map_err(rio)?;
            let mut out = Vec::new();
            dump_rows(ORGS, &r, &mut out)?;
            dump_rows(CONFIGS, &r, &mut out)?;
            dump_rows(MEMBERS, &r, &mut out)?;
            dump_rows(MEMBER_ORGS, &r, &mut out)?;
            dump_rows(KEYS, &r, &mut out)?;
            dump_rows(KEYS_BY_ORG, &r, &mut out)?;
            dump_rows(KEY_DIGESTS, &r, &mut out)?;
            dump_rows(ISSUED_DIGESTS, &r, &mut out)?;
            dump_rows(AUDIT, &r, &mut out)?;
            dump_rows(POLICY_SETS, &r, &mut out)?;
            dump_rows(POLICY_AUDIT, &r, &mut out)?;
            dump_rows(INVITES, &r, &mut out)?;
            dump_rows(INVITES_BY_ORG, &r, &mut out)?;
            dump_rows(INVITE_DIGESTS, &r, &mut out)?;
            dump_rows(META, &r, &mut out)?;
            Ok(out)
        })
    }

    /// Checks answer `unavailable` from now on, until [`Inner::refresh_snapshot`] (the
    /// fleet's head has not been confirmed for longer than the replica may lag).
    pub(crate) fn mark_unavailable(&self) {
        self.snapshot
            .stale
            .store(true, std::sync::atomic::Ordering::Release);
    }

    /// Rebuilds the snapshot from the file (which also ends [`Inner::mark_unavailable`]).
    /// Called with the writer lock held.
    pub(crate) fn refresh_snapshot(&self) -> Result<(), Error> {
        contain_damage(|| self.rebuild_snapshot())
    }

    /// Loads the active policy set from the file and enforces it.
    fn reload_policies(&self) -> Result<(), Error> {
        let r = self.db.begin_read().map_err(rio)?;
        let p = match super::policy_set::load_active(&r)? {
            Some(p) => p,
            None => super::open::default_policies()?,
        };
        let p = Arc::new(p);
        self.policies.store(p.clone());
        self.snapshot.apply(crate::snapshot::Update::policies(p))
    }
}

/// What an entry about to be applied changes for the snapshot (read before it is applied:
/// a key's previous digest) and whether it touches the policy set.
fn note_change(
    tx: &WriteTx,
    e: &Entry,
    changes: &mut Changes,
    policies: &mut bool,
) -> Result<(), Error> {
    let t = e.table.as_str();
    if t == ORGS.name() {
        let id = std::str::from_utf8(&e.key)
            .ok()
            .and_then(|s| OrgId::from_stored(s.to_owned()))
            .ok_or_else(|| Error::corrupt("fleet log", "an org id is damaged"))?;
        changes.orgs.push(id);
    } else if t == KEYS.name() {
        let id: [u8; 16] = e
            .key
            .as_slice()
            .try_into()
            .map_err(|_| Error::corrupt("fleet log", "a key id is damaged"))?;
        let id = KeyId::from_bytes(id);
        let old = tx.key(&id)?.map(|r| r.digest);
        changes.keys.push((id, old));
    } else if t == POLICY_SETS.name() || (t == META.name() && e.key == ACTIVE.as_bytes()) {
        *policies = true;
    }
    Ok(())
}
