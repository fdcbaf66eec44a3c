//! On-disk backward compatibility: a store file written by format 1 (checked in under
//! `tests/data/`) opens with this build, with every record, index, audit entry and the
//! gateway snapshot intact. `cargo test --test compat -- --ignored` rewrites the fixture;
//! do that only when adding a new format (and keep the old fixture for the migration test).

use orgstore::*;
use std::path::{Path, PathBuf};

use crate::common::OP;

const FIXTURE: &str = "tests/data/format1.redb";
/// A key created in the fixture; printing it here is fine: it exists only in this test file.
const KEY_FILE: &str = "tests/data/format1.key.txt";

fn copy_fixture(dir: &Path) -> PathBuf {
    let to = dir.join("store.redb");
    std::fs::copy(FIXTURE, &to).unwrap();
    let sidecar = format!("{FIXTURE}.key");
    if Path::new(&sidecar).exists() {
        std::fs::copy(&sidecar, dir.join("store.redb.key")).unwrap();
    }
    to
}

#[test]
fn format1_store_opens_with_everything_intact() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(copy_fixture(dir.path())).unwrap();
    let acme = OrgId::parse("acme").unwrap();
    let org = store.orgs().get(&OP, &acme).unwrap();
    assert_eq!(
        (org.config_version, org.latest_version, org.owner_count),
        (3, 3, 1)
    );
    let history = store.org_configs().history(&OP, &acme).unwrap();
    assert_eq!(history.len(), 3);
    let cfg = store.org_configs().retrieve(&OP, &acme).unwrap().config;
    assert_eq!(cfg.allowed_models(), Some(&["gpt-4o-mini".to_owned()][..]));
    assert_eq!(
        cfg.budgets().unwrap().limit,
        Some(Usd::parse("100").unwrap())
    );
    let members = store.members().list(&OP, &acme).unwrap();
    assert_eq!(members.len(), 2);
    let keys = store.keys().list(&OP, &acme).unwrap();
    assert_eq!(keys.len(), 2);
    assert_eq!(
        keys.iter()
            .filter(|k| k.status == KeyStatus::Revoked)
            .count(),
        1
    );
    let audit = store.audit().list(&OP, &acme, 100).unwrap();
    assert!(audit.len() >= 6, "{audit:?}");
    // The file's entries were written as `key.create`-style names; they read as the Cedar
    // action names new entries are written with.
    let mut actions: Vec<&str> = audit.iter().map(|e| e.action.as_str()).collect();
    actions.sort_unstable();
    actions.dedup();
    assert_eq!(
        actions,
        [
            "AddMember",
            "CreateKey",
            "CreateOrg",
            "ManageKey",
            "UpdateConfig"
        ],
        "{audit:?}"
    );
    let key = std::fs::read_to_string(KEY_FILE).unwrap();
    let gw = store.gateway();
    let ip = "10.0.0.1".parse().unwrap();
    assert!(
        gw.check(&Request::new(key.trim(), "gpt-4o-mini", ip))
            .is_ok()
    );
    assert_eq!(
        gw.check(&Request::new(key.trim(), "gpt-4o", ip))
            .unwrap_err()
            .code(),
        "model_not_allowed"
    );
    let usage = store.orgs().usage(&OP, &acme).unwrap();
    assert_eq!(usage.total, Usd::parse("1.5").unwrap());
    // And it keeps working: a write on the old file.
    store
        .keys()
        .create(&OP, &acme, KeySpec::new("after-upgrade"))
        .unwrap();
}

#[test]
#[ignore = "rewrites the checked-in fixture"]
fn regenerate_format1_fixture() {
    let _ = std::fs::remove_file(FIXTURE);
    let _ = std::fs::remove_file(format!("{FIXTURE}.key"));
    let store = Store::open(FIXTURE).unwrap();
    let acme = OrgId::parse("acme").unwrap();
    store
        .orgs()
        .create(&OP, &acme, "Acme", &Email::parse("owner@acme.io").unwrap())
        .unwrap();
    store.org_configs().update(&OP, &acme, r#"{"allowed_models":["gpt-4o-mini"],"providers":{"openai":{"api_key":"sk-fixture-0123456789abcdef"}}}"#).unwrap();
    store
        .org_configs()
        .update(
            &OP,
            &acme,
            r#"{"budgets":{"limit":100,"period":"monthly"}}"#,
        )
        .unwrap();
    store
        .members()
        .add(
            &OP,
            &acme,
            &Email::parse("dev@acme.io").unwrap(),
            Role::Member,
        )
        .unwrap();
    let live = store
        .keys()
        .create(&OP, &acme, KeySpec::new("live").rpm(100))
        .unwrap();
    let dead = store
        .keys()
        .create(&OP, &acme, KeySpec::new("dead"))
        .unwrap();
    store.keys().revoke(&OP, &dead.info.id).unwrap();
    let gw = store.gateway();
    let g = gw
        .check(&Request::new(
            live.key.expose(),
            "gpt-4o-mini",
            "10.0.0.1".parse().unwrap(),
        ))
        .unwrap();
    gw.record_usage(&g, Usage::new(1, 1, Usd::parse("1.5").unwrap()));
    store.flush().unwrap();
    std::fs::write(KEY_FILE, live.key.expose()).unwrap();
}
