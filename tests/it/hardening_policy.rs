//! Policies as guard rails: hostile operator policy sets cannot break tenancy or the
//! last-Owner rule; ids of another org answer exactly like ids that do not exist (library
//! and CLI, every role); denials name their action and who may do it; every policy needs an
//! `@id` and `.CEDAR` files are read; `CreateOrg` is a policy decision; removing a member
//! revokes the keys they created.

use std::net::{IpAddr, Ipv4Addr};
use std::path::{Path, PathBuf};

use orgstore::{
    Actor, AdminAction, AdminRequest, AuditOutcome, Email, Error, ErrorKind, ImportKey, KeyId,
    KeySpec, KeyStatus, OrgId, Policies, Request, Role, Store, StoreBuilder, Target,
};

use crate::common::ConfigJson;
use crate::common::{OP, email, org, orgstore};

const ROLES: [Role; 4] = [Role::Owner, Role::Admin, Role::Member, Role::Viewer];

/// The outcome without the value.
fn ok<T>(r: Result<T, Error>) -> Result<(), Error> {
    r.map(|_| ())
}

/// A policy directory holding `files`.
fn policy_dir(files: &[(&str, &str)]) -> tempfile::TempDir {
    let d = tempfile::tempdir().unwrap();
    for (name, text) in files {
        std::fs::write(d.path().join(name), text).unwrap();
    }
    d
}

fn store_with(dir: Option<&Path>) -> Store {
    let store = StoreBuilder::new().open_temporary().unwrap();
    if let Some(d) = dir {
        store.policy_set().apply_dir(&OP, d).unwrap();
    }
    store
}

fn gw_code(store: &Store, key: &str) -> &'static str {
    store
        .gateway()
        .check(&Request::new(
            key,
            "gpt-4o-mini",
            IpAddr::V4(Ipv4Addr::LOCALHOST),
        ))
        .map_or_else(|d| d.code(), |_| "ok")
}

// ---------------------------------------------------------------------------------------
// Hostile operator policies: tenancy and the last Owner hold whatever is added.

/// Operator policy sets that try to widen past the guard rails.
fn hostile_sets() -> Vec<(&'static str, String)> {
    let mut sets = vec![
        (
            "blanket permit",
            "@id(\"allow-all\")\npermit (principal, action, resource);\n".to_owned(),
        ),
        (
            "owners of another org",
            "@id(\"other-owners\")\npermit (principal in Role::\"other#owner\", action, resource);\n"
                .to_owned(),
        ),
        (
            "one named stranger",
            "@id(\"eve\")\npermit (principal == User::\"eve@other.io\", action, resource);\n"
                .to_owned(),
        ),
        (
            "admins manage owners, last one included",
            "@id(\"admins-manage-owners\")\npermit (principal, action in [Action::\"RemoveMember\", Action::\"ChangeRole\", Action::\"LeaveOrg\"], resource)\nwhen { principal in resource.org.admins };\n"
                .to_owned(),
        ),
        (
            "anyone manages memberships",
            "@id(\"anyone-members\")\npermit (principal, action in Action::\"ManageMembers\", resource);\n@id(\"anyone-leaves\")\npermit (principal, action == Action::\"LeaveOrg\", resource);\n"
                .to_owned(),
        ),
    ];
    // One permit per action, all in one set.
    let mut per_action = String::new();
    for a in AdminAction::ALL {
        per_action.push_str(&format!(
            "@id(\"open-{0}\")\npermit (principal, action == Action::\"{0}\", resource);\n",
            a.cedar_name()
        ));
    }
    sets.push(("a permit scoped to each action", per_action));
    sets
}

/// Everything of `acme` the operator can read, minus denial entries in its log.
fn observe(store: &Store, acme: &OrgId) -> String {
    let mut out = format!("{:?}\n", store.orgs().get(&OP, acme).unwrap());
    for v in store.org_configs().history(&OP, acme).unwrap() {
        out.push_str(&format!("{} {}\n", v.version, v.config.revealed_value()));
    }
    out.push_str(&format!("{:?}\n", store.members().list(&OP, acme).unwrap()));
    out.push_str(&format!("{:?}\n", store.keys().list(&OP, acme).unwrap()));
    for e in store.audit().list(&OP, acme, usize::MAX).unwrap() {
        if e.outcome == AuditOutcome::Applied {
            out.push_str(&format!("{e:?}\n"));
        }
    }
    out
}

/// Every admin operation a stranger could try on `acme`, by name.
fn stranger_attempts(
    store: &Store,
    who: &Actor,
    acme: &OrgId,
    key: KeyId,
    owner: &Email,
) -> Vec<(&'static str, Result<(), Error>)> {
    let me = who.email().unwrap().clone();
    let s = store;
    let mut out = vec![
        ("get org", ok(s.orgs().get(who, acme))),
        ("org usage", ok(s.orgs().usage(who, acme))),
        ("read config", ok(s.org_configs().retrieve(who, acme))),
        ("reveal config", ok(s.org_configs().reveal(who, acme, None))),
        (
            "update config",
            ok(s.org_configs()
                .update(who, acme, r#"{"rate_limiting":{"rpm":1}}"#)),
        ),
        (
            "rollback config",
            ok(s.org_configs().rollback(who, acme, 1)),
        ),
        ("config history", ok(s.org_configs().history(who, acme))),
        ("config diff", ok(s.org_configs().diff(who, acme, 1, 2))),
        (
            "create key",
            ok(s.keys().create(who, acme, KeySpec::new("mine"))),
        ),
        (
            "import key",
            ok(s.keys().import(
                who,
                acme,
                &[ImportKey::new("cd".repeat(32), KeySpec::new("x"))],
            )),
        ),
        ("list keys", ok(s.keys().list(who, acme))),
        ("show key", ok(s.keys().show(who, &key))),
        ("key usage", ok(s.keys().usage(who, &key))),
        (
            "edit key",
            ok(s.keys().update(who, &key, KeySpec::new("x"))),
        ),
        ("rotate key", ok(s.keys().rotate(who, &key))),
        ("revoke key", ok(s.keys().revoke(who, &key))),
        ("list members", ok(s.members().list(who, acme))),
        ("audit log", ok(s.audit().list(who, acme, 10))),
        ("entities", ok(s.policy_entities(who, acme))),
        (
            "demote owner",
            ok(s.members().set_role(who, acme, owner, Role::Viewer)),
        ),
        ("remove owner", ok(s.members().remove(who, acme, owner))),
        ("suspend org", ok(s.orgs().suspend(who, acme))),
        ("resume org", ok(s.orgs().resume(who, acme))),
    ];
    out.push(("list invites", ok(s.invites().list(who, acme))));
    for role in [Role::Admin, Role::Owner] {
        out.push(("add self", ok(s.members().add(who, acme, &me, role))));
        out.push(("invite self", ok(s.invites().create(who, acme, &me, role))));
    }
    out.push(("delete org", ok(s.orgs().delete(who, acme))));
    out
}

#[test]
fn hostile_custom_policies_cannot_break_tenancy() {
    for (label, text) in hostile_sets() {
        let dir = policy_dir(&[("hostile.cedar", &text)]);
        let store = store_with(Some(dir.path()));
        let acme = org("acme");
        let owner = email("ann@acme.io");
        store.orgs().create(&OP, &acme, "Acme", &owner).unwrap();
        store
            .orgs()
            .create(&OP, &org("other"), "Other", &email("eve@other.io"))
            .unwrap();
        store
            .org_configs()
            .update(&OP, &acme, r#"{"routing":{"a":1}}"#)
            .unwrap();
        let key = store
            .keys()
            .create(&OP, &acme, KeySpec::new("svc"))
            .unwrap();
        let before = observe(&store, &acme);
        for who in ["eve@other.io", "nobody@nowhere.io"] {
            let actor = Actor::member(email(who));
            for (what, got) in stranger_attempts(&store, &actor, &acme, key.info.id, &owner) {
                match got {
                    Ok(()) => panic!("{label}: non-member {who} could {what}"),
                    Err(e) => {
                        assert_eq!(e.kind(), ErrorKind::NotFound, "{label}: {who} {what}: {e}")
                    }
                }
            }
        }
        assert_eq!(observe(&store, &acme), before, "{label}: acme changed");
        assert_eq!(gw_code(&store, key.key.expose()), "ok", "{label}");

        // The policy layer itself refuses every action to a non-member, naming the rail.
        let p = store.policies();
        let eve = Actor::member(email("eve@other.io"));
        for action in AdminAction::ALL {
            if action.open_to_non_members() {
                continue;
            }
            let target = canonical_target(action, &owner, key.info.id);
            let req = AdminRequest {
                actor: &eve,
                actor_role: None,
                action,
                org: &acme,
                owner_count: 1,
                target,
            };
            let d = p.authorize(&req).unwrap_err();
            assert!(
                d.policy_ids().contains(&"tenancy-members-only".to_owned()),
                "{label}: {action:?}: {d:?}"
            );
            assert!(!p.explain(&req).allowed, "{label}: {action:?}");
        }
    }
}

fn canonical_target(action: AdminAction, member: &Email, key: KeyId) -> Target<'_> {
    match action {
        AdminAction::UpdateConfig | AdminAction::RevealSecrets => Target::Config,
        AdminAction::AddMember => Target::Membership {
            email: member,
            role: None,
            new_role: Some(Role::Admin),
        },
        AdminAction::ChangeRole => Target::Membership {
            email: member,
            role: Some(Role::Member),
            new_role: Some(Role::Admin),
        },
        AdminAction::RemoveMember | AdminAction::LeaveOrg => Target::Membership {
            email: member,
            role: Some(Role::Member),
            new_role: None,
        },
        AdminAction::InviteMember | AdminAction::RevokeInvite | AdminAction::AcceptInvite => {
            Target::Membership {
                email: member,
                role: None,
                new_role: Some(Role::Admin),
            }
        }
        AdminAction::CreateKey => Target::NewKey { has_expiry: true },
        AdminAction::ManageKey => Target::Key {
            id: key,
            created_by: "operator",
        },
        _ => Target::Org,
    }
}

#[test]
fn hostile_custom_policies_cannot_remove_or_demote_the_last_owner() {
    for (label, text) in hostile_sets() {
        let dir = policy_dir(&[("hostile.cedar", &text)]);
        let store = store_with(Some(dir.path()));
        let acme = org("acme");
        let ann = email("ann@acme.io");
        store.orgs().create(&OP, &acme, "Acme", &ann).unwrap();
        for (who, role) in [
            ("ada@acme.io", Role::Admin),
            ("max@acme.io", Role::Member),
            ("vic@acme.io", Role::Viewer),
        ] {
            store.members().add(&OP, &acme, &email(who), role).unwrap();
        }
        let owner_actor = Actor::member(ann.clone());
        let mut attempts: Vec<(String, Result<(), Error>)> = Vec::new();
        for who in ["ann@acme.io", "ada@acme.io", "max@acme.io", "vic@acme.io"] {
            let actor = Actor::member(email(who));
            for to in [Role::Admin, Role::Member, Role::Viewer] {
                attempts.push((
                    format!("{who} demotes the last owner to {to}"),
                    store
                        .members()
                        .set_role(&actor, &acme, &ann, to)
                        .map(|_| ()),
                ));
            }
            attempts.push((
                format!("{who} removes the last owner"),
                store.members().remove(&actor, &acme, &ann),
            ));
        }
        attempts.push((
            "the last owner leaves".to_owned(),
            store.members().remove(&owner_actor, &acme, &ann),
        ));
        for (what, got) in attempts {
            let e = got.expect_err(&format!("{label}: {what} succeeded"));
            assert!(
                matches!(e.kind(), ErrorKind::Denied | ErrorKind::Conflict),
                "{label}: {what}: {e}"
            );
        }
        assert_eq!(store.orgs().get(&OP, &acme).unwrap().owner_count, 1);
        let roles = store.members().list(&OP, &acme).unwrap();
        assert!(
            roles
                .iter()
                .any(|m| m.email == ann && m.role == Role::Owner),
            "{label}: {roles:?}"
        );

        // And in the policy layer alone (the store re-checks too), naming the rail.
        let p = store.policies();
        for (action, new_role, rail) in [
            (AdminAction::RemoveMember, None, "last-owner-stays"),
            (AdminAction::LeaveOrg, None, "last-owner-stays"),
            (
                AdminAction::ChangeRole,
                Some(Role::Admin),
                "last-owner-not-demoted",
            ),
            (
                AdminAction::ChangeRole,
                Some(Role::Viewer),
                "last-owner-not-demoted",
            ),
        ] {
            for actor_role in ROLES {
                let req = AdminRequest {
                    actor: &owner_actor,
                    actor_role: Some(actor_role),
                    action,
                    org: &acme,
                    owner_count: 1,
                    target: Target::Membership {
                        email: &ann,
                        role: Some(Role::Owner),
                        new_role,
                    },
                };
                let d = p.authorize(&req).unwrap_err();
                assert!(
                    d.policy_ids().contains(&rail.to_owned()),
                    "{label}: {actor_role} {action:?}: {d:?}"
                );
            }
        }
        // With two owners the same requests are the policies' business again.
        store
            .members()
            .add(&OP, &acme, &email("own2@acme.io"), Role::Owner)
            .unwrap();
        store.members().remove(&owner_actor, &acme, &ann).unwrap();
    }
}

#[test]
fn an_operator_file_cannot_take_over_a_guard_rail_id() {
    let base = Policies::default_set().unwrap();
    for id in [
        "tenancy-members-only",
        "last-owner-stays",
        "last-owner-not-demoted",
        "only-owners-grant-owner",
    ] {
        let text = format!("@id(\"{id}\")\npermit (principal, action, resource);\n");
        let e = base.with_sources(&[("mine.cedar", &text)]).unwrap_err();
        assert_eq!(e.kind(), ErrorKind::Invalid, "{id}");
        assert!(e.to_string().contains("already used"), "{id}: {e}");
    }
}

#[test]
fn operator_forbids_still_narrow_and_permits_still_widen_inside_the_org() {
    let dir = policy_dir(&[(
        "ops.cedar",
        "@id(\"allow-all\")\npermit (principal, action, resource);\n\
         @id(\"no-config-edits\")\nforbid (principal, action == Action::\"UpdateConfig\", resource);\n\
         @id(\"no-viewer-keys\")\nforbid (principal, action == Action::\"ListKeys\", resource)\nunless { principal in resource.members };\n",
    )]);
    let store = store_with(Some(dir.path()));
    let acme = org("acme");
    store
        .orgs()
        .create(&OP, &acme, "Acme", &email("ann@acme.io"))
        .unwrap();
    store
        .members()
        .add(&OP, &acme, &email("vic@acme.io"), Role::Viewer)
        .unwrap();
    let ann = Actor::member(email("ann@acme.io"));
    let vic = Actor::member(email("vic@acme.io"));
    // The forbid narrows even the owner.
    let e = store
        .org_configs()
        .update(&ann, &acme, r#"{"routing":{}}"#)
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Denied);
    assert_eq!(e.denial().unwrap().policy_ids(), ["no-config-edits"]);
    let e = store.keys().list(&vic, &acme).unwrap_err();
    assert_eq!(e.denial().unwrap().policy_ids(), ["no-viewer-keys"]);
    // The blanket permit widens a member's rights in their own org (here: a viewer
    // creating keys), which is what an operator's permit is for.
    store.keys().create(&vic, &acme, KeySpec::new("v")).unwrap();
}

// ---------------------------------------------------------------------------------------
// Ids of another org answer exactly like ids that do not exist.

/// What org B looks like in a store.
#[derive(Clone, Copy, PartialEq, Debug)]
enum B {
    Absent,
    Live,
    Deleted,
}

struct World {
    store: Store,
    /// Key ids of B (in a store without B: the ids of another store's B).
    b_keys: Vec<KeyId>,
}

const A_PEOPLE: [(&str, Role); 4] = [
    ("owner@a.io", Role::Owner),
    ("admin@a.io", Role::Admin),
    ("member@a.io", Role::Member),
    ("viewer@a.io", Role::Viewer),
];

fn world(store: Store, b: B) -> World {
    let a = org("org-a");
    store
        .orgs()
        .create(&OP, &a, "A", &email("owner@a.io"))
        .unwrap();
    for (who, role) in &A_PEOPLE[1..] {
        store.members().add(&OP, &a, &email(who), *role).unwrap();
    }
    store.keys().create(&OP, &a, KeySpec::new("a")).unwrap();
    let mut b_keys = Vec::new();
    if b != B::Absent {
        let id = org("org-b");
        store
            .orgs()
            .create(&OP, &id, "B", &email("boss@b.io"))
            .unwrap();
        store
            .members()
            .add(&OP, &id, &email("bee@b.io"), Role::Member)
            .unwrap();
        store
            .org_configs()
            .update(&OP, &id, r#"{"rate_limiting":{"rpm":5}}"#)
            .unwrap();
        let by_member = Actor::member(email("bee@b.io"));
        b_keys.push(
            store
                .keys()
                .create(&OP, &id, KeySpec::new("b0"))
                .unwrap()
                .info
                .id,
        );
        b_keys.push(
            store
                .keys()
                .create(&by_member, &id, KeySpec::new("b1"))
                .unwrap()
                .info
                .id,
        );
        if b == B::Deleted {
            store.orgs().delete(&OP, &id).unwrap();
        }
    }
    World { store, b_keys }
}

/// Every library call that takes an id, aimed at org B by `who`, with B's key ids `keys`.
fn answers(store: &Store, who: &Actor, keys: &[KeyId]) -> Vec<(String, Result<(), Error>)> {
    let b = org("org-b");
    let a = org("org-a");
    let boss = email("boss@b.io");
    let bee = email("bee@b.io");
    let ghost = email("ghost@b.io");
    let s = store;
    let mut out: Vec<(String, Result<(), Error>)> = vec![
        ("orgs.get".into(), ok(s.orgs().get(who, &b))),
        ("orgs.usage".into(), ok(s.orgs().usage(who, &b))),
        ("orgs.suspend".into(), ok(s.orgs().suspend(who, &b))),
        ("orgs.resume".into(), ok(s.orgs().resume(who, &b))),
        (
            "configs.retrieve".into(),
            ok(s.org_configs().retrieve(who, &b)),
        ),
        (
            "configs.reveal".into(),
            ok(s.org_configs().reveal(who, &b, Some(2))),
        ),
        (
            "configs.update".into(),
            ok(s.org_configs().update(who, &b, r#"{"routing":{}}"#)),
        ),
        (
            "configs.rollback".into(),
            ok(s.org_configs().rollback(who, &b, 1)),
        ),
        (
            "configs.rollback 99".into(),
            ok(s.org_configs().rollback(who, &b, 99)),
        ),
        (
            "configs.history".into(),
            ok(s.org_configs().history(who, &b)),
        ),
        (
            "configs.diff".into(),
            ok(s.org_configs().diff(who, &b, 1, 2)),
        ),
        (
            "keys.create".into(),
            ok(s.keys().create(who, &b, KeySpec::new("x"))),
        ),
        (
            "keys.import".into(),
            ok(s.keys().import(
                who,
                &b,
                &[ImportKey::new("ef".repeat(32), KeySpec::new("x"))],
            )),
        ),
        ("keys.list".into(), ok(s.keys().list(who, &b))),
        ("members.list".into(), ok(s.members().list(who, &b))),
        ("audit.list".into(), ok(s.audit().list(who, &b, 10))),
        ("policy_entities".into(), ok(s.policy_entities(who, &b))),
        (
            "members.orgs_of".into(),
            ok(s.members().orgs_of(who, &boss)),
        ),
    ];
    for (label, m) in [("boss", &boss), ("bee", &bee), ("ghost", &ghost)] {
        out.push((
            format!("members.add {label}"),
            ok(s.members().add(who, &b, m, Role::Viewer)),
        ));
        out.push((
            format!("members.set_role {label}"),
            ok(s.members().set_role(who, &b, m, Role::Viewer)),
        ));
        out.push((
            format!("members.remove {label}"),
            ok(s.members().remove(who, &b, m)),
        ));
        // B's people through A: not members of A, like anybody else.
        out.push((
            format!("members.set_role {label} via A"),
            ok(s.members().set_role(who, &a, m, Role::Viewer)),
        ));
        out.push((
            format!("members.remove {label} via A"),
            ok(s.members().remove(who, &a, m)),
        ));
        for (action, role) in [
            (AdminAction::RemoveMember, None),
            (AdminAction::ChangeRole, Some(Role::Viewer)),
            (AdminAction::AddMember, Some(Role::Admin)),
        ] {
            out.push((
                format!("explain {action:?} {label}"),
                ok(s.explain(who, action, &format!("member:org-b/{m}"), role, false)),
            ));
        }
    }
    for (i, k) in keys.iter().enumerate() {
        out.push((format!("keys.show {i}"), ok(s.keys().show(who, k))));
        out.push((format!("keys.usage {i}"), ok(s.keys().usage(who, k))));
        out.push((
            format!("keys.update {i}"),
            ok(s.keys().update(who, k, KeySpec::new("x"))),
        ));
        out.push((format!("keys.rotate {i}"), ok(s.keys().rotate(who, k))));
        out.push((format!("keys.revoke {i}"), ok(s.keys().revoke(who, k))));
        out.push((format!("keys.delete {i}"), ok(s.keys().delete(who, k))));
        for action in [
            AdminAction::ManageKey,
            AdminAction::ListKeys,
            AdminAction::ReadOrg,
        ] {
            out.push((
                format!("explain {action:?} key {i}"),
                ok(s.explain(who, action, &format!("key:{k}"), None, false)),
            ));
        }
    }
    for (action, target) in [
        (AdminAction::ReadOrg, "org:org-b"),
        (AdminAction::DeleteOrg, "org:org-b"),
        (AdminAction::ReadAudit, "org:org-b"),
        (AdminAction::UpdateConfig, "config:org-b"),
        (AdminAction::RevealSecrets, "config:org-b"),
        (AdminAction::CreateKey, "newkey:org-b"),
    ] {
        out.push((
            format!("explain {action:?} {target}"),
            ok(s.explain(who, action, target, None, false)),
        ));
    }
    // Last: deleting B would change later answers.
    out.push(("orgs.delete".into(), ok(s.orgs().delete(who, &b))));
    out
}

fn denials_in_b(store: &Store) -> usize {
    store
        .audit()
        .list(&OP, &org("org-b"), usize::MAX)
        .unwrap()
        .iter()
        .filter(|e| e.outcome == AuditOutcome::Denied)
        .count()
}

#[test]
fn ids_of_another_org_answer_exactly_like_ids_that_do_not_exist() {
    for b in [B::Live, B::Deleted] {
        let mut people: Vec<(String, Option<Role>)> = A_PEOPLE
            .iter()
            .map(|(w, r)| ((*w).to_owned(), Some(*r)))
            .collect();
        people.push(("nobody@x.io".to_owned(), None));
        for (who, role) in people {
            // Fresh stores for each person: one person's attempts never change another's.
            let full = world(Store::open_temporary().unwrap(), b);
            let bare = world(Store::open_temporary().unwrap(), B::Absent);
            let actor = Actor::member(email(&who));
            let before = denials_in_b(&full.store);
            let got = answers(&full.store, &actor, &full.b_keys);
            let want = answers(&bare.store, &actor, &full.b_keys);
            assert_eq!(got.len(), want.len());
            for ((what, g), (_, w)) in got.iter().zip(&want) {
                let ctx = format!("{b:?} B, {who} ({role:?}): {what}");
                match (g, w) {
                    (Err(g), Err(w)) => {
                        assert_eq!(g, w, "{ctx}");
                        assert_eq!(g.kind(), w.kind(), "{ctx}");
                        assert_eq!(g.to_string(), w.to_string(), "{ctx}");
                        assert_eq!(g.denial().is_some(), w.denial().is_some(), "{ctx}");
                    }
                    _ => panic!("{ctx}: with B {g:?}, without B {w:?}"),
                }
            }
            // The attempts were refused and audited in B's log.
            let after = denials_in_b(&full.store);
            assert!(after > before + 20, "{b:?} {who}: {before} -> {after}");
        }
    }
}

#[test]
fn policy_explain_by_a_non_member_is_refused_like_anything_else_and_audited() {
    let w = world(Store::open_temporary().unwrap(), B::Live);
    let s = &w.store;
    let stranger = Actor::member(email("member@a.io"));
    let k = w.b_keys[1];
    for (action, target, role) in [
        (AdminAction::ReadOrg, "org:org-b".to_owned(), None),
        (
            AdminAction::ChangeRole,
            "member:org-b/boss@b.io".to_owned(),
            Some(Role::Viewer),
        ),
        (
            AdminAction::RemoveMember,
            "member:org-b/ghost@b.io".to_owned(),
            None,
        ),
        (AdminAction::ManageKey, format!("key:{k}"), None),
        (AdminAction::ListKeys, format!("key:{k}"), None),
    ] {
        let before = denials_in_b(s);
        let e = s
            .explain(&stranger, action, &target, role, false)
            .unwrap_err();
        assert_eq!(e.kind(), ErrorKind::NotFound, "{target}: {e}");
        // Nothing of B in the answer: no role, no creator, no existence.
        // The target is echoed back as given; a random key id may hold "bee".
        let answer = e.message().replace(&target, "");
        for leak in ["boss", "bee", "owner", "member", "creator"] {
            assert!(!answer.contains(leak), "{target}: {e}");
        }
        let log = s.audit().list(&OP, &org("org-b"), 1).unwrap();
        assert_eq!(denials_in_b(s), before + 1, "{target}: not audited");
        assert_eq!(log[0].actor, "member@a.io");
        assert_eq!(log[0].action, action.cedar_name());
        assert_eq!(log[0].outcome, AuditOutcome::Denied);
    }
    // A member of B still gets the explanation.
    let bee = Actor::member(email("bee@b.io"));
    let r = s
        .explain(
            &bee,
            AdminAction::ManageKey,
            &format!("key:{k}"),
            None,
            false,
        )
        .unwrap();
    assert!(r.explanation.allowed);
}

// The CLI: the same commands against a store file with B and one without.

/// Runs the binary on `db`; returns (exit code, stdout, stderr).
fn cli(db: &Path, args: &[&str]) -> (i32, String, String) {
    let out = orgstore(args).db(db).run();
    (out.code().unwrap(), out.stdout, out.stderr)
}

fn file_world(dir: &Path, b: B) -> (PathBuf, Vec<KeyId>) {
    let db = dir.join("org.redb");
    let store = Store::open(&db).unwrap();
    let w = world(store, b);
    w.store.flush().ok();
    drop(w.store);
    (db, w.b_keys)
}

#[test]
fn cli_ids_of_another_org_answer_exactly_like_ids_that_do_not_exist() {
    for b in [B::Live, B::Deleted] {
        let (d1, d2) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
        let (full, keys) = file_world(d1.path(), b);
        let (bare, _) = file_world(d2.path(), B::Absent);
        let k0 = keys[0].to_string();
        let k1 = keys[1].to_string();
        let hex = "ab".repeat(32);
        let (t0, t1) = (format!("key:{k0}"), format!("key:{k1}"));
        let commands: Vec<Vec<&str>> = vec![
            vec!["org", "show", "org-b"],
            vec!["org", "suspend", "org-b"],
            vec!["org", "resume", "org-b"],
            vec!["config", "get", "org-b"],
            vec!["config", "get", "org-b", "--reveal"],
            vec!["config", "get", "org-b", "--version", "7"],
            vec!["config", "set", "org-b", r#"{"routing":{}}"#],
            vec!["config", "history", "org-b"],
            vec!["config", "diff", "org-b", "1", "2"],
            vec!["config", "rollback", "org-b", "1"],
            vec!["member", "add", "org-b", "boss@b.io", "--role", "viewer"],
            vec!["member", "add", "org-b", "ghost@b.io", "--role", "owner"],
            vec!["member", "list", "org-b"],
            vec!["member", "role", "org-b", "boss@b.io", "viewer"],
            vec!["member", "role", "org-b", "ghost@b.io", "viewer"],
            vec!["member", "remove", "org-b", "bee@b.io"],
            vec!["member", "remove", "org-b", "ghost@b.io"],
            vec!["member", "role", "org-a", "boss@b.io", "viewer"],
            vec!["member", "orgs", "boss@b.io"],
            vec!["key", "create", "org-b", "--name", "x"],
            vec!["key", "import", "org-b", "--sha256", &hex, "--name", "x"],
            vec!["key", "list", "org-b"],
            vec!["key", "show", &k0],
            vec!["key", "show", &k1],
            vec!["key", "revoke", &k0],
            vec!["key", "rotate", &k1],
            vec!["audit", "org-b"],
            vec!["usage", "org-b"],
            vec!["usage", "org-b", "--key", &k1],
            vec!["usage", "org-a", "--key", &k1],
            vec!["policy", "explain", "ReadOrg", "org:org-b"],
            vec!["policy", "explain", "ManageKey", &t1],
            vec!["policy", "explain", "ListKeys", &t0],
            vec!["policy", "explain", "ReadOrg", "org", "--org", "org-b"],
            vec![
                "policy",
                "explain",
                "ChangeRole",
                "member:org-b/boss@b.io",
                "--role",
                "viewer",
            ],
            vec!["policy", "explain", "CreateKey", "newkey:org-b"],
            vec!["policy", "entities", "org-b"],
            vec!["org", "delete", "org-b"],
        ];
        // Commands with --json too: the error is the same one line.
        let mut all = commands.clone();
        all.push(vec!["--json", "key", "show", &k1]);
        all.push(vec!["--json", "org", "show", "org-b"]);
        let mut people: Vec<&str> = A_PEOPLE.iter().map(|(w, _)| *w).collect();
        people.push("nobody@x.io");
        if b == B::Deleted {
            // Every role was asked about the live B; a deleted one by the two extremes.
            people = vec!["owner@a.io", "nobody@x.io"];
        }
        for who in people {
            for args in &all {
                let mut with = vec!["--as", who];
                with.extend_from_slice(args);
                let got = cli(&full, &with);
                let want = cli(&bare, &with);
                assert_eq!(got, want, "{b:?} B: {who}: {args:?}");
                assert_ne!(got.0, 0, "{b:?} B: {who}: {args:?} succeeded: {got:?}");
            }
        }
    }
}

// ---------------------------------------------------------------------------------------
// Denial messages name the action and who may do it.

#[test]
fn every_denial_names_its_action_and_who_may_do_it() {
    let dir = policy_dir(&[(
        "narrow.cedar",
        "@id(\"viewers-see-nothing\")\nforbid (principal, action in Action::\"ViewerActions\", resource)\nunless { principal in resource.members };\n",
    )]);
    let store = store_with(Some(dir.path()));
    let acme = org("acme");
    let ann = email("ann@acme.io");
    store.orgs().create(&OP, &acme, "Acme", &ann).unwrap();
    for (who, role) in [
        ("ada@acme.io", Role::Admin),
        ("max@acme.io", Role::Member),
        ("vic@acme.io", Role::Viewer),
    ] {
        store.members().add(&OP, &acme, &email(who), role).unwrap();
    }
    store
        .org_configs()
        .update(&OP, &acme, r#"{"routing":{}}"#)
        .unwrap();
    let key = store.keys().create(&OP, &acme, KeySpec::new("k")).unwrap();
    let (owner, admin, member, viewer) = (
        Actor::member(ann.clone()),
        Actor::member(email("ada@acme.io")),
        Actor::member(email("max@acme.io")),
        Actor::member(email("vic@acme.io")),
    );
    let (max, vic) = (email("max@acme.io"), email("vic@acme.io"));
    let s = &store;
    let k = key.info.id;
    const OWNER_ONLY: &str = "only an owner of the org may";
    const OWNER_ADMIN: &str = "only an owner or admin of the org may";
    // (what, result, Cedar action, who may)
    let table: Vec<(&str, Result<(), Error>, &str, &str)> = vec![
        (
            "viewer reads org",
            ok(s.orgs().get(&viewer, &acme)),
            "ReadOrg",
            "any member of the org",
        ),
        (
            "viewer reads config",
            ok(s.org_configs().retrieve(&viewer, &acme)),
            "ReadOrg",
            "any member of the org",
        ),
        (
            "viewer lists members",
            ok(s.members().list(&viewer, &acme)),
            "ListMembers",
            "any member of the org",
        ),
        (
            "viewer lists keys",
            ok(s.keys().list(&viewer, &acme)),
            "ListKeys",
            "any member of the org",
        ),
        (
            "viewer shows a key",
            ok(s.keys().show(&viewer, &k)),
            "ListKeys",
            "any member of the org",
        ),
        (
            "viewer reads usage",
            ok(s.orgs().usage(&viewer, &acme)),
            "ReadAnalytics",
            "any member of the org",
        ),
        (
            "member updates config",
            ok(s.org_configs().update(&member, &acme, "{}")),
            "UpdateConfig",
            OWNER_ADMIN,
        ),
        (
            "viewer rolls back",
            ok(s.org_configs().rollback(&viewer, &acme, 1)),
            "UpdateConfig",
            OWNER_ADMIN,
        ),
        (
            "member reveals",
            ok(s.org_configs().reveal(&member, &acme, None)),
            "RevealSecrets",
            OWNER_ADMIN,
        ),
        (
            "member reads audit",
            ok(s.audit().list(&member, &acme, 5)),
            "ReadAudit",
            OWNER_ADMIN,
        ),
        (
            "admin deletes",
            ok(s.orgs().delete(&admin, &acme)),
            "DeleteOrg",
            OWNER_ONLY,
        ),
        (
            "admin suspends",
            ok(s.orgs().suspend(&admin, &acme)),
            "SuspendOrg",
            OWNER_ONLY,
        ),
        (
            "member resumes",
            ok(s.orgs().resume(&member, &acme)),
            "ResumeOrg",
            OWNER_ONLY,
        ),
        (
            "member adds",
            ok(s.members()
                .add(&member, &acme, &email("n@acme.io"), Role::Viewer)),
            "AddMember",
            OWNER_ADMIN,
        ),
        (
            "admin adds an owner",
            ok(s.members()
                .add(&admin, &acme, &email("n@acme.io"), Role::Owner)),
            "AddMember",
            "only an owner of the org may grant the owner role",
        ),
        (
            "viewer changes a role",
            ok(s.members().set_role(&viewer, &acme, &max, Role::Viewer)),
            "ChangeRole",
            OWNER_ADMIN,
        ),
        (
            "admin promotes to owner",
            ok(s.members().set_role(&admin, &acme, &max, Role::Owner)),
            "ChangeRole",
            "only an owner of the org may grant the owner role",
        ),
        (
            "admin demotes the owner",
            ok(s.members().set_role(&admin, &acme, &ann, Role::Admin)),
            "ChangeRole",
            "only an owner of the org may change the role of an owner",
        ),
        (
            "member removes",
            ok(s.members().remove(&member, &acme, &vic)),
            "RemoveMember",
            OWNER_ADMIN,
        ),
        (
            "admin removes the owner",
            ok(s.members().remove(&admin, &acme, &ann)),
            "RemoveMember",
            "only an owner of the org may change the role of an owner or remove one",
        ),
        (
            "the last owner leaves",
            ok(s.members().remove(&owner, &acme, &ann)),
            "LeaveOrg",
            "the last owner of an org can be neither removed nor demoted",
        ),
        (
            "the last owner demotes self",
            ok(s.members().set_role(&owner, &acme, &ann, Role::Admin)),
            "ChangeRole",
            "the last owner of an org can be neither removed nor demoted",
        ),
        (
            "viewer creates a key",
            ok(s.keys().create(&viewer, &acme, KeySpec::new("v"))),
            "CreateKey",
            "only an owner, admin or member of the org may",
        ),
        (
            "member revokes another's key",
            ok(s.keys().revoke(&member, &k)),
            "ManageKey",
            "or the member who created the key",
        ),
        (
            "member rotates another's key",
            ok(s.keys().rotate(&member, &k)),
            "ManageKey",
            "or the member who created the key",
        ),
        (
            "member creates an org",
            ok(s.orgs().create(&member, &org("maxs"), "M", &max)),
            "CreateOrg",
            "only the operator may",
        ),
    ];
    let mut failures = Vec::new();
    for (what, got, action, who) in table {
        let e = match got {
            Ok(()) => {
                failures.push(format!("{what}: allowed"));
                continue;
            }
            Err(e) => e,
        };
        let msg = e.to_string();
        if e.kind() != ErrorKind::Denied
            || e.denial().map(|d| d.action()) != Some(action)
            || !msg.contains(&format!("may not {action}:"))
            || !msg.contains(who)
        {
            failures.push(format!("{what}: want {action} / {who:?}: {msg}"));
        }
        if who.starts_with("only an owner of") && msg.contains("owner or admin") {
            failures.push(format!("{what}: says an admin may: {msg}"));
        }
    }
    // Every action has a who-may phrase that agrees with the built-in matrix.
    for a in AdminAction::ALL {
        let who = a.who_may();
        let owner_only = matches!(
            a,
            AdminAction::DeleteOrg
                | AdminAction::SuspendOrg
                | AdminAction::ResumeOrg
                | AdminAction::ManageBilling
        );
        if owner_only != (who == OWNER_ONLY) {
            failures.push(format!("{a:?}: {who}"));
        }
    }
    // ManageBilling has no store operation yet: through the policy layer.
    let p = Policies::default_set().unwrap();
    let d = p
        .authorize(&AdminRequest {
            actor: &admin,
            actor_role: Some(Role::Admin),
            action: AdminAction::ManageBilling,
            org: &acme,
            owner_count: 1,
            target: Target::Org,
        })
        .unwrap_err();
    assert_eq!(d.who_may(), OWNER_ONLY);
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

// ---------------------------------------------------------------------------------------
// Loading: every policy needs an @id; `.CEDAR` files are read.

#[test]
fn a_policy_without_an_id_is_refused_with_file_and_line() {
    let base = Policies::default_set().unwrap();
    let permit = "permit (principal, action == Action::\"ReadLogs\", resource);";
    let cases: Vec<(String, &str)> = vec![
        (format!("{permit}\n"), "x.cedar:1:1"),
        (
            format!("@id(\"ok\")\n{permit}\n\n// a comment; with a semicolon\n  {permit}\n"),
            "x.cedar:5:3",
        ),
        (format!("@id(\"\")\n{permit}\n"), "x.cedar:1:1"),
        (
            format!("@id(\"a;b\")\n{permit}\n@id(\"  \") {permit}\n"),
            "x.cedar:3:1",
        ),
        (
            format!(
                "@id(\"s\")\npermit (principal, action == Action::\"ReadLogs\", resource) when {{ principal.email == \"x;y\" }};\n@other(\"z\")\n{permit}\n"
            ),
            "x.cedar:3:1",
        ),
    ];
    for (text, place) in cases {
        let d = policy_dir(&[("x.cedar", &text)]);
        let e = base.with_dir(d.path()).unwrap_err();
        assert_eq!(e.kind(), ErrorKind::Invalid, "{text}");
        let msg = e.to_string();
        assert!(msg.contains(place), "want {place}: {msg}\n{text}");
        assert!(msg.contains("@id"), "{msg}");
        // The in-memory loader and the store refuse it too, and the old set stays.
        assert!(base.with_sources(&[("x.cedar", &text)]).is_err());
        let e = Policies::validate_dir(d.path()).unwrap_err();
        assert!(e.to_string().contains(place), "{e}");
        let store = store_with(None);
        assert!(store.policy_set().apply_dir(&OP, d.path()).is_err());
        assert_eq!(store.policies().policy_ids(), base.policy_ids());
    }
}

#[test]
fn policy_files_load_whatever_the_case_of_their_extension() {
    let base = Policies::default_set().unwrap();
    for name in ["UPPER.CEDAR", "Mixed.Cedar", "lower.cedar", "odd.cEdAr"] {
        let d = policy_dir(&[(
            name,
            "@id(\"from-file\")\nforbid (principal, action == Action::\"ReadLogs\", resource);\n",
        )]);
        let p = base.with_dir(d.path()).unwrap();
        assert!(
            p.policy_ids().contains(&"from-file".to_owned()),
            "{name}: {:?}",
            p.policy_ids()
        );
        // A broken file of that name is refused, so it is really read.
        let bad = policy_dir(&[(name, "permit (principal")]);
        let e = base.with_dir(bad.path()).unwrap_err();
        assert!(e.to_string().contains(name), "{name}: {e}");
    }
    // Other files are still not policies.
    let d = policy_dir(&[("notes.txt", "x"), ("a.cedar.bak", "x"), ("cedar", "x")]);
    assert_eq!(
        base.with_dir(d.path()).unwrap().policy_ids(),
        base.policy_ids()
    );
}

// ---------------------------------------------------------------------------------------
// CreateOrg, and a removed member's keys.

#[test]
fn only_the_operator_creates_orgs_unless_a_policy_permits_it() {
    let store = store_with(None);
    store
        .orgs()
        .create(&OP, &org("taken"), "T", &email("t@x.io"))
        .unwrap();
    // Any person, owner of an org or nobody, for a free id or a taken one: the same denial.
    for who in ["t@x.io", "nobody@x.io"] {
        let actor = Actor::member(email(who));
        let mut msgs = Vec::new();
        for id in ["fresh", "taken"] {
            let e = store
                .orgs()
                .create(&actor, &org(id), "N", &email(who))
                .unwrap_err();
            assert_eq!(e.kind(), ErrorKind::Denied, "{who} {id}: {e}");
            assert_eq!(e.denial().unwrap().action(), "CreateOrg");
            msgs.push(e.message().replace(id, "ID"));
        }
        assert_eq!(msgs[0], msgs[1], "the denial tells whether the id is taken");
    }
    assert!(store.orgs().get(&OP, &org("fresh")).is_err());
    // The taken org's log has the refused attempt; a free id has no log.
    let log = store.audit().list(&OP, &org("taken"), 10).unwrap();
    assert!(
        log.iter()
            .any(|e| e.action == "CreateOrg" && e.outcome == AuditOutcome::Denied)
    );
    store
        .orgs()
        .create(&OP, &org("fresh"), "F", &email("f@x.io"))
        .unwrap();
    let log = store.audit().list(&OP, &org("fresh"), 10).unwrap();
    assert_eq!(log.len(), 1, "{log:?}");

    // An operator policy widens it, here to one domain; a person still owns what they create.
    let dir = policy_dir(&[(
        "signup.cedar",
        "@id(\"acme-staff-create-orgs\")\npermit (principal, action == Action::\"CreateOrg\", resource)\nwhen { principal.email like \"*@acme.io\" };\n",
    )]);
    store.policy_set().apply_dir(&OP, dir.path()).unwrap();
    let staff = Actor::member(email("sam@acme.io"));
    store
        .orgs()
        .create(&staff, &org("sams"), "S", &email("sam@acme.io"))
        .unwrap();
    let e = store
        .orgs()
        .create(&staff, &org("sams2"), "S", &email("other@acme.io"))
        .unwrap_err();
    assert_eq!((e.kind(), e.field()), (ErrorKind::Denied, "owner"));
    let e = store
        .orgs()
        .create(
            &Actor::member(email("eve@evil.io")),
            &org("eves"),
            "E",
            &email("eve@evil.io"),
        )
        .unwrap_err();
    assert_eq!(e.denial().unwrap().action(), "CreateOrg");
    // With the permit, a taken id is a conflict (the id space is shared).
    let e = store
        .orgs()
        .create(&staff, &org("taken"), "T", &email("sam@acme.io"))
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Conflict);
    // explain agrees.
    let r = store
        .explain(&staff, AdminAction::CreateOrg, "org:whatever", None, false)
        .unwrap();
    assert_eq!(r.explanation.reasons, ["acme-staff-create-orgs"]);
    store.policy_set().apply(&OP, &[]).unwrap();
    let r = store
        .explain(&staff, AdminAction::CreateOrg, "org:whatever", None, false)
        .unwrap();
    assert!(!r.explanation.allowed);

    // The CLI: exit 3 for a person, 0 for the operator.
    let d = tempfile::tempdir().unwrap();
    let db = d.path().join("org.redb");
    let (code, _, err) = cli(
        &db,
        &[
            "--as",
            "sam@acme.io",
            "org",
            "create",
            "x",
            "--owner",
            "sam@acme.io",
        ],
    );
    assert_eq!(code, 3, "{err}");
    assert!(
        err.contains("CreateOrg") && err.contains("only the operator may"),
        "{err}"
    );
    let (code, _, err) = cli(&db, &["org", "create", "x", "--owner", "sam@acme.io"]);
    assert_eq!(code, 0, "{err}");
}

#[test]
fn removing_a_member_revokes_the_keys_they_created() {
    let store = store_with(None);
    let acme = org("acme");
    let other = org("other");
    let ann = email("ann@acme.io");
    store.orgs().create(&OP, &acme, "Acme", &ann).unwrap();
    store.orgs().create(&OP, &other, "Other", &ann).unwrap();
    let people = [
        ("ada@acme.io", Role::Admin),
        ("max@acme.io", Role::Member),
        ("mia@acme.io", Role::Member),
        ("own@acme.io", Role::Owner),
    ];
    for (who, role) in people {
        store.members().add(&OP, &acme, &email(who), role).unwrap();
    }
    store
        .members()
        .add(&OP, &other, &email("max@acme.io"), Role::Member)
        .unwrap();
    let key = |who: &str, o: &OrgId, name: &str| {
        let actor = if who == "operator" {
            OP
        } else {
            Actor::member(email(who))
        };
        store.keys().create(&actor, o, KeySpec::new(name)).unwrap()
    };
    let max1 = key("max@acme.io", &acme, "max1");
    let max2 = key("max@acme.io", &acme, "max2");
    let max_other = key("max@acme.io", &other, "max-other");
    let mia = key("mia@acme.io", &acme, "mia");
    let ada = key("ada@acme.io", &acme, "ada");
    let own = key("own@acme.io", &acme, "own");
    let ops = key("operator", &acme, "ops");
    // A rotated key is still its creator's; an already revoked one stays as it is.
    let max2 = store
        .keys()
        .rotate(&Actor::member(email("max@acme.io")), &max2.info.id)
        .unwrap();
    let max3 = key("max@acme.io", &acme, "max3");
    store.keys().revoke(&OP, &max3.info.id).unwrap();
    for k in [&max1, &max2, &mia, &ada, &own, &ops, &max_other] {
        assert_eq!(gw_code(&store, k.key.expose()), "ok");
    }

    // Removed by an admin.
    let admin = Actor::member(email("ada@acme.io"));
    store
        .members()
        .remove(&admin, &acme, &email("max@acme.io"))
        .unwrap();
    assert_eq!(gw_code(&store, max1.key.expose()), "revoked");
    assert_eq!(gw_code(&store, max2.key.expose()), "revoked");
    for k in [&mia, &ada, &own, &ops, &max_other] {
        assert_eq!(
            gw_code(&store, k.key.expose()),
            "ok",
            "{}",
            k.info.spec.name
        );
    }
    let log = store.audit().list(&OP, &acme, usize::MAX).unwrap();
    let revokes: Vec<&str> = log
        .iter()
        .filter(|e| e.action == "ManageKey" && e.actor == "ada@acme.io")
        .map(|e| e.target.as_str())
        .collect();
    assert_eq!(revokes.len(), 2, "{log:?}");
    assert!(revokes.contains(&max1.info.id.to_string().as_str()));
    let max3_now = store.keys().show(&OP, &max3.info.id).unwrap();
    assert_eq!(
        max3_now.version, 2,
        "an already revoked key was written again"
    );
    // Coming back does not revive them.
    store
        .members()
        .add(&OP, &acme, &email("max@acme.io"), Role::Member)
        .unwrap();
    assert_eq!(gw_code(&store, max1.key.expose()), "revoked");
    assert_eq!(
        store.keys().show(&OP, &max1.info.id).unwrap().status,
        KeyStatus::Revoked
    );

    // Leaving does the same; so does an owner removing another owner.
    store
        .members()
        .remove(
            &Actor::member(email("mia@acme.io")),
            &acme,
            &email("mia@acme.io"),
        )
        .unwrap();
    assert_eq!(gw_code(&store, mia.key.expose()), "revoked");
    store
        .members()
        .remove(&Actor::member(ann.clone()), &acme, &email("own@acme.io"))
        .unwrap();
    assert_eq!(gw_code(&store, own.key.expose()), "revoked");
    // By the operator too.
    store
        .members()
        .remove(&OP, &acme, &email("ada@acme.io"))
        .unwrap();
    assert_eq!(gw_code(&store, ada.key.expose()), "revoked");
    // The operator's key and the person's key in another org are untouched.
    assert_eq!(gw_code(&store, ops.key.expose()), "ok");
    assert_eq!(gw_code(&store, max_other.key.expose()), "ok");

    // A refused removal revokes nothing.
    let k = key("max@acme.io", &acme, "again");
    let e = store
        .members()
        .remove(&Actor::member(email("max@acme.io")), &acme, &ann)
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Denied);
    assert_eq!(gw_code(&store, k.key.expose()), "ok");
}
