//! Hooks into the library's internals for the fuzz targets in `fuzz/` and for the test
//! suite; only with the non-default `fuzzing` feature, and not covered by semver. An
//! application never enables it.
//!
//! What it holds needs more than the public API: the bodies of the `config_patch` target
//! (sealing at rest, the gateway's view of a stored config, the secret vocabulary) and of
//! the `record_decode` target (the record codec), seeds for the latter, and
//! [`check_store_file`], which reads every table of a closed store file and checks its
//! indexes. The targets that need only the public API (`key_parse`, `policy_dir`,
//! `model_ops`) live in `fuzz/bodies/`.
//!
//! Each target body takes the fuzzer's bytes and returns `Err` with a description when an
//! invariant is broken; a panic anywhere below is a bug too. Errors the library reports for
//! bad input are expected and fine.

use std::collections::BTreeMap;

use serde_json::Value;

use crate::config::{OrgConfig, diff, is_secret_field, looks_masked, string_credentials};
use crate::error::ErrorKind;
use crate::model::{Email, KeyId, KeyInfo, Member, Org, OrgId, Role, Timestamp, Usd};
use crate::store::AuditEntry;
use crate::store::codec::{decode, encode};
use crate::store::records::{ConfigRecord, KeyRecord};
use crate::store::secrets::Sealer;

/// What a broken invariant reports.
pub type Failure = String;

macro_rules! ensure {
    ($cond:expr, $($msg:tt)+) => {
        if !$cond {
            return Err(format!($($msg)+));
        }
    };
}

/// Config merge patch and validation: the first line is a base config, the rest a patch.
/// Valid configs re-parse to themselves, a patch never escapes validation, secrets are
/// masked, diffs are empty exactly for equal configs, and sealing round-trips.
pub fn config_patch(data: &[u8]) -> Result<(), Failure> {
    let text = String::from_utf8_lossy(data);
    let (base, patch) = text.split_once('\n').unwrap_or((&text, "{}"));
    let Ok(cfg) = OrgConfig::parse(base) else {
        // An invalid base may still be a fine patch over the empty config.
        return patch_checks(&OrgConfig::default(), base);
    };
    canonical_checks(&cfg)?;
    patch_checks(&cfg, patch)
}

fn patch_checks(cfg: &OrgConfig, patch: &str) -> Result<(), Failure> {
    match cfg.merge_patch(patch) {
        Ok(next) => {
            canonical_checks(&next)?;
            let changed = diff(cfg.json(), next.json());
            ensure!(
                changed.is_empty() == (cfg.json() == next.json()),
                "diff says {} changes between configs that are {}",
                changed.len(),
                if cfg.json() == next.json() {
                    "equal"
                } else {
                    "different"
                }
            );
            let again = cfg
                .merge_patch(patch)
                .map_err(|e| format!("second merge failed: {e}"))?;
            ensure!(again == next, "merge patch is not deterministic");
        }
        Err(e) => {
            ensure!(
                e.kind() == ErrorKind::Invalid,
                "patch failed with kind {:?}: {e}",
                e.kind()
            );
            ensure!(!e.field().is_empty(), "error names no field: {e}");
        }
    }
    Ok(())
}

fn canonical_checks(cfg: &OrgConfig) -> Result<(), Failure> {
    let text = cfg.json().to_string();
    let again =
        OrgConfig::parse(&text).map_err(|e| format!("canonical config does not re-parse: {e}"))?;
    ensure!(&again == cfg, "canonical config re-parses differently");
    ensure!(
        cfg.merge_patch("{}").ok().as_ref() == Some(cfg),
        "empty patch changed the config"
    );
    let masked = cfg.masked_value();
    masks_every_secret(cfg.json(), &masked)?;
    let sealer = Sealer::random().map_err(|e| e.to_string())?;
    let sealed = sealer
        .seal_json(cfg.json())
        .map_err(|e| format!("sealing failed: {e}"))?;
    let rec = ConfigRecord {
        version: 1,
        created_at: Timestamp::from_micros(0),
        created_by: "operator".into(),
        json: sealed,
        note: "fuzz".into(),
    };
    let opened = sealer
        .open_strict(&rec)
        .map_err(|e| format!("sealed config does not open: {e}"))?;
    ensure!(&opened == cfg, "sealing does not round-trip");
    let stripped = crate::store::tx::parse_stored_config(&rec)
        .map_err(|e| format!("gateway view fails: {e}"))?;
    ensure!(
        stripped.rate_limiting() == cfg.rate_limiting()
            && stripped.budgets() == cfg.budgets()
            && stripped.ip_acl() == cfg.ip_acl()
            && stripped.allowed_models() == cfg.allowed_models(),
        "the gateway's view of the typed sections differs"
    );
    Ok(())
}

/// Every secret differs in the masked JSON: each string and number under a secret name
/// (unless already mask-shaped) and each inline credential elsewhere.
fn masks_every_secret(clear: &Value, masked: &Value) -> Result<(), Failure> {
    masks_at(clear, masked, false)
}

fn masks_at(clear: &Value, masked: &Value, secret: bool) -> Result<(), Failure> {
    match (clear, masked) {
        (Value::Object(c), Value::Object(m)) => {
            for (k, v) in c {
                let mv = m
                    .get(k)
                    .ok_or_else(|| format!("masking dropped field {k}"))?;
                masks_at(v, mv, secret || is_secret_field(k))?;
            }
        }
        (Value::Array(c), Value::Array(m)) => {
            ensure!(c.len() == m.len(), "masking changed an array's length");
            for (a, b) in c.iter().zip(m) {
                masks_at(a, b, secret)?;
            }
        }
        (Value::String(s), mv) if secret => {
            ensure!(
                looks_masked(s) || mv != clear,
                "a secret string is not masked"
            );
        }
        (Value::Number(_), mv) if secret => {
            ensure!(mv != clear, "a numeric secret is not masked");
        }
        (Value::String(s), Value::String(m)) => {
            let creds = string_credentials(m);
            let shown: Vec<&str> = creds.iter().filter_map(|r| m.get(r.clone())).collect();
            ensure!(
                shown.iter().all(|c| *c == "****") && creds.len() == string_credentials(s).len(),
                "an inline credential is not masked"
            );
        }
        _ => {}
    }
    Ok(())
}

fn decode_round_trip<T: crate::store::records::Record>(
    what: &'static str,
    data: &[u8],
) -> Result<(), Failure> {
    match decode::<T>(what, data) {
        Ok(v) => {
            let bytes =
                encode(&v).map_err(|e| format!("{what}: decoded but does not encode: {e}"))?;
            let v2: T = decode(what, &bytes)
                .map_err(|e| format!("{what}: re-encoded record does not decode: {e}"))?;
            let bytes2 = encode(&v2).map_err(|e| format!("{what}: {e}"))?;
            ensure!(bytes == bytes2, "{what}: encoding is not stable");
        }
        Err(e) => {
            ensure!(
                matches!(e.kind(), ErrorKind::Corrupt | ErrorKind::TooNew),
                "{what}: bad bytes gave kind {:?}: {e}",
                e.kind()
            );
        }
    }
    Ok(())
}

/// Record decoding of arbitrary bytes as every stored record type: an error of kind
/// `Corrupt` or `TooNew`, or a record that re-encodes stably. Never a panic or an abort.
pub fn record_decode(data: &[u8]) -> Result<(), Failure> {
    decode_round_trip::<Org>("org", data)?;
    decode_round_trip::<ConfigRecord>("config version", data)?;
    decode_round_trip::<Member>("member", data)?;
    decode_round_trip::<KeyRecord>("key", data)?;
    decode_round_trip::<KeyInfo>("key info", data)?;
    decode_round_trip::<AuditEntry>("audit entry", data)?;
    // The gateway's borrowed view of a key record (what opening a store decodes) accepts
    // exactly the records the owned decoder accepts, and sees the same key.
    let owned = decode::<KeyRecord>("key", data);
    let gate = crate::store::records::KeyView::decode(data);
    match (&owned, &gate) {
        (Ok(k), Ok(g)) => ensure!(
            g.id == k.info.id
                && g.org == k.info.org.as_str()
                && g.digest == k.digest
                && g.revoked == (k.info.status == crate::KeyStatus::Revoked)
                && g.models == k.info.spec.allowed_models
                && g.expires_at == k.info.spec.expires_at,
            "the borrowed key view differs from the record"
        ),
        (Err(_), Err(_)) => {}
        _ => {
            return Err(format!(
                "owned and borrowed key decoding disagree: {:?} vs {:?}",
                owned.as_ref().err(),
                gate.as_ref().err()
            ));
        }
    }
    if let Ok(rec) = decode::<ConfigRecord>("config version", data) {
        // A decodable record with garbage JSON must be reported, not trusted.
        let _ = crate::store::tx::parse_stored_config(&rec);
        if let Ok(s) = Sealer::random() {
            let _ = s.open(&rec);
        }
    }
    Ok(())
}

/// Encoded sample records of every stored type: seeds for `record_decode`.
pub fn record_seeds() -> Result<Vec<Vec<u8>>, Failure> {
    let e = |r: Result<Vec<u8>, crate::Error>| r.map_err(|e| e.to_string());
    let t = Timestamp::from_micros(1_760_000_000_000_000);
    let org = OrgId::parse("acme").map_err(|e| e.to_string())?;
    let email = Email::parse("ann@acme.io").map_err(|e| e.to_string())?;
    let spec = crate::KeySpec::new("svc")
        .rpm(100)
        .models(["gpt-4o-mini"])
        .ips(["10.0.0.0/8"])
        .budget(crate::Budget::new(Usd::CENT, crate::Period::Monthly))
        .expires_at(t)
        .meta("team", "ml");
    let info = KeyInfo {
        id: KeyId::from_bytes([7; 16]),
        org: org.clone(),
        prefix: "sk-agentcc-A...".into(),
        status: crate::KeyStatus::Active,
        spec,
        created_by: "operator".into(),
        created_at: t,
        revoked_at: Some(t),
        rotated_at: None,
        source: crate::KeySource::Generated,
        version: 3,
    };
    Ok(vec![
        e(encode(&Org {
            id: org.clone(),
            name: "Acme".into(),
            created_at: t,
            status: crate::OrgStatus::Active,
            config_version: 2,
            latest_version: 3,
            owner_count: 1,
        }))?,
        e(encode(&ConfigRecord {
            version: 2,
            created_at: t,
            created_by: "operator".into(),
            json:
                r#"{"rate_limiting":{"rpm":10},"providers":{"openai":{"api_key":"enc:v1:AAAA"}}}"#
                    .into(),
            note: "update".into(),
        }))?,
        e(encode(&Member {
            org: org.clone(),
            email,
            role: Role::Admin,
            added_at: t,
            added_by: "operator".into(),
        }))?,
        e(encode(&KeyRecord {
            info: info.clone(),
            digest: [9; 32],
        }))?,
        e(encode(&info))?,
        e(encode(&AuditEntry {
            seq: 5,
            at: t,
            actor: "operator".into(),
            org,
            action: "key.create".into(),
            target: "key_07".into(),
            summary: "created".into(),
            outcome: crate::AuditOutcome::Applied,
        }))?,
    ])
}

// ---------------------------------------------------------------------------------------
// Store file consistency (crash tests, hostile input tests).

/// What [`check_store_file`] found.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct FileSummary {
    /// Org records.
    pub orgs: usize,
    /// Config versions.
    pub configs: usize,
    /// Memberships.
    pub members: usize,
    /// Key records.
    pub keys: usize,
    /// Every key's digest (the SHA-256 of its current secret) and whether it is revoked.
    pub key_digests: BTreeMap<KeyId, ([u8; 32], bool)>,
    /// Audit entries.
    pub audit: usize,
}

/// Checks that every record of a closed store file decodes and that every index agrees
/// with the records: each key has its org index entry and its digest index entry (and no
/// index entry dangles), config versions run from 1 to the org's latest version with the
/// active one among them, `owner_count` equals the Owner memberships, memberships and
/// their reverse index match, and audit sequence numbers do not exceed the counter.
pub fn check_store_file(path: &std::path::Path) -> Result<FileSummary, Failure> {
    use crate::store::tables::*;
    use redb::{ReadableDatabase, ReadableTable};
    fn io(what: &str, e: impl std::fmt::Display) -> String {
        format!("{what}: {e}")
    }
    let db = redb::Database::open(path).map_err(|e| format!("open: {e}"))?;
    let r = db.begin_read().map_err(|e| io("begin", e))?;
    let mut s = FileSummary::default();
    let format = r
        .open_table(META)
        .map_err(|e| io("meta", e))?
        .get("format")
        .map_err(|e| io("meta", e))?;
    ensure!(
        format.map(|v| v.value()) == Some(crate::store::open::STORE_FORMAT),
        "meta format is wrong"
    );

    let mut orgs: BTreeMap<String, Org> = BTreeMap::new();
    for item in r
        .open_table(ORGS)
        .map_err(|e| io("orgs", e))?
        .iter()
        .map_err(|e| io("orgs", e))?
    {
        let (k, v) = item.map_err(|e| io("orgs", e))?;
        let org: Org = decode("org", v.value()).map_err(|e| e.to_string())?;
        ensure!(org.id.as_str() == k.value(), "org record under another id");
        orgs.insert(k.value().to_owned(), org);
    }
    s.orgs = orgs.len();

    let mut versions: BTreeMap<String, Vec<u64>> = BTreeMap::new();
    for item in r
        .open_table(CONFIGS)
        .map_err(|e| io("configs", e))?
        .iter()
        .map_err(|e| io("configs", e))?
    {
        let (k, v) = item.map_err(|e| io("configs", e))?;
        let (org, version) = k.value();
        let rec: ConfigRecord = decode("config version", v.value()).map_err(|e| e.to_string())?;
        ensure!(
            rec.version == version,
            "config {org}/{version} holds version {}",
            rec.version
        );
        crate::store::tx::parse_stored_config(&rec)
            .map_err(|e| format!("config {org}/{version}: {e}"))?;
        versions.entry(org.to_owned()).or_default().push(version);
        s.configs += 1;
    }
    for (id, org) in &orgs {
        let v = versions.remove(id).unwrap_or_default();
        let want: Vec<u64> = (1..=org.latest_version).collect();
        ensure!(
            v == want,
            "org {id}: config versions {v:?}, latest_version {}",
            org.latest_version
        );
        ensure!(
            (1..=org.latest_version).contains(&org.config_version),
            "org {id}: active version out of range"
        );
    }
    ensure!(
        versions.is_empty(),
        "config versions of unknown orgs: {:?}",
        versions.keys().collect::<Vec<_>>()
    );

    let mut owners: BTreeMap<String, u32> = BTreeMap::new();
    let mut members: BTreeMap<(String, String), u8> = BTreeMap::new();
    for item in r
        .open_table(MEMBERS)
        .map_err(|e| io("members", e))?
        .iter()
        .map_err(|e| io("members", e))?
    {
        let (k, v) = item.map_err(|e| io("members", e))?;
        let (org, email) = k.value();
        let m: Member = decode("member", v.value()).map_err(|e| e.to_string())?;
        ensure!(
            m.org.as_str() == org && m.email.as_str() == email,
            "member record under another key"
        );
        ensure!(orgs.contains_key(org), "member of unknown org {org}");
        if m.role == Role::Owner {
            *owners.entry(org.to_owned()).or_default() += 1;
        }
        members.insert((email.to_owned(), org.to_owned()), m.role.level());
    }
    s.members = members.len();
    let mut index = BTreeMap::new();
    for item in r
        .open_table(MEMBER_ORGS)
        .map_err(|e| io("member_orgs", e))?
        .iter()
        .map_err(|e| io("member_orgs", e))?
    {
        let (k, v) = item.map_err(|e| io("member_orgs", e))?;
        let (email, org) = k.value();
        index.insert((email.to_owned(), org.to_owned()), v.value());
    }
    ensure!(
        index == members,
        "membership index differs from the memberships"
    );
    for (id, org) in &orgs {
        let n = owners.get(id).copied().unwrap_or(0);
        ensure!(
            org.owner_count == n,
            "org {id}: owner_count {} but {n} Owner members",
            org.owner_count
        );
    }

    let mut keys: BTreeMap<[u8; 16], KeyRecord> = BTreeMap::new();
    for item in r
        .open_table(KEYS)
        .map_err(|e| io("keys", e))?
        .iter()
        .map_err(|e| io("keys", e))?
    {
        let (k, v) = item.map_err(|e| io("keys", e))?;
        let rec: KeyRecord = decode("key", v.value()).map_err(|e| e.to_string())?;
        ensure!(
            rec.info.id.as_bytes() == k.value(),
            "key record under another id"
        );
        ensure!(
            orgs.contains_key(rec.info.org.as_str()),
            "key {} of unknown org",
            rec.info.id
        );
        keys.insert(*k.value(), rec);
    }
    s.keys = keys.len();
    s.key_digests = keys
        .values()
        .map(|k| {
            (
                k.info.id,
                (k.digest, k.info.status == crate::KeyStatus::Revoked),
            )
        })
        .collect();
    let mut by_org = 0;
    for item in r
        .open_table(KEYS_BY_ORG)
        .map_err(|e| io("keys_by_org", e))?
        .iter()
        .map_err(|e| io("keys_by_org", e))?
    {
        let (k, _) = item.map_err(|e| io("keys_by_org", e))?;
        let (org, id) = k.value();
        let rec = keys
            .get(id)
            .ok_or_else(|| format!("org index entry {org} -> dangling key"))?;
        ensure!(
            rec.info.org.as_str() == org,
            "org index puts key {} in {org}",
            rec.info.id
        );
        by_org += 1;
    }
    ensure!(
        by_org == keys.len(),
        "{} keys but {by_org} org index entries",
        keys.len()
    );
    let mut digests = 0;
    for item in r
        .open_table(KEY_DIGESTS)
        .map_err(|e| io("key_digests", e))?
        .iter()
        .map_err(|e| io("key_digests", e))?
    {
        let (k, v) = item.map_err(|e| io("key_digests", e))?;
        let rec = keys
            .get(v.value())
            .ok_or("digest index entry -> dangling key")?;
        ensure!(
            &rec.digest == k.value(),
            "digest index entry of key {} is not its digest",
            rec.info.id
        );
        digests += 1;
    }
    ensure!(
        digests == keys.len(),
        "{} keys but {digests} digest index entries",
        keys.len()
    );

    // Audit entries are numbered per org, 1, 2, 3, ... without gaps.
    let mut last: Option<(String, u64)> = None;
    for item in r
        .open_table(AUDIT)
        .map_err(|e| io("audit", e))?
        .iter()
        .map_err(|e| io("audit", e))?
    {
        let (k, v) = item.map_err(|e| io("audit", e))?;
        let (org, seq) = k.value();
        let e: AuditEntry = decode("audit entry", v.value()).map_err(|e| e.to_string())?;
        ensure!(
            e.seq == seq && e.org.as_str() == org,
            "audit entry {org}/{seq} is inconsistent"
        );
        let want = match &last {
            Some((o, n)) if o == org => n + 1,
            _ => 1,
        };
        ensure!(
            seq == want,
            "audit entry {org}/{seq}: expected number {want} (per-org numbering)"
        );
        last = Some((org.to_owned(), seq));
        s.audit += 1;
    }
    Ok(s)
}

/// Stores `files` as the store's new active policy version without validating them, as a
/// build whose schema accepted them would have (this store goes on enforcing the built-in
/// set): a later open of the file by this build finds a stored set it refuses. Returns the
/// version.
pub fn store_policy_files_unchecked(
    store: &crate::Store,
    files: &[(String, String)],
) -> Result<u64, crate::Error> {
    crate::store::policy_set::commit_unchecked(store, files.to_vec()).map(|v| v.version)
}

// ---------------------------------------------------------------------------------------
// Fleet replicas (convergence tests).

/// One replicated record: table name, key bytes, value bytes.
#[cfg(feature = "fleet")]
pub type Record = (String, Vec<u8>, Vec<u8>);

/// Every replicated record of `store`, table by table in key order: two replicas that
/// converged return the same list.
#[cfg(feature = "fleet")]
pub fn replicated_records(store: &crate::Store) -> Result<Vec<Record>, crate::Error> {
    Ok(store
        .inner()
        .replicated_rows()?
        .into_iter()
        .map(|e| (e.table, e.key, e.value.unwrap_or_default()))
        .collect())
}

/// The fleet's shared limits on one store, for the integration tests until a store opens
/// in fleet mode itself: the limits thread of a replica, started on a store's snapshot.
#[cfg(feature = "fleet")]
pub mod fleet_limits {
    use crate::error::Error;
    use crate::fleet::lease::{LimitsHandle, LimitsOptions, start_limits};
    use crate::model::{OrgId, Period, Timestamp, Usd};
    use crate::snapshot::SpenderId;
    use crate::store::Store;
    use std::time::Duration;

    /// A replica's limits thread.
    pub struct Limits(LimitsHandle);

    /// Starts the limits thread of `store` as replica `name` on the database at `url`,
    /// with leases that lapse after `lease_ttl` without renewal.
    pub fn start(
        store: &Store,
        url: &str,
        name: &str,
        lease_ttl: Duration,
    ) -> Result<Limits, Error> {
        let options = LimitsOptions {
            lease_ttl,
            ..LimitsOptions::default()
        };
        start_limits(url, name, store.snapshot_cell(), options).map(Limits)
    }

    impl Limits {
        /// Clean shutdown: returns the unused part of every lease.
        pub fn shutdown(self) -> Result<(), Error> {
            self.0.shutdown()
        }

        /// Stops the thread without returning anything, as a replica that died.
        pub fn abandon(self) {
            drop(self.0);
        }

        /// Queues `spent` of `org` as the store's flusher would after writing it.
        pub fn record_org_spend(&self, org: &OrgId, spent: Usd) {
            self.0
                .record_spend([(&SpenderId::Org(org.clone()), spent.micros())]);
        }

        /// The fleet's spend of `org` in the current window of `period`.
        pub fn fleet_org_spent(&self, org: &OrgId, period: Period) -> Result<Usd, Error> {
            let micros = self.0.fleet_spent(
                &SpenderId::Org(org.clone()),
                period,
                Timestamp::now().as_micros(),
            )?;
            Ok(Usd::from_micros(micros.max(0)).unwrap_or(Usd::ZERO))
        }
    }
}
