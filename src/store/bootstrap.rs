//! Filling a replica's file from a copy of the fleet's state: the shipped records arrive in
//! chunks, table by table ([`shipped_tables`]), each chunk written in the table's own key
//! order (redb inserts sorted keys several times faster than random ones). The two
//! secondary indexes of the key records (`keys_by_org`, `key_digests`) are not shipped:
//! they are a function of the key records and are rebuilt from them here, sorted, which
//! halves what the engine sends for a store of many keys.

use redb::{Key, TableDefinition, TableHandle, Value};

use super::policy_set::ACTIVE;
use super::records::KeyView;
use super::replica::{RowSink, for_table};
use super::tables::{KEY_DIGESTS, KEYS, KEYS_BY_ORG};
use crate::error::Error;

/// Rows of one shipped table, as they came: the raw bytes and, per row, where its key and
/// value are in them (redb's byte forms of the table's types).
#[derive(Debug, Default)]
pub(crate) struct Chunk {
    /// The redb table's name.
    pub table: String,
    /// The bytes the row ranges point into.
    pub bytes: Vec<u8>,
    /// Per row: the key's and the value's ranges in `bytes`.
    pub rows: Vec<(std::ops::Range<usize>, std::ops::Range<usize>)>,
}

impl Chunk {
    fn key(&self, i: usize) -> &[u8] {
        self.rows
            .get(i)
            .and_then(|(k, _)| self.bytes.get(k.clone()))
            .unwrap_or_default()
    }

    fn value(&self, i: usize) -> &[u8] {
        self.rows
            .get(i)
            .and_then(|(_, v)| self.bytes.get(v.clone()))
            .unwrap_or_default()
    }
}

/// The tables a copy of the state ships, in the order it ships them: every replicated
/// table but the indexes rebuilt from the key records (`meta` only for its active policy
/// version).
pub(crate) fn shipped_tables() -> Vec<String> {
    use super::policy_set::{POLICY_AUDIT, POLICY_SETS};
    use super::tables::*;
    [
        META.name(),
        ORGS.name(),
        CONFIGS.name(),
        MEMBERS.name(),
        MEMBER_ORGS.name(),
        AUDIT.name(),
        POLICY_SETS.name(),
        POLICY_AUDIT.name(),
        INVITES.name(),
        INVITES_BY_ORG.name(),
        INVITE_DIGESTS.name(),
        KEYS.name(),
        ISSUED_DIGESTS.name(),
    ]
    .map(str::to_owned)
    .to_vec()
}

/// The key records' indexes, collected while the key records are written.
#[derive(Default)]
pub(crate) struct KeyIndexes {
    /// The distinct org ids of the keys, in order of appearance.
    orgs: Vec<String>,
    org_ix: std::collections::HashMap<String, u32>,
    /// (index in `orgs`, key id) per key.
    by_org: Vec<(u32, [u8; 16])>,
    /// (digest, key id) per key.
    digests: Vec<([u8; 32], [u8; 16])>,
}

impl KeyIndexes {
    fn note(&mut self, id: &[u8], record: &[u8]) -> Result<(), Error> {
        let view = KeyView::decode(record)?;
        if view.id.as_bytes().as_slice() != id {
            return Err(Error::corrupt(
                "fleet state",
                "a key record is stored under another id",
            ));
        }
        let id = *view.id.as_bytes();
        let ix = match self.org_ix.get(view.org) {
            Some(&ix) => ix,
            None => {
                let ix = self.orgs.len() as u32;
                self.orgs.push(view.org.to_owned());
                self.org_ix.insert(view.org.to_owned(), ix);
                ix
            }
        };
        self.by_org.push((ix, id));
        self.digests.push((view.digest, id));
        Ok(())
    }

    /// Writes both indexes, each in its key order.
    fn write(mut self, txn: &redb::WriteTransaction) -> Result<(), Error> {
        let w = |e: redb::StorageError| Error::storage("writing the replica", e);
        self.digests.sort_unstable_by_key(|d| d.0);
        {
            let mut t = txn.open_table(KEY_DIGESTS).map_err(table_err)?;
            for (d, id) in &self.digests {
                t.insert(d, id).map_err(w)?;
            }
        }
        let orgs = &self.orgs;
        let org = |ix: u32| orgs.get(ix as usize).map_or("", String::as_str);
        self.by_org
            .sort_unstable_by(|a, b| (org(a.0), &a.1).cmp(&(org(b.0), &b.1)));
        let mut t = txn.open_table(KEYS_BY_ORG).map_err(table_err)?;
        for (ix, id) in &self.by_org {
            t.insert((org(*ix), id), ()).map_err(w)?;
        }
        Ok(())
    }
}

fn table_err(e: redb::TableError) -> Error {
    Error::storage("writing the replica", e)
}

/// Writes `chunks` into their tables and rebuilds the key records' indexes: on a thread of
/// their own once the last key record arrived, while the tables after them are written.
pub(crate) fn write_chunks(
    txn: &redb::WriteTransaction,
    chunks: &mut dyn Iterator<Item = Result<Chunk, Error>>,
) -> Result<(), Error> {
    let stopped = || Error::corrupt("key index", "the index writer stopped unexpectedly");
    std::thread::scope(|s| {
        let mut indexes = KeyIndexes::default();
        let mut writer = None;
        for chunk in chunks {
            let chunk = chunk?;
            if writer.is_none() && !indexes.digests.is_empty() && chunk.table != KEYS.name() {
                let done = std::mem::take(&mut indexes);
                writer = Some(s.spawn(move || done.write(txn)));
            }
            write_chunk(txn, &chunk, &mut indexes)?;
        }
        if let Some(w) = writer {
            w.join().map_err(|_| stopped())??;
        }
        // Key records after the writer started (none when the tables come one by one).
        indexes.write(txn)
    })
}

/// Writes one chunk into its table, sorted in the table's key order; key records also feed
/// `indexes`.
fn write_chunk(
    txn: &redb::WriteTransaction,
    chunk: &Chunk,
    indexes: &mut KeyIndexes,
) -> Result<(), Error> {
    if chunk.table == KEYS.name() {
        for i in 0..chunk.rows.len() {
            indexes.note(chunk.key(i), chunk.value(i))?;
        }
    }
    let only_active = (0..chunk.rows.len()).all(|i| chunk.key(i) == ACTIVE.as_bytes());
    for_table(&chunk.table, only_active, &mut ChunkSink { txn, chunk })
}

struct ChunkSink<'a> {
    txn: &'a redb::WriteTransaction,
    chunk: &'a Chunk,
}

impl RowSink for ChunkSink<'_> {
    fn rows<K: Key + 'static, V: Value + 'static>(
        &mut self,
        def: TableDefinition<'static, K, V>,
    ) -> Result<(), Error> {
        let c = self.chunk;
        let mut order: Vec<usize> = (0..c.rows.len()).collect();
        let by_key = |a: &usize, b: &usize| K::compare(c.key(*a), c.key(*b));
        if !order.is_sorted_by(|a, b| by_key(a, b).is_le()) {
            order.sort_unstable_by(by_key);
        }
        let rows: Vec<(&[u8], Option<&[u8]>)> = order
            .into_iter()
            .map(|i| (c.key(i), Some(c.value(i))))
            .collect();
        super::replica::put_rows(def, self.txn, &rows)
    }
}
