//! Org operations.

use super::records::ConfigRecord;
use super::tables::{MEMBER_ORGS, ORGS};
use super::tx::ReadRecords;
use super::{AuditOutcome, Store, audit_append};
use crate::error::{Error, PermissionDenied};
use crate::model::{Actor, Email, Member, Org, OrgId, OrgStatus, Role};
use crate::policy::{AdminAction, AdminRequest, Target};
use redb::ReadableTable;

/// The built-in rail that a person creating an org is its first owner.
pub(crate) const CREATOR_IS_OWNER: &str = "creator-is-owner";

/// What [`Orgs::suspend`] and [`Orgs::resume`] did. It dereferences to the org as it is
/// now.
///
/// ```
/// # let store = orgstore::Store::open_temporary().unwrap();
/// use orgstore::{Actor, Email, OrgId, OrgStatus};
/// let acme = OrgId::parse("acme").unwrap();
/// store.orgs().create(&Actor::Operator, &acme, "Acme", &Email::parse("o@acme.io").unwrap()).unwrap();
/// let r = store.orgs().resume(&Actor::Operator, &acme).unwrap();
/// assert!(!r.changed); // it was active: nothing was written or audited
/// assert_eq!(r.status, OrgStatus::Active);
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct StatusChange {
    /// The org after the call.
    pub org: Org,
    /// Its status before the call.
    pub before: OrgStatus,
    /// Whether the status changed. `false` when it already had the requested status: then
    /// nothing was written and no audit entry was added.
    pub changed: bool,
}

impl std::ops::Deref for StatusChange {
    type Target = Org;
    fn deref(&self) -> &Org {
        &self.org
    }
}

/// Org operations. Get one with [`Store::orgs`].
pub struct Orgs<'a> {
    pub(super) store: &'a Store,
}

impl Orgs<'_> {
    /// Creates an org with `owner` as its first Owner and an empty config (version 1).
    ///
    /// The operator may create any org. A person may create one only if a policy permits
    /// the Cedar action `CreateOrg` (no built-in policy does: by default only the operator
    /// creates orgs), and only with themselves as the owner. The permission is decided
    /// before the id is looked up, so a refused person learns nothing about which ids exist.
    pub fn create(
        &self,
        actor: &Actor,
        id: &OrgId,
        name: &str,
        owner: &Email,
    ) -> Result<Org, Error> {
        let name = validate_name("org name", name)?;
        self.store.write(|tx| {
            if let Actor::Member(me) = actor {
                self.authorize_create(actor, id)?;
                if me != owner {
                    // A built-in rail, decided before the id is looked up like CreateOrg
                    // itself, and audited like every refusal.
                    let mut d = PermissionDenied::new(
                        AdminAction::CreateOrg.cedar_name(),
                        None,
                        vec![CREATOR_IS_OWNER.to_owned()],
                        Vec::new(),
                    );
                    d.actor = actor.to_string();
                    d.org = Some(id.clone());
                    d.target = owner.to_string();
                    d.who_may = format!(
                        "a person may create an org only with themselves as its owner: give {me} as the owner"
                    );
                    return Err(Error::denied(d).on_field("owner"));
                }
            }
            if let Some(existing) = tx.find_org(id)? {
                let why = if existing.status == OrgStatus::Deleted {
                    "was deleted and its id cannot be reused; choose another id"
                } else {
                    "already exists; choose another id"
                };
                return Err(Error::conflict("org id", format!("org `{id}` {why}")));
            }
            let org = Org {
                id: id.clone(),
                name,
                created_at: tx.now,
                status: OrgStatus::Active,
                config_version: 1,
                latest_version: 1,
                owner_count: 1,
            };
            tx.put_org(&org)?;
            let cfg = ConfigRecord {
                version: 1,
                created_at: tx.now,
                created_by: actor.to_string(),
                json: "{}".into(),
                note: "initial".into(),
            };
            tx.put_config(id, &cfg)?;
            tx.put_member(&Member {
                org: id.clone(),
                email: owner.clone(),
                role: Role::Owner,
                added_at: tx.now,
                added_by: actor.to_string(),
            })?;
            let summary = format!("created org `{}` with owner {owner}", org.name);
            audit_append(
                tx,
                &actor.to_string(),
                id,
                AdminAction::CreateOrg,
                id.as_str(),
                summary,
                AuditOutcome::Applied,
            )?;
            Ok(org)
        })
    }

    /// Decides `CreateOrg` for a person: the resource is the org to be created, with no
    /// members and no owners, whether or not the id is taken.
    fn authorize_create(&self, actor: &Actor, id: &OrgId) -> Result<(), Error> {
        let req = AdminRequest {
            actor,
            actor_role: None,
            action: AdminAction::CreateOrg,
            org: id,
            owner_count: 0,
            target: Target::Org,
        };
        self.store
            .inner
            .policies
            .load()
            .authorize(&req)
            .map_err(|mut d| {
                d.org = Some(id.clone());
                d.actor = actor.to_string();
                d.target = "org".to_owned();
                Error::denied(d)
            })
    }

    /// Shows one org.
    pub fn get(&self, actor: &Actor, id: &OrgId) -> Result<Org, Error> {
        self.store.read(|r| {
            let org = self.store.org_for(r, actor, id, AdminAction::ReadOrg)?;
            self.store
                .authorize(r, actor, AdminAction::ReadOrg, &org, Target::Org)?;
            Ok(org)
        })
    }

    /// Lists the orgs the actor may see: all live orgs for the operator, a member's own
    /// orgs otherwise.
    pub fn list(&self, actor: &Actor) -> Result<Vec<Org>, Error> {
        self.store.read(|r| {
            let io = |e: redb::StorageError| Error::storage("listing orgs", e);
            let mut out = Vec::new();
            match actor {
                Actor::Operator => {
                    let t = r.table(ORGS)?;
                    for item in t.iter().map_err(io)? {
                        let (_, v) = item.map_err(io)?;
                        let org: Org = super::codec::decode("org", v.value())?;
                        if org.status != OrgStatus::Deleted {
                            out.push(org);
                        }
                    }
                }
                Actor::Member(email) => {
                    let ids: Vec<OrgId> = {
                        let t = r.table(MEMBER_ORGS)?;
                        let range = t
                            .range((email.as_str(), "")..(email.as_str(), "\u{10ffff}"))
                            .map_err(io)?;
                        range
                            .map(|i| {
                                let (k, _) = i.map_err(io)?;
                                OrgId::parse(k.value().1)
                            })
                            .collect::<Result<_, _>>()?
                    };
                    for id in ids {
                        let org = r.org_including_deleted(&id)?;
                        if org.status != OrgStatus::Deleted {
                            out.push(org);
                        }
                    }
                }
            }
            Ok(out)
        })
    }

    /// Deletes an org (Owner only): its keys stop working at once and its id is never reused.
    pub fn delete(&self, actor: &Actor, id: &OrgId) -> Result<Org, Error> {
        self.set_status(actor, id, OrgStatus::Deleted, AdminAction::DeleteOrg)
            .map(|c| c.org)
    }

    /// Suspends an org (Owner only): its keys are refused until it is resumed. Suspending
    /// a suspended org changes nothing (`changed: false`, no audit entry).
    pub fn suspend(&self, actor: &Actor, id: &OrgId) -> Result<StatusChange, Error> {
        self.set_status(actor, id, OrgStatus::Suspended, AdminAction::SuspendOrg)
    }

    /// Resumes a suspended org (Owner only). Resuming an active org changes nothing
    /// (`changed: false`, no audit entry).
    pub fn resume(&self, actor: &Actor, id: &OrgId) -> Result<StatusChange, Error> {
        self.set_status(actor, id, OrgStatus::Active, AdminAction::ResumeOrg)
    }

    fn set_status(
        &self,
        actor: &Actor,
        id: &OrgId,
        status: OrgStatus,
        decided_by: AdminAction,
    ) -> Result<StatusChange, Error> {
        self.store.write(|tx| {
            let mut org = self.store.org_for(tx, actor, id, decided_by)?;
            self.store
                .authorize(tx, actor, decided_by, &org, Target::Org)?;
            let before = org.status;
            if before == status {
                return Ok(StatusChange {
                    org,
                    before,
                    changed: false,
                });
            }
            org.status = status;
            tx.put_org(&org)?;
            let summary = format!("status {} -> {}", before.as_str(), status.as_str());
            audit_append(
                tx,
                &actor.to_string(),
                id,
                decided_by,
                id.as_str(),
                summary,
                AuditOutcome::Applied,
            )?;
            Ok(StatusChange {
                org,
                before,
                changed: true,
            })
        })
    }
}

/// Validates a display name: 1 to 128 characters, no control characters.
pub(crate) fn validate_name(field: &'static str, name: &str) -> Result<String, Error> {
    let n = name.trim();
    let bad = |c: char| c.is_control() || crate::model::is_bidi_control(c) || c == '\u{feff}';
    if n.is_empty() || n.chars().count() > 128 || n.chars().any(bad) {
        return Err(Error::invalid(
            field,
            "give 1 to 128 characters without control or text-direction characters",
        ));
    }
    Ok(n.to_owned())
}
