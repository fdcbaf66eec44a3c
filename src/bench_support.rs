//! Synthetic stores for benchmarks and the `orgstore bench` command. Not part of the
//! stable API.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::keys::{check_key_format, digest};
use crate::model::{Actor, Email, KeyStatus, Org, OrgId, OrgStatus};
use crate::policy::{GatewayContext, Policies};
use crate::store::records::KeyRecord;
use crate::store::tables::{KEY_DIGESTS, KEYS, ORGS};
use crate::{Budget, Error, ImportKey, KeySpec, Period, SecretKey, Store, StoreBuilder, Usd};

/// The digest the gateway computes for a key (SHA-256; for a generated 55-byte key, one
/// block laid out and compressed directly), for references that should hash exactly as
/// `check` does.
#[inline]
pub fn key_digest(key: &str) -> [u8; 32] {
    crate::keys::digest(key)
}

/// A synthetic store and the full keys of everything in it.
pub struct Fixture {
    /// The store (opened from its file after the keys were written).
    pub store: Store,
    /// Full keys without limits, in an org that allows `gpt-4o-mini`.
    pub keys: Vec<String>,
    /// Full keys with rpm, tpm and a budget, in an org with a budget.
    pub limited_keys: Vec<String>,
    /// How long reopening the file took until the snapshot was ready.
    pub reopen_time: Duration,
    /// Snapshot heap bytes per key.
    pub bytes_per_key: usize,
    /// The file (deleted on drop).
    pub path: PathBuf,
}

impl Fixture {
    /// Closes the file-backed store (leaving an empty in-memory one in its place), so that
    /// the file can be opened again, e.g. to time opening it.
    pub fn close(&mut self) -> Result<(), Error> {
        self.store = Store::open_temporary()?;
        Ok(())
    }
}

impl Drop for Fixture {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.path);
        let mut key_file = self.path.clone().into_os_string();
        key_file.push(".key");
        let _ = std::fs::remove_file(key_file);
    }
}

/// Builds a store file of `n` keys spread over 100 orgs plus 1,000 keys with limits,
/// reopens it and measures the snapshot.
pub fn build_store(n: usize, durable: bool) -> Result<Fixture, Error> {
    let path = std::env::temp_dir().join(format!("orgstore-bench-{}.redb", crate::KeyId::random()));
    let mut builder = StoreBuilder::new();
    if !durable {
        builder = builder.non_durable();
    }
    let op = Actor::Operator;
    let owner = Email::parse("owner@bench.example")?;
    let store = builder.open(&path)?;
    let orgs: Vec<OrgId> = (0..100)
        .map(|i| OrgId::parse(&format!("org-{i}")))
        .collect::<Result<_, _>>()?;
    for o in &orgs {
        store.orgs().create(&op, o, "Bench org", &owner)?;
        store
            .org_configs()
            .update(&op, o, r#"{"allowed_models":["gpt-4o","gpt-4o-mini"]}"#)?;
    }
    let mut keys = Vec::with_capacity(n);
    let per_org = n.div_ceil(orgs.len()).max(1);
    for (ix, chunk_org) in orgs.iter().enumerate() {
        let count = per_org.min(n.saturating_sub(ix * per_org));
        let mut batch = Vec::with_capacity(count);
        for _ in 0..count {
            let k = SecretKey::generate();
            batch.push(ImportKey::new(hex(&k.digest()), KeySpec::new("bench")));
            keys.push(k.expose().to_owned());
        }
        if !batch.is_empty() {
            store.keys().import(&op, chunk_org, &batch)?;
        }
    }
    let limited_org = OrgId::parse("limited")?;
    store.orgs().create(&op, &limited_org, "Limited", &owner)?;
    store.org_configs().update(
        &op,
        &limited_org,
        r#"{"rate_limiting":{"tpm":1000000000000},"budgets":{"limit":1000000000,"period":"monthly"}}"#,
    )?;
    let mut limited_keys = Vec::with_capacity(1000);
    let mut batch = Vec::with_capacity(1000);
    for _ in 0..1000 {
        let k = SecretKey::generate();
        let spec = KeySpec::new("limited")
            .rpm(4_000_000_000)
            .tpm(1_000_000_000_000)
            .budget(Budget::new(Usd::parse("1000000000")?, Period::Monthly));
        batch.push(ImportKey::new(hex(&k.digest()), spec));
        limited_keys.push(k.expose().to_owned());
    }
    store.keys().import(&op, &limited_org, &batch)?;
    drop(store);
    let t = Instant::now();
    let store = builder.open(&path)?;
    let reopen_time = t.elapsed();
    let bytes_per_key = store.snapshot_key_memory() / (n + 1000).max(1);
    Ok(Fixture {
        store,
        keys,
        limited_keys,
        reopen_time,
        bytes_per_key,
        path,
    })
}

fn hex(d: &[u8]) -> String {
    d.iter().map(|b| format!("{b:02x}")).collect()
}

/// The naive path a gateway without a snapshot takes: a redb lookup of the digest, the key
/// record and the org record, then a Cedar evaluation, per request.
pub struct NaivePath {
    txn: redb::ReadTransaction,
    policies: Arc<Policies>,
}

impl NaivePath {
    /// Opens one read transaction, reused for every check.
    pub fn new(store: &Store) -> Result<Self, Error> {
        let txn = store
            .raw_db()
            .begin_read()
            .map_err(|e| Error::storage("starting a read", e))?;
        Ok(Self {
            txn,
            policies: store.policies(),
        })
    }

    /// One naive check.
    pub fn check(&self, key: &str, model: &str) -> Result<bool, Error> {
        let io = |e: redb::StorageError| Error::storage("naive read", e);
        let tio = |e: redb::TableError| Error::storage("naive read", e);
        if check_key_format(key).is_err() {
            return Ok(false);
        }
        let d = digest(key);
        let Some(id) = self
            .txn
            .open_table(KEY_DIGESTS)
            .map_err(tio)?
            .get(&d)
            .map_err(io)?
            .map(|v| *v.value())
        else {
            return Ok(false);
        };
        let keys = self.txn.open_table(KEYS).map_err(tio)?;
        let Some(raw) = keys.get(&id).map_err(io)? else {
            return Ok(false);
        };
        let rec: KeyRecord = crate::store::codec::decode("key", raw.value())?;
        if rec.info.status == KeyStatus::Revoked {
            return Ok(false);
        }
        let orgs = self.txn.open_table(ORGS).map_err(tio)?;
        let Some(raw) = orgs.get(rec.info.org.as_str()).map_err(io)? else {
            return Ok(false);
        };
        let org: Org = crate::store::codec::decode("org", raw.value())?;
        if org.status != OrgStatus::Active {
            return Ok(false);
        }
        let ctx = GatewayContext {
            ip_allowed: true,
            model_allowed: true,
        };
        Ok(self
            .policies
            .gateway_decide(&org.id, &rec.info.id, model, ctx)
            .allowed)
    }
}
