//! The policy-set commands (`policy apply|rollback|history|log|diff|show|pull|export|test`
//! and `policy explain --policies`) in both modes: directly on a store file, and through a
//! live server holding a copy of the same file. Each step may change the store, so the same
//! script runs on two copies and the outputs are compared step by step (times masked: the
//! two runs happen at different instants).

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
