//! The role matrix, through the public API: every role x every action x (own org, another
//! org), escalation cases, and the example operator policy.

use orgstore::{Actor, Email, KeyId, OrgId, Role};
use orgstore::{AdminAction, AdminRequest, Policies, Target};

const OWNER: usize = 0;
const ADMIN: usize = 1;
const MEMBER: usize = 2;
const VIEWER: usize = 3;
const ROLES: [Role; 4] = [Role::Owner, Role::Admin, Role::Member, Role::Viewer];

/// The role matrix (README, "Roles"), one row per action with its canonical target, columns
/// Owner / Admin / Member / Viewer.
const MATRIX: &[(AdminAction, [bool; 4])] = &[
    (AdminAction::ReadOrg, [true, true, true, true]),
    (AdminAction::UpdateConfig, [true, true, false, false]),
    (AdminAction::RevealSecrets, [true, true, false, false]),
    (AdminAction::DeleteOrg, [true, false, false, false]),
    (AdminAction::SuspendOrg, [true, false, false, false]),
    (AdminAction::ResumeOrg, [true, false, false, false]),
    // nobody but the operator, by default
    (AdminAction::CreateOrg, [false, false, false, false]),
    (AdminAction::ManageBilling, [true, false, false, false]),
    (AdminAction::ListMembers, [true, true, true, true]),
    // a new Member
    (AdminAction::AddMember, [true, true, false, false]),
    // a Member made Viewer
    (AdminAction::ChangeRole, [true, true, false, false]),
    // a Member removed
    (AdminAction::RemoveMember, [true, true, false, false]),
    // oneself, with two Owners in the org
    (AdminAction::LeaveOrg, [true, true, true, true]),
    // with an expiry
    (AdminAction::CreateKey, [true, true, true, false]),
    (AdminAction::ListKeys, [true, true, true, true]),
    // a key somebody else created
    (AdminAction::ManageKey, [true, true, false, false]),
    (AdminAction::ReadAudit, [true, true, false, false]),
    (AdminAction::ReadLogs, [true, true, true, true]),
    (AdminAction::ReadAnalytics, [true, true, true, true]),
    // a new Member, like adding one
    (AdminAction::InviteMember, [true, true, false, false]),
    (AdminAction::ListInvites, [true, true, false, false]),
    // an invitation as Member
    (AdminAction::RevokeInvite, [true, true, false, false]),
    // one's own invitation (the store refuses it to a member as a conflict first)
    (AdminAction::AcceptInvite, [true, true, true, true]),
];

struct Fx {
    org: OrgId,
    other: OrgId,
    actor: Actor,
    email: Email,
    bob: Email,
    key: KeyId,
}

fn fx() -> Fx {
    let email = Email::parse("ann@acme.io").unwrap();
    Fx {
        org: OrgId::parse("acme").unwrap(),
        other: OrgId::parse("globex").unwrap(),
        actor: Actor::member(email.clone()),
        email,
        bob: Email::parse("bob@acme.io").unwrap(),
        key: KeyId::random(),
    }
}

/// The canonical request for `action` by an actor of role `role` (None: not a member).
fn canonical<'a>(
    f: &'a Fx,
    org: &'a OrgId,
    action: AdminAction,
    role: Option<Role>,
) -> AdminRequest<'a> {
    let target = match action {
        AdminAction::UpdateConfig | AdminAction::RevealSecrets => Target::Config,
        AdminAction::AddMember => Target::Membership {
            email: &f.bob,
            role: None,
            new_role: Some(Role::Member),
        },
        AdminAction::ChangeRole => Target::Membership {
            email: &f.bob,
            role: Some(Role::Member),
            new_role: Some(Role::Viewer),
        },
        AdminAction::RemoveMember => Target::Membership {
            email: &f.bob,
            role: Some(Role::Member),
            new_role: None,
        },
        AdminAction::LeaveOrg => Target::Membership {
            email: &f.email,
            role,
            new_role: None,
        },
        AdminAction::InviteMember | AdminAction::RevokeInvite => Target::Membership {
            email: &f.bob,
            role: None,
            new_role: Some(Role::Member),
        },
        AdminAction::AcceptInvite => Target::Membership {
            email: &f.email,
            role: None,
            new_role: Some(Role::Member),
        },
        AdminAction::CreateKey => Target::NewKey { has_expiry: true },
        AdminAction::ManageKey => Target::Key {
            id: f.key,
            created_by: "bob@acme.io",
        },
        _ => Target::Org,
    };
    AdminRequest {
        actor: &f.actor,
        actor_role: role,
        action,
        org,
        owner_count: 2,
        target,
    }
}

fn allowed(p: &Policies, req: &AdminRequest<'_>) -> bool {
    let a = p.authorize(req).is_ok();
    let e = p.explain(req);
    assert_eq!(
        a, e.allowed,
        "authorize and explain disagree on {req:?}: {e:?}"
    );
    a
}

#[test]
fn matrix_covers_every_action() {
    for a in AdminAction::ALL {
        assert!(
            MATRIX.iter().any(|(m, _)| *m == a),
            "{a:?} missing from the matrix"
        );
    }
}

#[test]
fn role_by_action_in_own_org_and_another_org() {
    let p = Policies::default_set().unwrap();
    let f = fx();
    let mut failures = Vec::new();
    for (action, row) in MATRIX {
        for (i, role) in ROLES.iter().enumerate() {
            let got = allowed(&p, &canonical(&f, &f.org, *action, Some(*role)));
            if got != row[i] {
                failures.push(format!(
                    "{role} {action:?} in own org: got {got}, want {}",
                    row[i]
                ));
            }
            // Another org where the actor has no role: nothing, whatever their role elsewhere
            // (except accepting an invitation to it, which is how a person joins).
            let got = allowed(&p, &canonical(&f, &f.other, *action, None));
            if got != (*action == AdminAction::AcceptInvite) {
                failures.push(format!("non-member {action:?} in another org: got {got}"));
            }
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn denial_names_action_role_and_policies() {
    let p = Policies::default_set().unwrap();
    let f = fx();
    let d = p
        .authorize(&canonical(
            &f,
            &f.org,
            AdminAction::UpdateConfig,
            Some(Role::Viewer),
        ))
        .unwrap_err();
    assert_eq!(d.action(), "UpdateConfig");
    assert_eq!(d.role(), Some(Role::Viewer));
    assert!(d.policy_ids().is_empty(), "no permit, no forbid: {d:?}");
    assert!(d.evaluation_errors().is_empty());
}

fn membership<'a>(
    f: &'a Fx,
    actor_role: Role,
    action: AdminAction,
    target: &'a Email,
    role: Option<Role>,
    new_role: Option<Role>,
    owner_count: u32,
) -> AdminRequest<'a> {
    AdminRequest {
        actor: &f.actor,
        actor_role: Some(actor_role),
        action,
        org: &f.org,
        owner_count,
        target: Target::Membership {
            email: target,
            role,
            new_role,
        },
    }
}

#[test]
fn member_management_grid() {
    // Every actor role x target role x new role, for add / change / remove.
    let p = Policies::default_set().unwrap();
    let f = fx();
    for actor in ROLES {
        for new in ROLES {
            let want = match actor {
                Role::Owner => true,
                Role::Admin => new != Role::Owner,
                _ => false,
            };
            let req = membership(
                &f,
                actor,
                AdminAction::AddMember,
                &f.bob,
                None,
                Some(new),
                2,
            );
            assert_eq!(allowed(&p, &req), want, "{actor} adds a {new}");
            for cur in ROLES {
                let want = match actor {
                    Role::Owner => true,
                    Role::Admin => cur != Role::Owner && new != Role::Owner,
                    _ => false,
                };
                let req = membership(
                    &f,
                    actor,
                    AdminAction::ChangeRole,
                    &f.bob,
                    Some(cur),
                    Some(new),
                    2,
                );
                assert_eq!(allowed(&p, &req), want, "{actor} changes a {cur} to {new}");
            }
        }
        for cur in ROLES {
            let want = match actor {
                Role::Owner => true,
                Role::Admin => cur != Role::Owner,
                _ => false,
            };
            let req = membership(
                &f,
                actor,
                AdminAction::RemoveMember,
                &f.bob,
                Some(cur),
                None,
                2,
            );
            assert_eq!(allowed(&p, &req), want, "{actor} removes a {cur}");
        }
    }
}

#[test]
fn invitation_grid() {
    // Invite and revoke follow adding: an admin below Owner, only an owner for an owner.
    let p = Policies::default_set().unwrap();
    let f = fx();
    for actor in ROLES {
        for new in ROLES {
            let want = match actor {
                Role::Owner => true,
                Role::Admin => new != Role::Owner,
                _ => false,
            };
            for action in [AdminAction::InviteMember, AdminAction::RevokeInvite] {
                let req = membership(&f, actor, action, &f.bob, None, Some(new), 2);
                assert_eq!(allowed(&p, &req), want, "{actor} {action:?} a {new}");
            }
        }
    }
    let d = p
        .authorize(&membership(
            &f,
            Role::Admin,
            AdminAction::InviteMember,
            &f.bob,
            None,
            Some(Role::Owner),
            1,
        ))
        .unwrap_err();
    assert_eq!(d.policy_ids(), vec!["only-owners-grant-owner"]);
    // A person accepts only an invitation of their own email, member or not.
    for role in [None, Some(Role::Viewer)] {
        for (who, want) in [(&f.email, true), (&f.bob, false)] {
            let req = AdminRequest {
                actor: &f.actor,
                actor_role: role,
                action: AdminAction::AcceptInvite,
                org: &f.org,
                owner_count: 1,
                target: Target::Membership {
                    email: who,
                    role: None,
                    new_role: Some(Role::Owner),
                },
            };
            assert_eq!(allowed(&p, &req), want, "{role:?} accepts for {who}");
        }
    }
}

#[test]
fn escalation_admin_grants_owner() {
    let p = Policies::default_set().unwrap();
    let f = fx();
    // to another member
    let d = p
        .authorize(&membership(
            &f,
            Role::Admin,
            AdminAction::ChangeRole,
            &f.bob,
            Some(Role::Member),
            Some(Role::Owner),
            1,
        ))
        .unwrap_err();
    assert_eq!(d.policy_ids(), vec!["only-owners-grant-owner"]);
    // to self
    let d = p
        .authorize(&membership(
            &f,
            Role::Admin,
            AdminAction::ChangeRole,
            &f.email,
            Some(Role::Admin),
            Some(Role::Owner),
            1,
        ))
        .unwrap_err();
    assert_eq!(d.policy_ids(), vec!["only-owners-grant-owner"]);
    // a new Owner
    let d = p
        .authorize(&membership(
            &f,
            Role::Admin,
            AdminAction::AddMember,
            &f.bob,
            None,
            Some(Role::Owner),
            1,
        ))
        .unwrap_err();
    assert_eq!(d.policy_ids(), vec!["only-owners-grant-owner"]);
}

#[test]
fn escalation_admin_demotes_or_removes_owner() {
    let p = Policies::default_set().unwrap();
    let f = fx();
    let d = p
        .authorize(&membership(
            &f,
            Role::Admin,
            AdminAction::ChangeRole,
            &f.bob,
            Some(Role::Owner),
            Some(Role::Admin),
            3,
        ))
        .unwrap_err();
    assert_eq!(d.policy_ids(), vec!["only-owners-manage-owners"]);
    let d = p
        .authorize(&membership(
            &f,
            Role::Admin,
            AdminAction::RemoveMember,
            &f.bob,
            Some(Role::Owner),
            None,
            3,
        ))
        .unwrap_err();
    assert_eq!(d.policy_ids(), vec!["only-owners-manage-owners"]);
    // An Owner may.
    assert!(allowed(
        &p,
        &membership(
            &f,
            Role::Owner,
            AdminAction::RemoveMember,
            &f.bob,
            Some(Role::Owner),
            None,
            3
        )
    ));
}

#[test]
fn escalation_last_owner() {
    let p = Policies::default_set().unwrap();
    let f = fx();
    // leaves
    let d = p
        .authorize(&membership(
            &f,
            Role::Owner,
            AdminAction::LeaveOrg,
            &f.email,
            Some(Role::Owner),
            None,
            1,
        ))
        .unwrap_err();
    assert_eq!(d.policy_ids(), vec!["last-owner-stays"]);
    // demotes self
    let d = p
        .authorize(&membership(
            &f,
            Role::Owner,
            AdminAction::ChangeRole,
            &f.email,
            Some(Role::Owner),
            Some(Role::Admin),
            1,
        ))
        .unwrap_err();
    assert_eq!(d.policy_ids(), vec!["last-owner-not-demoted"]);
    // removes self through RemoveMember
    let d = p
        .authorize(&membership(
            &f,
            Role::Owner,
            AdminAction::RemoveMember,
            &f.email,
            Some(Role::Owner),
            None,
            1,
        ))
        .unwrap_err();
    assert_eq!(d.policy_ids(), vec!["last-owner-stays"]);
    // with a second Owner all three are fine
    assert!(allowed(
        &p,
        &membership(
            &f,
            Role::Owner,
            AdminAction::LeaveOrg,
            &f.email,
            Some(Role::Owner),
            None,
            2
        )
    ));
    assert!(allowed(
        &p,
        &membership(
            &f,
            Role::Owner,
            AdminAction::ChangeRole,
            &f.email,
            Some(Role::Owner),
            Some(Role::Admin),
            2
        )
    ));
    // "changing" the last Owner to Owner is no demotion
    assert!(allowed(
        &p,
        &membership(
            &f,
            Role::Owner,
            AdminAction::ChangeRole,
            &f.email,
            Some(Role::Owner),
            Some(Role::Owner),
            1
        )
    ));
}

#[test]
fn leave_is_only_for_oneself() {
    let p = Policies::default_set().unwrap();
    let f = fx();
    for role in ROLES {
        let req = membership(
            &f,
            role,
            AdminAction::LeaveOrg,
            &f.bob,
            Some(Role::Viewer),
            None,
            2,
        );
        assert!(!allowed(&p, &req), "{role} made someone else leave");
    }
}

fn key_req<'a>(
    f: &'a Fx,
    role: Option<Role>,
    action: AdminAction,
    created_by: &'a str,
) -> AdminRequest<'a> {
    AdminRequest {
        actor: &f.actor,
        actor_role: role,
        action,
        org: &f.org,
        owner_count: 1,
        target: Target::Key {
            id: f.key,
            created_by,
        },
    }
}

#[test]
fn keys_by_creator() {
    let p = Policies::default_set().unwrap();
    let f = fx();
    for (i, role) in ROLES.iter().enumerate() {
        let own = allowed(
            &p,
            &key_req(&f, Some(*role), AdminAction::ManageKey, "ann@acme.io"),
        );
        let other = allowed(
            &p,
            &key_req(&f, Some(*role), AdminAction::ManageKey, "bob@acme.io"),
        );
        let op = allowed(
            &p,
            &key_req(&f, Some(*role), AdminAction::ManageKey, "operator"),
        );
        let want_own = [true, true, true, false][i];
        let want_other = i == OWNER || i == ADMIN;
        assert_eq!(
            (own, other, op),
            (want_own, want_other, want_other),
            "{role}"
        );
    }
    // Member revokes someone else's key
    let d = p
        .authorize(&key_req(
            &f,
            Some(Role::Member),
            AdminAction::ManageKey,
            "bob@acme.io",
        ))
        .unwrap_err();
    assert!(d.policy_ids().is_empty());
    // A non-member who created a key (e.g. removed since) can do nothing with it.
    assert!(!allowed(
        &p,
        &key_req(&f, None, AdminAction::ManageKey, "ann@acme.io")
    ));
    let _ = (MEMBER, VIEWER);
}

#[test]
fn viewer_cannot_create_keys() {
    let p = Policies::default_set().unwrap();
    let f = fx();
    for has_expiry in [true, false] {
        let req = AdminRequest {
            actor: &f.actor,
            actor_role: Some(Role::Viewer),
            action: AdminAction::CreateKey,
            org: &f.org,
            owner_count: 1,
            target: Target::NewKey { has_expiry },
        };
        assert!(!allowed(&p, &req));
    }
}

#[test]
fn errors_and_mismatches_deny() {
    let p = Policies::default_set().unwrap();
    let f = fx();
    // Operator is the store's business, not Cedar's.
    let req = AdminRequest {
        actor: &Actor::Operator,
        actor_role: None,
        action: AdminAction::ReadOrg,
        org: &f.org,
        owner_count: 1,
        target: Target::Org,
    };
    let d = p.authorize(&req).unwrap_err();
    assert!(!d.evaluation_errors().is_empty());
    // Wrong target for the action
    let mut req = canonical(&f, &f.org, AdminAction::CreateKey, Some(Role::Owner));
    req.target = Target::Org;
    let d = p.authorize(&req).unwrap_err();
    assert!(d.evaluation_errors()[0].contains("Target::NewKey"), "{d:?}");
    // Missing new role
    let req = membership(
        &f,
        Role::Owner,
        AdminAction::AddMember,
        &f.bob,
        None,
        None,
        1,
    );
    assert!(
        !p.authorize(&req)
            .unwrap_err()
            .evaluation_errors()
            .is_empty()
    );
}

/// Every request shape the store can send, for comparing two policy sets.
fn all_requests(f: &Fx) -> Vec<AdminRequest<'_>> {
    let roles = [
        None,
        Some(Role::Owner),
        Some(Role::Admin),
        Some(Role::Member),
        Some(Role::Viewer),
    ];
    let mut out = Vec::new();
    for role in roles {
        for action in AdminAction::ALL {
            let base = canonical(f, &f.org, action, role);
            match action {
                AdminAction::CreateKey => {
                    for has_expiry in [true, false] {
                        out.push(AdminRequest {
                            target: Target::NewKey { has_expiry },
                            ..base.clone()
                        });
                    }
                }
                AdminAction::ManageKey => {
                    for by in ["ann@acme.io", "bob@acme.io", "operator"] {
                        out.push(AdminRequest {
                            target: Target::Key {
                                id: f.key,
                                created_by: by,
                            },
                            ..base.clone()
                        });
                    }
                }
                AdminAction::AddMember
                | AdminAction::ChangeRole
                | AdminAction::RemoveMember
                | AdminAction::LeaveOrg
                | AdminAction::InviteMember
                | AdminAction::RevokeInvite
                | AdminAction::AcceptInvite => {
                    for who in [&f.email, &f.bob] {
                        for cur in [
                            None,
                            Some(Role::Owner),
                            Some(Role::Admin),
                            Some(Role::Member),
                            Some(Role::Viewer),
                        ] {
                            for new in [
                                None,
                                Some(Role::Owner),
                                Some(Role::Admin),
                                Some(Role::Member),
                                Some(Role::Viewer),
                            ] {
                                for owners in [1, 2] {
                                    out.push(AdminRequest {
                                        owner_count: owners,
                                        target: Target::Membership {
                                            email: who,
                                            role: cur,
                                            new_role: new,
                                        },
                                        ..base.clone()
                                    });
                                }
                            }
                        }
                    }
                }
                _ => out.push(base),
            }
        }
    }
    out
}

fn example_dir() -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("policies/examples")
}

#[test]
fn example_policy_changes_exactly_member_creates_key_without_expiry() {
    let base = Policies::default_set().unwrap();
    let ext = base.with_dir(&example_dir()).unwrap();
    assert!(ext.policy_ids().contains(&"require-key-expiry".to_owned()));
    let f = fx();
    let mut changed = Vec::new();
    for req in all_requests(&f) {
        let (a, b) = (allowed(&base, &req), allowed(&ext, &req));
        if a != b {
            changed.push(req);
        }
    }
    assert_eq!(changed.len(), 1, "{changed:#?}");
    let c = &changed[0];
    assert_eq!(c.action, AdminAction::CreateKey);
    assert_eq!(c.actor_role, Some(Role::Member));
    assert!(matches!(c.target, Target::NewKey { has_expiry: false }));
    let d = ext.authorize(c).unwrap_err();
    assert_eq!(d.policy_ids(), vec!["require-key-expiry"]);
}
