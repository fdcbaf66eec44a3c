//! The audit log: every mutation and every denial, per org, newest first.

use super::Store;
use super::tables::{AUDIT, META};
use super::tx::{ReadRecords, ReadTx};
use crate::error::Error;
use crate::model::{Actor, OrgId, Timestamp};
use crate::policy::{AdminAction, Target};
use redb::ReadableTable;

/// Whether the audited operation happened.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub enum AuditOutcome {
    /// It was applied.
    Applied,
    /// A policy denied it; nothing changed.
    Denied,
}

/// One audit log entry. Secrets never appear in it.
#[derive(Clone, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
#[non_exhaustive]
pub struct AuditEntry {
    /// Its number in its org's log: 1 for the org's first entry, then 2, 3, ... without
    /// gaps. Numbers are per org, so they say nothing about other orgs' activity.
    pub seq: u64,
    /// When.
    pub at: Timestamp,
    /// Who (`operator` or an email).
    pub actor: String,
    /// Which org.
    pub org: OrgId,
    /// What: the name of the Cedar action that authorized it, as policies and
    /// [`PermissionDenied::action`](crate::PermissionDenied::action) spell it (`CreateOrg`,
    /// `UpdateConfig`, `AddMember`, `CreateKey`, `ManageKey`, ...). Operations that share
    /// a Cedar action share its name and differ in the summary: revoking, rotating and
    /// updating a key are `ManageKey` ("revoked", "rotated, new prefix ...", "settings
    /// replaced"), importing keys is `CreateKey` ("imported N keys by digest"). The one
    /// change no principal asks for, the store's merge of look-alike member addresses when
    /// it opens an older file, is `MergeMembers` (no Cedar action has that name). Entries
    /// written by older versions (`key.create`, `member.role`, ...) read with these names.
    pub action: String,
    /// On what, e.g. a key id or an email.
    pub target: String,
    /// A short description with secrets redacted.
    pub summary: String,
    /// Applied or denied.
    pub outcome: AuditOutcome,
}

/// Audit log queries. Get one with [`Store::audit`].
///
/// ```
/// # let store = orgstore::Store::open_temporary().unwrap();
/// use orgstore::{Actor, Email, OrgId};
/// let acme = OrgId::parse("acme").unwrap();
/// store.orgs().create(&Actor::Operator, &acme, "Acme", &Email::parse("o@acme.io").unwrap()).unwrap();
/// let log = store.audit().list(&Actor::Operator, &acme, 10).unwrap();
/// assert_eq!(log[0].action, "CreateOrg");
/// ```
pub struct Audit<'a> {
    pub(super) store: &'a Store,
}

impl Audit<'_> {
    /// The newest `limit` entries of an org, newest first.
    pub fn list(&self, actor: &Actor, org: &OrgId, limit: usize) -> Result<Vec<AuditEntry>, Error> {
        self.store.read(|r: &ReadTx| {
            let o = self
                .store
                .org_including_deleted_for(r, actor, org, AdminAction::ReadAudit)?;
            self.store
                .authorize(r, actor, AdminAction::ReadAudit, &o, Target::Org)?;
            let t = r.table(AUDIT)?;
            let mut out = Vec::new();
            let range = t
                .range((org.as_str(), 0u64)..=(org.as_str(), u64::MAX))
                .map_err(|e| Error::storage("reading the audit log", e))?;
            // A format 1 file opened read-only (so not migrated) still has store-wide
            // numbers: its entries are numbered by their place in the org's log instead,
            // as the migration will number them.
            let old_numbers = r
                .table(META)?
                .get("format")
                .map_err(|e| Error::storage("reading the audit log", e))?
                .is_some_and(|v| v.value() < super::open::PER_ORG_AUDIT_FORMAT);
            let mut place = if old_numbers {
                let all = t
                    .range((org.as_str(), 0u64)..=(org.as_str(), u64::MAX))
                    .map_err(|e| Error::storage("reading the audit log", e))?;
                all.count() as u64
            } else {
                0
            };
            for item in range.rev().take(limit) {
                let (_, v) = item.map_err(|e| Error::storage("reading the audit log", e))?;
                let mut entry: AuditEntry = super::codec::decode("audit entry", v.value())?;
                if let Some(name) = current_name(&entry.action) {
                    entry.action = name.to_owned();
                }
                if old_numbers {
                    entry.seq = place;
                    place -= 1;
                }
                out.push(entry);
            }
            Ok(out)
        })
    }
}

/// The audit action of the store's merge of look-alike member addresses (no principal asks
/// for it, so no Cedar action names it).
pub(crate) const MERGE_MEMBERS: &str = "MergeMembers";

/// The action name of today's vocabulary for a name older versions wrote
/// (`key.create`-style), or `None` if `stored` is not one of them.
fn current_name(stored: &str) -> Option<&'static str> {
    Some(match stored {
        "org.create" => "CreateOrg",
        "org.suspend" => "SuspendOrg",
        "org.resume" => "ResumeOrg",
        "org.delete" => "DeleteOrg",
        "config.update" => "UpdateConfig",
        "member.add" => "AddMember",
        "member.role" => "ChangeRole",
        "member.remove" => "RemoveMember",
        "member.leave" => "LeaveOrg",
        "member.merge" => MERGE_MEMBERS,
        "key.create" | "key.import" => "CreateKey",
        "key.revoke" | "key.rotate" | "key.update" => "ManageKey",
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::current_name;
    use crate::policy::AdminAction;

    #[test]
    fn every_old_name_maps_to_a_cedar_action_or_the_merge() {
        let cedar = [
            AdminAction::CreateOrg,
            AdminAction::SuspendOrg,
            AdminAction::ResumeOrg,
            AdminAction::DeleteOrg,
            AdminAction::UpdateConfig,
            AdminAction::AddMember,
            AdminAction::ChangeRole,
            AdminAction::RemoveMember,
            AdminAction::LeaveOrg,
            AdminAction::CreateKey,
            AdminAction::ManageKey,
        ]
        .map(AdminAction::cedar_name);
        for old in [
            "org.create",
            "org.suspend",
            "org.resume",
            "org.delete",
            "config.update",
            "member.add",
            "member.role",
            "member.remove",
            "member.leave",
            "key.create",
            "key.import",
            "key.revoke",
            "key.rotate",
            "key.update",
        ] {
            let new = current_name(old).unwrap();
            assert!(cedar.contains(&new), "{old} -> {new}");
        }
        assert_eq!(current_name("member.merge"), Some(super::MERGE_MEMBERS));
        // Today's names are kept as they are.
        for name in cedar {
            assert_eq!(current_name(name), None);
        }
    }
}
