//! Versioned org config: retrieve, update (merge patch), history, diff, rollback.

use super::records::ConfigRecord;
use super::secrets::{Sealer, Unreadable};
use super::tx::ReadRecords;
use super::{AuditOutcome, Store, audit_append};
use crate::config::{ConfigChange, OrgConfig, diff};
use crate::error::Error;
use crate::model::{Actor, OrgId, Timestamp};
use crate::policy::{AdminAction, Target};

/// One version of an org's config.
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct ConfigVersion {
    /// The org.
    pub org: OrgId,
    /// Version number, from 1.
    pub version: u64,
    /// Whether this version is the active one.
    pub active: bool,
    /// When it was created.
    pub created_at: Timestamp,
    /// Who created it.
    pub created_by: String,
    /// `initial`, `update` or `rollback to N`.
    pub note: String,
    /// The validated config; provider secrets are masked unless it came from
    /// [`OrgConfigs::reveal`].
    pub config: OrgConfig,
    /// For [`OrgConfigs::update`] and [`OrgConfigs::rollback`]: whether the call made a new
    /// version. `false` when the result equals the active config (an empty patch, a patch
    /// that sets values to what they are, a rollback to the active version or to a copy of
    /// it): then this is the active version, no version was written and nothing was
    /// audited. Always `false` for reads.
    pub changed: bool,
}

impl ConfigVersion {
    /// This version as JSON text (what the admin API answers): `org`, `version`, `active`,
    /// `created_at`, `created_by`, `note`, `config` with its secrets masked, and `changed`.
    ///
    /// ```
    /// # let store = orgstore::Store::open_temporary().unwrap();
    /// use orgstore::{Actor, Email, OrgId};
    /// let acme = OrgId::parse("acme")?;
    /// store.orgs().create(&Actor::Operator, &acme, "Acme", &Email::parse("ann@acme.io")?)?;
    /// let v = store.org_configs().retrieve(&Actor::Operator, &acme)?;
    /// let json: serde_json::Value = serde_json::from_str(&v.to_json()).unwrap();
    /// assert_eq!(json["version"], 1);
    /// assert_eq!(json["org"], "acme");
    /// # Ok::<(), orgstore::Error>(())
    /// ```
    pub fn to_json(&self) -> String {
        self.json_with(self.config.masked_value()).to_string()
    }

    /// As [`ConfigVersion::to_json`], with the config as held: in clear only for a version
    /// from [`OrgConfigs::reveal`] (Owner or Admin).
    ///
    /// ```
    /// # let store = orgstore::Store::open_temporary().unwrap();
    /// use orgstore::{Actor, Email, OrgId};
    /// let acme = OrgId::parse("acme")?;
    /// store.orgs().create(&Actor::Operator, &acme, "Acme", &Email::parse("ann@acme.io")?)?;
    /// let v = store.org_configs().reveal(&Actor::Operator, &acme, None)?;
    /// assert!(v.to_revealed_json().contains(r#""active":true"#));
    /// # Ok::<(), orgstore::Error>(())
    /// ```
    pub fn to_revealed_json(&self) -> String {
        self.json_with(self.config.json().clone()).to_string()
    }

    fn json_with(&self, config: serde_json::Value) -> serde_json::Value {
        serde_json::json!({
            "org": self.org.as_str(),
            "version": self.version,
            "active": self.active,
            "created_at": self.created_at.to_string(),
            "created_by": self.created_by,
            "note": self.note,
            "config": config,
            "changed": self.changed,
        })
    }
}

/// Org config operations (the SDK's `org_configs`). Get one with [`Store::org_configs`].
///
/// ```
/// # let store = orgstore::Store::open_temporary().unwrap();
/// use orgstore::{Actor, Email, OrgId};
/// let op = Actor::Operator;
/// let acme = OrgId::parse("acme").unwrap();
/// store.orgs().create(&op, &acme, "Acme", &Email::parse("o@acme.io").unwrap()).unwrap();
/// let v2 = store.org_configs().update(&op, &acme, r#"{"rate_limiting":{"enabled":true,"rpm":1000}}"#).unwrap();
/// assert_eq!(v2.version, 2);
/// assert_eq!(store.org_configs().retrieve(&op, &acme).unwrap().config.rate_limiting().rpm, Some(1000));
/// ```
pub struct OrgConfigs<'a> {
    pub(super) store: &'a Store,
}

impl OrgConfigs<'_> {
    /// The active config.
    pub fn retrieve(&self, actor: &Actor, org: &OrgId) -> Result<ConfigVersion, Error> {
        self.version(actor, org, None)
    }

    /// One version (the active one for `None`).
    pub fn version(
        &self,
        actor: &Actor,
        org: &OrgId,
        version: Option<u64>,
    ) -> Result<ConfigVersion, Error> {
        self.get(actor, org, version, AdminAction::ReadOrg)
    }

    /// One version with provider secrets in clear text (Owner and Admin only).
    pub fn reveal(
        &self,
        actor: &Actor,
        org: &OrgId,
        version: Option<u64>,
    ) -> Result<ConfigVersion, Error> {
        self.get(actor, org, version, AdminAction::RevealSecrets)
    }

    fn get(
        &self,
        actor: &Actor,
        org: &OrgId,
        version: Option<u64>,
        action: AdminAction,
    ) -> Result<ConfigVersion, Error> {
        self.store.read(|r| {
            let o = self.store.org_for(r, actor, org, action)?;
            // ReadOrg is decided on the org, RevealSecrets on its config (see the schema).
            let target = if action == AdminAction::RevealSecrets {
                Target::Config
            } else {
                Target::Org
            };
            self.store.authorize(r, actor, action, &o, target)?;
            let rec = r.config(org, version.unwrap_or(o.config_version))?;
            let sealer = &self.store.inner.sealer;
            let config = if action == AdminAction::RevealSecrets {
                sealer.open_strict(&rec)?
            } else {
                sealer.open(&rec)?.config.masked()
            };
            Ok(to_version(org, o.config_version, rec, config))
        })
    }

    /// Applies a JSON merge patch (RFC 7396) over the active version; the merged result is
    /// validated whole and becomes version N+1. A failed update changes nothing. A patch
    /// that leaves the config as it is (`{}`, or values set to what they are) writes no
    /// version and no audit entry: it returns the active version with `changed: false`.
    pub fn update(&self, actor: &Actor, org: &OrgId, patch: &str) -> Result<ConfigVersion, Error> {
        self.store.write(|tx| {
            let o = self
                .store
                .org_for(tx, actor, org, AdminAction::UpdateConfig)?;
            self.store
                .authorize(tx, actor, AdminAction::UpdateConfig, &o, Target::Config)?;
            let sealer = &self.store.inner.sealer;
            let active_rec = tx.config(org, o.config_version)?;
            let active = sealer.open(&active_rec)?;
            let next = active.config.merge_patch(patch)?;
            if next.json() == active.config.json() {
                return Ok(unchanged(org, active_rec, active.config));
            }
            let changes = diff(active.config.json(), next.json());
            commit_version(
                tx,
                sealer,
                actor,
                o,
                next,
                "update".into(),
                &changes,
                &active.unreadable,
            )
        })
    }

    /// Re-activates an old version's content as a new version. Rolling back to the active
    /// version (or to one whose content equals it) writes nothing and returns the active
    /// version with `changed: false`.
    pub fn rollback(
        &self,
        actor: &Actor,
        org: &OrgId,
        version: u64,
    ) -> Result<ConfigVersion, Error> {
        self.store.write(|tx| {
            let o = self
                .store
                .org_for(tx, actor, org, AdminAction::UpdateConfig)?;
            self.store
                .authorize(tx, actor, AdminAction::UpdateConfig, &o, Target::Config)?;
            let sealer = &self.store.inner.sealer;
            let old = sealer.open(&tx.config(org, version)?)?;
            let active_rec = tx.config(org, o.config_version)?;
            let active = sealer.open(&active_rec)?;
            if version == o.config_version || old.config.json() == active.config.json() {
                return Ok(unchanged(org, active_rec, active.config));
            }
            let changes = diff(active.config.json(), old.config.json());
            let note = format!("rollback to {version}");
            commit_version(
                tx,
                sealer,
                actor,
                o,
                old.config,
                note,
                &changes,
                &old.unreadable,
            )
        })
    }

    /// Every version, oldest first.
    pub fn history(&self, actor: &Actor, org: &OrgId) -> Result<Vec<ConfigVersion>, Error> {
        self.store.read(|r| {
            let o = self.store.org_for(r, actor, org, AdminAction::ReadOrg)?;
            self.store
                .authorize(r, actor, AdminAction::ReadOrg, &o, Target::Org)?;
            let sealer = &self.store.inner.sealer;
            (1..=o.latest_version)
                .map(|v| {
                    let rec = r.config(org, v)?;
                    let config = sealer.open(&rec)?.config.masked();
                    Ok(to_version(org, o.config_version, rec, config))
                })
                .collect()
        })
    }

    /// The leaves that differ from version `a` to version `b`, secrets masked.
    pub fn diff(
        &self,
        actor: &Actor,
        org: &OrgId,
        a: u64,
        b: u64,
    ) -> Result<Vec<ConfigChange>, Error> {
        self.store.read(|r| {
            let o = self.store.org_for(r, actor, org, AdminAction::ReadOrg)?;
            self.store
                .authorize(r, actor, AdminAction::ReadOrg, &o, Target::Org)?;
            let sealer = &self.store.inner.sealer;
            let va = sealer.open(&r.config(org, a)?)?.config;
            let vb = sealer.open(&r.config(org, b)?)?.config;
            Ok(diff(va.json(), vb.json()))
        })
    }
}

/// The answer to an update or rollback that would not change the active config.
fn unchanged(org: &OrgId, active: ConfigRecord, config: OrgConfig) -> ConfigVersion {
    to_version(org, active.version, active, config.masked())
}

fn to_version(org: &OrgId, active: u64, rec: ConfigRecord, config: OrgConfig) -> ConfigVersion {
    ConfigVersion {
        changed: false,
        org: org.clone(),
        version: rec.version,
        active: rec.version == active,
        created_at: rec.created_at,
        created_by: rec.created_by,
        config,
        note: rec.note,
    }
}

/// Writes `next` as the new active version, provider secrets encrypted; `unreadable` are
/// the secrets of its source that could not be decrypted (each must have been replaced).
#[allow(clippy::too_many_arguments)]
fn commit_version(
    tx: &mut super::tx::WriteTx,
    sealer: &Sealer,
    actor: &Actor,
    mut o: crate::model::Org,
    next: OrgConfig,
    note: String,
    changes: &[ConfigChange],
    unreadable: &[Unreadable],
) -> Result<ConfigVersion, Error> {
    let version = o.latest_version + 1;
    let rec = ConfigRecord {
        version,
        created_at: tx.now,
        created_by: actor.to_string(),
        json: sealer.seal_config(&next, unreadable)?,
        note: note.clone(),
    };
    tx.put_config(&o.id, &rec)?;
    o.config_version = version;
    o.latest_version = version;
    tx.put_org(&o)?;
    let paths: Vec<&str> = changes.iter().map(|c| c.path.as_str()).take(20).collect();
    let more = changes.len().saturating_sub(paths.len());
    let mut summary = format!(
        "{note}: version {version}; changed {}",
        if paths.is_empty() {
            "nothing".to_owned()
        } else {
            paths.join(", ")
        }
    );
    if more > 0 {
        summary.push_str(&format!(" and {more} more"));
    }
    audit_append(
        tx,
        &actor.to_string(),
        &o.id,
        AdminAction::UpdateConfig,
        "config",
        summary,
        AuditOutcome::Applied,
    )?;
    Ok(ConfigVersion {
        org: o.id.clone(),
        version,
        active: true,
        created_at: tx.now,
        created_by: actor.to_string(),
        note,
        config: next.masked(),
        changed: true,
    })
}
