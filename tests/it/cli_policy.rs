//! The role matrix through the `orgstore` binary: representative commands run with `--as` by
//! an Owner, Admin, Member, Viewer and a non-member, escalation cases, and the `policy`
//! commands (`validate`, `explain`, `entities`).

use std::path::{Path, PathBuf};

use serde_json::Value;

use crate::common::Cli;

const OWNER: &str = "ann@acme.io";
const ADMIN: &str = "ada@acme.io";
const MEMBER: &str = "max@acme.io";
const VIEWER: &str = "vic@acme.io";
/// Owner of another org, `globex`, and nothing in `acme`.
const STRANGER: &str = "gus@globex.io";

/// The actors of the matrix, as (label, email, role in acme).
const ACTORS: [(&str, &str, Option<&str>); 5] = [
    ("owner", OWNER, Some("owner")),
    ("admin", ADMIN, Some("admin")),
    ("member", MEMBER, Some("member")),
    ("viewer", VIEWER, Some("viewer")),
    ("non-member", STRANGER, None),
];

/// A store with `acme` (an owner, admin, member and viewer) and `globex` (owned by the
/// stranger).
fn matrix() -> Cli {
    let cli = Cli::new();
    cli.ok(&["org", "create", "acme", "--owner", OWNER]);
    cli.ok(&["org", "create", "globex", "--owner", STRANGER]);
    for (email, role) in [(ADMIN, "admin"), (MEMBER, "member"), (VIEWER, "viewer")] {
        cli.ok(&["member", "add", "acme", email, "--role", role]);
    }
    cli
}

/// A key in acme created by the operator; returns its id.
fn key_by_operator(cli: &Cli, name: &str) -> String {
    let v = cli.json(&["key", "create", "acme", "--name", name]);
    v["id"].as_str().unwrap().to_owned()
}

/// Runs `args` with `--as email`; returns (exit code, stdout, stderr).
fn run_as(cli: &Cli, email: &str, args: &[&str]) -> (i32, String, String) {
    let out = cli.run_as(email, args);
    (out.code().unwrap(), out.stdout, out.stderr)
}

fn examples_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("policies/examples")
}

/// Exit codes of the representative commands for Owner, Admin, Member, Viewer, non-member.
// A non-member is answered as if the org (or key) did not exist: exit 4.
const ALLOW_ALL_MEMBERS: [i32; 5] = [0, 0, 0, 0, 4];
const ADMINS_UP: [i32; 5] = [0, 0, 3, 3, 4];
const MEMBERS_UP: [i32; 5] = [0, 0, 0, 3, 4];
const OWNERS_ONLY: [i32; 5] = [0, 3, 3, 3, 4];

#[test]
fn role_by_command_exit_codes_follow_the_matrix() {
    let cli = matrix();
    let mut failures = Vec::new();
    for (i, (label, email, role)) in ACTORS.iter().enumerate() {
        // Fresh things for this actor, so that one actor's success does not change the
        // next one's answer.
        let victim = key_by_operator(&cli, &format!("victim-{label}"));
        let sandbox = format!("sandbox-{}", i);
        match role {
            Some("owner") => cli.ok(&["org", "create", &sandbox, "--owner", email]),
            Some(r) => {
                cli.ok(&["org", "create", &sandbox, "--owner", OWNER]);
                cli.ok(&["member", "add", &sandbox, email, "--role", r])
            }
            None => cli.ok(&["org", "create", &sandbox, "--owner", OWNER]),
        };
        let newcomer = format!("new-{i}@acme.io");
        let key_name = format!("key-{label}");
        let cases: Vec<(&str, Vec<&str>, [i32; 5])> = vec![
            (
                "config get",
                vec!["config", "get", "acme"],
                ALLOW_ALL_MEMBERS,
            ),
            (
                "config set",
                vec!["config", "set", "acme", r#"{"rate_limiting":{"rpm":100}}"#],
                ADMINS_UP,
            ),
            (
                "config get --reveal",
                vec!["config", "get", "acme", "--reveal"],
                ADMINS_UP,
            ),
            (
                "member list",
                vec!["member", "list", "acme"],
                ALLOW_ALL_MEMBERS,
            ),
            (
                "key create",
                vec![
                    "key",
                    "create",
                    "acme",
                    "--name",
                    &key_name,
                    "--expires",
                    "2099-01-01T00:00:00Z",
                ],
                MEMBERS_UP,
            ),
            ("key list", vec!["key", "list", "acme"], ALLOW_ALL_MEMBERS),
            ("key show", vec!["key", "show", &victim], ALLOW_ALL_MEMBERS),
            (
                "key revoke (another's key)",
                vec!["key", "revoke", &victim],
                ADMINS_UP,
            ),
            (
                "member add",
                vec!["member", "add", "acme", &newcomer, "--role", "viewer"],
                ADMINS_UP,
            ),
            ("audit", vec!["audit", "acme"], ADMINS_UP),
            ("org delete", vec!["org", "delete", &sandbox], OWNERS_ONLY),
        ];
        for (what, args, want) in cases {
            let (code, stdout, stderr) = run_as(&cli, email, &args);
            if code != want[i] {
                failures.push(format!(
                    "{label} {what}: exit {code}, want {}: {stderr}",
                    want[i]
                ));
            }
            if code == 3 {
                let one_line = stderr.starts_with("error: permission: ")
                    && stderr.trim_end().lines().count() == 1;
                if !one_line || !stdout.is_empty() {
                    failures.push(format!(
                        "{label} {what}: denial output: {stdout:?} {stderr:?}"
                    ));
                }
                if !stderr.contains(email) {
                    failures.push(format!(
                        "{label} {what}: denial does not name the actor: {stderr}"
                    ));
                }
            }
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn escalations_through_the_cli() {
    let cli = matrix();

    // Admin promotes another to Owner, or themselves.
    for target in [MEMBER, ADMIN] {
        let (code, _, err) = run_as(&cli, ADMIN, &["member", "role", "acme", target, "owner"]);
        assert_eq!(code, 3, "{err}");
        assert!(err.contains("only-owners-grant-owner"), "{err}");
        assert!(err.contains("(role admin)"), "{err}");
    }
    // Admin adds a new Owner.
    let (code, _, err) = run_as(
        &cli,
        ADMIN,
        &["member", "add", "acme", "new@acme.io", "--role", "owner"],
    );
    assert_eq!(code, 3, "{err}");
    assert!(err.contains("only-owners-grant-owner"), "{err}");

    // Admin demotes or removes an Owner.
    let (code, _, err) = run_as(&cli, ADMIN, &["member", "role", "acme", OWNER, "viewer"]);
    assert_eq!(code, 3, "{err}");
    assert!(err.contains("only-owners-manage-owners"), "{err}");
    let (code, _, err) = run_as(&cli, ADMIN, &["member", "remove", "acme", OWNER]);
    assert_eq!(code, 3, "{err}");
    assert!(err.contains("only-owners-manage-owners"), "{err}");

    // The last Owner can neither leave nor be demoted, even by themselves.
    let (code, _, err) = run_as(&cli, OWNER, &["member", "remove", "acme", OWNER]);
    assert!(code == 3 || code == 1, "{code}: {err}");
    assert!(
        err.contains("last-owner") || err.contains("last owner"),
        "{err}"
    );
    let (code, _, err) = run_as(&cli, OWNER, &["member", "role", "acme", OWNER, "admin"]);
    assert!(code == 3 || code == 1, "{code}: {err}");
    assert!(
        err.contains("last-owner") || err.contains("last owner"),
        "{err}"
    );
    let members = cli.ok(&["member", "list", "acme"]);
    assert!(
        members
            .lines()
            .any(|l| l.starts_with(OWNER) && l.contains("owner")),
        "{members}"
    );

    // Member revokes someone else's key: denied; their own: allowed.
    let others = key_by_operator(&cli, "others");
    let (code, _, err) = run_as(&cli, MEMBER, &["key", "revoke", &others]);
    assert_eq!(code, 3, "{err}");
    let (code, out, err) = run_as(
        &cli,
        MEMBER,
        &["--json", "key", "create", "acme", "--name", "mine"],
    );
    assert_eq!(code, 0, "{err}");
    let mine: Value = serde_json::from_str(&out).unwrap();
    let (code, _, err) = run_as(
        &cli,
        MEMBER,
        &["key", "revoke", mine["id"].as_str().unwrap()],
    );
    assert_eq!(code, 0, "{err}");

    // Viewer creates a key.
    let (code, _, err) = run_as(&cli, VIEWER, &["key", "create", "acme", "--name", "v"]);
    assert_eq!(code, 3, "{err}");

    // The owner of globex revokes a key of acme by id: their role elsewhere does not count,
    // and the key answers as if it did not exist.
    let (code, _, err) = run_as(&cli, STRANGER, &["key", "revoke", &others]);
    assert_eq!(code, 4, "{err}");
    assert!(err.contains(&format!("no key {others}")), "{err}");

    // Denials are in the audit log.
    let audit = cli.ok(&["audit", "acme", "--limit", "100"]);
    assert!(
        audit
            .lines()
            .any(|l| l.contains(STRANGER) && l.contains("denied")),
        "{audit}"
    );
}

#[test]
fn policy_validate_examples_and_a_bad_file() {
    let cli = matrix();
    let examples = examples_dir();
    let examples = examples.to_str().unwrap();

    let out = cli.ok(&["policy", "validate"]);
    assert!(out.lines().any(|l| l == "viewer-read"), "{out}");
    assert!(!out.contains("require-key-expiry"), "{out}");

    let out = cli.ok(&["policy", "validate", examples]);
    assert!(out.lines().any(|l| l == "require-key-expiry"), "{out}");
    assert!(out.lines().any(|l| l == "only-owners-grant-owner"), "{out}");
    let ids: Value =
        serde_json::from_str(&cli.ok(&["--json", "policy", "validate", examples])).unwrap();
    let ids: Vec<&str> = ids
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap())
        .collect();
    assert!(
        ids.contains(&"require-key-expiry") && ids.contains(&"viewer-read"),
        "{ids:?}"
    );
    // The global --policies directory is the default DIR.
    let out = cli.ok(&["--policies", examples, "policy", "validate"]);
    assert!(out.lines().any(|l| l == "require-key-expiry"), "{out}");

    // A syntax error and a strict-validation error, each named by file:line.
    let bad = cli.dir.path().join("bad");
    std::fs::create_dir(&bad).unwrap();
    let file = bad.join("broken.cedar");
    let cases = [
        (
            "// comment\n@id(\"broken\")\npermit (principal,\n  action = Action::\"ReadOrg\", resource);\n",
            "broken.cedar:4:",
        ),
        (
            "@id(\"typo\")\npermit (principal, action == Action::\"ReadOrg\", resource)\nwhen { resource.ownerz == 1 };\n",
            "broken.cedar:3:",
        ),
    ];
    for (text, place) in cases {
        std::fs::write(&file, text).unwrap();
        let out = cli.run(&["policy", "validate", bad.to_str().unwrap()]);
        let err = out.stderr;
        assert_eq!(out.status.code(), Some(1), "{err}");
        assert!(out.stdout.is_empty());
        assert!(
            err.starts_with("error: policies: ") && err.trim_end().lines().count() == 1,
            "{err}"
        );
        assert!(err.contains(place), "want {place}: {err}");
    }
    // A policy directory that does not exist.
    let out = cli.run(&["policy", "validate", "no-such-dir"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(out.stderr.contains("no-such-dir"));
}

/// `policy explain` with `--json`; returns (exit code, parsed stdout).
fn explain(cli: &Cli, actor: Option<&str>, args: &[&str]) -> (i32, Value) {
    let mut all = Vec::new();
    if let Some(a) = actor {
        all.extend(["--as", a]);
    }
    all.extend(["--json", "policy", "explain"]);
    all.extend_from_slice(args);
    let out = cli.run(&all);
    (out.code().unwrap(), out.json())
}

#[test]
fn policy_explain_reports_decision_reasons_and_facts() {
    let cli = matrix();

    let (code, v) = explain(&cli, Some(VIEWER), &["readorg", "org:acme"]);
    assert_eq!(code, 0, "{v}");
    assert_eq!(v["allowed"], true);
    assert_eq!(v["action"], "ReadOrg");
    assert_eq!(v["role"], "viewer");
    assert_eq!(v["reasons"], serde_json::json!(["viewer-read"]));
    assert_eq!(v["errors"], serde_json::json!([]));

    // Facts come from the store: ann is the last owner.
    let (code, v) = explain(
        &cli,
        Some(ADMIN),
        &["ChangeRole", "member:acme/ann@acme.io", "--role", "admin"],
    );
    assert_eq!(code, 3, "{v}");
    assert_eq!(v["allowed"], false);
    assert_eq!(v["owner_count"], 1);
    assert_eq!(v["attributes"]["role"], "owner");
    assert_eq!(v["context"]["new_role"], "admin");
    let reasons: Vec<&str> = v["reasons"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r.as_str().unwrap())
        .collect();
    assert!(
        reasons.contains(&"only-owners-manage-owners")
            && reasons.contains(&"last-owner-not-demoted"),
        "{v}"
    );

    // Granting Owner, with the org from --org.
    let (code, v) = explain(
        &cli,
        Some(ADMIN),
        &[
            "changerole",
            "member:max@acme.io",
            "--org",
            "acme",
            "--role",
            "owner",
        ],
    );
    assert_eq!(code, 3, "{v}");
    assert_eq!(v["reasons"], serde_json::json!(["only-owners-grant-owner"]));

    // No policy permits: denied with no reasons.
    let (code, v) = explain(&cli, Some(VIEWER), &["UpdateConfig", "config:acme"]);
    assert_eq!(code, 3);
    assert_eq!(v["reasons"], serde_json::json!([]));

    // A key's creator comes from the store; a non-member gets nothing through another org.
    let key = key_by_operator(&cli, "k");
    let (code, v) = explain(&cli, Some(MEMBER), &["ManageKey", &format!("key:{key}")]);
    assert_eq!(code, 3, "{v}");
    assert_eq!(v["org"], "acme");
    let (code, out, err) = run_as(
        &cli,
        STRANGER,
        &[
            "--json",
            "policy",
            "explain",
            "ListKeys",
            &format!("key:{key}"),
        ],
    );
    assert_eq!((code, out.as_str()), (4, ""), "{err}");
    assert!(err.contains(&format!("no key {key}")), "{err}");

    // The operator may do everything.
    let (code, v) = explain(&cli, None, &["DeleteOrg", "org:acme"]);
    assert_eq!(code, 0, "{v}");
    assert_eq!(v["operator"], true);

    // An operator policy changes exactly its decision.
    let examples = examples_dir();
    let with = ["--policies", examples.to_str().unwrap()];
    let mut args = with.to_vec();
    args.extend(["createkey", "newkey:acme"]);
    let (code, v) = explain(&cli, Some(MEMBER), &args);
    assert_eq!(code, 3, "{v}");
    assert_eq!(v["reasons"], serde_json::json!(["require-key-expiry"]));
    args.push("--expires");
    let (code, _) = explain(&cli, Some(MEMBER), &args);
    assert_eq!(code, 0);
    let (code, _) = explain(&cli, Some(MEMBER), &["createkey", "newkey:acme"]);
    assert_eq!(code, 0);

    // The human form names the decision and the deciding policies.
    let (code, out, _) = run_as(
        &cli,
        ADMIN,
        &[
            "policy",
            "explain",
            "ChangeRole",
            "member:acme/max@acme.io",
            "--role",
            "owner",
        ],
    );
    assert_eq!(code, 3);
    assert!(
        out.contains("decision: deny") && out.contains("only-owners-grant-owner"),
        "{out}"
    );

    // Input errors exit 1 naming the field.
    for (args, field) in [
        (vec!["policy", "explain", "Fly", "org:acme"], "action"),
        (
            vec!["policy", "explain", "ReadOrg", "config:acme"],
            "target",
        ),
        (
            vec!["policy", "explain", "AddMember", "member:acme/z@acme.io"],
            "--role",
        ),
        (
            vec!["policy", "explain", "ReadOrg", "org:acme", "--expires"],
            "--expires",
        ),
    ] {
        let (code, out, err) = run_as(&cli, VIEWER, &args);
        assert_eq!(code, 1, "{args:?}: {err}");
        assert!(
            out.is_empty() && err.starts_with(&format!("error: {field}: ")),
            "{args:?}: {err}"
        );
    }
}

#[test]
fn policy_entities_lists_the_org_for_the_cedar_cli() {
    let cli = matrix();
    let key = key_by_operator(&cli, "k");
    let v: Value = serde_json::from_str(&cli.ok(&["policy", "entities", "acme"])).unwrap();
    let entities = v.as_array().unwrap();
    let uid = |ty: &str, id: &str| {
        entities
            .iter()
            .find(|e| e["uid"]["type"] == ty && e["uid"]["id"] == id)
            .unwrap_or_else(|| panic!("no {ty}::{id:?} in {v}"))
    };
    for (email, role) in [
        (OWNER, "owner"),
        (ADMIN, "admin"),
        (MEMBER, "member"),
        (VIEWER, "viewer"),
    ] {
        let user = uid("User", email);
        assert_eq!(user["parents"][0]["id"], format!("acme#{role}"), "{user}");
        uid("Membership", &format!("acme/{email}"));
    }
    assert_eq!(uid("Org", "acme")["attrs"]["owner_count"], 1);
    uid("Role", "acme#owner");
    uid("Config", "acme");
    uid("Key", &key);
    assert!(
        !v.to_string().contains(STRANGER),
        "another org's people leak: {v}"
    );

    // Any member may export it; a non-member may not.
    let (code, out, _) = run_as(&cli, VIEWER, &["policy", "entities", "acme"]);
    assert_eq!(code, 0);
    assert_eq!(serde_json::from_str::<Value>(&out).unwrap(), v);
    let (code, _, err) = run_as(&cli, STRANGER, &["policy", "entities", "acme"]);
    assert_eq!(code, 4, "{err}");
    assert!(err.contains("no org `acme`"), "{err}");
}
