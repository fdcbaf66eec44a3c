//! The fleet through the `orgstore` binary: `--fleet URL`, `fleet init [--from FILE]`,
//! `fleet status`, and replica processes (`fleet replica`) that follow changes made by
//! other processes, survive SIGKILL and resume.

use std::io::{BufRead, BufReader, Write};
use std::path::Path;
use std::process::{Child, ChildStdin, ChildStdout, Command, Stdio};
use std::time::{Duration, Instant};

use orgstore::{ImportKey, KeySpec, Store, StoreBuilder};

use crate::common::{OP, create_org, legacy_key, orgstore, sha256_hex};
use crate::fleet::key_file;
use crate::pg_cluster::PgCluster;

/// `orgstore --fleet URL --db DB ARGS...`
fn on_fleet(url: &str, db: &Path, args: &[&str]) -> crate::common::Run {
    let mut all = vec!["--fleet", url];
    all.extend_from_slice(args);
    orgstore(&all).db(db).run()
}

/// A running `orgstore fleet replica` process.
struct ReplicaProcess {
    child: Child,
    stdin: ChildStdin,
    stdout: BufReader<ChildStdout>,
}

impl ReplicaProcess {
    fn start(url: &str, db: &Path) -> Self {
        Self::start_with(url, db, &[])
    }

    fn start_with(url: &str, db: &Path, extra: &[&str]) -> Self {
        let mut child = Command::new(env!("CARGO_BIN_EXE_orgstore"))
            .env_remove("ORGSTORE_DB")
            .args(["--fleet", url, "--db"])
            .arg(db)
            .args(["fleet", "replica"])
            .args(extra)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap();
        let stdin = child.stdin.take().unwrap();
        let mut stdout = BufReader::new(child.stdout.take().unwrap());
        let mut ready = String::new();
        stdout.read_line(&mut ready).unwrap();
        assert!(ready.starts_with("ready "), "the replica said {ready:?}");
        Self {
            child,
            stdin,
            stdout,
        }
    }

    fn ask(&mut self, line: &str) -> String {
        writeln!(self.stdin, "{line}").unwrap();
        let mut answer = String::new();
        self.stdout.read_line(&mut answer).unwrap();
        answer.trim_end().to_owned()
    }

    /// The denial code of a check of `key` (`ok` when allowed).
    fn check(&mut self, key: &str) -> String {
        let v: serde_json::Value =
            serde_json::from_str(&self.ask(&format!("check {key} gpt-4o"))).unwrap();
        if v["allowed"] == true {
            "ok".into()
        } else {
            v["code"].as_str().unwrap_or("?").to_owned()
        }
    }

    fn wait_for(&mut self, key: &str, code: &str) {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if self.check(key) == code {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "the replica never answered {code}"
            );
            std::thread::sleep(Duration::from_millis(5));
        }
    }

    fn kill(mut self) {
        // SIGKILL: no clean shutdown.
        self.child.kill().unwrap();
        self.child.wait().unwrap();
    }
}

impl Drop for ReplicaProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn created_key(stdout: &str) -> (String, String) {
    let v: serde_json::Value = serde_json::from_str(stdout).unwrap();
    (
        v["key"].as_str().unwrap().to_owned(),
        v["id"].as_str().unwrap().to_owned(),
    )
}

/// `fleet init` on `url` through the replica at `db`, then org `acme` with one key: the
/// key and its id.
fn fleet_with_one_key(url: &str, db: &Path) -> (String, String) {
    on_fleet(url, db, &["fleet", "init"]).ok();
    on_fleet(
        url,
        db,
        &["org", "create", "acme", "--owner", "owner@acme.io"],
    )
    .ok();
    created_key(
        &on_fleet(
            url,
            db,
            &["--json", "key", "create", "acme", "--name", "svc"],
        )
        .ok(),
    )
}

#[test]
fn replica_processes_follow_changes_made_by_the_cli_and_a_killed_replica_resumes() {
    let Some(pg) = PgCluster::start() else { return };
    let url = pg.database("cli_replicas");
    let dir = tempfile::tempdir().unwrap();
    let db = |i: usize| dir.path().join(format!("r{i}.redb"));
    let (key, id) = fleet_with_one_key(&url, &db(0));
    // A new replica without the fleet's key file is refused, naming the fix.
    let err = on_fleet(&url, &db(1), &["org", "list"]).fail(1);
    assert!(err.contains("copy the `.key` file"), "{err}");
    for i in [1, 2] {
        std::fs::copy(key_file(&db(0)), key_file(&db(i))).unwrap();
    }
    let mut r1 = ReplicaProcess::start(&url, &db(1));
    let mut r2 = ReplicaProcess::start(&url, &db(2));
    assert_eq!(r1.check(&key), "ok");
    assert_eq!(r2.check(&key), "ok");

    // A config change made by the CLI on replica 0's file reaches both processes.
    on_fleet(
        &url,
        &db(0),
        &[
            "config",
            "set",
            "acme",
            r#"{"allowed_models":["gpt-4o-mini"]}"#,
        ],
    )
    .ok();
    r1.wait_for(&key, "model_not_allowed");
    r2.wait_for(&key, "model_not_allowed");
    on_fleet(
        &url,
        &db(0),
        &["config", "set", "acme", r#"{"allowed_models":null}"#],
    )
    .ok();
    r1.wait_for(&key, "ok");

    // Replica 1 is killed; meanwhile the key is revoked; it restarts and catches up.
    r1.kill();
    on_fleet(&url, &db(0), &["key", "revoke", &id]).ok();
    r2.wait_for(&key, "revoked");
    let mut r1 = ReplicaProcess::start(&url, &db(1));
    assert_eq!(r1.check(&key), "revoked", "caught up before answering");

    // The org is deleted from replica 0: every key of it is refused everywhere.
    let (key2, _) = created_key(
        &on_fleet(
            &url,
            &db(0),
            &["--json", "key", "create", "acme", "--name", "svc2"],
        )
        .ok(),
    );
    r1.wait_for(&key2, "ok");
    on_fleet(&url, &db(0), &["org", "delete", "acme"]).ok();
    r1.wait_for(&key2, "org_deleted");
    r2.wait_for(&key2, "org_deleted");

    let status = on_fleet(&url, &db(0), &["--json", "fleet", "status"]).ok();
    let v: serde_json::Value = serde_json::from_str(&status).unwrap();
    let head = v["head"].as_u64().unwrap();
    assert!(head >= 6, "{v}");
    let position: u64 = r1.ask("position").parse().unwrap();
    assert_eq!(r1.ask(&format!("wait {head}")), head.to_string());
    assert!(position <= head);
}

#[test]
fn a_single_node_file_grows_into_a_fleet_without_reissuing_keys_and_a_fresh_replica_bootstraps() {
    let Some(pg) = PgCluster::start() else { return };
    let url = pg.database("migration");
    let dir = tempfile::tempdir().unwrap();
    let single = dir.path().join("single.redb");
    let keys = 100_000u64;
    let created = {
        let store = StoreBuilder::new().non_durable().open(&single).unwrap();
        let acme = create_org(&store, "acme", "owner@acme.io");
        let batch: Vec<ImportKey> = (0..keys - 1)
            .map(|n| ImportKey::new(sha256_hex(&legacy_key(n)), KeySpec::new("imported")))
            .collect();
        store.keys().import(&OP, &acme, &batch).unwrap();
        store
            .keys()
            .create(&OP, &acme, KeySpec::new("own"))
            .unwrap()
    };
    let status = orgstore(&[
        "--fleet",
        &url,
        "--json",
        "fleet",
        "init",
        "--from",
        single.to_str().unwrap(),
    ])
    .run()
    .ok();
    assert!(status.contains("\"head\""), "{status}");

    // A fresh replica with a copy of the key file bootstraps and answers for old keys.
    let fresh = dir.path().join("fresh.redb");
    std::fs::copy(key_file(&single), key_file(&fresh)).unwrap();
    let out = on_fleet(
        &url,
        &fresh,
        &["check", &legacy_key(keys / 2), "--model", "gpt-4o"],
    )
    .ok();
    assert!(out.contains("\"allowed\": true"), "{out}");
    let out = on_fleet(
        &url,
        &fresh,
        &["check", created.key.expose(), "--model", "gpt-4o"],
    )
    .ok();
    assert!(out.contains("\"allowed\": true"), "{out}");

    // The original file is the fleet's first replica: a change made there reaches the
    // fresh one, and both hold the same records.
    let first = StoreBuilder::new()
        .non_durable()
        .fleet(&url)
        .open(&single)
        .unwrap();
    first.keys().revoke(&OP, &created.info.id).unwrap();
    drop(first);
    let out = on_fleet(
        &url,
        &fresh,
        &["check", created.key.expose(), "--model", "gpt-4o"],
    );
    assert!(out.stdout.contains("revoked"), "{out:?}");
    let a = open_replica(&url, &single);
    let b = open_replica(&url, &fresh);
    assert_eq!(crate::fleet::records(&a), crate::fleet::records(&b));
    assert!(a.gateway().key_count() >= keys as usize);
}

fn open_replica(url: &str, path: &Path) -> Store {
    StoreBuilder::new()
        .non_durable()
        .fleet(url)
        .open(path)
        .unwrap()
}

#[test]
fn the_fleet_demo_shows_a_revocation_refused_on_all_three_replicas() {
    let Some(pg) = PgCluster::start() else { return };
    let url = pg.database("demo");
    let out = orgstore(&["--fleet", &url, "--json", "demo"]).run().ok();
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    for (step, answer) in [("created", "allowed"), ("revoked", "revoked")] {
        let rows = v[step].as_array().unwrap();
        assert_eq!(rows.len(), 3, "{v}");
        for r in rows {
            assert_eq!(r["answer"], answer, "{v}");
        }
    }
    // It refuses a database that already holds a fleet with records.
    let err = orgstore(&["--fleet", &url, "demo"]).run().fail(1);
    assert!(err.contains("empty database"), "{err}");
    let text = orgstore(&["--fleet", &pg.database("demo_text"), "demo"])
        .run()
        .ok();
    assert!(text.contains("replica-3"), "{text}");
}

#[test]
fn a_replica_process_with_max_staleness_fails_closed_while_the_engine_is_down() {
    let Some(pg) = PgCluster::start() else { return };
    let url = pg.database("cli_staleness");
    let dir = tempfile::tempdir().unwrap();
    let db = |i: usize| dir.path().join(format!("r{i}.redb"));
    let (key, _) = fleet_with_one_key(&url, &db(0));
    std::fs::copy(key_file(&db(0)), key_file(&db(1))).unwrap();
    let mut strict = ReplicaProcess::start_with(&url, &db(1), &["--max-staleness", "300"]);
    assert_eq!(strict.check(&key), "ok");
    pg.stop();
    strict.wait_for(&key, "unavailable");
    pg.start_again();
    strict.wait_for(&key, "ok");
}
