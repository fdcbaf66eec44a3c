//! Membership operations.

use super::tables::MEMBER_ORGS;
use super::tx::{ReadRecords, WriteTx};
use super::{AuditOutcome, Store, audit_append};
use crate::error::{Error, PermissionDenied};
use crate::model::{Actor, Email, KeyStatus, Member, Org, OrgId, OrgStatus, Role};
use crate::policy::{AdminAction, Target};
use redb::ReadableTable;

/// The built-in rail that a person lists only their own memberships.
pub(crate) const OWN_MEMBERSHIPS_ONLY: &str = "own-memberships-only";

/// Membership operations. Get one with [`Store::members`].
///
/// ```
/// # let store = orgstore::Store::open_temporary().unwrap();
/// use orgstore::{Actor, Email, OrgId, Role};
/// let op = Actor::Operator;
/// let (a, b) = (OrgId::parse("a").unwrap(), OrgId::parse("b").unwrap());
/// let ann = Email::parse("ann@x.io").unwrap();
/// store.orgs().create(&op, &a, "A", &ann).unwrap();
/// store.orgs().create(&op, &b, "B", &Email::parse("bob@x.io").unwrap()).unwrap();
/// store.members().add(&op, &b, &Email::parse("ANN@x.io").unwrap(), Role::Viewer).unwrap();
/// assert_eq!(store.members().orgs_of(&op, &ann).unwrap().len(), 2);
/// ```
pub struct Members<'a> {
    pub(super) store: &'a Store,
}

impl Members<'_> {
    /// Adds a person to an org with a role.
    pub fn add(
        &self,
        actor: &Actor,
        org: &OrgId,
        email: &Email,
        role: Role,
    ) -> Result<Member, Error> {
        self.store.write(|tx| {
            let mut o = self.store.org_for(tx, actor, org, AdminAction::AddMember)?;
            let target = Target::Membership { email, role: None, new_role: Some(role) };
            self.store.authorize(tx, actor, AdminAction::AddMember, &o, target)?;
            if tx.member(org, email)?.is_some() {
                return Err(Error::conflict(
                    "email",
                    format!("{email} is already a member of `{org}`; use `member role` to change the role"),
                ));
            }
            let m = Member { org: org.clone(), email: email.clone(), role, added_at: tx.now, added_by: actor.to_string() };
            tx.put_member(&m)?;
            if role == Role::Owner {
                o.owner_count += 1;
                tx.put_org(&o)?;
            }
            audit_append(tx, &actor.to_string(), org, AdminAction::AddMember, email.as_str(), format!("added as {role}"), AuditOutcome::Applied)?;
            Ok(m)
        })
    }

    /// Lists an org's members.
    pub fn list(&self, actor: &Actor, org: &OrgId) -> Result<Vec<Member>, Error> {
        self.store.read(|r| {
            let o = self
                .store
                .org_for(r, actor, org, AdminAction::ListMembers)?;
            self.store
                .authorize(r, actor, AdminAction::ListMembers, &o, Target::Org)?;
            r.members_of(org)
        })
    }

    /// Changes a member's role. The last Owner cannot be demoted.
    pub fn set_role(
        &self,
        actor: &Actor,
        org: &OrgId,
        email: &Email,
        role: Role,
    ) -> Result<Member, Error> {
        self.store.write(|tx| {
            let mut o = self
                .store
                .org_for(tx, actor, org, AdminAction::ChangeRole)?;
            let mut m = existing(tx, org, email)?;
            let target = Target::Membership {
                email,
                role: Some(m.role),
                new_role: Some(role),
            };
            self.store
                .authorize(tx, actor, AdminAction::ChangeRole, &o, target)?;
            let before = m.role;
            if before == role {
                return Ok(m);
            }
            adjust_owner_count(&mut o, before, Some(role))?;
            m.role = role;
            tx.put_member(&m)?;
            tx.put_org(&o)?;
            audit_append(
                tx,
                &actor.to_string(),
                org,
                AdminAction::ChangeRole,
                email.as_str(),
                format!("{before} -> {role}"),
                AuditOutcome::Applied,
            )?;
            Ok(m)
        })
    }

    /// Removes a member; a member removing themselves is leaving the org. The last Owner
    /// can neither be removed nor leave.
    ///
    /// The keys of the org that the person created are revoked in the same transaction
    /// (each audited as `ManageKey`, summary "revoked: ..."): a departed person's keys stop working at the next
    /// gateway check. Keys created by the operator or by other members are untouched; to keep
    /// a service running, rotate or re-create its key as someone who stays before removing
    /// its creator.
    pub fn remove(&self, actor: &Actor, org: &OrgId, email: &Email) -> Result<(), Error> {
        self.store.write(|tx| {
            let action = if actor.email() == Some(email) {
                AdminAction::LeaveOrg
            } else {
                AdminAction::RemoveMember
            };
            let mut o = self.store.org_for(tx, actor, org, action)?;
            let m = existing(tx, org, email)?;
            let target = Target::Membership {
                email,
                role: Some(m.role),
                new_role: None,
            };
            self.store.authorize(tx, actor, action, &o, target)?;
            adjust_owner_count(&mut o, m.role, None)?;
            tx.remove_member(org, email)?;
            tx.put_org(&o)?;
            let revoked = revoke_keys_created_by(tx, actor, org, email)?;
            audit_append(
                tx,
                &actor.to_string(),
                org,
                action,
                email.as_str(),
                format!("removed ({}), {revoked} keys they created revoked", m.role),
                AuditOutcome::Applied,
            )?;
            Ok(())
        })
    }

    /// The orgs a person belongs to, with their role in each. A member may ask only about
    /// themselves.
    pub fn orgs_of(&self, actor: &Actor, email: &Email) -> Result<Vec<(OrgId, Role)>, Error> {
        if let Actor::Member(me) = actor
            && me != email
        {
            // A built-in rail; the attempt is audited in the log of every org `email`
            // belongs to (the orgs it asked about), then refused.
            let mut d = PermissionDenied::new(
                AdminAction::ListMembers.cedar_name(),
                None,
                vec![OWN_MEMBERSHIPS_ONLY.to_owned()],
                Vec::new(),
            );
            d.actor = actor.to_string();
            d.target = email.to_string();
            d.who_may =
                format!("a person may list only their own orgs; ask the operator about {email}");
            if let Ok(orgs) = self.orgs_of(&Actor::Operator, email) {
                for (org, _) in &orgs {
                    self.store.audit_denial(crate::ErrorKind::Denied, &d, org);
                }
            }
            return Err(Error::denied(d).on_field("email"));
        }
        self.store.read(|r| {
            let io = |e: redb::StorageError| Error::storage("listing memberships", e);
            let t = r.table(MEMBER_ORGS)?;
            let range = t
                .range((email.as_str(), "")..(email.as_str(), "\u{10ffff}"))
                .map_err(io)?;
            let mut out = Vec::new();
            for item in range {
                let (k, v) = item.map_err(io)?;
                let org = OrgId::parse(k.value().1)?;
                // Memberships of a deleted org stay for its audit trail but are not listed.
                if r.org_including_deleted(&org)?.status == OrgStatus::Deleted {
                    continue;
                }
                let role = Role::ALL
                    .into_iter()
                    .find(|r| r.level() == v.value())
                    .ok_or_else(|| Error::corrupt("membership index", "unknown role level"))?;
                out.push((org, role));
            }
            Ok(out)
        })
    }
}

/// Revokes every live key of `org` that `email` created; returns how many.
fn revoke_keys_created_by(
    tx: &mut WriteTx,
    actor: &Actor,
    org: &OrgId,
    email: &Email,
) -> Result<usize, Error> {
    let mut n = 0;
    for mut rec in tx.keys_of(org)? {
        if rec.info.created_by != email.as_str() || rec.info.status == KeyStatus::Revoked {
            continue;
        }
        rec.info.status = KeyStatus::Revoked;
        rec.info.revoked_at = Some(tx.now);
        rec.info.version += 1;
        tx.put_key(&rec, Some(rec.digest))?;
        audit_append(
            tx,
            &actor.to_string(),
            org,
            AdminAction::ManageKey,
            &rec.info.id.to_string(),
            format!("revoked: its creator {email} left the org"),
            AuditOutcome::Applied,
        )?;
        n += 1;
    }
    Ok(n)
}

fn existing(tx: &WriteTx, org: &OrgId, email: &Email) -> Result<Member, Error> {
    tx.member(org, email)?.ok_or_else(|| {
        Error::not_found(
            "email",
            format!(
                "{email} is not a member of `{org}`; check the email against the org's members"
            ),
        )
    })
}

/// Keeps the org's owner count in step with a role change, refusing to reach zero owners.
fn adjust_owner_count(o: &mut Org, before: Role, after: Option<Role>) -> Result<(), Error> {
    let was = before == Role::Owner;
    let is = after == Some(Role::Owner);
    if was && !is {
        if o.owner_count <= 1 {
            return Err(Error::conflict(
                "role",
                format!(
                    "this is the last owner of `{}`; make another member owner first",
                    o.id
                ),
            ));
        }
        o.owner_count -= 1;
    } else if is && !was {
        o.owner_count += 1;
    }
    Ok(())
}
