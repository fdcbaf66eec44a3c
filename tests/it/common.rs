//! Shared set-up for the integration tests: parsing shorthands, a store with one org, and
//! file stores in temporary directories.
//!
//! Every test module uses a different subset of it.
#![allow(dead_code)]

use std::path::{Path, PathBuf};

use orgstore::{Actor, AuditEntry, Email, KeyDigest, KeySpec, OrgId, Store, StoreBuilder};

/// The operator: every admin call in these tests acts as it.
pub const OP: Actor = Actor::Operator;

/// The id of the org [`Fixture::new`] creates.
pub const ORG: &str = "acme";
/// The email of its first owner.
pub const OWNER: &str = "owner@acme.io";

/// Parses an org id.
pub fn org(id: &str) -> OrgId {
    OrgId::parse(id).unwrap()
}

/// Parses an email.
pub fn email(s: &str) -> Email {
    Email::parse(s).unwrap()
}

/// Creates org `id` named after itself with `owner` as its owner, as the operator.
pub fn create_org(store: &Store, id: &str, owner: &str) -> OrgId {
    let id = org(id);
    store
        .orgs()
        .create(&OP, &id, &id.to_string().to_uppercase(), &email(owner))
        .unwrap();
    id
}

/// A store with one org, `acme`, owned by `owner@acme.io`.
pub struct Fixture {
    pub store: Store,
    pub org: OrgId,
    pub owner: Email,
}

impl Fixture {
    /// An in-memory store with the org.
    pub fn new() -> Self {
        Self::with_store(Store::open_temporary().unwrap())
    }

    /// `store` with the org added.
    pub fn with_store(store: Store) -> Self {
        let org = create_org(&store, ORG, OWNER);
        Self {
            store,
            org,
            owner: email(OWNER),
        }
    }

    /// The org's whole audit log, newest first.
    pub fn audit(&self) -> Vec<AuditEntry> {
        audit_all(&self.store, &self.org)
    }

    /// Applies a config patch as the operator.
    pub fn update_config(&self, patch: &str) -> orgstore::ConfigVersion {
        self.store
            .org_configs()
            .update(&OP, &self.org, patch)
            .unwrap()
    }

    /// Creates a key with only a name.
    pub fn create_key(&self, name: &str) -> orgstore::CreatedKey {
        self.store
            .keys()
            .create(&OP, &self.org, KeySpec::new(name))
            .unwrap()
    }
}

/// The whole audit log of `org`, newest first.
pub fn audit_all(store: &Store, org: &OrgId) -> Vec<AuditEntry> {
    store.audit().list(&OP, org, usize::MAX).unwrap()
}

/// The path of a store file inside `dir`.
pub fn db_path(dir: &Path) -> PathBuf {
    dir.join("orgstore.redb")
}

/// Opens (creating) the store file in `dir` with the default (durable) settings.
pub fn open_file(dir: &Path) -> Store {
    Store::open(db_path(dir)).unwrap()
}

/// Opens (creating) the store file in `dir` without fsync, for tests that write a lot.
pub fn open_file_fast(dir: &Path) -> Store {
    StoreBuilder::new()
        .non_durable()
        .open(db_path(dir))
        .unwrap()
}

/// Lower-case hex of a digest, as `ImportKey` takes it.
pub fn hex(digest: &KeyDigest) -> String {
    digest.iter().map(|b| format!("{b:02x}")).collect()
}

/// SHA-256 hex of a key string, computed independently of the library.
pub fn sha256_hex(key: &str) -> String {
    use sha2::{Digest, Sha256};
    hex(&Sha256::digest(key.as_bytes()).into())
}

/// A distinct upstream-style key (`sk-agentcc-` + 48 hex digits) for import tests.
pub fn legacy_key(n: u64) -> String {
    format!("sk-agentcc-{n:048x}")
}

/// Whether `needle` occurs anywhere in `haystack`.
pub fn contains_bytes(haystack: &[u8], needle: &[u8]) -> bool {
    !needle.is_empty() && haystack.windows(needle.len()).any(|w| w == needle)
}

/// An org's config (the active version, or `version`) with its secrets in clear, as the
/// operator sees it through `reveal`.
pub fn revealed(store: &Store, org: &OrgId, version: Option<u64>) -> serde_json::Value {
    store
        .org_configs()
        .reveal(&OP, org, version)
        .unwrap()
        .config
        .to_revealed_json()
}

/// The ids of the orgs an operator lists, in listing order.
pub fn org_ids(store: &Store) -> Vec<OrgId> {
    store
        .orgs()
        .list(&OP)
        .unwrap()
        .into_iter()
        .map(|o| o.id)
        .collect()
}
