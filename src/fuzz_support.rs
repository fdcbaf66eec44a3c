//! The bodies of the fuzz targets in `fuzz/`, shared with `tests/it/fuzz_corpus.rs`, which
//! replays the checked-in corpus on stable Rust. Not part of the stable API.
//!
//! Each function takes the fuzzer's bytes and returns `Err` with a description when an
//! invariant is broken; a panic anywhere below is a bug too. Errors the library reports for
//! bad input are expected and fine.

use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr};

use arbitrary::{Arbitrary, Unstructured};
use serde_json::{Value, json};

use crate::config::{OrgConfig, diff, is_secret_field, looks_masked, string_credentials};
use crate::error::ErrorKind;
use crate::keys::{
    HeaderError, KEY_LEN, KEY_PREFIX, OLD_KEY_LEN, check_key_format, key_from_headers,
};
use crate::model::{Actor, Email, KeyId, KeyInfo, Member, Org, OrgId, Role, Timestamp, Usd};
use crate::store::codec::{decode, encode};
use crate::store::records::{ConfigRecord, KeyRecord};
use crate::store::secrets::Sealer;
use crate::store::{AuditEntry, StoreBuilder};
use crate::{Policies, Request, Store};

/// What a broken invariant reports.
pub type Failure = String;

macro_rules! ensure {
    ($cond:expr, $($msg:tt)+) => {
        if !$cond {
            return Err(format!($($msg)+));
        }
    };
}

/// Key parsing: `check_key_format` and `key_from_headers` on arbitrary text, plus the id and
/// amount parsers that see user input. Accepted keys must have an accepted shape.
pub fn key_parse(data: &[u8]) -> Result<(), Failure> {
    let text = String::from_utf8_lossy(data);
    let s: &str = &text;
    if check_key_format(s).is_ok() {
        let rest = &s[KEY_PREFIX.len().min(s.len())..];
        ensure!(
            s.starts_with(KEY_PREFIX),
            "accepted a key without the prefix"
        );
        ensure!(
            s.len() == KEY_LEN
                || s.len() == OLD_KEY_LEN
                || (rest.len() == 48 && rest.bytes().all(|c| c.is_ascii_hexdigit())),
            "accepted a key of length {}",
            s.len()
        );
        ensure!(
            s.bytes().all(|c| c.is_ascii_alphanumeric() || c == b'-'),
            "accepted a non-ASCII key"
        );
    }
    // Headers: split the input in two at the first NUL (authorization, x-api-key).
    let (a, b) = s.split_once('\0').map_or((s, None), |(a, b)| (a, Some(b)));
    for (auth, x) in [(Some(a), b), (None, Some(a)), (Some(a), None)] {
        match key_from_headers(auth, x) {
            Ok(k) => {
                ensure!(!k.is_empty(), "empty key extracted");
                ensure!(
                    !k.bytes().any(|c| c.is_ascii_whitespace()),
                    "key with whitespace extracted"
                );
                ensure!(
                    auth.or(x).is_some_and(|h| h.contains(k)),
                    "extracted key is not in the header"
                );
            }
            Err(HeaderError::Missing) => {
                ensure!(auth.is_none() && x.is_none(), "missing with a header")
            }
            Err(_) => {}
        }
    }
    if let Ok(e) = Email::parse(s) {
        ensure!(
            Email::parse(e.as_str()).ok().as_ref() == Some(&e),
            "email normalisation not idempotent"
        );
        ensure!(e.as_str().len() <= 254, "over-long email accepted");
    }
    if let Ok(o) = OrgId::parse(s) {
        ensure!(
            o.as_str() == s && s.len() <= 63,
            "org id changed or too long"
        );
    }
    if let Ok(k) = KeyId::parse(s) {
        ensure!(
            KeyId::parse(&k.to_string()).ok() == Some(k),
            "key id does not round-trip"
        );
    }
    if let Ok(u) = Usd::parse(s) {
        ensure!(u.micros() >= 0, "negative amount accepted");
        ensure!(
            Usd::parse(&u.to_string()).ok() == Some(u),
            "amount {u:?} does not round-trip"
        );
    }
    if let Ok(t) = Timestamp::parse(s) {
        let _ = t.to_string();
    }
    let _ = s.parse::<Role>();
    Ok(())
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
    let masked = cfg.to_masked_json();
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
    let gate = crate::store::records::KeyGate::decode(data);
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
            outcome: crate::Outcome::Applied,
        }))?,
    ])
}

/// A temporary directory removed on drop (the library has no `tempfile`).
struct TempDir(std::path::PathBuf);

impl TempDir {
    fn new() -> Result<Self, Failure> {
        let p = std::env::temp_dir().join(format!("orgstore-fuzz-{}", KeyId::random()));
        std::fs::create_dir(&p).map_err(|e| format!("cannot create {}: {e}", p.display()))?;
        Ok(Self(p))
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Policy directory loading: the bytes as `fuzz.cedar` added to the default set. A bad file
/// is rejected with kind `Invalid` naming the file; a good one yields a usable set.
pub fn policy_dir(data: &[u8]) -> Result<(), Failure> {
    let dir = TempDir::new()?;
    std::fs::write(dir.0.join("fuzz.cedar"), data).map_err(|e| format!("write: {e}"))?;
    let base = Policies::default_set().map_err(|e| format!("default set does not load: {e}"))?;
    match base.with_dir(&dir.0) {
        Ok(p) => {
            let org = OrgId::parse("acme").map_err(|e| e.to_string())?;
            let actor = Actor::Operator;
            for action in crate::AdminAction::ALL {
                let req = crate::policy::AdminRequest {
                    actor: &actor,
                    actor_role: Some(Role::Viewer),
                    action,
                    org: &org,
                    owner_count: 1,
                    target: crate::policy::Target::Org,
                };
                let _ = p.authorize(&req);
            }
        }
        Err(e) => {
            ensure!(
                e.kind() == ErrorKind::Invalid,
                "bad policy file gave kind {:?}: {e}",
                e.kind()
            );
            ensure!(
                e.to_string().contains("fuzz.cedar"),
                "error does not name the file: {e}"
            );
        }
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------
// Model test: random admin operations and gateway checks against a reference model.

const ORGS: u8 = 3;
const PEOPLE: u8 = 4;
const MODELS: u8 = 5;

/// One admin operation or gateway check, with small index spaces so that operations collide.
#[derive(Arbitrary, Debug, Clone)]
pub enum Op {
    /// Create org `org % 3` with owner person 0.
    CreateOrg {
        /// Org slot.
        org: u8,
    },
    /// Delete an org.
    DeleteOrg {
        /// Org slot.
        org: u8,
    },
    /// Suspend (`true`) or resume an org.
    SetSuspended {
        /// Org slot.
        org: u8,
        /// Suspend or resume.
        suspended: bool,
    },
    /// Add person `who % 4` with role `role % 4`.
    AddMember {
        /// Org slot.
        org: u8,
        /// Person slot.
        who: u8,
        /// Role index.
        role: u8,
    },
    /// Change a member's role.
    SetRole {
        /// Org slot.
        org: u8,
        /// Person slot.
        who: u8,
        /// Role index.
        role: u8,
    },
    /// Remove a member.
    RemoveMember {
        /// Org slot.
        org: u8,
        /// Person slot.
        who: u8,
    },
    /// Create a key; `models` is a bitmask of the 5 models (0: all the org allows).
    CreateKey {
        /// Org slot.
        org: u8,
        /// Model bitmask.
        models: u8,
    },
    /// Revoke key `key % n`.
    Revoke {
        /// Key slot.
        key: u8,
    },
    /// Rotate key `key % n`.
    Rotate {
        /// Key slot.
        key: u8,
    },
    /// Set the org's `allowed_models` (a bitmask) or remove it (`None`).
    UpdateModels {
        /// Org slot.
        org: u8,
        /// Model bitmask, `None` for all models.
        models: Option<u8>,
    },
    /// Check key `key % n` for model `model % 5`, with its previous secret if `stale`.
    Check {
        /// Key slot.
        key: u8,
        /// Model index.
        model: u8,
        /// Use the secret from before the last rotation.
        stale: bool,
    },
    /// Check a string that is not a key of the store.
    CheckJunk {
        /// The string.
        junk: String,
    },
    /// Compare every listing and count with the model.
    Counts,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum St {
    Active,
    Suspended,
    Deleted,
}

struct MOrg {
    status: St,
    members: BTreeMap<u8, Role>,
    models: Option<Vec<u8>>,
    versions: u64,
}

struct MKey {
    org: u8,
    id: KeyId,
    secret: String,
    old_secret: Option<String>,
    revoked: bool,
    models: Vec<u8>,
}

#[derive(Default)]
struct Model {
    orgs: BTreeMap<u8, MOrg>,
    keys: Vec<MKey>,
}

impl Model {
    fn live(&self, o: u8) -> Option<&MOrg> {
        self.orgs.get(&o).filter(|m| m.status != St::Deleted)
    }
}

fn org_id(o: u8) -> Result<OrgId, Failure> {
    OrgId::parse(&format!("org-{o}")).map_err(|e| e.to_string())
}

fn person(w: u8) -> Result<Email, Failure> {
    Email::parse(&format!("p{w}@x.io")).map_err(|e| e.to_string())
}

fn model_name(m: u8) -> String {
    format!("model-{m}")
}

fn mask_models(mask: u8) -> Vec<u8> {
    (0..MODELS).filter(|m| mask & (1 << m) != 0).collect()
}

/// Compares a store result with the model's expectation: `Ok(())` or the error kind.
fn expect<T>(
    op: &Op,
    got: &Result<T, crate::Error>,
    want: Result<(), ErrorKind>,
) -> Result<(), Failure> {
    let got_kind = got.as_ref().map(|_| ()).map_err(crate::Error::kind);
    ensure!(
        got_kind == want,
        "{op:?}: store gave {:?}, model expects {want:?}",
        got.as_ref().map(|_| ()).map_err(ToString::to_string)
    );
    Ok(())
}

fn role_of(r: u8) -> Role {
    Role::ALL[usize::from(r % 4)]
}

/// The model test: replays a sequence of operations (decoded with `arbitrary`) against an
/// in-memory store and a reference model of maps, checking every result, every gateway
/// decision and, at the end, every listing and count.
pub fn model_ops(data: &[u8]) -> Result<(), Failure> {
    let mut u = Unstructured::new(data);
    let mut ops = Vec::new();
    while ops.len() < 64 && !u.is_empty() {
        match Op::arbitrary(&mut u) {
            Ok(op) => ops.push(op),
            Err(_) => break,
        }
    }
    ops.push(Op::Counts);
    run_model(&ops)
}

/// Replays `ops` against a fresh in-memory store and the reference model.
pub fn run_model(ops: &[Op]) -> Result<(), Failure> {
    // Lossless spend: no background flusher thread per store.
    let store = StoreBuilder::new()
        .lossless_spend()
        .open_temporary()
        .map_err(|e| e.to_string())?;
    let mut m = Model::default();
    for op in ops {
        step(&store, &mut m, op)?;
    }
    Ok(())
}

fn step(store: &Store, m: &mut Model, op: &Op) -> Result<(), Failure> {
    let a = Actor::Operator;
    match op {
        Op::CreateOrg { org } => {
            let o = org % ORGS;
            let got = store.orgs().create(&a, &org_id(o)?, "Org", &person(0)?);
            match m.orgs.entry(o) {
                std::collections::btree_map::Entry::Occupied(_) => {
                    expect(op, &got, Err(ErrorKind::Conflict))?
                }
                std::collections::btree_map::Entry::Vacant(slot) => {
                    expect(op, &got, Ok(()))?;
                    let members = BTreeMap::from([(0, Role::Owner)]);
                    slot.insert(MOrg {
                        status: St::Active,
                        members,
                        models: None,
                        versions: 1,
                    });
                }
            }
        }
        Op::DeleteOrg { org } | Op::SetSuspended { org, .. } => {
            let o = org % ORGS;
            let (next, got) = match op {
                Op::SetSuspended {
                    suspended: true, ..
                } => (
                    St::Suspended,
                    store.orgs().suspend(&a, &org_id(o)?).map(|c| c.org),
                ),
                Op::SetSuspended { .. } => (
                    St::Active,
                    store.orgs().resume(&a, &org_id(o)?).map(|c| c.org),
                ),
                _ => (St::Deleted, store.orgs().delete(&a, &org_id(o)?)),
            };
            match m.orgs.get_mut(&o).filter(|x| x.status != St::Deleted) {
                Some(x) => {
                    expect(op, &got, Ok(()))?;
                    x.status = next;
                }
                None => expect(op, &got, Err(ErrorKind::NotFound))?,
            }
        }
        Op::AddMember { org, who, role } => {
            let (o, w, r) = (org % ORGS, who % PEOPLE, role_of(*role));
            let got = store.members().add(&a, &org_id(o)?, &person(w)?, r);
            match m.orgs.get_mut(&o).filter(|x| x.status != St::Deleted) {
                None => expect(op, &got, Err(ErrorKind::NotFound))?,
                Some(x) if x.members.contains_key(&w) => {
                    expect(op, &got, Err(ErrorKind::Conflict))?
                }
                Some(x) => {
                    expect(op, &got, Ok(()))?;
                    x.members.insert(w, r);
                }
            }
        }
        Op::SetRole { org, who, role } => {
            let (o, w, r) = (org % ORGS, who % PEOPLE, role_of(*role));
            let got = store.members().set_role(&a, &org_id(o)?, &person(w)?, r);
            match m.orgs.get_mut(&o).filter(|x| x.status != St::Deleted) {
                Some(x) if x.members.contains_key(&w) => {
                    let owners = x.members.values().filter(|r| **r == Role::Owner).count();
                    let before = x.members.get(&w).copied();
                    if before == Some(Role::Owner) && r != Role::Owner && owners <= 1 {
                        expect(op, &got, Err(ErrorKind::Conflict))?;
                    } else {
                        expect(op, &got, Ok(()))?;
                        x.members.insert(w, r);
                    }
                }
                _ => expect(op, &got, Err(ErrorKind::NotFound))?,
            }
        }
        Op::RemoveMember { org, who } => {
            let (o, w) = (org % ORGS, who % PEOPLE);
            let got = store.members().remove(&a, &org_id(o)?, &person(w)?);
            match m.orgs.get_mut(&o).filter(|x| x.status != St::Deleted) {
                Some(x) if x.members.contains_key(&w) => {
                    let owners = x.members.values().filter(|r| **r == Role::Owner).count();
                    if x.members.get(&w) == Some(&Role::Owner) && owners <= 1 {
                        expect(op, &got, Err(ErrorKind::Conflict))?;
                    } else {
                        expect(op, &got, Ok(()))?;
                        x.members.remove(&w);
                    }
                }
                _ => expect(op, &got, Err(ErrorKind::NotFound))?,
            }
        }
        Op::CreateKey { org, models } => {
            let o = org % ORGS;
            let ms = mask_models(*models);
            let spec = crate::KeySpec::new("k").models(ms.iter().map(|x| model_name(*x)));
            let got = store.keys().create(&a, &org_id(o)?, spec);
            if m.live(o).is_some() {
                expect(op, &got, Ok(()))?;
                if let Ok(c) = got {
                    ensure!(c.info.org == org_id(o)?, "key created in another org");
                    m.keys.push(MKey {
                        org: o,
                        id: c.info.id,
                        secret: c.key.expose().to_owned(),
                        old_secret: None,
                        revoked: false,
                        models: ms,
                    });
                }
            } else {
                expect(op, &got, Err(ErrorKind::NotFound))?;
            }
        }
        Op::Revoke { key } | Op::Rotate { key } => {
            if m.keys.is_empty() {
                return Ok(());
            }
            let i = usize::from(*key) % m.keys.len();
            let (org, id, revoked) = (m.keys[i].org, m.keys[i].id, m.keys[i].revoked);
            let live = m.live(org).is_some();
            let want = if !live {
                Err(ErrorKind::NotFound)
            } else if revoked {
                Err(ErrorKind::Conflict)
            } else {
                Ok(())
            };
            if matches!(op, Op::Revoke { .. }) {
                let got = store.keys().revoke(&a, &id);
                expect(op, &got, want)?;
                if got.is_ok() {
                    m.keys[i].revoked = true;
                }
            } else {
                let got = store.keys().rotate(&a, &id);
                expect(op, &got, want)?;
                if let Ok(c) = got {
                    ensure!(c.info.id == id, "rotation changed the key id");
                    let k = &mut m.keys[i];
                    k.old_secret =
                        Some(std::mem::replace(&mut k.secret, c.key.expose().to_owned()));
                }
            }
        }
        Op::UpdateModels { org, models } => {
            let o = org % ORGS;
            let list = models.map(mask_models);
            let patch = json!({ "allowed_models": list.as_ref().map(|l| l.iter().map(|x| model_name(*x)).collect::<Vec<_>>()) });
            let got = store
                .org_configs()
                .update(&a, &org_id(o)?, &patch.to_string());
            match m.orgs.get_mut(&o).filter(|x| x.status != St::Deleted) {
                Some(x) => {
                    expect(op, &got, Ok(()))?;
                    // Setting the list it already has is no change: no new version.
                    let changed = x.models != list;
                    if let Ok(v) = &got {
                        ensure!(
                            v.changed == changed,
                            "update reported changed={}",
                            v.changed
                        );
                    }
                    if changed {
                        x.models = list;
                        x.versions += 1;
                    }
                }
                None => expect(op, &got, Err(ErrorKind::NotFound))?,
            }
        }
        Op::Check { key, model, stale } => {
            if m.keys.is_empty() {
                return Ok(());
            }
            let k = &m.keys[usize::from(*key) % m.keys.len()];
            let md = model % MODELS;
            let (secret, want) = match (&k.old_secret, stale) {
                (Some(old), true) => (old.as_str(), "unknown_key"),
                _ => (k.secret.as_str(), expected_code(m, k, md)),
            };
            let name = model_name(md);
            let req = Request::new(secret, &name, IpAddr::V4(Ipv4Addr::LOCALHOST));
            let gw = store.gateway();
            let got = gw.check(&req);
            let code = got.as_ref().map_or_else(|d| d.code(), |_| "ok");
            ensure!(
                code == want,
                "{op:?}: gateway says {code}, model expects {want}"
            );
            if let Ok(g) = &got {
                ensure!(
                    g.key_id() == k.id && *g.org_id() == org_id(k.org)?,
                    "grant names another key or org"
                );
            }
        }
        Op::CheckJunk { junk } => {
            let req = Request::new(junk, "model-0", IpAddr::V4(Ipv4Addr::LOCALHOST));
            let gw = store.gateway();
            let got = gw.check(&req);
            let code = got.as_ref().map_or_else(|d| d.code(), |_| "ok");
            ensure!(
                matches!(code, "malformed_key" | "unknown_key"),
                "junk key got {code}"
            );
        }
        Op::Counts => counts(store, m)?,
    }
    Ok(())
}

fn expected_code(m: &Model, k: &MKey, md: u8) -> &'static str {
    if k.revoked {
        return "revoked";
    }
    let Some(o) = m.orgs.get(&k.org) else {
        return "unknown_key";
    };
    match o.status {
        St::Deleted => return "org_deleted",
        St::Suspended => return "org_suspended",
        St::Active => {}
    }
    let org_ok = o.models.as_ref().is_none_or(|l| l.contains(&md));
    let key_ok = k.models.is_empty() || k.models.contains(&md);
    if org_ok && key_ok {
        "ok"
    } else {
        "model_not_allowed"
    }
}

fn counts(store: &Store, m: &Model) -> Result<(), Failure> {
    let a = Actor::Operator;
    let listed = store.orgs().list(&a).map_err(|e| e.to_string())?;
    let live = m.orgs.values().filter(|o| o.status != St::Deleted).count();
    ensure!(
        listed.len() == live,
        "org list has {} orgs, model {live}",
        listed.len()
    );
    ensure!(
        store.gateway().key_count() == m.keys.len(),
        "snapshot holds {} keys, model {}",
        store.gateway().key_count(),
        m.keys.len()
    );
    for (o, mo) in &m.orgs {
        let id = org_id(*o)?;
        if mo.status == St::Deleted {
            let got = store.orgs().get(&a, &id);
            ensure!(
                got.as_ref().err().map(crate::Error::kind) == Some(ErrorKind::NotFound),
                "deleted org {id} visible"
            );
            continue;
        }
        let org = store.orgs().get(&a, &id).map_err(|e| e.to_string())?;
        let owners = mo.members.values().filter(|r| **r == Role::Owner).count();
        ensure!(
            org.owner_count as usize == owners,
            "{id}: owner_count {} but {owners} owners",
            org.owner_count
        );
        ensure!(
            org.latest_version == mo.versions && org.config_version == mo.versions,
            "{id}: versions differ"
        );
        let members = store.members().list(&a, &id).map_err(|e| e.to_string())?;
        ensure!(
            members.len() == mo.members.len(),
            "{id}: {} members, model {}",
            members.len(),
            mo.members.len()
        );
        for mem in &members {
            let w = (0..PEOPLE).find(|w| person(*w).ok().as_ref() == Some(&mem.email));
            let want = w.and_then(|w| mo.members.get(&w));
            ensure!(
                want == Some(&mem.role),
                "{id}: member {} has role {}",
                mem.email,
                mem.role
            );
        }
        let keys = store.keys().list(&a, &id).map_err(|e| e.to_string())?;
        let mine: Vec<&MKey> = m.keys.iter().filter(|k| k.org == *o).collect();
        ensure!(
            keys.len() == mine.len(),
            "{id}: {} keys, model {}",
            keys.len(),
            mine.len()
        );
        for k in &mine {
            let info = keys
                .iter()
                .find(|i| i.id == k.id)
                .ok_or_else(|| format!("{id}: key {} missing", k.id))?;
            ensure!(
                (info.status == crate::KeyStatus::Revoked) == k.revoked,
                "{id}: key {} status differs",
                k.id
            );
        }
        let history = store
            .org_configs()
            .history(&a, &id)
            .map_err(|e| e.to_string())?;
        ensure!(
            history.len() as u64 == mo.versions,
            "{id}: history has {} versions",
            history.len()
        );
        let cfg = store
            .org_configs()
            .retrieve(&a, &id)
            .map_err(|e| e.to_string())?;
        let want: Option<Vec<String>> = mo
            .models
            .as_ref()
            .map(|l| l.iter().map(|x| model_name(*x)).collect());
        ensure!(
            cfg.config.allowed_models().map(<[String]>::to_vec) == want,
            "{id}: allowed_models differ"
        );
    }
    Ok(())
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
