//! What the store tells the policy engine about an admin operation. The store gathers these
//! facts from its own relations inside the operation's transaction; nothing here comes from
//! user-supplied fields such as key metadata.

use crate::model::{Actor, Email, KeyId, OrgId, Role};

/// An admin action, one per Cedar action in `policies/schema.cedarschema`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum AdminAction {
    /// Read the org and its config (secrets masked).
    ReadOrg,
    /// Update the config or roll it back.
    UpdateConfig,
    /// Read provider secrets unmasked.
    RevealSecrets,
    /// Delete the org.
    DeleteOrg,
    /// Suspend the org (its keys are refused until it is resumed).
    SuspendOrg,
    /// Resume a suspended org.
    ResumeOrg,
    /// Manage billing (budgets owned by billing, payment settings).
    ManageBilling,
    /// List members.
    ListMembers,
    /// Add a member.
    AddMember,
    /// Change a member's role.
    ChangeRole,
    /// Remove another member.
    RemoveMember,
    /// Leave the org (remove oneself).
    LeaveOrg,
    /// Create a key.
    CreateKey,
    /// List and show keys (prefix only).
    ListKeys,
    /// Revoke, rotate or edit a key.
    ManageKey,
    /// Read the audit log.
    ReadAudit,
    /// Read gateway logs (asked by the dashboard).
    ReadLogs,
    /// Read analytics and usage (asked by the dashboard).
    ReadAnalytics,
    /// Create an org. Decided on the org being created, which has no members yet; no
    /// built-in policy permits it, so only the operator creates orgs unless an operator
    /// policy permits others.
    CreateOrg,
    /// Invite a person by email to join with a role (the same rules as adding a member).
    InviteMember,
    /// List an org's pending invitations.
    ListInvites,
    /// Revoke a pending invitation.
    RevokeInvite,
    /// Accept an invitation: decided for the invited person, who is not a member yet.
    AcceptInvite,
}

impl AdminAction {
    /// Every action.
    pub const ALL: [AdminAction; 23] = [
        AdminAction::ReadOrg,
        AdminAction::UpdateConfig,
        AdminAction::RevealSecrets,
        AdminAction::DeleteOrg,
        AdminAction::SuspendOrg,
        AdminAction::ResumeOrg,
        AdminAction::ManageBilling,
        AdminAction::ListMembers,
        AdminAction::AddMember,
        AdminAction::ChangeRole,
        AdminAction::RemoveMember,
        AdminAction::LeaveOrg,
        AdminAction::CreateKey,
        AdminAction::ListKeys,
        AdminAction::ManageKey,
        AdminAction::ReadAudit,
        AdminAction::ReadLogs,
        AdminAction::ReadAnalytics,
        AdminAction::CreateOrg,
        AdminAction::InviteMember,
        AdminAction::ListInvites,
        AdminAction::RevokeInvite,
        AdminAction::AcceptInvite,
    ];

    /// The Cedar action id, e.g. `UpdateConfig`.
    pub fn cedar_name(self) -> &'static str {
        match self {
            AdminAction::ReadOrg => "ReadOrg",
            AdminAction::UpdateConfig => "UpdateConfig",
            AdminAction::RevealSecrets => "RevealSecrets",
            AdminAction::DeleteOrg => "DeleteOrg",
            AdminAction::SuspendOrg => "SuspendOrg",
            AdminAction::ResumeOrg => "ResumeOrg",
            AdminAction::ManageBilling => "ManageBilling",
            AdminAction::ListMembers => "ListMembers",
            AdminAction::AddMember => "AddMember",
            AdminAction::ChangeRole => "ChangeRole",
            AdminAction::RemoveMember => "RemoveMember",
            AdminAction::LeaveOrg => "LeaveOrg",
            AdminAction::CreateKey => "CreateKey",
            AdminAction::ListKeys => "ListKeys",
            AdminAction::ManageKey => "ManageKey",
            AdminAction::ReadAudit => "ReadAudit",
            AdminAction::ReadLogs => "ReadLogs",
            AdminAction::ReadAnalytics => "ReadAnalytics",
            AdminAction::CreateOrg => "CreateOrg",
            AdminAction::InviteMember => "InviteMember",
            AdminAction::ListInvites => "ListInvites",
            AdminAction::RevokeInvite => "RevokeInvite",
            AdminAction::AcceptInvite => "AcceptInvite",
        }
    }

    /// Who may do this action under the built-in role matrix, as the end of a sentence
    /// ("only an owner of the org may"), for denial messages.
    pub fn who_may(self) -> &'static str {
        match self {
            AdminAction::ReadOrg
            | AdminAction::ListMembers
            | AdminAction::ListKeys
            | AdminAction::ReadLogs
            | AdminAction::ReadAnalytics => {
                "any member of the org (owner, admin, member or viewer) may"
            }
            AdminAction::UpdateConfig
            | AdminAction::RevealSecrets
            | AdminAction::ReadAudit
            | AdminAction::ListInvites => "only an owner or admin of the org may",
            AdminAction::DeleteOrg
            | AdminAction::SuspendOrg
            | AdminAction::ResumeOrg
            | AdminAction::ManageBilling => "only an owner of the org may",
            AdminAction::AddMember
            | AdminAction::ChangeRole
            | AdminAction::RemoveMember
            | AdminAction::InviteMember
            | AdminAction::RevokeInvite => {
                "only an owner or admin of the org may (an admin only below owner)"
            }
            AdminAction::LeaveOrg => "any member may leave, except the last owner",
            AdminAction::CreateKey => "only an owner, admin or member of the org may",
            AdminAction::ManageKey => {
                "only an owner or admin of the org, or the member who created the key, may"
            }
            AdminAction::CreateOrg => {
                "only the operator may, unless an operator policy permits CreateOrg"
            }
            AdminAction::AcceptInvite => "only the invited person may, with the invitation's token",
        }
    }

    /// Whether a person who is not a member of the org may be permitted it: creating an org
    /// (which has no members yet) and accepting an invitation (the invited person joins).
    /// Every other action is refused to non-members before any policy counts.
    ///
    /// ```
    /// use orgstore::AdminAction;
    /// assert!(AdminAction::AcceptInvite.open_to_non_members());
    /// assert!(!AdminAction::InviteMember.open_to_non_members());
    /// ```
    pub fn open_to_non_members(self) -> bool {
        matches!(self, AdminAction::CreateOrg | AdminAction::AcceptInvite)
    }

    /// Whether the action grants a role, so its request carries the role granted
    /// (`new_role`): adding, changing a role, and the invitation actions (the invited role).
    ///
    /// ```
    /// use orgstore::AdminAction;
    /// assert!(AdminAction::InviteMember.grants_role());
    /// assert!(!AdminAction::RemoveMember.grants_role());
    /// ```
    pub fn grants_role(self) -> bool {
        matches!(
            self,
            AdminAction::AddMember
                | AdminAction::ChangeRole
                | AdminAction::InviteMember
                | AdminAction::RevokeInvite
                | AdminAction::AcceptInvite
        )
    }

    /// Parses a Cedar action id (case-insensitive), for the CLI's `policy explain`.
    pub fn from_name(s: &str) -> Option<Self> {
        Self::ALL
            .into_iter()
            .find(|a| a.cedar_name().eq_ignore_ascii_case(s))
    }
}

/// The resource an admin action is about.
#[derive(Clone, Debug)]
pub enum Target<'a> {
    /// The org itself (read, delete, billing, audit, logs, analytics, list members/keys).
    Org,
    /// A key about to be created in the org.
    NewKey {
        /// Whether the new key has an expiry (operator policies may require one).
        has_expiry: bool,
    },
    /// The org's config (update, rollback, reveal).
    Config,
    /// One membership. `role` is the member's current role (`None` when being added or
    /// invited); `new_role` is the role being granted (add, change, and the invitation
    /// actions: the invited role).
    Membership {
        /// The member.
        email: &'a Email,
        /// Current role, `None` when the membership does not exist yet.
        role: Option<Role>,
        /// Role being granted, for add and change.
        new_role: Option<Role>,
    },
    /// One key of the org.
    Key {
        /// The key.
        id: KeyId,
        /// Who created it (an email or `operator`), from the store's own record.
        created_by: &'a str,
    },
}

/// One admin authorization question.
#[derive(Clone, Debug)]
pub struct AdminRequest<'a> {
    /// Who acts.
    pub actor: &'a Actor,
    /// The actor's role in `org` according to the store; `None` if not a member.
    pub actor_role: Option<Role>,
    /// What they want to do.
    pub action: AdminAction,
    /// The org the target belongs to according to the store.
    pub org: &'a OrgId,
    /// The org's current number of Owners (host-maintained; Cedar cannot count).
    pub owner_count: u32,
    /// What it is done to.
    pub target: Target<'a>,
}
