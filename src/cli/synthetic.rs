//! The synthetic store of `orgstore bench` and of the criterion benchmarks in `benches/`
//! (which include this file with `#[path]`): N keys spread over 100 orgs plus 1,000 keys
//! with limits, written to a file and reopened. Public API only.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use orgstore::{
    Actor, Budget, Email, Error, ImportKey, KeyId, KeySpec, OrgId, Period, SecretKey, Store,
    StoreBuilder, Usd,
};

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
    let path = std::env::temp_dir().join(format!("orgstore-bench-{}.redb", KeyId::random()));
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
