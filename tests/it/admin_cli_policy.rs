//! The policy-set commands (`policy apply|rollback|history|log|diff|show|pull|export|test`
//! and `policy explain --policies`) in both modes: directly on a store file, and through a
//! live server holding a copy of the same file. Each step may change the store, so the same
//! script runs on two copies and the outputs are compared step by step (times masked: the
//! two runs happen at different instants). And the policy-set routes themselves: statuses,
//! error bodies, and nothing changed by a refused request.

use std::path::Path;

use orgstore::server::AdminServer;
use orgstore::{Actor, AdminAction, Store};

use crate::common::Cli;

const NO_DELETES: &str =
    "@id(\"no-deletes\")\nforbid (principal, action == Action::\"DeleteOrg\", resource);\n";

/// A store with `acme` (owner ann, member mia) and the files the script reads, relative to
/// the store's directory (the runs' working directory).
fn prepared() -> Cli {
    let cli = Cli::with_acme();
    cli.ok(&["member", "add", "acme", "mia@acme.io", "--role", "member"]);
    files(cli.dir.path());
    cli
}

fn files(dir: &Path) {
    let write = |sub: &str, name: &str, text: &str| {
        std::fs::create_dir_all(dir.join(sub)).unwrap();
        std::fs::write(dir.join(sub).join(name), text).unwrap();
    };
    write("bad", "x.cedar", "permit (principal, action, resource);");
    write("nodel", "no-deletes.cedar", NO_DELETES);
    let case = |who: &str, expect: &str| {
        format!(
            r#"{{"name": "{who} key without expiry", "principal": "User::\"{who}\"", "action": "Action::\"CreateKey\"", "resource": "Org::\"acme\"", "context": {{"has_expiry": false}}, "org": "acme", "expect": "{expect}"}}"#
        )
    };
    let cases = format!(
        "[{}, {}]",
        case("ann@acme.io", "allow"),
        case("mia@acme.io", "deny")
    );
    write("t", "cases.json", &cases);
}

/// Every time (RFC 3339, as the store prints them) replaced by `<time>`, and runs of spaces
/// made one (a table's columns are as wide as its times).
fn masked(text: &str) -> String {
    let b = text.as_bytes();
    let shape = b"dddd-dd-ddTdd:dd:dd";
    let fits = |at: usize| {
        at + shape.len() <= b.len()
            && shape.iter().enumerate().all(|(i, c)| match c {
                b'd' => b[at + i].is_ascii_digit(),
                c => b[at + i] == *c,
            })
    };
    let mut out = String::new();
    let mut i = 0;
    while i < b.len() {
        if fits(i) {
            let mut j = i + shape.len();
            while j < b.len() && (b[j] == b'.' || b[j].is_ascii_digit()) {
                j += 1;
            }
            if j < b.len() && b[j] == b'Z' {
                out.push_str("<time>");
                i = j + 1;
                continue;
            }
        }
        let c = text[i..].chars().next().unwrap();
        out.push(c);
        i += c.len_utf8();
    }
    let mut squeezed = String::new();
    for c in out.chars() {
        if !(c == ' ' && squeezed.ends_with(' ')) {
            squeezed.push(c);
        }
    }
    squeezed
}

#[test]
fn masking_replaces_times_only() {
    assert_eq!(
        masked("v2  2026-12-02T18:00:01.5Z by x 2026-12-02T18:00:01Z;"),
        "v2 <time> by x <time>;"
    );
    assert_eq!(masked("2026-12-02 and 12:00"), "2026-12-02 and 12:00");
}

#[test]
fn policy_set_commands_answer_the_same_directly_and_through_a_server() {
    let direct = prepared();
    let served = Cli::new();
    std::fs::copy(&direct.db, &served.db).unwrap();
    files(served.dir.path());
    let examples = Path::new(env!("CARGO_MANIFEST_DIR")).join("policies/examples");
    let ex = examples.to_str().unwrap();
    let mia_key = ["--as", "mia@acme.io", "policy", "explain", "CreateKey"];
    let script: Vec<Vec<&str>> = vec![
        vec!["policy", "history"],
        vec!["--json", "policy", "show"],
        vec!["policy", "apply", ex, "--dry-run"],
        vec!["--json", "policy", "apply", ex, "--dry-run"],
        vec!["--as", "ann@acme.io", "policy", "apply", ex, "--dry-run"],
        vec!["--as", "ann@acme.io", "policy", "apply", ex],
        vec!["policy", "apply", "bad"],
        vec!["policy", "apply", ex],
        vec!["--json", "policy", "apply", ex],
        vec!["policy", "history"],
        vec!["--json", "policy", "history"],
        vec!["policy", "show"],
        vec!["policy", "show", "--all", "--version", "1"],
        vec!["policy", "show", "--version", "9"],
        vec!["policy", "pull", "pulled"],
        vec!["policy", "export", "set.cedar"],
        vec!["policy", "export", "-", "--version", "1"],
        vec!["policy", "diff", "1", "2"],
        vec!["--json", "policy", "diff", "1", "2"],
        vec!["policy", "diff", "2", "2"],
        vec!["policy", "diff", "1", "5"],
        vec!["policy", "log"],
        vec!["--json", "policy", "log", "--limit", "2"],
        vec!["--as", "ann@acme.io", "policy", "log"],
        [&mia_key[..], &["newkey:acme"]].concat(),
        [&["--policies", "bad"], &mia_key[..], &["newkey:acme"]].concat(),
        vec![
            "--as",
            "ann@acme.io",
            "--policies",
            "nodel",
            "--json",
            "policy",
            "explain",
            "DeleteOrg",
            "org:acme",
        ],
        vec!["policy", "test", "t/cases.json"],
        vec!["--json", "policy", "test", "t/cases.json"],
        vec!["policy", "rollback", "1"],
        vec!["--json", "policy", "rollback", "1"],
        vec!["policy", "rollback", "7"],
        vec!["--as", "ann@acme.io", "policy", "rollback", "2"],
        vec!["--json", "policy", "log"],
    ];
    let run = |cli: &Cli, c: &Vec<&str>| {
        let r = cli.run(c);
        (c.join(" "), r.code(), masked(&r.stdout), masked(&r.stderr))
    };
    let here: Vec<_> = script.iter().map(|c| run(&direct, c)).collect();
    let store = Store::open(&served.db).unwrap();
    let server = AdminServer::new(&store).serve_unix(&served.db).unwrap();
    let there: Vec<_> = script.iter().map(|c| run(&served, c)).collect();
    for (a, b) in here.iter().zip(&there) {
        assert_eq!(a, b);
    }
    // The script did what it says, in both modes: exit codes of denied, invalid and
    // unknown steps, and the files written beside each store.
    let code = |step: usize| here[step].1;
    assert_eq!(
        [code(2), code(4), code(5), code(6), code(7), code(13)],
        [Some(1), Some(3), Some(3), Some(1), Some(0), Some(4)]
    );
    assert!(
        here[7].3.contains("policy set version 2 is active"),
        "{:?}",
        here[7]
    );
    assert!(
        here[24].3.is_empty() && code(24) == Some(3),
        "{:?}",
        here[24]
    );
    assert!(here[25].3.contains("bad/x.cedar"), "{:?}", here[25]);
    assert_eq!(code(26), Some(3));
    assert!(here[27].2.contains("2 passed, 0 failed"), "{:?}", here[27]);
    assert!(here[33].2.contains("\"denied\""), "{:?}", here[33]);
    for cli in [&direct, &served] {
        let pulled = cli.dir.path().join("pulled/require-key-expiry.cedar");
        assert!(
            std::fs::read_to_string(pulled)
                .unwrap()
                .contains("require-key-expiry")
        );
        let set = std::fs::read_to_string(cli.dir.path().join("set.cedar")).unwrap();
        assert!(set.contains("viewer-read") && set.contains("require-key-expiry"));
    }
    // The live store enforces what went through its server: rolled back to version 1's
    // files as version 3, a member's key without an expiry is allowed again.
    assert_eq!(store.policy_set().active().unwrap().version, 3);
    let mia = Actor::member(orgstore::Email::parse("mia@acme.io").unwrap());
    let r = store
        .explain(&mia, AdminAction::CreateKey, "newkey:acme", None, false)
        .unwrap();
    assert!(r.explanation.allowed);
    let log = store.policy_set().audit(&Actor::Operator, 10).unwrap();
    assert_eq!(
        log.iter()
            .filter(|e| e.outcome == orgstore::AuditOutcome::Denied)
            .count(),
        3,
        "{log:?}"
    );
    server.shutdown();
}

#[test]
fn policy_set_routes_answer_statuses_and_error_bodies_and_change_nothing_on_error() {
    use crate::admin_server::{Served, call, json_call};
    use orgstore::server::ServerLimits;
    use serde_json::json;
    let s = Served::new(ServerLimits::default());
    let sock = s.socket();
    let file = |text: &str| json!({ "files": [{ "name": "d.cedar", "text": text }] });
    let code = |a: &crate::admin_server::Answer| a.body["error"]["code"].clone();
    // Invalid input is refused before the store is touched.
    let bad = json_call(
        &sock,
        "PUT",
        "/v1/policy-set",
        &file("permit (principal, action, resource);"),
        None,
    );
    assert_eq!(
        (bad.status, code(&bad)),
        (422, json!("invalid")),
        "{}",
        bad.body
    );
    assert!(
        bad.body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("d.cedar:1:1")
    );
    let shape = json_call(&sock, "PUT", "/v1/policy-set", &json!({"files": "x"}), None);
    assert_eq!((shape.status, code(&shape)), (400, json!("invalid_body")));
    let plain = call(
        &sock,
        "PUT",
        "/v1/policy-set",
        Some(("text/plain", "x")),
        None,
    );
    assert_eq!(plain.status, 415);
    let half = call(&sock, "GET", "/v1/policy-set/diff?from=1", None, None);
    assert_eq!((half.status, code(&half)), (400, json!("invalid_query")));
    let missing = json_call(
        &sock,
        "POST",
        "/v1/policy-set/rollback",
        &json!({"version": 9}),
        None,
    );
    assert_eq!((missing.status, code(&missing)), (404, json!("not_found")));
    // A person may read the set, not its log, the impact of a change or the change.
    let read = call(&sock, "GET", "/v1/policy-set", None, Some("ann@acme.io"));
    assert_eq!((read.status, read.body["version"].clone()), (200, json!(1)));
    let log = call(
        &sock,
        "GET",
        "/v1/policy-set/log",
        None,
        Some("ann@acme.io"),
    );
    assert_eq!(log.status, 403);
    let ok_rule = file(NO_DELETES);
    for (method, path) in [("POST", "/v1/policy-set/impact"), ("PUT", "/v1/policy-set")] {
        let a = json_call(&sock, method, path, &ok_rule, Some("ann@acme.io"));
        assert_eq!(
            (a.status, code(&a)),
            (403, json!("denied")),
            "{path}: {}",
            a.body
        );
        assert_eq!(a.body["error"]["action"], "ManagePolicies");
    }
    assert_eq!(s.store.policy_set().history().unwrap().len(), 1);
    // The operator: a dry run stores nothing, apply makes version 2 and names its impact.
    let dry = json_call(&sock, "POST", "/v1/policy-set/impact", &ok_rule, None);
    assert_eq!(dry.status, 200, "{}", dry.body);
    assert_eq!(dry.body["active"]["version"], 1);
    assert!(!dry.body["impact"]["changes"].as_array().unwrap().is_empty());
    assert_eq!(s.store.policy_set().history().unwrap().len(), 1);
    let applied = json_call(&sock, "PUT", "/v1/policy-set", &ok_rule, None);
    assert_eq!(applied.status, 200, "{}", applied.body);
    assert_eq!(applied.body["version"]["version"], 2);
    assert_eq!(applied.body["version"]["changed"], true);
    assert_eq!(applied.body["version"]["files"][0]["name"], "d.cedar");
    assert_eq!(applied.body["impact"], dry.body["impact"]);
    let diff = call(&sock, "GET", "/v1/policy-set/diff?from=1&to=2", None, None);
    assert_eq!(diff.body[0]["status"], "added");
    // Enforced at once by the store the server serves.
    assert!(
        s.store
            .policies()
            .policy_ids()
            .contains(&"no-deletes".to_owned())
    );
}
