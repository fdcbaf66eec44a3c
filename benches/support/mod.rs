//! What the benchmarks share, through orgstore's public API only: the synthetic store (the
//! same one `orgstore bench` builds), the naive reference path and the warm check timed in
//! batches.

// Each bench uses a part of it.
#![allow(dead_code, unused_imports)]

use std::path::PathBuf;
use std::sync::Arc;

use orgstore::{Actor, GatewayContext, KeyId, KeyStatus, OrgStatus, Policies, Store};
use redb::{ReadableDatabase, TableDefinition};

#[path = "../../src/cli/synthetic.rs"]
mod synthetic;
pub mod warm;

pub use synthetic::build_store;

/// What the naive path's setup and lookups can fail with.
pub type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// The naive path's digest index: SHA-256 of a key -> its id.
const DIGESTS: TableDefinition<&[u8; 32], &[u8; 16]> = TableDefinition::new("digests");

/// The naive path a gateway without a snapshot takes, per request: a redb lookup of the
/// key's digest (in an index of its own, as the store's is private), the key and its org
/// read through the store's admin API (each a read transaction and a record decode), then a
/// Cedar evaluation.
pub struct NaivePath {
    txn: redb::ReadTransaction,
    _index: redb::Database,
    store: Store,
    policies: Arc<Policies>,
    path: PathBuf,
}

impl NaivePath {
    /// Indexes `keys` (keys of `store`; the gateway resolves their ids once, here) and opens
    /// one read transaction on the index, reused for every check.
    pub fn new(store: &Store, keys: &[String]) -> Result<Self, BoxError> {
        let path = std::env::temp_dir().join(format!("orgstore-naive-{}.redb", KeyId::random()));
        let index = redb::Database::create(&path)?;
        let w = index.begin_write()?;
        {
            let mut t = w.open_table(DIGESTS)?;
            for k in keys {
                let id = store.gateway().lookup(k).map_err(|d| d.to_string())?.key_id;
                t.insert(&orgstore::key_digest(k), id.as_bytes())?;
            }
        }
        w.commit()?;
        let txn = index.begin_read()?;
        Ok(Self {
            txn,
            _index: index,
            store: store.clone(),
            policies: store.policies(),
            path,
        })
    }

    /// One naive check.
    pub fn check(&self, key: &str, model: &str) -> Result<bool, BoxError> {
        if orgstore::check_key_format(key).is_err() {
            return Ok(false);
        }
        let digest = orgstore::key_digest(key);
        let table = self.txn.open_table(DIGESTS)?;
        let Some(id) = table.get(&digest)?.map(|v| *v.value()) else {
            return Ok(false);
        };
        let op = Actor::Operator;
        let info = self.store.keys().show(&op, &KeyId::from_bytes(id))?;
        if info.status == KeyStatus::Revoked {
            return Ok(false);
        }
        let org = self.store.orgs().get(&op, &info.org)?;
        if org.status != OrgStatus::Active {
            return Ok(false);
        }
        let ctx = GatewayContext {
            ip_allowed: true,
            model_allowed: true,
        };
        Ok(self
            .policies
            .gateway_decide(&org.id, &info.id, model, ctx)
            .allowed)
    }
}

impl Drop for NaivePath {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.path);
    }
}
