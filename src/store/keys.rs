//! Virtual key operations: create, import, list, show, revoke, rotate, edit.

use std::collections::HashSet;

use super::records::KeyRecord;
use super::tx::{ReadRecords, WriteTx};
use super::{AuditOutcome, Store, audit_append};
use crate::config::ip::parse_nets;
use crate::error::Error;
use crate::keys::{SecretKey, parse_digest_hex};
use crate::model::{Actor, KeyId, KeyInfo, KeySource, KeySpec, KeyStatus, OrgId, Timestamp};
use crate::policy::{AdminAction, Target};

/// A newly created or rotated key: the full key is here and nowhere else, ever.
#[derive(Debug)]
#[non_exhaustive]
pub struct CreatedKey {
    /// The stored key (prefix only).
    pub info: KeyInfo,
    /// The full key. Show it once.
    pub key: SecretKey,
}

/// One key to import by the SHA-256 hex digest of its secret.
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct ImportKey {
    /// 64 hex digits: SHA-256 of the whole key string.
    pub sha256_hex: String,
    /// Its settings.
    pub spec: KeySpec,
}

impl ImportKey {
    /// A key to import.
    pub fn new(sha256_hex: impl Into<String>, spec: KeySpec) -> Self {
        Self {
            sha256_hex: sha256_hex.into(),
            spec,
        }
    }
}

/// Key operations (the SDK's `keys`). Get one with [`Store::keys`].
///
/// ```
/// # let store = orgstore::Store::open_temporary().unwrap();
/// use orgstore::{Actor, Email, KeySpec, KeyStatus, OrgId};
/// let op = Actor::Operator;
/// let acme = OrgId::parse("acme").unwrap();
/// store.orgs().create(&op, &acme, "Acme", &Email::parse("o@acme.io").unwrap()).unwrap();
/// let k = store.keys().create(&op, &acme, KeySpec::new("ci").models(["gpt-4o-mini"])).unwrap();
/// let revoked = store.keys().delete(&op, &k.info.id).unwrap();
/// assert_eq!(revoked.status, KeyStatus::Revoked);
/// ```
pub struct Keys<'a> {
    pub(super) store: &'a Store,
}

impl Keys<'_> {
    /// Creates a key in `org`. The org comes from this argument only; `metadata` never
    /// decides tenancy.
    pub fn create(&self, actor: &Actor, org: &OrgId, spec: KeySpec) -> Result<CreatedKey, Error> {
        let spec = validate_spec(spec, Timestamp::now())?;
        self.store.write(|tx| {
            let o = self.store.org_for(tx, actor, org, AdminAction::CreateKey)?;
            let has_expiry = spec.expires_at.is_some();
            self.store.authorize(
                tx,
                actor,
                AdminAction::CreateKey,
                &o,
                Target::NewKey { has_expiry },
            )?;
            let key = SecretKey::generate();
            let info = KeyInfo {
                id: fresh_id(tx)?,
                org: org.clone(),
                prefix: key.prefix(),
                status: KeyStatus::Active,
                spec,
                created_by: actor.to_string(),
                created_at: tx.now,
                revoked_at: None,
                rotated_at: None,
                source: KeySource::Generated,
                version: 1,
            };
            let rec = KeyRecord {
                info,
                digest: key.digest(),
            };
            tx.put_key(&rec, None)?;
            let summary = format!("created key `{}` ({})", rec.info.spec.name, rec.info.prefix);
            audit_append(
                tx,
                &actor.to_string(),
                org,
                AdminAction::CreateKey,
                &rec.info.id.to_string(),
                summary,
                AuditOutcome::Applied,
            )?;
            Ok(CreatedKey {
                info: rec.info,
                key,
            })
        })
    }

    /// Imports existing keys by their SHA-256 digests, all in one transaction: either every
    /// key is imported or none is. A digest that was ever issued to a key of any org (live,
    /// rotated away, revoked, of a deleted org) is refused with `Conflict`: a secret that
    /// was retired can never be brought back.
    pub fn import(
        &self,
        actor: &Actor,
        org: &OrgId,
        keys: &[ImportKey],
    ) -> Result<Vec<KeyInfo>, Error> {
        let now = Timestamp::now();
        let mut prepared = Vec::with_capacity(keys.len());
        let mut seen = HashSet::with_capacity(keys.len());
        for (i, k) in keys.iter().enumerate() {
            let digest = parse_digest_hex(&k.sha256_hex).ok_or_else(|| {
                Error::invalid(
                    format!("keys[{i}].sha256"),
                    "give 64 hex digits: the SHA-256 of the whole key",
                )
            })?;
            if !seen.insert(digest) {
                return Err(Error::invalid(
                    format!("keys[{i}].sha256"),
                    "this digest appears twice in the import",
                ));
            }
            let spec = validate_spec(k.spec.clone(), now)
                .map_err(|e| e.in_field(&format!("keys[{i}]")))?;
            prepared.push((digest, spec));
        }
        self.store.write(|tx| {
            let o = self.store.org_for(tx, actor, org, AdminAction::CreateKey)?;
            let all_expire = prepared.iter().all(|(_, s)| s.expires_at.is_some());
            self.store.authorize(
                tx,
                actor,
                AdminAction::CreateKey,
                &o,
                Target::NewKey {
                    has_expiry: all_expire,
                },
            )?;
            let (now, created_by) = (tx.now, actor.to_string());
            let mut out = Vec::with_capacity(prepared.len());
            // The tables are opened once for the whole batch: per key that would cost more
            // than the inserts themselves.
            let mut tables = tx.key_tables()?;
            for (i, (digest, spec)) in prepared.into_iter().enumerate() {
                let revoked = tables.revoked_by_digest(&digest)?;
                if revoked == Some(false) {
                    return Err(Error::conflict(
                        format!("keys[{i}].sha256"),
                        "a key with this digest already exists; nothing was imported",
                    ));
                }
                if revoked == Some(true) || tables.was_issued(&digest)? {
                    return Err(Error::conflict(
                        format!("keys[{i}].sha256"),
                        "this digest belonged to a key whose secret was rotated away or revoked; \
                         a retired secret is never accepted again: issue a new key (nothing was imported)",
                    ));
                }
                let mut id = KeyId::random();
                while tables.has_id(&id)? {
                    id = KeyId::random();
                }
                let info = KeyInfo {
                    id,
                    org: org.clone(),
                    prefix: "(imported)".into(),
                    status: KeyStatus::Active,
                    spec,
                    created_by: created_by.clone(),
                    created_at: now,
                    revoked_at: None,
                    rotated_at: None,
                    source: KeySource::Imported,
                    version: 1,
                };
                let rec = KeyRecord { info, digest };
                tables.put(&rec, None)?;
                out.push(rec.info);
            }
            drop(tables);
            for info in &out {
                tx.key_written(info.id, None);
            }
            let target = match out.as_slice() {
                [one] => one.id.to_string(),
                _ => format!("{} keys", out.len()),
            };
            audit_append(
                tx,
                &actor.to_string(),
                org,
                AdminAction::CreateKey,
                &target,
                format!("imported {} keys by digest", out.len()),
                AuditOutcome::Applied,
            )?;
            Ok(out)
        })
    }

    /// Lists an org's keys (prefixes only).
    pub fn list(&self, actor: &Actor, org: &OrgId) -> Result<Vec<KeyInfo>, Error> {
        self.store.read(|r| {
            let o = self.store.org_for(r, actor, org, AdminAction::ListKeys)?;
            self.store
                .authorize(r, actor, AdminAction::ListKeys, &o, Target::Org)?;
            Ok(r.keys_of(org)?.into_iter().map(|k| k.info).collect())
        })
    }

    /// Shows one key. Its org comes from the store's record, so an id of another org's key
    /// is authorized against that org.
    pub fn show(&self, actor: &Actor, id: &KeyId) -> Result<KeyInfo, Error> {
        self.store.read(|r| {
            let (rec, o) = self.store.key_for(r, actor, id, AdminAction::ListKeys)?;
            // ListKeys is decided on the key's org (see the schema).
            self.store
                .authorize(r, actor, AdminAction::ListKeys, &o, Target::Org)?;
            Ok(rec.info)
        })
    }

    /// Revokes a key (the SDK's `keys.delete`). Every later gateway check refuses it.
    pub fn delete(&self, actor: &Actor, id: &KeyId) -> Result<KeyInfo, Error> {
        self.revoke(actor, id)
    }

    /// Revokes a key. Every later gateway check refuses it.
    pub fn revoke(&self, actor: &Actor, id: &KeyId) -> Result<KeyInfo, Error> {
        self.manage(actor, id, |tx, rec| {
            if rec.info.status == KeyStatus::Revoked {
                return Err(Error::conflict(
                    "key id",
                    format!("key {id} is already revoked"),
                ));
            }
            rec.info.status = KeyStatus::Revoked;
            rec.info.revoked_at = Some(tx.now);
            Ok(("revoked".into(), None))
        })
        .map(|(info, _)| info)
    }

    /// Issues a new secret for the same key id and settings; the old secret stops working.
    pub fn rotate(&self, actor: &Actor, id: &KeyId) -> Result<CreatedKey, Error> {
        let (info, key) = self.manage(actor, id, |tx, rec| {
            if rec.info.status == KeyStatus::Revoked {
                return Err(Error::conflict(
                    "key id",
                    format!("key {id} is revoked; create a new key instead"),
                ));
            }
            let key = SecretKey::generate();
            rec.digest = key.digest();
            rec.info.prefix = key.prefix();
            rec.info.rotated_at = Some(tx.now);
            Ok((
                format!("rotated, new prefix {}", rec.info.prefix),
                Some(key),
            ))
        })?;
        let key = key.ok_or_else(|| Error::corrupt("rotation", "no key generated"))?;
        Ok(CreatedKey { info, key })
    }

    /// Replaces a key's settings (name, limits, models, addresses, budget, expiry, metadata).
    /// A revoked key cannot be changed (`Conflict`, as for [`Keys::rotate`]).
    pub fn update(&self, actor: &Actor, id: &KeyId, spec: KeySpec) -> Result<KeyInfo, Error> {
        let spec = validate_spec(spec, Timestamp::now())?;
        self.manage(actor, id, |_, rec| {
            if rec.info.status == KeyStatus::Revoked {
                return Err(Error::conflict(
                    "key id",
                    format!("key {id} is revoked and cannot be changed; create a new key instead"),
                ));
            }
            rec.info.spec = spec;
            Ok(("settings replaced".into(), None))
        })
        .map(|(info, _)| info)
    }

    fn manage(
        &self,
        actor: &Actor,
        id: &KeyId,
        change: impl FnOnce(&WriteTx, &mut KeyRecord) -> Result<(String, Option<SecretKey>), Error>,
    ) -> Result<(KeyInfo, Option<SecretKey>), Error> {
        self.store.write(|tx| {
            let (mut rec, o) = self.store.key_for(tx, actor, id, AdminAction::ManageKey)?;
            let target = Target::Key {
                id: *id,
                created_by: &rec.info.created_by,
            };
            self.store
                .authorize(tx, actor, AdminAction::ManageKey, &o, target)?;
            let old_digest = rec.digest;
            let (summary, key) = change(tx, &mut rec)?;
            rec.info.version += 1;
            tx.put_key(&rec, Some(old_digest))?;
            audit_append(
                tx,
                &actor.to_string(),
                &o.id,
                AdminAction::ManageKey,
                &id.to_string(),
                summary,
                AuditOutcome::Applied,
            )?;
            Ok((rec.info, key))
        })
    }
}

fn fresh_id(tx: &WriteTx) -> Result<KeyId, Error> {
    loop {
        let id = KeyId::random();
        if tx.key(&id)?.is_none() {
            return Ok(id);
        }
    }
}

/// Checks a key spec; returns it trimmed.
pub(crate) fn validate_spec(mut spec: KeySpec, now: Timestamp) -> Result<KeySpec, Error> {
    spec.name = super::orgs::validate_name("name", &spec.name)?;
    if spec.rate_limit_rpm == Some(0) {
        return Err(Error::invalid(
            "rate_limit_rpm",
            "must be at least 1; omit it to use the org's limit",
        ));
    }
    if spec.rate_limit_tpm == Some(0) {
        return Err(Error::invalid(
            "rate_limit_tpm",
            "must be at least 1; omit it to use the org's limit",
        ));
    }
    if spec.allowed_models.len() > 1000 {
        return Err(Error::invalid("allowed_models", "give at most 1000 models"));
    }
    for (i, m) in spec.allowed_models.iter_mut().enumerate() {
        *m = crate::model::validate_model_name(format!("allowed_models[{i}]"), m)?.to_owned();
    }
    let nets = parse_nets("allowed_ips", &spec.allowed_ips)?;
    spec.allowed_ips = nets.iter().map(ToString::to_string).collect();
    if let Some(t) = spec.expires_at
        && t <= now
    {
        return Err(Error::invalid(
            "expires_at",
            "is in the past; give a future time such as 2030-01-01T00:00:00Z",
        ));
    }
    if spec.metadata.len() > 64 {
        return Err(Error::invalid("metadata", "give at most 64 entries"));
    }
    for (k, v) in &spec.metadata {
        if k.is_empty()
            || k.len() > 64
            || v.len() > 1024
            || k.chars().chain(v.chars()).any(char::is_control)
        {
            return Err(Error::invalid(
                "metadata",
                "keys must be 1 to 64 characters and values at most 1024, without control characters",
            ));
        }
    }
    Ok(spec)
}
