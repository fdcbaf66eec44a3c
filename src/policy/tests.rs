//! Internal checks: the fast evaluation path equals the plain one, and the entities JSON.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use cedar_policy::{Decision, Entities, Request};

use super::entities::{admin_facts, reference_entities};
use super::*;
use crate::model::{
    Actor, Email, KeyId, KeyInfo, KeySource, KeySpec, KeyStatus, Member, Org, OrgId, OrgStatus,
    Role, Timestamp,
};

struct Fx {
    org: OrgId,
    ann: Email,
    bob: Email,
    actor: Actor,
    key: KeyId,
}

fn fx() -> Fx {
    let ann = Email::parse("ann@acme.io").unwrap();
    Fx {
        org: OrgId::parse("acme").unwrap(),
        bob: Email::parse("bob@acme.io").unwrap(),
        actor: Actor::member(ann.clone()),
        ann,
        key: KeyId::random(),
    }
}

const ROLES: [Option<Role>; 5] = [
    None,
    Some(Role::Owner),
    Some(Role::Admin),
    Some(Role::Member),
    Some(Role::Viewer),
];

/// Every well-formed request shape.
fn shapes(f: &Fx) -> Vec<AdminRequest<'_>> {
    let mut out = Vec::new();
    for actor_role in ROLES {
        for action in AdminAction::ALL {
            let base = AdminRequest {
                actor: &f.actor,
                actor_role,
                action,
                org: &f.org,
                owner_count: 1,
                target: Target::Org,
            };
            let mut targets = Vec::new();
            match action {
                AdminAction::UpdateConfig | AdminAction::RevealSecrets => {
                    targets.push(Target::Config)
                }
                AdminAction::CreateKey => {
                    targets.extend([true, false].map(|has_expiry| Target::NewKey { has_expiry }))
                }
                AdminAction::ManageKey => targets.extend(
                    ["ann@acme.io", "bob@acme.io", "operator", "not an email"].map(|created_by| {
                        Target::Key {
                            id: f.key,
                            created_by,
                        }
                    }),
                ),
                AdminAction::AddMember
                | AdminAction::ChangeRole
                | AdminAction::RemoveMember
                | AdminAction::LeaveOrg
                | AdminAction::InviteMember
                | AdminAction::RevokeInvite
                | AdminAction::AcceptInvite => {
                    let adds = action.grants_role();
                    for email in [&f.ann, &f.bob] {
                        for role in ROLES {
                            for new_role in if adds { &ROLES[1..] } else { &ROLES[..1] } {
                                targets.push(Target::Membership {
                                    email,
                                    role,
                                    new_role: *new_role,
                                });
                            }
                        }
                    }
                }
                _ => targets.push(Target::Org),
            }
            for target in targets {
                for owner_count in [1, 2] {
                    out.push(AdminRequest {
                        target: target.clone(),
                        owner_count,
                        ..base.clone()
                    });
                }
            }
        }
    }
    out
}

/// Full policy set, schema-checked entities with the Role hierarchy.
fn reference(p: &Policies, req: &AdminRequest<'_>) -> (bool, Vec<String>) {
    let c = &*p.inner;
    let facts = admin_facts(&c.types, req).unwrap();
    let entities = reference_entities(&c.types, &c.schema, req).unwrap();
    let action = c.types.action(req.action.cedar_name());
    let request = Request::new(
        facts.principal,
        action,
        facts.resource,
        facts.context,
        Some(&c.schema),
    )
    .unwrap();
    let r = c.authorizer.is_authorized(&request, &c.set, &entities);
    assert_eq!(r.diagnostics().errors().count(), 0, "{req:?}");
    let mut reasons: Vec<String> = r.diagnostics().reason().map(ToString::to_string).collect();
    reasons.sort();
    (r.decision() == Decision::Allow, reasons)
}

#[test]
fn every_request_shape_conforms_to_the_schema_and_matches_the_plain_evaluation() {
    let with_example = Policies::default_set()
        .unwrap()
        .with_sources(&[(
            "ex.cedar",
            include_str!(concat!(
                env!("CARGO_MANIFEST_DIR"),
                "/policies/examples/require-key-expiry.cedar"
            )),
        )])
        .unwrap();
    let f = fx();
    let all = shapes(&f);
    assert!(all.len() > 400, "{}", all.len());
    for p in [Policies::default_set().unwrap(), with_example] {
        for req in &all {
            let e = p.explain(req);
            assert!(e.errors.is_empty(), "{req:?}: {e:?}");
            assert_eq!(
                reference(&p, req),
                (e.allowed, e.reasons.clone()),
                "{req:?}"
            );
        }
    }
}

#[test]
fn per_action_subsets_cover_the_action_groups() {
    let p = Policies::default_set().unwrap();
    let c = &*p.inner;
    let ids = |a: &str| -> Vec<String> {
        c.policies_for(a)
            .policies()
            .map(|p| p.id().to_string())
            .collect()
    };
    let mut read = ids("ReadOrg");
    read.sort();
    assert_eq!(read, vec!["tenancy-members-only", "viewer-read"]);
    assert!(ids("ChangeRole").contains(&"owner-manage-members".to_owned()));
    assert!(ids("invoke").iter().all(|i| i.starts_with("gateway-")));
    let total: usize = AdminAction::ALL
        .iter()
        .map(|a| ids(a.cedar_name()).len())
        .sum::<usize>()
        + ids("invoke").len();
    assert!(total >= c.set.policies().count());
}

fn org_fixture() -> (Org, Vec<Member>, Vec<KeyInfo>) {
    let org = OrgId::parse("acme").unwrap();
    let now = Timestamp::from_micros(1_700_000_000_000_000);
    let member = |e: &str, role| Member {
        org: org.clone(),
        email: Email::parse(e).unwrap(),
        role,
        added_at: now,
        added_by: "operator".to_owned(),
    };
    let key = |by: &str| KeyInfo {
        id: KeyId::random(),
        org: org.clone(),
        prefix: "sk-agentcc-A".to_owned(),
        status: KeyStatus::Active,
        spec: KeySpec::new("k"),
        created_by: by.to_owned(),
        created_at: now,
        revoked_at: None,
        rotated_at: None,
        source: KeySource::Generated,
        version: 1,
    };
    let o = Org {
        id: org.clone(),
        name: "Acme".to_owned(),
        created_at: now,
        status: OrgStatus::Active,
        config_version: 1,
        latest_version: 1,
        owner_count: 1,
    };
    let members = vec![
        member("owner@acme.io", Role::Owner),
        member("admin@acme.io", Role::Admin),
        member("member@acme.io", Role::Member),
        member("viewer@acme.io", Role::Viewer),
    ];
    let keys = vec![key("member@acme.io"), key("operator")];
    (o, members, keys)
}

#[test]
fn org_entities_json_round_trips_and_decides_like_authorize() {
    let p = Policies::default_set().unwrap();
    let c = &*p.inner;
    let (org, members, keys) = org_fixture();
    let text = p.org_entities_json(&org, &members, &keys).unwrap();
    let json: serde_json::Value = serde_json::from_str(&text).unwrap();
    let list = json.as_array().unwrap();
    // org + 4 roles + config + 4 users + 4 memberships + 2 keys, no Action entities
    assert_eq!(list.len(), 16, "{json:#}");
    let entities = Entities::from_json_value(json.clone(), Some(&c.schema)).unwrap();
    for m in &members {
        let actor = Actor::member(m.email.clone());
        for (action, target) in [
            (AdminAction::UpdateConfig, Target::Config),
            (
                AdminAction::ManageKey,
                Target::Key {
                    id: keys[0].id,
                    created_by: &keys[0].created_by,
                },
            ),
            (
                AdminAction::ManageKey,
                Target::Key {
                    id: keys[1].id,
                    created_by: &keys[1].created_by,
                },
            ),
            (
                AdminAction::RemoveMember,
                Target::Membership {
                    email: &members[0].email,
                    role: Some(Role::Owner),
                    new_role: None,
                },
            ),
            (
                AdminAction::LeaveOrg,
                Target::Membership {
                    email: &m.email,
                    role: Some(m.role),
                    new_role: None,
                },
            ),
            (AdminAction::ReadAudit, Target::Org),
        ] {
            let req = AdminRequest {
                actor: &actor,
                actor_role: Some(m.role),
                action,
                org: &org.id,
                owner_count: 1,
                target,
            };
            let facts = admin_facts(&c.types, &req).unwrap();
            let request = Request::new(
                facts.principal,
                c.types.action(action.cedar_name()),
                facts.resource,
                facts.context,
                Some(&c.schema),
            )
            .unwrap();
            let cli = c
                .authorizer
                .is_authorized(&request, &c.set, &entities)
                .decision()
                == Decision::Allow;
            assert_eq!(cli, p.authorize(&req).is_ok(), "{req:?}");
        }
    }
}
