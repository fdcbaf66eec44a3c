//! Transactions: typed lookups shared by read and write transactions, and the write
//! transaction's record of what changed (for the snapshot and the audit log).

use redb::{Key, ReadableTable, TableDefinition, Value};

use super::codec::{decode, encode};
use super::journal::{self, Journal};
use super::records::{ConfigRecord, KeyRecord};
use super::tables::*;
use crate::config::OrgConfig;
use crate::error::Error;
use crate::keys::KeyDigest;
use crate::model::{Email, KeyId, Member, Org, OrgId, OrgStatus, Timestamp};

fn io(e: impl Into<Box<dyn std::error::Error + Send + Sync>>) -> Error {
    Error::storage("reading the store", e)
}

/// Typed lookups over any transaction.
pub(crate) trait ReadRecords {
    /// Opens a table for reading.
    fn table<K: Key + 'static, V: Value + 'static>(
        &self,
        def: TableDefinition<K, V>,
    ) -> Result<impl ReadableTable<K, V> + '_, Error>;

    /// The org record, deleted ones included.
    fn find_org(&self, id: &OrgId) -> Result<Option<Org>, Error> {
        let t = self.table(ORGS)?;
        let v = t.get(id.as_str()).map_err(io)?;
        v.map(|v| decode("org", v.value())).transpose()
    }

    /// The org record, deleted ones included; an error when absent.
    fn org_including_deleted(&self, id: &OrgId) -> Result<Org, Error> {
        self.find_org(id)?.ok_or_else(|| org_not_found(id))
    }

    /// The org record, unless it is absent or deleted.
    fn live_org(&self, id: &OrgId) -> Result<Org, Error> {
        let org = self.org_including_deleted(id)?;
        if org.status == OrgStatus::Deleted {
            return Err(Error::not_found(
                "org",
                format!("org `{id}` was deleted; its id cannot be used again"),
            ));
        }
        Ok(org)
    }

    /// One config version.
    fn config(&self, org: &OrgId, version: u64) -> Result<ConfigRecord, Error> {
        let t = self.table(CONFIGS)?;
        let v = t.get((org.as_str(), version)).map_err(io)?;
        match v {
            Some(v) => decode("config version", v.value()),
            None => Err(Error::not_found(
                "version",
                format!(
                    "org `{org}` has no config version {version}; check it against the config history"
                ),
            )),
        }
    }

    /// The active config, parsed.
    fn active_config(&self, org: &Org) -> Result<(ConfigRecord, OrgConfig), Error> {
        let rec = self.config(&org.id, org.config_version)?;
        let cfg = parse_stored_config(&rec)?;
        Ok((rec, cfg))
    }

    /// One membership.
    fn member(&self, org: &OrgId, email: &Email) -> Result<Option<Member>, Error> {
        let t = self.table(MEMBERS)?;
        let v = t.get((org.as_str(), email.as_str())).map_err(io)?;
        v.map(|v| decode("member", v.value())).transpose()
    }

    /// One key record.
    fn key(&self, id: &KeyId) -> Result<Option<KeyRecord>, Error> {
        let t = self.table(KEYS)?;
        let v = t.get(id.as_bytes()).map_err(io)?;
        v.map(|v| decode("key", v.value())).transpose()
    }

    /// All members of an org.
    fn members_of(&self, org: &OrgId) -> Result<Vec<Member>, Error> {
        let t = self.table(MEMBERS)?;
        let range = t
            .range((org.as_str(), "")..(org.as_str(), "\u{10ffff}"))
            .map_err(io)?;
        range
            .map(|item| {
                item.map_err(io)
                    .and_then(|(_, v)| decode("member", v.value()))
            })
            .collect()
    }

    /// All keys of an org.
    fn keys_of(&self, org: &OrgId) -> Result<Vec<KeyRecord>, Error> {
        let ids: Vec<KeyId> = {
            let t = self.table(KEYS_BY_ORG)?;
            let lo = [0u8; 16];
            let hi = [0xffu8; 16];
            let range = t
                .range((org.as_str(), &lo)..=(org.as_str(), &hi))
                .map_err(io)?;
            range
                .map(|item| {
                    item.map(|(k, _)| KeyId::from_bytes(*k.value().1))
                        .map_err(io)
                })
                .collect::<Result<_, _>>()?
        };
        let mut out = Vec::with_capacity(ids.len());
        for id in ids {
            out.push(
                self.key(&id)?
                    .ok_or_else(|| Error::corrupt("key index", "dangling key id"))?,
            );
        }
        Ok(out)
    }
}

/// Parses a stored config version without its encrypted provider secrets (the gateway's
/// view; `Sealer::open` decrypts them for admin reads).
pub(crate) fn parse_stored_config(rec: &ConfigRecord) -> Result<OrgConfig, Error> {
    let mut v: serde_json::Value =
        serde_json::from_str(&rec.json).map_err(|e| Error::corrupt("config version", e))?;
    super::secrets::strip_sealed(&mut v);
    OrgConfig::from_stored(v).map_err(|e| Error::corrupt("config version", e))
}

#[cold]
pub(crate) fn org_not_found(id: &OrgId) -> Error {
    Error::not_found("org", format!("no org `{id}`; check the id"))
}

impl ReadRecords for redb::ReadTransaction {
    fn table<K: Key + 'static, V: Value + 'static>(
        &self,
        def: TableDefinition<K, V>,
    ) -> Result<impl ReadableTable<K, V> + '_, Error> {
        self.open_table(def).map_err(io)
    }
}

/// A read transaction.
pub(crate) type ReadTx = redb::ReadTransaction;

/// What a committed write changed, for the snapshot.
#[derive(Default)]
pub(crate) struct Changes {
    /// Orgs whose record or active config changed.
    pub orgs: Vec<OrgId>,
    /// Keys whose record changed, with their previous digest if it changed too.
    pub keys: Vec<(KeyId, Option<KeyDigest>)>,
}

/// A write transaction with the store's bookkeeping.
pub(crate) struct WriteTx {
    pub txn: redb::WriteTransaction,
    pub now: Timestamp,
    pub changes: Changes,
    /// The credential the change came with ([`Store::via`](super::Store::via)), noted in
    /// its audit entries.
    pub via: Option<std::sync::Arc<str>>,
    /// Every record write, for replication (kept only when the store is replicated).
    pub journal: Journal,
}

impl ReadRecords for WriteTx {
    fn table<K: Key + 'static, V: Value + 'static>(
        &self,
        def: TableDefinition<K, V>,
    ) -> Result<impl ReadableTable<K, V> + '_, Error> {
        self.txn.open_table(def).map_err(io)
    }
}

fn wio(e: impl Into<Box<dyn std::error::Error + Send + Sync>>) -> Error {
    Error::storage("writing the store", e)
}

impl WriteTx {
    /// Writes an org record.
    pub fn put_org(&mut self, org: &Org) -> Result<(), Error> {
        let bytes = encode(org)?;
        journal::open(&self.txn, &self.journal, ORGS)
            .map_err(wio)?
            .insert(org.id.as_str(), bytes.as_slice())
            .map_err(wio)?;
        self.changes.orgs.push(org.id.clone());
        Ok(())
    }

    /// Writes a config version.
    pub fn put_config(&mut self, org: &OrgId, rec: &ConfigRecord) -> Result<(), Error> {
        let bytes = encode(rec)?;
        journal::open(&self.txn, &self.journal, CONFIGS)
            .map_err(wio)?
            .insert((org.as_str(), rec.version), bytes.as_slice())
            .map_err(wio)?;
        Ok(())
    }

    /// Writes a membership and its index entry.
    pub fn put_member(&mut self, m: &Member) -> Result<(), Error> {
        let bytes = encode(m)?;
        journal::open(&self.txn, &self.journal, MEMBERS)
            .map_err(wio)?
            .insert((m.org.as_str(), m.email.as_str()), bytes.as_slice())
            .map_err(wio)?;
        journal::open(&self.txn, &self.journal, MEMBER_ORGS)
            .map_err(wio)?
            .insert((m.email.as_str(), m.org.as_str()), m.role.level())
            .map_err(wio)?;
        Ok(())
    }

    /// Removes a membership and its index entry.
    pub fn remove_member(&mut self, org: &OrgId, email: &Email) -> Result<(), Error> {
        journal::open(&self.txn, &self.journal, MEMBERS)
            .map_err(wio)?
            .remove((org.as_str(), email.as_str()))
            .map_err(wio)?;
        journal::open(&self.txn, &self.journal, MEMBER_ORGS)
            .map_err(wio)?
            .remove((email.as_str(), org.as_str()))
            .map_err(wio)?;
        Ok(())
    }

    /// Writes a key record and its indexes; `old_digest` is removed from the digest index
    /// when the secret changed (rotation).
    pub fn put_key(&mut self, rec: &KeyRecord, old_digest: Option<KeyDigest>) -> Result<(), Error> {
        KeyTables::open(&self.txn, &self.journal)?.put(rec, old_digest)?;
        self.changes.keys.push((rec.info.id, old_digest));
        Ok(())
    }

    /// The key tables, opened once for writing many keys (an import). Record each key
    /// written through them with [`WriteTx::key_written`] once they are dropped.
    pub fn key_tables(&self) -> Result<KeyTables<'_>, Error> {
        KeyTables::open(&self.txn, &self.journal)
    }

    /// Records a key written through [`WriteTx::key_tables`], for the snapshot.
    pub fn key_written(&mut self, id: KeyId, old_digest: Option<KeyDigest>) {
        self.changes.keys.push((id, old_digest));
    }

    /// The number of the next audit entry of `org`: one more than its last (1 for the
    /// first). Numbers are per org, so no org can tell how busy another one is.
    pub fn next_audit_seq(&self, org: &OrgId) -> Result<u64, Error> {
        let t = self.txn.open_table(AUDIT).map_err(wio)?;
        let mut range = t
            .range((org.as_str(), 0u64)..=(org.as_str(), u64::MAX))
            .map_err(wio)?;
        let last = match range.next_back() {
            Some(item) => item.map_err(wio)?.0.value().1,
            None => 0,
        };
        Ok(last + 1)
    }
}

/// The key record table and its two indexes, open together inside one write transaction.
pub(crate) struct KeyTables<'t> {
    keys: journal::Table<'t, &'static [u8; 16], &'static [u8]>,
    by_org: journal::Table<'t, (&'static str, &'static [u8; 16]), ()>,
    digests: journal::Table<'t, &'static [u8; 32], &'static [u8; 16]>,
    issued: journal::Table<'t, &'static [u8; 32], &'static [u8; 16]>,
}

impl<'t> KeyTables<'t> {
    fn open(txn: &'t redb::WriteTransaction, j: &'t Journal) -> Result<Self, Error> {
        Ok(Self {
            keys: journal::open(txn, j, KEYS).map_err(wio)?,
            by_org: journal::open(txn, j, KEYS_BY_ORG).map_err(wio)?,
            digests: journal::open(txn, j, KEY_DIGESTS).map_err(wio)?,
            issued: journal::open(txn, j, ISSUED_DIGESTS).map_err(wio)?,
        })
    }

    /// Whether a key record with this id exists.
    pub fn has_id(&self, id: &KeyId) -> Result<bool, Error> {
        Ok(self.keys.get(id.as_bytes()).map_err(io)?.is_some())
    }

    /// For a digest in the index of current secrets: whether its key is revoked.
    pub fn revoked_by_digest(&self, digest: &KeyDigest) -> Result<Option<bool>, Error> {
        let Some(id) = self.digests.get(digest).map_err(io)?.map(|v| *v.value()) else {
            return Ok(None);
        };
        let rec: KeyRecord = match self.keys.get(&id).map_err(io)? {
            Some(v) => decode("key", v.value())?,
            None => return Err(Error::corrupt("key index", "dangling key id")),
        };
        Ok(Some(rec.info.status == crate::model::KeyStatus::Revoked))
    }

    /// Whether this digest was ever issued to a key (live, rotated away or revoked).
    pub fn was_issued(&self, digest: &KeyDigest) -> Result<bool, Error> {
        Ok(self.issued.get(digest).map_err(io)?.is_some())
    }

    /// Writes a key record and its indexes; `old_digest` is removed from the digest index
    /// when the secret changed (rotation).
    pub fn put(&mut self, rec: &KeyRecord, old_digest: Option<KeyDigest>) -> Result<(), Error> {
        let id = rec.info.id;
        let bytes = encode(rec)?;
        self.keys
            .insert(id.as_bytes(), bytes.as_slice())
            .map_err(wio)?;
        self.by_org
            .insert((rec.info.org.as_str(), id.as_bytes()), ())
            .map_err(wio)?;
        if let Some(old) = old_digest.filter(|d| *d != rec.digest) {
            self.digests.remove(&old).map_err(wio)?;
        }
        self.digests
            .insert(&rec.digest, id.as_bytes())
            .map_err(wio)?;
        // Every digest a key ever had stays here after rotation and revocation.
        self.issued
            .insert(&rec.digest, id.as_bytes())
            .map_err(wio)?;
        Ok(())
    }
}
