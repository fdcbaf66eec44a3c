//! The record format is defined by the store's private record shapes, not by the public
//! types: the values read from the checked-in format 1 file encode to exactly the bytes that
//! file holds, record for record, and a damaged enum tag is a `Corrupt` error naming the
//! record. (Needs the `fuzzing` feature, which exposes the record encoder.)
#![cfg(feature = "fuzzing")]

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use orgstore::record_support::{
    encode_audit, encode_key, encode_member, encode_org, key_ledger_name, org_ledger_name, reencode,
};
use orgstore::*;
use redb::{ReadableDatabase, ReadableTable, TableDefinition};
use sha2::Digest;

const FIXTURE: &str = "tests/data/format1.redb";

const ORGS: TableDefinition<&str, &[u8]> = TableDefinition::new("orgs");
const CONFIGS: TableDefinition<(&str, u64), &[u8]> = TableDefinition::new("configs");
const MEMBERS: TableDefinition<(&str, &str), &[u8]> = TableDefinition::new("members");
const KEYS: TableDefinition<&[u8; 16], &[u8]> = TableDefinition::new("keys");
const AUDIT: TableDefinition<(&str, u64), &[u8]> = TableDefinition::new("audit");
const SPEND: TableDefinition<(&str, i64), i64> = TableDefinition::new("spend");

/// A copy of the fixture (with its key sidecar) in `dir`.
fn copy_fixture(dir: &Path) -> PathBuf {
    let to = dir.join("store.redb");
    std::fs::copy(FIXTURE, &to).unwrap();
    let sidecar = format!("{FIXTURE}.key");
    if Path::new(&sidecar).exists() {
        std::fs::copy(&sidecar, dir.join("store.redb.key")).unwrap();
    }
    to
}

/// Every record of the fixture, raw, per table.
#[derive(Default)]
struct Raw {
    orgs: BTreeMap<String, Vec<u8>>,
    configs: BTreeMap<(String, u64), Vec<u8>>,
    members: BTreeMap<(String, String), Vec<u8>>,
    keys: BTreeMap<[u8; 16], Vec<u8>>,
    audit: BTreeMap<(String, u64), Vec<u8>>,
    spend_scopes: std::collections::BTreeSet<String>,
}

fn read_raw(path: &Path) -> Raw {
    let db = redb::Database::open(path).unwrap();
    let r = db.begin_read().unwrap();
    let mut raw = Raw::default();
    for item in r.open_table(ORGS).unwrap().iter().unwrap() {
        let (k, v) = item.unwrap();
        raw.orgs.insert(k.value().to_owned(), v.value().to_vec());
    }
    for item in r.open_table(CONFIGS).unwrap().iter().unwrap() {
        let (k, v) = item.unwrap();
        let (o, n) = k.value();
        raw.configs.insert((o.to_owned(), n), v.value().to_vec());
    }
    for item in r.open_table(MEMBERS).unwrap().iter().unwrap() {
        let (k, v) = item.unwrap();
        let (o, e) = k.value();
        raw.members
            .insert((o.to_owned(), e.to_owned()), v.value().to_vec());
    }
    for item in r.open_table(KEYS).unwrap().iter().unwrap() {
        let (k, v) = item.unwrap();
        raw.keys.insert(*k.value(), v.value().to_vec());
    }
    for item in r.open_table(AUDIT).unwrap().iter().unwrap() {
        let (k, v) = item.unwrap();
        let (o, n) = k.value();
        raw.audit.insert((o.to_owned(), n), v.value().to_vec());
    }
    for item in r.open_table(SPEND).unwrap().iter().unwrap() {
        let (k, _) = item.unwrap();
        raw.spend_scopes.insert(k.value().0.to_owned());
    }
    raw
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

#[test]
fn every_format1_record_decodes_and_encodes_to_its_own_bytes() {
    let dir = tempfile::tempdir().unwrap();
    let raw = read_raw(&copy_fixture(dir.path()));
    assert_eq!(
        (
            raw.orgs.len(),
            raw.configs.len(),
            raw.members.len(),
            raw.keys.len()
        ),
        (1, 3, 2, 2)
    );
    assert!(raw.audit.len() >= 6);
    let tables: [(&str, Vec<&Vec<u8>>); 5] = [
        ("orgs", raw.orgs.values().collect()),
        ("configs", raw.configs.values().collect()),
        ("members", raw.members.values().collect()),
        ("keys", raw.keys.values().collect()),
        ("audit", raw.audit.values().collect()),
    ];
    for (table, records) in tables {
        for bytes in records {
            assert_eq!(
                hex(&reencode(table, bytes).unwrap()),
                hex(bytes),
                "a {table} record"
            );
        }
    }
}

#[test]
fn public_values_encode_to_the_bytes_of_the_format1_file() {
    let dir = tempfile::tempdir().unwrap();
    let path = copy_fixture(dir.path());
    let raw = read_raw(&path);
    // Read-only: nothing is migrated, the values are the file's.
    let store = Store::open_read_only(&path).unwrap();
    let op = Actor::Operator;
    let acme = OrgId::parse("acme").unwrap();

    let org = store.orgs().get(&op, &acme).unwrap();
    assert_eq!(hex(&encode_org(&org).unwrap()), hex(&raw.orgs["acme"]));

    let members = store.members().list(&op, &acme).unwrap();
    assert_eq!(members.len(), raw.members.len());
    for m in &members {
        let stored = &raw.members[&("acme".to_owned(), m.email.as_str().to_owned())];
        assert_eq!(hex(&encode_member(m).unwrap()), hex(stored), "{m:?}");
    }

    let keys = store.keys().list(&op, &acme).unwrap();
    assert_eq!(keys.len(), raw.keys.len());
    for k in &keys {
        let stored = &raw.keys[k.id.as_bytes()];
        // The digest is not public: it is the record's last 32 bytes.
        let digest: KeyDigest = stored[stored.len() - 32..].try_into().unwrap();
        assert_eq!(hex(&encode_key(k, &digest).unwrap()), hex(stored), "{k:?}");
    }
    // The live key's digest is the SHA-256 of the secret kept beside the fixture.
    let secret = std::fs::read_to_string("tests/data/format1.key.txt").unwrap();
    let live = keys.iter().find(|k| k.status == KeyStatus::Active).unwrap();
    let stored = &raw.keys[live.id.as_bytes()];
    assert_eq!(
        hex(&encode_key(live, &sha2::Sha256::digest(secret.trim()).into()).unwrap()),
        hex(stored)
    );

    // The spend ledger is keyed by the org's and the used key's scope names.
    let scopes: std::collections::BTreeSet<String> =
        [org_ledger_name(&acme), key_ledger_name(&live.id)].into();
    assert_eq!(raw.spend_scopes, scopes);

    let audit = store.audit().list(&op, &acme, 1000).unwrap();
    assert_eq!(audit.len(), raw.audit.len());
    for e in &audit {
        let stored = &raw.audit[&("acme".to_owned(), e.seq)];
        // The file holds the names older versions wrote (`key.create`); the API reads them
        // as Cedar action names. Exactly one old name of the entry's action gives the
        // file's bytes back.
        let old_names: &[&str] = match e.action.as_str() {
            "CreateOrg" => &["org.create"],
            "UpdateConfig" => &["config.update"],
            "AddMember" => &["member.add"],
            "CreateKey" => &["key.create", "key.import"],
            "ManageKey" => &["key.revoke", "key.rotate", "key.update"],
            other => panic!("the fixture has no {other} entry"),
        };
        let matching = old_names
            .iter()
            .filter(|old| {
                let mut as_stored = e.clone();
                as_stored.action = (**old).to_owned();
                hex(&encode_audit(&as_stored).unwrap()) == hex(stored)
            })
            .count();
        assert_eq!(matching, 1, "{e:?}");
    }
}

#[test]
fn a_damaged_tag_is_a_corrupt_record_not_a_panic() {
    let dir = tempfile::tempdir().unwrap();
    let raw = read_raw(&copy_fixture(dir.path()));
    // An org record ends with its status tag and three counters (each one byte here).
    let mut org = raw.orgs["acme"].clone();
    let n = org.len();
    assert_eq!(
        &org[n - 4..],
        &[0, 3, 3, 1],
        "status active, versions 3/3, one owner"
    );
    org[n - 4] = 9;
    let e = reencode("orgs", &org).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Corrupt);
    assert!(e.message().contains("org") && chain(&e).contains("unknown org status tag 9"));

    // A member record: org, email, role tag, added_at, added_by.
    let (key, bytes) = raw.members.iter().next().unwrap();
    let role_at = 1 + 1 + key.0.len() + 1 + key.1.len();
    let mut m = bytes.clone();
    m[role_at] = 7;
    let e = reencode("members", &m).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Corrupt);
    assert!(
        e.message().contains("member") && chain(&e).contains("unknown role tag 7"),
        "{e}"
    );

    // An audit entry ends with its outcome tag.
    let mut a = raw.audit.values().next().unwrap().clone();
    *a.last_mut().unwrap() = 5;
    let e = reencode("audit", &a).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Corrupt);
    assert!(chain(&e).contains("unknown audit outcome tag 5"), "{e}");
}

/// An error's line and its causes (`source()`): a corrupt record's reason is its cause.
fn chain(e: &Error) -> String {
    let mut out = e.message().to_owned();
    let mut cause = std::error::Error::source(e);
    while let Some(c) = cause {
        out.push_str(&format!(" / {c}"));
        cause = c.source();
    }
    out
}
