//! The store's policy set: versions, apply, rollback, the policy log, `ManagePolicies`,
//! impact analysis, policy tests, and every open of a file enforcing the same set.

use std::path::Path;

use orgstore::{
    Actor, AdminAction, AuditOutcome, ErrorKind, KeySpec, Policies, Request, Role, Store,
    StoreBuilder,
};
use proptest::prelude::*;

use crate::common::{OP, create_org, db_path, email, open_file_fast, orgstore};

const EXPIRY: &str = include_str!("../../policies/examples/require-key-expiry.cedar");

const NO_DELETES: &str =
    "@id(\"no-deletes\")\nforbid (principal, action == Action::\"DeleteOrg\", resource);\n";

fn files(list: &[(&str, &str)]) -> Vec<(String, String)> {
    list.iter()
        .map(|(n, t)| ((*n).to_owned(), (*t).to_owned()))
        .collect()
}

fn write_dir(list: &[(&str, &str)]) -> tempfile::TempDir {
    let d = tempfile::tempdir().unwrap();
    for (n, t) in list {
        std::fs::write(d.path().join(n), t).unwrap();
    }
    d
}

/// One org with a member of each role and a key created by the member.
fn populated(store: &Store) {
    let acme = create_org(store, "acme", "owner@acme.io");
    for (who, role) in [
        ("admin@acme.io", Role::Admin),
        ("member@acme.io", Role::Member),
        ("viewer@acme.io", Role::Viewer),
    ] {
        store.members().add(&OP, &acme, &email(who), role).unwrap();
    }
    let m = Actor::member(email("member@acme.io"));
    store
        .keys()
        .create(
            &m,
            &acme,
            KeySpec::new("own").expires_at(orgstore::Timestamp::from_micros(
                orgstore::Timestamp::now().as_micros() + 86_400_000_000 * 30,
            )),
        )
        .unwrap();
}

fn member_creates_key_without_expiry(store: &Store) -> bool {
    store
        .explain(
            &Actor::member(email("member@acme.io")),
            AdminAction::CreateKey,
            "newkey:acme",
            None,
            false,
        )
        .unwrap()
        .explanation
        .allowed
}

#[test]
fn a_new_store_enforces_the_built_in_set_as_version_1() {
    let store = Store::open_temporary().unwrap();
    let v = store.policy_set().active().unwrap();
    assert_eq!((v.version, v.active, v.files.len()), (1, true, 0));
    assert_eq!(v.note, "built-in");
    assert_eq!(store.policy_set().history().unwrap().len(), 1);
    assert_eq!(
        store.policy_set().version(Some(2)).unwrap_err().kind(),
        ErrorKind::NotFound
    );
}

#[test]
fn apply_writes_a_version_history_diff_and_the_policy_log() {
    let store = Store::open_temporary().unwrap();
    populated(&store);
    assert!(member_creates_key_without_expiry(&store));
    let v2 = store
        .policy_set()
        .apply(&OP, &files(&[("require-key-expiry.cedar", EXPIRY)]))
        .unwrap();
    assert_eq!((v2.version, v2.changed, v2.active), (2, true, true));
    assert!(!member_creates_key_without_expiry(&store));
    // The same files again write nothing.
    let again = store
        .policy_set()
        .apply(&OP, &files(&[("require-key-expiry.cedar", EXPIRY)]))
        .unwrap();
    assert_eq!((again.version, again.changed), (2, false));
    let h = store.policy_set().history().unwrap();
    assert_eq!(h.iter().map(|v| v.version).collect::<Vec<_>>(), [1, 2]);
    assert_eq!(h[1].created_by, "operator");
    let d = store.policy_set().diff(1, 2).unwrap();
    assert_eq!(d.len(), 1);
    assert_eq!(
        (d[0].file.as_str(), d[0].status),
        ("require-key-expiry.cedar", "added")
    );
    assert!(d[0].lines.iter().all(|l| l.starts_with('+')));
    let log = store.policy_set().audit(&OP, 10).unwrap();
    assert_eq!(log.len(), 1, "{log:?}");
    assert_eq!(
        (log[0].actor.as_str(), log[0].outcome),
        ("operator", AuditOutcome::Applied)
    );
    assert!(log[0].summary.contains("version 2"), "{}", log[0].summary);
}

#[test]
fn an_invalid_apply_changes_nothing() {
    let store = Store::open_temporary().unwrap();
    populated(&store);
    store
        .policy_set()
        .apply(&OP, &files(&[("a.cedar", NO_DELETES)]))
        .unwrap();
    let before = store.policy_set().history().unwrap();
    let ids = store.policies().policy_ids();
    for bad in [
        files(&[("a.cedar", "permit (principal")]),
        files(&[("a.cedar", "permit (principal, action, resource);")]),
        files(&[(
            "a.cedar",
            "@id(\"w\")\npermit (principal, action == Action::\"ReadOrg\", resource) when { 1 == \"a\" };",
        )]),
        files(&[(
            "a.cedar",
            "@id(\"viewer-read\")\nforbid (principal, action, resource);",
        )]),
        files(&[("../a.cedar", NO_DELETES)]),
        files(&[("roles.cedar", NO_DELETES)]),
        files(&[("a.txt", NO_DELETES)]),
    ] {
        let e = store.policy_set().apply(&OP, &bad).unwrap_err();
        assert_eq!(e.kind(), ErrorKind::Invalid, "{bad:?}: {e}");
        assert_eq!(store.policy_set().history().unwrap(), before, "{bad:?}");
        assert_eq!(store.policies().policy_ids(), ids);
    }
    // A located error: file and line.
    let e = store
        .policy_set()
        .apply(
            &OP,
            &files(&[("b.cedar", "\n\npermit (principal, action, resource);")]),
        )
        .unwrap_err();
    assert!(e.message().contains("b.cedar:3:1"), "{e}");
    assert_eq!(store.policy_set().audit(&OP, 10).unwrap().len(), 1);
}

#[test]
fn managing_policies_is_for_the_operator_unless_a_policy_permits_it() {
    let store = Store::open_temporary().unwrap();
    populated(&store);
    let owner = Actor::member(email("owner@acme.io"));
    let e = store
        .policy_set()
        .apply(&owner, &files(&[("a.cedar", NO_DELETES)]))
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Denied, "{e}");
    assert_eq!(e.denial().unwrap().action(), "ManagePolicies");
    assert_eq!(store.policy_set().active().unwrap().version, 1);
    let log = store.policy_set().audit(&OP, 10).unwrap();
    assert_eq!(
        (log[0].actor.as_str(), log[0].outcome),
        ("owner@acme.io", AuditOutcome::Denied)
    );
    assert!(store.policy_set().audit(&owner, 10).is_err());

    // An operator policy may delegate it.
    let delegate = "@id(\"policy-admins\")\npermit (principal, action == Action::\"ManagePolicies\", resource)\nwhen { principal.email == \"owner@acme.io\" };\n";
    store
        .policy_set()
        .apply(&OP, &files(&[("delegate.cedar", delegate)]))
        .unwrap();
    let v = store
        .policy_set()
        .apply(
            &owner,
            &files(&[("delegate.cedar", delegate), ("a.cedar", NO_DELETES)]),
        )
        .unwrap();
    assert_eq!((v.version, v.created_by.as_str()), (3, "owner@acme.io"));
    let viewer = Actor::member(email("viewer@acme.io"));
    assert_eq!(
        store.policy_set().rollback(&viewer, 1).unwrap_err().kind(),
        ErrorKind::Denied
    );
}

#[test]
fn two_opens_of_one_file_enforce_the_same_set() {
    let dir = tempfile::tempdir().unwrap();
    {
        let store = open_file_fast(dir.path());
        populated(&store);
        store
            .policy_set()
            .apply(&OP, &files(&[("require-key-expiry.cedar", EXPIRY)]))
            .unwrap();
    }
    {
        // A later open without any policy option enforces the stored version.
        let store = open_file_fast(dir.path());
        assert_eq!(store.policy_set().active().unwrap().version, 2);
        assert!(!member_creates_key_without_expiry(&store));
        let m = Actor::member(email("member@acme.io"));
        let e = store
            .keys()
            .create(
                &m,
                &orgstore::OrgId::parse("acme").unwrap(),
                KeySpec::new("x"),
            )
            .unwrap_err();
        assert_eq!(e.kind(), ErrorKind::Denied);
        store.policy_set().rollback(&OP, 1).unwrap();
    }
    let store = open_file_fast(dir.path());
    assert_eq!(store.policy_set().active().unwrap().version, 3);
    assert!(member_creates_key_without_expiry(&store));
    drop(store);
    let ro = StoreBuilder::new()
        .read_only()
        .open(db_path(dir.path()))
        .unwrap();
    assert!(member_creates_key_without_expiry(&ro));
}

#[test]
fn cli_runs_enforce_what_was_applied_and_policies_is_only_a_what_if() {
    let dir = tempfile::tempdir().unwrap();
    let db = db_path(dir.path());
    {
        let store = StoreBuilder::new().non_durable().open(&db).unwrap();
        populated(&store);
    }
    let examples = Path::new(env!("CARGO_MANIFEST_DIR")).join("policies/examples");
    let explain = |extra: &[&str]| {
        let mut args = vec!["--as", "member@acme.io"];
        args.extend_from_slice(extra);
        args.extend(["policy", "explain", "CreateKey", "newkey:acme"]);
        orgstore(&args).db(&db).run().code()
    };
    assert_eq!(explain(&[]), Some(0));
    // What if: --policies changes the answer of this run only.
    assert_eq!(
        explain(&["--policies", examples.to_str().unwrap()]),
        Some(3)
    );
    assert_eq!(explain(&[]), Some(0));

    // A dry run stores nothing and exits 1 because a decision changes.
    let out = orgstore(&["policy", "apply", examples.to_str().unwrap(), "--dry-run"])
        .db(&db)
        .run();
    assert_eq!(out.code(), Some(1), "{}", out.stderr);
    assert!(out.stdout.contains("require-key-expiry"), "{}", out.stdout);
    assert_eq!(explain(&[]), Some(0));

    orgstore(&["policy", "apply", examples.to_str().unwrap()])
        .db(&db)
        .run()
        .ok();
    assert_eq!(explain(&[]), Some(3));
    let h = orgstore(&["policy", "history"]).db(&db).run().ok();
    assert!(h.contains("require-key-expiry.cedar"), "{h}");
    let shown = orgstore(&["policy", "show"]).db(&db).run().ok();
    assert!(shown.contains("@id(\"require-key-expiry\")"), "{shown}");
    assert!(!shown.contains("@id(\"viewer-read\")"), "{shown}");
    let whole = orgstore(&["policy", "show", "--all"]).db(&db).run().ok();
    assert!(
        whole.contains("@id(\"viewer-read\")") && whole.contains("@id(\"require-key-expiry\")"),
        "{whole}"
    );
    let pulled = tempfile::tempdir().unwrap();
    orgstore(&["policy", "pull", pulled.path().to_str().unwrap()])
        .db(&db)
        .run()
        .ok();
    assert_eq!(
        std::fs::read_to_string(pulled.path().join("require-key-expiry.cedar")).unwrap(),
        EXPIRY
    );
    let d = orgstore(&["policy", "diff", "1", "2"]).db(&db).run().ok();
    assert!(d.contains("added require-key-expiry.cedar"), "{d}");
    orgstore(&["policy", "rollback", "1"]).db(&db).run().ok();
    assert_eq!(explain(&[]), Some(0));

    // A person may not apply; an invalid directory changes nothing.
    let e = orgstore(&[
        "--as",
        "owner@acme.io",
        "policy",
        "apply",
        examples.to_str().unwrap(),
    ])
    .db(&db)
    .run()
    .fail(3);
    assert!(e.contains("ManagePolicies"), "{e}");
    let bad = write_dir(&[("x.cedar", "permit (principal, action, resource);")]);
    let e = orgstore(&["policy", "apply", bad.path().to_str().unwrap()])
        .db(&db)
        .run()
        .fail(1);
    assert!(e.contains("x.cedar:1:1") && e.contains("@id"), "{e}");
    let h = orgstore(&["--json", "policy", "history"])
        .db(&db)
        .run()
        .ok();
    let h: serde_json::Value = serde_json::from_str(&h).unwrap();
    assert_eq!(h.as_array().unwrap().len(), 3);
}

#[test]
fn the_impact_of_require_key_expiry_is_exactly_members_creating_keys_without_expiry() {
    let store = Store::open_temporary().unwrap();
    populated(&store);
    let beta = create_org(&store, "beta", "boss@beta.io");
    store
        .members()
        .add(&OP, &beta, &email("member@acme.io"), Role::Member)
        .unwrap();
    store
        .members()
        .add(&OP, &beta, &email("ann@beta.io"), Role::Admin)
        .unwrap();
    let proposed = Policies::from_files(&files(&[("require-key-expiry.cedar", EXPIRY)])).unwrap();
    let r = store.policy_impact(&proposed).unwrap();
    assert!(r.evaluated > 100, "{}", r.evaluated);
    let got: Vec<(String, String, String, String, bool, bool)> = r
        .changes
        .iter()
        .map(|c| {
            (
                c.principal.clone(),
                c.action.clone(),
                c.resource.clone(),
                c.context.clone(),
                c.before,
                c.after,
            )
        })
        .collect();
    let want = |org: &str| {
        (
            "User::\"member@acme.io\"".to_owned(),
            "CreateKey".to_owned(),
            format!("Org::\"{org}\""),
            "has_expiry: false".to_owned(),
            true,
            false,
        )
    };
    assert_eq!(got, [want("acme"), want("beta")]);
    for c in &r.changes {
        assert_eq!(c.before_policies, ["member-create-key"]);
        assert_eq!(c.after_policies, ["require-key-expiry"]);
    }
    // Against itself nothing changes; the enforcement is untouched by the analysis.
    assert!(
        store
            .policy_impact(&store.policies())
            .unwrap()
            .changes
            .is_empty()
    );
    assert!(member_creates_key_without_expiry(&store));
}

#[test]
fn the_impact_of_a_gateway_forbid_names_the_keys_and_models() {
    let store = Store::open_temporary().unwrap();
    populated(&store);
    let acme = orgstore::OrgId::parse("acme").unwrap();
    store
        .org_configs()
        .update(&OP, &acme, r#"{"allowed_models":["gpt-4o","house-model"]}"#)
        .unwrap();
    let created = store
        .keys()
        .create(&OP, &acme, KeySpec::new("svc"))
        .unwrap();
    let rule = "@id(\"no-house-model\")\nforbid (principal, action == Action::\"invoke\", resource == Model::\"house-model\");\n";
    let proposed = Policies::from_files(&files(&[("gw.cedar", rule)])).unwrap();
    let r = store.policy_impact(&proposed).unwrap();
    let keys: Vec<&str> = r
        .changes
        .iter()
        .map(|c| {
            assert_eq!(
                (c.action.as_str(), c.resource.as_str()),
                ("invoke", "Model::\"house-model\"")
            );
            assert!(c.before && !c.after);
            c.principal.as_str()
        })
        .collect();
    assert_eq!(keys.len(), 2, "{:?}", r.changes);
    assert!(keys.contains(&format!("Key::\"{}\"", created.info.id).as_str()));

    // Applied, the gateway refuses at once (its memo is invalidated).
    let gw = store.gateway();
    let ip = "10.0.0.1".parse().unwrap();
    assert!(
        gw.check(&Request::new(created.key.expose(), "house-model", ip))
            .is_ok()
    );
    store
        .policy_set()
        .apply(&OP, &files(&[("gw.cedar", rule)]))
        .unwrap();
    let d = gw
        .check(&Request::new(created.key.expose(), "house-model", ip))
        .unwrap_err();
    assert_eq!(d.code(), "policy_denied");
    store.policy_set().rollback(&OP, 1).unwrap();
    assert!(
        gw.check(&Request::new(created.key.expose(), "house-model", ip))
            .is_ok()
    );
}

#[test]
fn policy_tests_ship_for_the_built_in_set_and_the_examples() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let none = tempfile::tempdir().unwrap();
    let db = none.path().join("absent.redb");
    let run = |args: &[&str]| {
        let mut a = vec!["policy", "test"];
        a.extend_from_slice(args);
        orgstore(&a).db(&db).run()
    };
    let builtin = root.join("policies/tests/builtin.json");
    let out = run(&[builtin.to_str().unwrap()]).ok();
    assert!(out.contains("passed, 0 failed"), "{out}");
    assert!(!db.exists(), "a policy test creates no store");
    let examples = root.join("policies/examples");
    let expiry = root.join("policies/tests/require-key-expiry.json");
    let out = orgstore(&[
        "--policies",
        examples.to_str().unwrap(),
        "policy",
        "test",
        expiry.to_str().unwrap(),
    ])
    .db(&db)
    .run()
    .ok();
    assert!(out.contains("6 cases: 6 passed, 0 failed"), "{out}");
    // Without the example policy its first case fails: exit 1, the case named.
    let r = run(&[expiry.to_str().unwrap()]);
    assert_eq!(r.code(), Some(1));
    assert!(
        r.stdout.contains("FAIL") && r.stdout.contains("1 failed"),
        "{}",
        r.stdout
    );
    // Bad test files are input errors naming the file and case.
    let bad = write_dir(&[(
        "t.json",
        r#"[{"principal":"User::\"a@b.io\"","action":"Action::\"ReadOrg\"","resource":"Org::\"a\"","entities":[],"expect":"maybe"}]"#,
    )]);
    let e = run(&[bad.path().join("t.json").to_str().unwrap()]).fail(1);
    assert!(e.contains("case 1") && e.contains("expect"), "{e}");
}

#[test]
fn policy_tests_take_entities_from_an_org_of_the_store() {
    let dir = tempfile::tempdir().unwrap();
    let db = db_path(dir.path());
    {
        let store = StoreBuilder::new().non_durable().open(&db).unwrap();
        populated(&store);
    }
    let t = write_dir(&[(
        "org.json",
        r#"[
 {"principal": "User::\"viewer@acme.io\"", "action": "Action::\"ReadOrg\"", "resource": "Org::\"acme\"", "org": "acme", "expect": "allow", "policies": ["viewer-read"]},
 {"principal": "User::\"viewer@acme.io\"", "action": "Action::\"UpdateConfig\"", "resource": "Config::\"acme\"", "org": "acme", "expect": "deny"},
 {"principal": "User::\"admin@acme.io\"", "action": "Action::\"ChangeRole\"", "resource": "Membership::\"acme/owner@acme.io\"", "context": {"new_role": "admin"}, "org": "acme", "expect": "deny", "policies": ["last-owner-not-demoted", "only-owners-manage-owners"]}
]"#,
    )]);
    let out = orgstore(&[
        "policy",
        "test",
        t.path().join("org.json").to_str().unwrap(),
    ])
    .db(&db)
    .run()
    .ok();
    assert!(out.contains("3 cases: 3 passed, 0 failed"), "{out}");
}

/// Every member x action decision of the store under its active set.
fn decisions(store: &Store) -> Vec<(String, bool, Vec<String>)> {
    let members = [
        "owner@acme.io",
        "admin@acme.io",
        "member@acme.io",
        "viewer@acme.io",
    ];
    let mut out = Vec::new();
    for who in members {
        let actor = Actor::member(email(who));
        for (action, target, role, exp) in [
            (AdminAction::ReadOrg, "org:acme", None, false),
            (AdminAction::UpdateConfig, "config:acme", None, false),
            (AdminAction::DeleteOrg, "org:acme", None, false),
            (AdminAction::CreateKey, "newkey:acme", None, false),
            (AdminAction::CreateKey, "newkey:acme", None, true),
            (AdminAction::ReadAudit, "org:acme", None, false),
            (
                AdminAction::ChangeRole,
                "member:acme/viewer@acme.io",
                Some(Role::Member),
                false,
            ),
        ] {
            let e = store
                .explain(&actor, action, target, role, exp)
                .unwrap()
                .explanation;
            out.push((
                format!("{who} {action:?} {target} {exp}"),
                e.allowed,
                e.reasons,
            ));
        }
    }
    out
}

const RULES: [(&str, &str); 4] = [
    ("expiry.cedar", EXPIRY),
    ("nodelete.cedar", NO_DELETES),
    (
        "viewers-config.cedar",
        "@id(\"viewers-config\")\npermit (principal, action == Action::\"UpdateConfig\", resource)\nwhen { principal in resource.org.viewers };\n",
    ),
    (
        "no-audit.cedar",
        "@id(\"no-audit\")\nforbid (principal, action == Action::\"ReadAudit\", resource)\nunless { principal in resource.owners };\n",
    ),
];

proptest! {
    #![proptest_config(ProptestConfig { cases: 16, ..ProptestConfig::default() })]

    /// Whatever sequence of sets is applied, rolling back to a version gives exactly the
    /// decisions that version gave.
    #[test]
    fn rollback_restores_the_decisions_exactly(picks in proptest::collection::vec(0u8..16, 1..5), back in 0usize..5) {
        let store = Store::open_temporary().unwrap();
        populated(&store);
        let mut seen = vec![decisions(&store)];
        for p in &picks {
            let chosen: Vec<(String, String)> = RULES
                .iter()
                .enumerate()
                .filter(|(i, _)| p & (1 << i) != 0)
                .map(|(_, (n, t))| ((*n).to_owned(), (*t).to_owned()))
                .collect();
            store.policy_set().apply(&OP, &chosen).unwrap();
            let v = store.policy_set().active().unwrap().version as usize;
            if seen.len() < v {
                seen.push(decisions(&store));
            }
            prop_assert_eq!(seen.len(), v);
        }
        let target = back % seen.len() + 1;
        store.policy_set().rollback(&OP, target as u64).unwrap();
        prop_assert_eq!(&decisions(&store), &seen[target - 1]);
    }
}

/// Polls `f` until it holds; fails only if it never does within a generous bound (the
/// watcher polls four times a second).
fn eventually(what: &str, f: impl Fn() -> bool) {
    for _ in 0..1200 {
        if f() {
            return;
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    panic!("never happened: {what}");
}

#[test]
fn the_watcher_applies_edits_and_survives_a_half_written_file() {
    let watched = write_dir(&[("nodelete.cedar", NO_DELETES)]);
    let store = StoreBuilder::new()
        .watch_policies(watched.path())
        .open_temporary()
        .unwrap();
    populated(&store);
    let has = |id: &str| store.policies().policy_ids().iter().any(|p| p == id);
    eventually("the first files are applied", || has("no-deletes"));
    let applied = store.policy_set().active().unwrap();
    assert_eq!(applied.files, files(&[("nodelete.cedar", NO_DELETES)]));

    // An editor writes in several steps: first half of the file.
    let path = watched.path().join("expiry.cedar");
    let cut = EXPIRY.find("unless").unwrap();
    std::fs::write(&path, &EXPIRY[..cut + 3]).unwrap();
    eventually("the half file is refused in the policy log", || {
        store
            .policy_set()
            .audit(&OP, 10)
            .unwrap()
            .iter()
            .any(|e| e.outcome == AuditOutcome::Denied && e.summary.contains("expiry.cedar"))
    });
    // The active set is still the applied one (an empty file the editor created first may
    // have been applied meanwhile: it holds no policy).
    assert_eq!(
        store.policies().policy_ids(),
        Policies::from_files(&applied.files).unwrap().policy_ids()
    );
    assert!(member_creates_key_without_expiry(&store));

    // The rest of the file: applied.
    std::fs::write(&path, EXPIRY).unwrap();
    eventually("the whole file is applied", || has("require-key-expiry"));
    assert!(!member_creates_key_without_expiry(&store));
    assert!(has("no-deletes"));
}

/// A stored set that this build refuses (as one written by a build whose schema had an
/// action this one lacks): a plain open is refused with the version and the way out, the
/// `policy` commands open it enforcing the built-in set alone (audited), and a rollback
/// to a version that loads ends it.
#[cfg(feature = "fuzzing")]
#[test]
fn a_stored_set_this_build_refuses_does_not_brick_the_store() {
    let dir = tempfile::tempdir().unwrap();
    let db = db_path(dir.path());
    let future =
        "@id(\"future\")\nforbid (principal, action == Action::\"FutureAction\", resource);\n";
    {
        let store = open_file_fast(dir.path());
        populated(&store);
        store
            .policy_set()
            .apply(&OP, &files(&[("nodelete.cedar", NO_DELETES)]))
            .unwrap();
        let v = orgstore::fuzz_support::store_policy_files_unchecked(
            &store,
            &files(&[("future.cedar", future)]),
        )
        .unwrap();
        assert_eq!(v, 3);
    }
    let Err(e) = StoreBuilder::new().open(&db) else {
        panic!("a stored set this build refuses was opened")
    };
    assert_eq!(e.kind(), ErrorKind::Invalid);
    let msg = e.to_string();
    assert!(
        msg.contains("version 3")
            && msg.contains("FutureAction")
            && msg.contains("policy rollback"),
        "{msg}"
    );
    // Other commands are refused the same way: nothing is enforced without the operator's set.
    let out = orgstore(&["org", "list"]).db(&db).run();
    assert_ne!(out.code(), Some(0));

    {
        let store = StoreBuilder::new().recover_policies().open(&db).unwrap();
        let why = store.policy_recovery().unwrap();
        assert!(
            why.contains("version 3") && why.contains("built-in"),
            "{why}"
        );
        assert_eq!(
            store.policies().policy_ids(),
            Policies::default_set().unwrap().policy_ids()
        );
        assert_eq!(store.policy_set().active().unwrap().version, 3);
        let log = store.policy_set().audit(&OP, 5).unwrap();
        assert!(
            log[0].outcome == AuditOutcome::Denied && log[0].summary.contains("opened in recovery"),
            "{log:?}"
        );
        // The refused version cannot be made active again; nothing changes.
        assert_eq!(
            store.policy_set().rollback(&OP, 3).unwrap_err().kind(),
            ErrorKind::Invalid
        );
        assert!(store.policy_recovery().is_some());
    }

    // The way out through the CLI: its policy commands open the store in recovery.
    let h = orgstore(&["policy", "history"]).db(&db).run();
    assert!(
        h.stderr.contains("warning") && h.stderr.contains("version 3"),
        "{}",
        h.stderr
    );
    h.ok();
    orgstore(&["policy", "rollback", "2"]).db(&db).run().ok();
    let store = open_file_fast(dir.path());
    assert_eq!(store.policy_recovery(), None);
    let active = store.policy_set().active().unwrap();
    assert_eq!(
        (active.version, active.files),
        (4, files(&[("nodelete.cedar", NO_DELETES)]))
    );
    assert!(
        store
            .policies()
            .policy_ids()
            .contains(&"no-deletes".to_owned())
    );
}
