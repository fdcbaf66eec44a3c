//! The `orgstore` binary end to end: every command through the shared harness on a
//! store file in a temporary directory.

use serde_json::Value;

use crate::common::{Cli, orgstore};

/// Whether `text` contains a full generated key (prefix, 43 + 6 base62 characters).
fn has_full_key(text: &str) -> bool {
    text.match_indices("sk-agentcc-").any(|(i, p)| {
        text[i + p.len()..]
            .chars()
            .take_while(char::is_ascii_alphanumeric)
            .count()
            >= orgstore::KEY_LEN - "sk-agentcc-".len()
    })
}

#[test]
fn org_create_list_show_delete() {
    let cli = Cli::with_acme();
    cli.ok(&["org", "create", "beta", "--owner", "Bob@Beta.io"]);
    let list = cli.ok(&["org", "list"]);
    let lines: Vec<&str> = list.lines().collect();
    assert!(
        lines[0].starts_with("ID") && lines[0].contains("NAME"),
        "{list}"
    );
    assert!(
        lines
            .iter()
            .any(|l| l.starts_with("acme ") && l.contains("Acme Inc")),
        "{list}"
    );
    assert!(lines.iter().any(|l| l.starts_with("beta ")), "{list}");

    let show = cli.json(&["org", "show", "acme"]);
    assert_eq!(show["id"], "acme");
    assert_eq!(show["name"], "Acme Inc");
    assert_eq!(show["status"], "active");
    assert_eq!(show["owner_count"], 1);
    assert!(cli.ok(&["org", "show", "beta"]).contains("name:"));

    cli.ok(&["org", "suspend", "beta"]);
    assert_eq!(cli.json(&["org", "show", "beta"])["status"], "suspended");
    cli.ok(&["org", "resume", "beta"]);
    cli.ok(&["org", "delete", "beta"]);
    let ids: Vec<Value> = cli
        .json(&["org", "list"])
        .as_array()
        .unwrap()
        .iter()
        .map(|o| o["id"].clone())
        .collect();
    assert_eq!(ids, vec![Value::from("acme")]);
    let err = cli.fail(&["org", "create", "beta", "--owner", "x@y.io"], 1);
    assert!(err.contains("org id"), "{err}");
}

#[test]
fn db_path_comes_from_env_when_no_flag() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("env.redb");
    let run = |args: &[&str]| orgstore(args).env("ORGSTORE_DB", &db).run();
    run(&["org", "create", "acme", "--owner", "a@b.io"]).ok();
    assert!(db.exists());
    assert!(run(&["org", "list"]).ok().contains("acme"));
}

#[test]
fn invalid_input_and_conflicts_exit_1_naming_the_field() {
    let cli = Cli::with_acme();
    assert!(
        cli.fail(&["org", "create", "Bad Id", "--owner", "a@b.io"], 1)
            .contains("org id")
    );
    assert!(
        cli.fail(&["org", "create", "acme", "--owner", "a@b.io"], 1)
            .contains("already exists")
    );
    assert!(
        cli.fail(&["org", "create", "x", "--owner", "not-an-email"], 1)
            .contains("--owner")
    );
    assert!(
        cli.fail(&["--as", "nobody", "org", "list"], 1)
            .contains("--as")
    );
    assert!(cli.fail(&["key", "show", "key_123"], 1).contains("key id"));
    assert!(
        cli.fail(
            &["key", "create", "acme", "--name", "k", "--budget", "-5"],
            1
        )
        .contains("--budget")
    );
    assert!(
        cli.fail(
            &["key", "create", "acme", "--name", "k", "--expires", "soon"],
            1
        )
        .contains("--expires")
    );
    assert!(
        cli.fail(
            &["key", "create", "acme", "--name", "k", "--meta", "novalue"],
            1
        )
        .contains("--meta")
    );
    assert!(
        cli.fail(&["key", "create", "acme", "--name", "k", "--rpm", "0"], 1)
            .contains("rate_limit_rpm")
    );
}

#[test]
fn bad_cidr_names_the_field() {
    let cli = Cli::with_acme();
    let err = cli.fail(
        &[
            "key",
            "create",
            "acme",
            "--name",
            "k",
            "--ips",
            "10.0.0.1,10.0.0.0/33",
        ],
        1,
    );
    assert!(
        err.contains("allowed_ips[1]") && err.contains("10.0.0.0/33"),
        "{err}"
    );
    assert_eq!(cli.json(&["key", "list", "acme"]), Value::Array(vec![]));
}

#[test]
fn usage_errors_exit_2() {
    let cli = Cli::with_acme();
    cli.fail(&[], 2);
    cli.fail(&["org", "create", "x"], 2); // --owner missing
    cli.fail(
        &["member", "add", "acme", "b@acme.io", "--role", "superuser"],
        2,
    );
    cli.fail(
        &["key", "create", "acme", "--name", "k", "--period", "daily"],
        2,
    ); // needs --budget
    cli.fail(
        &["key", "create", "acme", "--name", "k", "--rpm", "lots"],
        2,
    );
    cli.fail(&["key", "import", "acme"], 2); // needs --sha256 or --file
    cli.fail(&["frobnicate"], 2);
}

#[test]
fn unknown_things_exit_4() {
    let cli = Cli::with_acme();
    for args in [
        &["org", "show", "nope"][..],
        &["config", "get", "nope"],
        &["config", "get", "acme", "--version", "99"],
        &["key", "list", "nope"],
        &["key", "show", "key_00000000000000000000000000000000"],
        &["member", "list", "nope"],
        &["member", "remove", "acme", "ghost@acme.io"],
        &["audit", "nope"],
    ] {
        cli.fail(args, 4);
    }
}

#[test]
fn a_stranger_is_answered_as_if_the_org_did_not_exist() {
    let cli = Cli::with_acme();
    let err = cli.fail(&["--as", "stranger@else.io", "config", "get", "acme"], 4);
    let none = cli.fail(&["--as", "stranger@else.io", "config", "get", "nope"], 4);
    assert_eq!(err.replace("acme", "nope"), none);
    // The denial is audited.
    let log = cli.json(&["audit", "acme"]);
    assert!(
        log.as_array()
            .unwrap()
            .iter()
            .any(|e| e["outcome"] == "denied"),
        "{log}"
    );
}

#[test]
fn config_get_masks_provider_secrets_unless_revealed() {
    let cli = Cli::with_acme();
    let secret = "sk-proj-0123456789abcdefSECRET";
    let patch = format!(
        r#"{{"providers":{{"openai":{{"api_key":"{secret}","base_url":"https://api.openai.com"}}}}}}"#
    );
    cli.ok(&["config", "set", "acme", &patch]);
    for args in [
        &["config", "get", "acme"][..],
        &["--json", "config", "get", "acme"],
        &["config", "history", "acme"],
        &["config", "diff", "acme", "1", "2"],
        &["audit", "acme"],
    ] {
        let out = cli.ok(args);
        assert!(!out.contains("SECRET"), "{args:?} leaked the secret: {out}");
    }
    let masked = cli.json(&["config", "get", "acme"]);
    assert_eq!(
        masked["config"]["providers"]["openai"]["api_key"],
        "sk-...CRET"
    );
    assert_eq!(
        masked["config"]["providers"]["openai"]["base_url"],
        "https://api.openai.com"
    );
    assert!(
        cli.ok(&["config", "get", "acme", "--reveal"])
            .contains(secret)
    );
    assert_eq!(
        cli.json(&["config", "get", "acme", "--reveal"])["config"]["providers"]["openai"]["api_key"],
        secret
    );
}

#[test]
fn config_set_from_inline_file_and_stdin_makes_versions() {
    let cli = Cli::with_acme();
    let v2 = cli.json(&[
        "config",
        "set",
        "acme",
        r#"{"rate_limiting":{"global_rpm":1000}}"#,
    ]);
    assert_eq!(v2["version"], 2);
    assert_eq!(v2["config"]["rate_limiting"]["rpm"], 1000);
    let file = cli.dir.path().join("patch.json");
    std::fs::write(&file, r#"{"budgets":{"limit":500.00,"period":"monthly"}}"#).unwrap();
    cli.ok(&["config", "set", "acme", &format!("@{}", file.display())]);
    cli.run_stdin(
        &["config", "set", "acme", "-"],
        r#"{"allowed_models":["gpt-4o-mini"]}"#,
    )
    .ok();
    let cfg = cli.json(&["config", "get", "acme"]);
    assert_eq!(cfg["version"], 4);
    assert_eq!(cfg["active"], true);
    assert_eq!(cfg["config"]["rate_limiting"]["rpm"], 1000);
    assert_eq!(cfg["config"]["budgets"]["limit"], 500);
    assert_eq!(cfg["config"]["allowed_models"][0], "gpt-4o-mini");
    // The human form is a comment line and the JSON.
    let human = cli.ok(&["config", "get", "acme", "--version", "2"]);
    let (head, body) = human.split_once('\n').unwrap();
    assert!(head.starts_with("# acme config version 2"), "{head}");
    let v: Value = serde_json::from_str(body).unwrap();
    assert_eq!(v["rate_limiting"]["rpm"], 1000);
    assert!(v.get("budgets").is_none());
    cli.fail(&["config", "set", "acme", "@/no/such/file.json"], 1);
}

#[test]
fn config_invalid_patch_names_the_field_and_changes_nothing() {
    let cli = Cli::with_acme();
    let err = cli.fail(
        &["config", "set", "acme", r#"{"rate_limitng":{"rpm":5}}"#],
        1,
    );
    assert!(
        err.contains("config.rate_limitng") && err.contains("rate_limiting"),
        "{err}"
    );
    let err = cli.fail(
        &["config", "set", "acme", r#"{"budgets":{"limit":"lots"}}"#],
        1,
    );
    assert!(err.contains("budgets"), "{err}");
    cli.fail(&["config", "set", "acme", "{not json"], 1);
    assert_eq!(
        cli.json(&["config", "history", "acme"])
            .as_array()
            .unwrap()
            .len(),
        1
    );
}

#[test]
fn config_history_diff_and_rollback() {
    let cli = Cli::with_acme();
    cli.ok(&["config", "set", "acme", r#"{"rate_limiting":{"rpm":100}}"#]);
    cli.ok(&["config", "set", "acme", r#"{"rate_limiting":{"rpm":200}}"#]);
    let diff = cli.json(&["config", "diff", "acme", "2", "3"]);
    assert_eq!(diff[0]["path"], "rate_limiting.rpm");
    assert_eq!(diff[0]["old"], 100);
    assert_eq!(diff[0]["new"], 200);
    let table = cli.ok(&["config", "diff", "acme", "2", "3"]);
    assert!(
        table
            .lines()
            .any(|l| l.starts_with("rate_limiting.rpm") && l.contains("100") && l.contains("200")),
        "{table}"
    );

    let back = cli.json(&["config", "rollback", "acme", "2"]);
    assert_eq!(back["version"], 4);
    assert_eq!(back["note"], "rollback to 2");
    assert_eq!(
        cli.json(&["config", "get", "acme"])["config"]["rate_limiting"]["rpm"],
        100
    );
    let hist = cli.json(&["config", "history", "acme"]);
    let versions: Vec<(u64, bool)> = hist
        .as_array()
        .unwrap()
        .iter()
        .map(|v| (v["version"].as_u64().unwrap(), v["active"] == true))
        .collect();
    assert_eq!(
        versions,
        vec![(1, false), (2, false), (3, false), (4, true)]
    );
    let human = cli.ok(&["config", "history", "acme"]);
    assert!(
        human.lines().last().unwrap().contains("rollback to 2"),
        "{human}"
    );
    cli.fail(&["config", "rollback", "acme", "9"], 4);
}

#[test]
fn key_create_shows_the_full_key_once() {
    let cli = Cli::with_acme();
    let created = cli.json(&[
        "key",
        "create",
        "acme",
        "--name",
        "backend",
        "--rpm",
        "100",
        "--models",
        "gpt-4o,gpt-4o-mini",
    ]);
    let key = created["key"].as_str().unwrap().to_owned();
    let id = created["id"].as_str().unwrap().to_owned();
    let prefix = created["prefix"].as_str().unwrap();
    assert!(key.starts_with("sk-agentcc-") && key.starts_with(prefix.trim_end_matches("...")));
    assert!(id.starts_with("key_"));
    assert_eq!(created["rate_limit_rpm"], 100);
    assert_eq!(
        created["allowed_models"],
        serde_json::json!(["gpt-4o", "gpt-4o-mini"])
    );

    let list = cli.ok(&["key", "list", "acme"]);
    assert!(list.contains(&id) && list.contains(prefix), "{list}");
    for args in [
        &["key", "list", "acme"][..],
        &["--json", "key", "list", "acme"],
        &["key", "show", &id],
        &["--json", "key", "show", &id],
        &["audit", "acme"],
        &["--json", "audit", "acme"],
    ] {
        let out = cli.ok(args);
        assert!(
            !out.contains(&key[12..]) && !has_full_key(&out),
            "{args:?} printed the key: {out}"
        );
    }
    assert!(
        !std::fs::read(&cli.db)
            .unwrap()
            .windows(key.len())
            .any(|w| w == key.as_bytes())
    );

    // The human form prints it too, once, with a warning on stderr.
    let out = cli.run(&["key", "create", "acme", "--name", "second"]);
    assert!(has_full_key(&out.stdout));
    assert!(out.stderr.contains("only this once"));
}

#[test]
fn key_create_with_every_option() {
    let cli = Cli::with_acme();
    let k = cli.json(&[
        "key",
        "create",
        "acme",
        "--name",
        "ci",
        "--tpm",
        "5000",
        "--ips",
        "10.0.0.0/8,2001:db8::/32",
        "--budget",
        "12.50",
        "--period",
        "weekly",
        "--soft",
        "--expires",
        "2099-01-01T00:00:00Z",
        "--meta",
        "team=ml",
        "--meta",
        "env=prod",
    ]);
    assert_eq!(k["rate_limit_tpm"], 5000);
    assert_eq!(
        k["allowed_ips"],
        serde_json::json!(["10.0.0.0/8", "2001:db8::/32"])
    );
    assert_eq!(
        k["budget"],
        serde_json::json!({"limit": 12.5, "period": "weekly", "hard": false})
    );
    assert_eq!(k["expires_at"], "2099-01-01T00:00:00Z");
    assert_eq!(
        k["metadata"],
        serde_json::json!({"team": "ml", "env": "prod"})
    );
    let show = cli.ok(&["key", "show", k["id"].as_str().unwrap()]);
    assert!(
        show.contains("$12.5/week (soft)") && show.contains("env=prod,team=ml"),
        "{show}"
    );
}

#[test]
fn key_revoke_and_rotate() {
    let cli = Cli::with_acme();
    let k = cli.json(&["key", "create", "acme", "--name", "svc"]);
    let id = k["id"].as_str().unwrap();
    let rotated = cli.json(&["key", "rotate", id]);
    assert_eq!(rotated["id"], id);
    assert_eq!(rotated["name"], "svc");
    assert_ne!(rotated["key"], k["key"]);
    assert!(rotated["rotated_at"].is_string());
    assert_eq!(cli.json(&["key", "show", id])["prefix"], rotated["prefix"]);

    assert!(cli.ok(&["key", "revoke", id]).contains("revoked"));
    let shown = cli.json(&["key", "show", id]);
    assert_eq!(shown["status"], "revoked");
    assert!(
        cli.fail(&["key", "revoke", id], 1)
            .contains("already revoked")
    );
    cli.fail(&["key", "rotate", id], 1);
}

#[test]
fn key_import_single_and_bulk_all_or_nothing() {
    let cli = Cli::with_acme();
    let hex = |c: char| c.to_string().repeat(64);
    let one = cli.json(&[
        "key",
        "import",
        "acme",
        "--sha256",
        &hex('a'),
        "--name",
        "legacy",
        "--rpm",
        "7",
    ]);
    assert_eq!(one[0]["source"], "imported");
    assert_eq!(one[0]["rate_limit_rpm"], 7);

    let file = cli.dir.path().join("keys.jsonl");
    let lines = format!(
        "{{\"sha256\":\"{}\",\"name\":\"b\",\"models\":[\"gpt-4o\"],\"budget\":5,\"period\":\"daily\"}}\n\n{{\"sha256\":\"{}\",\"name\":\"c\"}}\n",
        hex('b'),
        hex('c')
    );
    std::fs::write(&file, lines).unwrap();
    let path = file.to_str().unwrap();
    let bulk = cli.json(&["key", "import", "acme", "--file", path]);
    assert_eq!(bulk.as_array().unwrap().len(), 2);
    assert_eq!(bulk[0]["budget"]["period"], "daily");
    // Again: the digests exist, so nothing is imported.
    assert!(
        cli.fail(&["key", "import", "acme", "--file", path], 1)
            .contains("keys[0].sha256")
    );
    // A bad line names the line and the field.
    let out = cli.run_stdin(
        &["key", "import", "acme", "--file", "-"],
        &format!("{{\"sha256\":\"{}\",\"name\":\"d\",\"rpn\":1}}\n", hex('d')),
    );
    assert!(out.fail(1).contains("--file line 1"));
    let err = cli.fail(
        &["key", "import", "acme", "--sha256", "xyz", "--name", "bad"],
        1,
    );
    assert!(err.contains("sha256"), "{err}");
    assert_eq!(
        cli.json(&["key", "list", "acme"]).as_array().unwrap().len(),
        3
    );
}

#[test]
fn members_add_list_role_remove_and_orgs() {
    let cli = Cli::with_acme();
    cli.ok(&["org", "create", "beta", "--owner", "bob@beta.io"]);
    cli.ok(&["member", "add", "acme", "Bob@Beta.io", "--role", "admin"]);
    cli.ok(&["member", "add", "acme", "vic@acme.io", "--role", "viewer"]);
    let list = cli.ok(&["member", "list", "acme"]);
    assert!(
        list.lines()
            .any(|l| l.starts_with("bob@beta.io") && l.contains("admin")),
        "{list}"
    );
    assert!(
        cli.fail(
            &["member", "add", "acme", "bob@beta.io", "--role", "viewer"],
            1
        )
        .contains("already a member")
    );

    let m = cli.json(&["member", "role", "acme", "vic@acme.io", "member"]);
    assert_eq!(m["role"], "member");
    let orgs = cli.json(&["member", "orgs", "BOB@beta.io"]);
    assert_eq!(
        orgs,
        serde_json::json!([{"org": "acme", "role": "admin"}, {"org": "beta", "role": "owner"}])
    );

    // The last owner can be neither demoted nor removed.
    assert!(
        cli.fail(&["member", "role", "acme", "ann@acme.io", "admin"], 1)
            .contains("last owner")
    );
    cli.fail(&["member", "remove", "acme", "ann@acme.io"], 1);
    cli.ok(&["member", "remove", "acme", "vic@acme.io"]);
    let emails: Vec<Value> = cli
        .json(&["member", "list", "acme"])
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["email"].clone())
        .collect();
    assert_eq!(
        emails,
        vec![Value::from("ann@acme.io"), Value::from("bob@beta.io")]
    );
}

#[test]
fn audit_lists_newest_first_with_a_limit() {
    let cli = Cli::with_acme();
    cli.ok(&["config", "set", "acme", r#"{"rate_limiting":{"rpm":10}}"#]);
    cli.ok(&["member", "add", "acme", "bob@acme.io", "--role", "member"]);
    let log = cli.json(&["audit", "acme"]);
    let actions: Vec<&str> = log
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["action"].as_str().unwrap())
        .collect();
    assert_eq!(actions, ["AddMember", "UpdateConfig", "CreateOrg"]);
    assert_eq!(log[0]["actor"], "operator");
    assert_eq!(
        cli.json(&["audit", "acme", "--limit", "1"])
            .as_array()
            .unwrap()
            .len(),
        1
    );
    let table = cli.ok(&["audit", "acme"]);
    assert!(
        table.lines().nth(1).unwrap().contains("AddMember"),
        "{table}"
    );
}

#[test]
fn demo_shows_the_seed_patterns_without_secrets() {
    let cli = Cli::new();
    let out = cli.ok(&["demo"]);
    assert!(!has_full_key(&out), "{out}");
    let row = |org: &str, key: &str| {
        out.lines()
            .find(|l| l.starts_with(org) && l.contains(key))
            .unwrap_or_else(|| panic!("no row {org}/{key}: {out}"))
            .to_owned()
    };
    assert!(
        row("customer-a", "production").contains("gpt-4o-mini")
            && row("customer-a", "production").contains("$100/month")
    );
    assert!(row("customer-b", "production").contains("gpt-4o,claude-sonnet-4-6"));
    assert!(row("customer-b", "production").contains("$500/month"));
    assert!(row("customer-c", "production").contains("unlimited"));
    assert!(
        row("internal", "Marketing").contains("50")
            && row("internal", "Marketing").contains("$200/month")
    );
    assert!(
        row("internal", "Engineering").contains("500")
            && row("internal", "Engineering").contains("$1000/month")
    );
    assert!(row("internal", "Data science").contains("200"));
    assert!(!cli.db.exists(), "the demo must not touch --db");

    let json = cli.json(&["demo"]);
    let keys = json["keys"].as_array().unwrap();
    assert_eq!(keys.len(), 6);
    assert_eq!(keys[0]["models"], serde_json::json!(["gpt-4o-mini"]));
    assert_eq!(keys[2]["models"], Value::Null);
    assert_eq!(json["roles"].as_array().unwrap().len(), 10);
    assert!(!has_full_key(&json.to_string()));
}

/// Creates a key in `acme` with `args` and returns (full key, key id).
fn create_key(cli: &Cli, args: &[&str]) -> (String, String) {
    let mut all = vec!["key", "create", "acme"];
    all.extend_from_slice(args);
    let created = cli.json(&all);
    (
        created["key"].as_str().unwrap().to_owned(),
        created["id"].as_str().unwrap().to_owned(),
    )
}

/// Runs `check`; returns the exit code and the decision parsed from stdout.
fn check(cli: &Cli, args: &[&str]) -> (Option<i32>, Value) {
    let mut all = vec!["check"];
    all.extend_from_slice(args);
    let out = cli.run(&all);
    (out.code(), out.json())
}

#[test]
fn check_allowed_prints_the_grant_as_json_with_exit_0() {
    let cli = Cli::with_acme();
    cli.ok(&[
        "config",
        "set",
        "acme",
        r#"{"budgets":{"limit":100,"period":"monthly"}}"#,
    ]);
    let (key, id) = create_key(
        &cli,
        &["--name", "svc", "--rpm", "50", "--models", "gpt-4o-mini"],
    );
    let out = cli.ok(&["check", &key, "--model", "gpt-4o-mini", "--estimate", "2"]);
    assert!(!out.contains(&key[12..]) && !has_full_key(&out), "{out}");
    let v: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v["allowed"], true);
    assert_eq!(v["org"], "acme");
    assert_eq!(v["key_id"], id.as_str());
    assert_eq!(v["limits"]["key_rpm"], 50);
    assert_eq!(v["limits"]["org_budget"], 100);
    assert_eq!(v["rate"]["limit"], 50);
    assert_eq!(v["rate"]["remaining"], 49);
    assert_eq!(v["budget_warning"], false);
    assert_eq!(v["budget_remaining"]["org"], 98);

    // The key from stdin, an IPv6 address; --json changes nothing.
    let out = cli.run_stdin(
        &[
            "--json",
            "check",
            "-",
            "--model",
            "gpt-4o-mini",
            "--ip",
            "::1",
        ],
        &format!("{key}\n"),
    );
    let stdout = out.ok();
    assert_eq!(
        serde_json::from_str::<Value>(&stdout).unwrap()["allowed"],
        true
    );
    cli.fail(&["check", &key, "--model", "m", "--ip", "10.0.0.256"], 2);
    cli.fail(&["check", &key, "--model", "m", "--estimate", "-1"], 1);
}

#[test]
fn check_denied_prints_the_code_with_exit_3() {
    let cli = Cli::with_acme();
    let (key, _) = create_key(
        &cli,
        &[
            "--name",
            "svc",
            "--models",
            "gpt-4o-mini",
            "--ips",
            "10.0.0.0/8",
        ],
    );
    let (code, v) = check(&cli, &[&key, "--model", "gpt-4o", "--ip", "10.1.2.3"]);
    assert_eq!(code, Some(3));
    assert_eq!(v["allowed"], false);
    assert_eq!(v["code"], "model_not_allowed");
    assert!(v["reason"].as_str().unwrap().contains("model"), "{v}");
    assert!(!v.to_string().contains(&key[12..]));

    let (code, v) = check(&cli, &[&key, "--model", "gpt-4o-mini"]);
    assert_eq!(
        (code, v["code"].as_str()),
        (Some(3), Some("ip_not_allowed"))
    );

    let (code, v) = check(&cli, &["sk-agentcc-nope", "--model", "gpt-4o"]);
    assert_eq!(code, Some(3));
    assert_eq!(v["code"], "malformed_key");

    let (code, v) = check(&cli, &["not-a-key-at-all", "--model", "gpt-4o"]);
    assert_eq!((code, v["code"].as_str()), (Some(3), Some("malformed_key")));
    assert!(!v.to_string().contains("not-a-key-at-all"));

    let (budgeted, _) = create_key(&cli, &["--name", "small", "--budget", "1"]);
    let (code, v) = check(&cli, &[&budgeted, "--model", "gpt-4o", "--estimate", "5"]);
    assert_eq!(code, Some(3));
    assert_eq!(v["code"], "budget_exceeded");
    assert_eq!(v["scope"], "key");
    assert!(v["resets_at"].is_string(), "{v}");

    // A denial prints nothing on stderr: the decision is on stdout.
    let out = cli.run(&["check", &key, "--model", "gpt-4o"]);
    assert!(out.stderr.is_empty());
}

#[test]
fn usage_of_an_org_and_of_a_key() {
    let cli = Cli::with_acme();
    cli.ok(&[
        "config",
        "set",
        "acme",
        r#"{"budgets":{"limit":100,"period":"monthly"},"rate_limiting":{"rpm":1000}}"#,
    ]);
    let (_, id) = create_key(&cli, &["--name", "svc", "--rpm", "50", "--budget", "20"]);

    let v = cli.json(&["usage", "acme"]);
    assert_eq!(v["org"], "acme");
    assert_eq!(v["key_id"], Value::Null);
    for f in ["today", "this_week", "this_month", "total"] {
        assert_eq!(v[f], 0, "{f}: {v}");
    }
    assert_eq!(v["budget"]["limit"], 100);
    assert_eq!(v["budget"]["period"], "monthly");
    assert_eq!(v["budget"]["remaining"], 100);
    assert_eq!(v["budget"]["reserved"], 0);
    assert!(v["budget"]["resets_at"].is_string());
    assert_eq!(v["rpm"]["limit"], 1000);
    assert_eq!(v["tpm"], Value::Null);

    let table = cli.ok(&["usage", "acme"]);
    for word in [
        "today",
        "this month",
        "total",
        "budget",
        "$100/month",
        "remaining 100",
    ] {
        assert!(table.contains(word), "{word}: {table}");
    }

    let v = cli.json(&["usage", "acme", "--key", &id]);
    assert_eq!(v["key_id"], id.as_str());
    assert_eq!(v["budget"]["limit"], 20);
    assert_eq!(v["rpm"]["limit"], 50);

    cli.ok(&["org", "create", "other", "--owner", "o@other.io"]);
    cli.fail(&["usage", "other", "--key", &id], 4);
    cli.fail(&["usage", "nope"], 4);
    cli.fail(&["usage", "acme", "--key", "key_123"], 1);
}

#[test]
fn demo_tries_every_key_through_the_gateway() {
    let cli = Cli::new();
    let out = cli.ok(&["demo"]);
    assert!(!has_full_key(&out), "{out}");
    for word in [
        "allowed",
        "model_not_allowed",
        "ip_not_allowed",
        "rate_limited",
        "retry after",
        "budget_exceeded",
        "left",
    ] {
        assert!(out.contains(word), "{word}: {out}");
    }
    let json = cli.json(&["demo"]);
    assert!(!has_full_key(&json.to_string()));
    assert_eq!(json["gateway"].as_array().unwrap().len(), 6 * 2 * 3);
    let denied = &json["rate_limit"]["denied"];
    assert_eq!(denied["code"], "rate_limited");
    assert!(denied["retry_after_ms"].as_u64().unwrap() > 0);
    let requests = json["budget"]["requests"].as_array().unwrap();
    assert_eq!(requests.last().unwrap()["code"], "budget_exceeded");
    assert!(
        requests[..requests.len() - 1]
            .iter()
            .all(|r| r["allowed"] == true)
    );
}

#[test]
fn bench_runs_and_prints_percentiles() {
    let cli = Cli::new();
    let out = cli.ok(&["bench", "--keys", "2000", "--seconds", "1"]);
    for word in [
        "P50",
        "P99",
        "CHECKS/S",
        "bytes/key",
        "reopen",
        "batch of 64",
    ] {
        assert!(out.contains(word), "{word}: {out}");
    }
    assert!(!has_full_key(&out));
    cli.fail(&["bench", "--keys", "0"], 1);
    cli.fail(&["bench", "--seconds", "0"], 1);
}
