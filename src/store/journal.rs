//! The one place where admin operations write records: every table a write transaction
//! changes is opened through [`open`], whose [`Table`] applies each insert and removal and,
//! when the transaction keeps a [`Journal`], also writes it down as raw bytes (table name,
//! key bytes, value bytes or a removal: redb's own byte forms of the typed values).
//!
//! A journal is what a replicated store ships to the other replicas, which apply it byte
//! for byte. Without replication nothing is written down, and without the `fleet` feature
//! a journal is an empty type and the wrapper a plain pass-through. Local bookkeeping
//! (the spend ledger, the store format in `meta`) is written outside it on purpose.

use std::borrow::Borrow;

use redb::{Key, TableDefinition, TableError, Value};

/// One raw record write.
#[cfg(feature = "fleet")]
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Entry {
    /// The redb table's name.
    pub table: String,
    /// The key in redb's byte form.
    pub key: Vec<u8>,
    /// The value in redb's byte form; `None` for a removal.
    pub value: Option<Vec<u8>>,
}

/// The record writes of one transaction, in order, when they are kept.
#[derive(Debug, Default)]
pub(crate) struct Journal {
    #[cfg(feature = "fleet")]
    on: bool,
    #[cfg(feature = "fleet")]
    entries: std::cell::RefCell<Vec<Entry>>,
}

impl Journal {
    /// A journal that keeps entries (`on`) or ignores them.
    #[cfg(feature = "fleet")]
    pub(crate) fn new(on: bool) -> Self {
        Self {
            on,
            entries: std::cell::RefCell::new(Vec::new()),
        }
    }

    /// A journal that ignores entries (there is no replication in this build).
    #[cfg(not(feature = "fleet"))]
    pub(crate) fn new(_on: bool) -> Self {
        Self {}
    }

    #[cfg(feature = "fleet")]
    fn push(&self, table: &impl redb::TableHandle, key: &[u8], value: Option<&[u8]>) {
        if self.on {
            self.entries.borrow_mut().push(Entry {
                table: table.name().to_owned(),
                key: key.to_vec(),
                value: value.map(<[u8]>::to_vec),
            });
        }
    }

    /// The entries kept so far.
    #[cfg(feature = "fleet")]
    pub(crate) fn take(&self) -> Vec<Entry> {
        std::mem::take(&mut *self.entries.borrow_mut())
    }
}

/// A table opened for writing through a journal. Reads go to the redb table itself
/// (`Deref`); writes only through [`Table::insert`] and [`Table::remove`].
pub(crate) struct Table<'t, K: Key + 'static, V: Value + 'static> {
    inner: redb::Table<'t, K, V>,
    #[cfg(feature = "fleet")]
    def: TableDefinition<'static, K, V>,
    #[cfg(feature = "fleet")]
    journal: &'t Journal,
    #[cfg(not(feature = "fleet"))]
    _journal: std::marker::PhantomData<&'t Journal>,
}

/// Opens `def` in `txn` for writing, every write kept in `journal`.
pub(crate) fn open<'t, K: Key + 'static, V: Value + 'static>(
    txn: &'t redb::WriteTransaction,
    journal: &'t Journal,
    def: TableDefinition<'static, K, V>,
) -> Result<Table<'t, K, V>, TableError> {
    #[cfg(not(feature = "fleet"))]
    let _ = journal;
    Ok(Table {
        inner: txn.open_table(def)?,
        #[cfg(feature = "fleet")]
        def,
        #[cfg(feature = "fleet")]
        journal,
        #[cfg(not(feature = "fleet"))]
        _journal: std::marker::PhantomData,
    })
}

impl<K: Key + 'static, V: Value + 'static> Table<'_, K, V> {
    /// Inserts or replaces `key`.
    pub(crate) fn insert<'k, 'v>(
        &mut self,
        key: impl Borrow<K::SelfType<'k>>,
        value: impl Borrow<V::SelfType<'v>>,
    ) -> Result<(), redb::StorageError> {
        let (key, value) = (key.borrow(), value.borrow());
        #[cfg(feature = "fleet")]
        self.journal.push(
            &self.def,
            K::as_bytes(key).as_ref(),
            Some(V::as_bytes(value).as_ref()),
        );
        self.inner.insert(key, value).map(drop)
    }

    /// Removes `key` (nothing when absent).
    pub(crate) fn remove<'k>(
        &mut self,
        key: impl Borrow<K::SelfType<'k>>,
    ) -> Result<(), redb::StorageError> {
        let key = key.borrow();
        #[cfg(feature = "fleet")]
        self.journal
            .push(&self.def, K::as_bytes(key).as_ref(), None);
        self.inner.remove(key).map(drop)
    }
}

impl<'t, K: Key + 'static, V: Value + 'static> std::ops::Deref for Table<'t, K, V> {
    type Target = redb::Table<'t, K, V>;
    fn deref(&self) -> &Self::Target {
        &self.inner
    }
}

#[cfg(feature = "fleet")]
/// The byte form of a journal, as shipped: per entry the table name (u8 length), the key
/// (u32 length), then 0 for a removal or 1 and the value (u32 length). Little-endian.
pub(crate) fn encode(entries: &[Entry]) -> Vec<u8> {
    let mut out = Vec::with_capacity(entries.iter().map(|e| e.key.len() + 64).sum());
    for e in entries {
        out.push(e.table.len() as u8);
        out.extend_from_slice(e.table.as_bytes());
        out.extend_from_slice(&(e.key.len() as u32).to_le_bytes());
        out.extend_from_slice(&e.key);
        match &e.value {
            None => out.push(0),
            Some(v) => {
                out.push(1);
                out.extend_from_slice(&(v.len() as u32).to_le_bytes());
                out.extend_from_slice(v);
            }
        }
    }
    out
}

#[cfg(feature = "fleet")]
/// Reads [`encode`]'s form; damaged bytes are `Corrupt`.
pub(crate) fn decode(mut b: &[u8]) -> Result<Vec<Entry>, crate::error::Error> {
    use crate::error::Error;
    fn take<'a>(b: &mut &'a [u8], n: usize) -> Result<&'a [u8], Error> {
        if b.len() < n {
            return Err(Error::corrupt("journal", "a change log entry is cut short"));
        }
        let (head, rest) = b.split_at(n);
        *b = rest;
        Ok(head)
    }
    fn len32(b: &mut &[u8]) -> Result<usize, Error> {
        let s = take(b, 4)?;
        Ok(u32::from_le_bytes([s[0], s[1], s[2], s[3]]) as usize)
    }
    let mut out = Vec::new();
    while !b.is_empty() {
        let n = take(&mut b, 1)?[0] as usize;
        let table = std::str::from_utf8(take(&mut b, n)?)
            .map_err(|e| Error::corrupt("journal", e))?
            .to_owned();
        let kl = len32(&mut b)?;
        let key = take(&mut b, kl)?.to_vec();
        let value = match take(&mut b, 1)?[0] {
            0 => None,
            1 => {
                let vl = len32(&mut b)?;
                Some(take(&mut b, vl)?.to_vec())
            }
            _ => return Err(Error::corrupt("journal", "a change log entry is damaged")),
        };
        out.push(Entry { table, key, value });
    }
    Ok(out)
}

#[cfg(all(test, feature = "fleet"))]
mod tests {
    use super::*;

    #[test]
    fn a_journal_reads_back_as_written() {
        let entries = vec![
            Entry {
                table: "orgs".into(),
                key: b"acme".to_vec(),
                value: Some(vec![1, 2, 3]),
            },
            Entry {
                table: "members".into(),
                key: vec![0; 300],
                value: None,
            },
        ];
        assert_eq!(decode(&encode(&entries)).unwrap(), entries);
        let bytes = encode(&entries);
        assert!(decode(&bytes[..bytes.len() - 1]).is_err());
    }
}
