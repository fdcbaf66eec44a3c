//! Store hardening: retired key digests, look-alike emails, unwritable and missing store
//! files, no-op changes, changes to revoked keys, and per-org audit numbers.

use std::path::{Path, PathBuf};

use orgstore::{
    Actor, AuditEntry, ErrorKind, ImportKey, KeySpec, KeyStatus, OrgId, Request, Role, Store,
    StoreBuilder,
};
use redb::{ReadableDatabase, ReadableTable, TableDefinition};

use crate::common::ConfigJson;
use crate::common::*;

const META: TableDefinition<&str, u64> = TableDefinition::new("meta");
const AUDIT: TableDefinition<(&str, u64), &[u8]> = TableDefinition::new("audit");
const MEMBERS: TableDefinition<(&str, &str), &[u8]> = TableDefinition::new("members");
const MEMBER_ORGS: TableDefinition<(&str, &str), u8> = TableDefinition::new("member_orgs");
const KEY_DIGESTS: TableDefinition<&[u8; 32], &[u8; 16]> = TableDefinition::new("key_digests");
const ISSUED: TableDefinition<&[u8; 32], &[u8; 16]> = TableDefinition::new("issued_digests");

const FIXTURE: &str = "tests/data/format1.redb";

fn copy_fixture(dir: &Path) -> PathBuf {
    let to = dir.join("store.redb");
    std::fs::copy(FIXTURE, &to).unwrap();
    let sidecar = format!("{FIXTURE}.key");
    if Path::new(&sidecar).exists() {
        std::fs::copy(&sidecar, dir.join("store.redb.key")).unwrap();
    }
    to
}

fn ip() -> std::net::IpAddr {
    "10.0.0.1".parse().unwrap()
}

fn import_one(store: &Store, org: &OrgId, hex: &str) -> Result<(), orgstore::Error> {
    store
        .keys()
        .import(&OP, org, &[ImportKey::new(hex, KeySpec::new("back"))])
        .map(|_| ())
}

fn key_count(store: &Store, org: &OrgId) -> usize {
    store.keys().list(&OP, org).unwrap().len()
}

// ---------------------------------------------------------------------------------------
// Retired digests

#[test]
fn a_digest_ever_issued_is_never_imported_again_in_any_org() {
    let dir = tempfile::tempdir().unwrap();
    let store = open_file_fast(dir.path());
    let a = create_org(&store, "a", "ann@a.io");
    let b = create_org(&store, "b", "bob@b.io");
    let gone = create_org(&store, "gone", "gil@g.io");

    // Rotated away (a generated key, rotated twice: both old secrets).
    let k1 = store.keys().create(&OP, &a, KeySpec::new("k1")).unwrap();
    let r1 = store.keys().rotate(&OP, &k1.info.id).unwrap();
    let r2 = store.keys().rotate(&OP, &k1.info.id).unwrap();
    // Revoked.
    let k2 = store.keys().create(&OP, &a, KeySpec::new("k2")).unwrap();
    store.keys().revoke(&OP, &k2.info.id).unwrap();
    // An imported key, then rotated away.
    let legacy = sha256_hex(&legacy_key(7));
    let imported = store
        .keys()
        .import(&OP, &a, &[ImportKey::new(&legacy, KeySpec::new("imp"))])
        .unwrap();
    store.keys().rotate(&OP, &imported[0].id).unwrap();
    // A key of an org that was deleted since.
    let g = store.keys().create(&OP, &gone, KeySpec::new("g")).unwrap();
    store.orgs().delete(&OP, &gone).unwrap();

    let retired = [
        ("rotated away", hex(&k1.key.digest())),
        ("rotated away twice", hex(&r1.key.digest())),
        ("revoked", hex(&k2.key.digest())),
        ("imported, then rotated away", legacy.clone()),
        ("of a deleted org", hex(&g.key.digest())),
    ];
    let live = [("live", hex(&r2.key.digest()))];
    drop(store);
    // And after a reopen: the table is on disk.
    let store = open_file_fast(dir.path());
    let before = (key_count(&store, &a), key_count(&store, &b));
    for (what, digest) in retired.iter().chain(live.iter()) {
        for org in [&a, &b] {
            let e = import_one(&store, org, digest).unwrap_err();
            assert_eq!(
                (e.kind(), e.field()),
                (ErrorKind::Conflict, "keys[0].sha256"),
                "{what} into {org}: {e}"
            );
            // In a bulk import, behind a fresh digest: nothing at all is imported.
            let batch = [
                ImportKey::new(sha256_hex(&legacy_key(1000)), KeySpec::new("fresh")),
                ImportKey::new(digest, KeySpec::new("back")),
            ];
            let e = store.keys().import(&OP, org, &batch).unwrap_err();
            assert_eq!(
                (e.kind(), e.field()),
                (ErrorKind::Conflict, "keys[1].sha256"),
                "{what}, bulk into {org}: {e}"
            );
        }
        if retired.iter().any(|(w, _)| w == what) && *what != "of a deleted org" {
            let e = import_one(&store, &a, digest).unwrap_err();
            assert!(
                e.message().contains("rotated away or revoked"),
                "{what}: {e}"
            );
            assert!(!e.message().contains(digest.as_str()), "{e}");
        }
    }
    assert_eq!((key_count(&store, &a), key_count(&store, &b)), before);
    // The fresh digest of the refused batches was not imported: it still imports alone.
    import_one(&store, &b, &sha256_hex(&legacy_key(1000))).unwrap();
    // The old secrets stay refused by the gateway; the live one works.
    let gw = store.gateway();
    assert_eq!(
        gw.check(&Request::new(k1.key.expose(), "m", ip()))
            .unwrap_err()
            .code(),
        "unknown_key"
    );
    assert!(gw.check(&Request::new(r2.key.expose(), "m", ip())).is_ok());
}

#[test]
fn a_format1_store_gets_its_digests_retired_on_open() {
    let dir = tempfile::tempdir().unwrap();
    let path = copy_fixture(dir.path());
    let digests: Vec<[u8; 32]> = {
        let db = redb::Database::open(&path).unwrap();
        let r = db.begin_read().unwrap();
        let t = r.open_table(KEY_DIGESTS).unwrap();
        t.iter().unwrap().map(|i| *i.unwrap().0.value()).collect()
    };
    assert_eq!(digests.len(), 2, "the fixture has a live and a revoked key");
    let store = Store::open(&path).unwrap();
    let acme = org("acme");
    let other = create_org(&store, "other", "o@o.io");
    let live = std::fs::read_to_string("tests/data/format1.key.txt").unwrap();
    assert!(digests.iter().any(|d| hex(d) == sha256_hex(live.trim())));
    for d in &digests {
        for o in [&acme, &other] {
            let e = import_one(&store, o, &hex(d)).unwrap_err();
            assert_eq!(e.kind(), ErrorKind::Conflict, "{e}");
        }
    }
    // Both are in the table of issued digests, and the file is at the current format.
    drop(store);
    let db = redb::Database::open(&path).unwrap();
    let r = db.begin_read().unwrap();
    let issued = r.open_table(ISSUED).unwrap();
    for d in &digests {
        assert!(issued.get(d).unwrap().is_some());
    }
    let format = r.open_table(META).unwrap().get("format").unwrap().unwrap();
    assert_eq!(format.value(), 3);
}

// ---------------------------------------------------------------------------------------
// Look-alike emails

/// Pairs of addresses that render the same (or differ only in case) and must be one person.
const LOOK_ALIKES: &[(&str, &str)] = &[
    ("zo\u{eb}@x.io", "zoe\u{308}@x.io"), // composed / decomposed diaeresis
    ("ren\u{e9}@caf\u{e9}.fr", "rene\u{301}@cafe\u{301}.fr"), // both parts decomposed
    ("ann@x.io", "\u{ff21}\u{ff2e}\u{ff2e}@x.io"), // full-width letters
    ("ann@x.io", "ann\u{ff20}\u{ff58}.io"), // full-width @ and x
    ("mixed@case.io", "MiXeD@CaSe.IO"),   // case
    ("fiona@x.io", "\u{fb01}ona@x.io"),   // the ligature fi
    ("office@x.io", "o\u{fb03}ce@x.io"),  // the ligature ffi
    ("sam@x.io", "\u{17f}am@x.io"),       // long s
    (
        "\u{3bf}\u{3b4}\u{3c5}\u{3c3}\u{3c3}\u{3b5}\u{3c5}\u{3c3}@x.gr",
        "\u{39f}\u{394}\u{3a5}\u{3a3}\u{3a3}\u{395}\u{3a5}\u{3a3}@x.gr",
    ), // Greek capitals, final sigma
    (
        "\u{3c3}\u{3bf}\u{3c6}\u{3b9}\u{3b1}\u{3c3}@x.gr",
        "\u{3c3}\u{3bf}\u{3c6}\u{3b9}\u{3b1}\u{3c2}@x.gr",
    ), // final sigma written as such
    ("\u{212b}ngstr\u{f6}m@x.se", "\u{c5}ngstro\u{308}m@X.SE"), // angstrom sign / A with ring
];

#[test]
fn look_alike_emails_are_one_person() {
    for (plain, look_alike) in LOOK_ALIKES {
        let a = email(plain);
        let b = email(look_alike);
        assert_eq!(a, b, "{plain:?} and {look_alike:?}");
        // Normalising is stable.
        assert_eq!(email(a.as_str()), a);
        assert_eq!(orgstore::Email::normalize(a.as_str()), a.as_str());

        let f = Fixture::new();
        let (store, acme) = (&f.store, &f.org);
        store.members().add(&OP, acme, &a, Role::Viewer).unwrap();
        // Adding the look-alike is adding the same person again.
        let e = store.members().add(&OP, acme, &b, Role::Admin).unwrap_err();
        assert_eq!((e.kind(), e.field()), (ErrorKind::Conflict, "email"), "{e}");
        assert_eq!(store.members().list(&OP, acme).unwrap().len(), 2);
        // Acting as the look-alike is acting as that person (a Viewer: no config change).
        let as_b = Actor::Member(email(look_alike));
        let e = store
            .org_configs()
            .update(&as_b, acme, r#"{"routing":{"x":1}}"#)
            .unwrap_err();
        assert_eq!(e.kind(), ErrorKind::Denied, "{e}");
        // A role change through the look-alike changes that person's role.
        store
            .members()
            .set_role(&OP, acme, &email(look_alike), Role::Admin)
            .unwrap();
        let m = store.members().list(&OP, acme).unwrap();
        let role = m.iter().find(|m| m.email == a).map(|m| m.role);
        assert_eq!(role, Some(Role::Admin), "{plain:?}");
        store
            .org_configs()
            .update(&as_b, acme, r#"{"routing":{"x":1}}"#)
            .unwrap();
        assert_eq!(
            store.members().orgs_of(&OP, &email(look_alike)).unwrap(),
            vec![(acme.clone(), Role::Admin)]
        );
        // Removing the look-alike removes the person.
        store
            .members()
            .remove(&OP, acme, &email(look_alike))
            .unwrap();
        assert_eq!(store.members().list(&OP, acme).unwrap().len(), 1);
        assert!(store.members().orgs_of(&OP, &a).unwrap().is_empty());
    }
    // Different people stay different; characters that normalise into blanks are refused.
    assert_ne!(email("stra\u{df}e@x.de"), email("strasse@x.de"));
    for bad in [
        "ann\u{3000}x@x.io",
        "a\u{ff20}b@c\u{ff20}d.io",
        "ann@x.io\u{ff0e}",
    ] {
        let e = orgstore::Email::parse(bad).unwrap_err();
        assert_eq!(
            (e.kind(), e.field()),
            (ErrorKind::Invalid, "email"),
            "{bad:?}"
        );
    }
}

#[test]
fn look_alike_emails_in_the_cli_are_one_person() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("o.redb");
    let ok = |args: &[&str]| cli(&db, args).ok();
    ok(&["org", "create", "acme", "--owner", "own\u{e9}r@acme.io"]);
    let out = cli(
        &db,
        &[
            "member",
            "add",
            "acme",
            "OWNE\u{301}R@ACME.IO",
            "--role",
            "viewer",
        ],
    );
    assert_eq!(out.status.code(), Some(1), "{}", out.stderr);
    assert!(out.stderr.contains("already a member"));
    // --as with the full-width form acts as the owner.
    ok(&[
        "--as",
        "\u{ff4f}\u{ff57}\u{ff4e}\u{e9}\u{ff52}@acme.io",
        "config",
        "set",
        "acme",
        r#"{"routing":{"x":1}}"#,
    ]);
    let list = ok(&["member", "list", "acme"]);
    assert_eq!(list.matches("@acme.io").count(), 1, "{list}");
}

#[test]
fn a_format1_store_with_look_alike_members_is_merged_on_open() {
    let dir = tempfile::tempdir().unwrap();
    let path = copy_fixture(dir.path());
    {
        // Rows a build without normalisation could have written: a full-width look-alike
        // of the Member dev@acme.io as an Owner, and one of the only Owner as a Viewer.
        let db = redb::Database::open(&path).unwrap();
        let w = db.begin_write().unwrap();
        {
            let mut m = w.open_table(MEMBERS).unwrap();
            let owner = m
                .get(("acme", "owner@acme.io"))
                .unwrap()
                .unwrap()
                .value()
                .to_vec();
            let dev = m
                .get(("acme", "dev@acme.io"))
                .unwrap()
                .unwrap()
                .value()
                .to_vec();
            m.insert(
                ("acme", "\u{ff24}\u{ff25}\u{ff36}@acme.io"),
                owner.as_slice(),
            )
            .unwrap();
            m.insert(("acme", "OWNER@acme.io"), dev.as_slice()).unwrap();
            let mut i = w.open_table(MEMBER_ORGS).unwrap();
            i.insert(("\u{ff24}\u{ff25}\u{ff36}@acme.io", "acme"), 15)
                .unwrap();
            i.insert(("OWNER@acme.io", "acme"), 3).unwrap();
        }
        w.commit().unwrap();
    }
    let store = Store::open(&path).unwrap();
    let acme = org("acme");
    let members = store.members().list(&OP, &acme).unwrap();
    let roles: Vec<(String, Role)> = members
        .iter()
        .map(|m| (m.email.to_string(), m.role))
        .collect();
    // dev: the lower role (least privilege); owner: stays Owner (the org needs one).
    assert_eq!(
        roles,
        [
            ("dev@acme.io".to_owned(), Role::Member),
            ("owner@acme.io".to_owned(), Role::Owner)
        ]
    );
    assert_eq!(store.orgs().get(&OP, &acme).unwrap().owner_count, 1);
    for who in ["dev@acme.io", "owner@acme.io"] {
        assert_eq!(
            store.members().orgs_of(&OP, &email(who)).unwrap(),
            vec![(
                acme.clone(),
                if who.starts_with("dev") {
                    Role::Member
                } else {
                    Role::Owner
                }
            )]
        );
    }
    let log = audit_all(&store, &acme);
    let merges: Vec<&AuditEntry> = log.iter().filter(|e| e.action == "MergeMembers").collect();
    assert_eq!(merges.len(), 2, "{log:?}");
    assert_numbered_per_org(&log);
}

// ---------------------------------------------------------------------------------------
// Unwritable and missing store files

fn cli(db: &Path, args: &[&str]) -> Run {
    orgstore(args).db(db).run()
}

fn file_bytes(p: &Path) -> Vec<u8> {
    std::fs::read(p).unwrap()
}

/// A store file with one org, a key and a config version; returns the key.
fn populated(path: &Path) -> String {
    let store = Store::open(path).unwrap();
    let acme = create_org(&store, "acme", "ann@acme.io");
    store
        .org_configs()
        .update(
            &OP,
            &acme,
            r#"{"providers":{"openai":{"api_key":"sk-live-0123456789"}}}"#,
        )
        .unwrap();
    let k = store.keys().create(&OP, &acme, KeySpec::new("k")).unwrap();
    k.key.expose().to_owned()
}

#[test]
fn a_read_only_store_reads_and_refuses_every_change() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("ro.redb");
    let key = populated(&path);
    let bytes = file_bytes(&path);
    let store = Store::open_read_only(&path).unwrap();
    assert!(store.is_read_only());
    let acme = org("acme");
    assert_eq!(store.orgs().list(&OP).unwrap().len(), 1);
    assert_eq!(store.keys().list(&OP, &acme).unwrap().len(), 1);
    assert_eq!(store.org_configs().history(&OP, &acme).unwrap().len(), 2);
    assert!(!audit_all(&store, &acme).is_empty());
    assert!(
        store
            .gateway()
            .check(&Request::new(&key, "m", ip()))
            .is_ok()
    );
    let id = store.keys().list(&OP, &acme).unwrap()[0].id;
    let changes: Vec<(&str, orgstore::Error)> = vec![
        (
            "org create",
            store
                .orgs()
                .create(&OP, &org("b"), "B", &email("b@b.io"))
                .unwrap_err(),
        ),
        ("suspend", store.orgs().suspend(&OP, &acme).unwrap_err()),
        (
            "config",
            store
                .org_configs()
                .update(&OP, &acme, r#"{"routing":{"x":1}}"#)
                .unwrap_err(),
        ),
        (
            "member",
            store
                .members()
                .add(&OP, &acme, &email("c@c.io"), Role::Viewer)
                .unwrap_err(),
        ),
        (
            "key",
            store
                .keys()
                .create(&OP, &acme, KeySpec::new("x"))
                .unwrap_err(),
        ),
        ("revoke", store.keys().revoke(&OP, &id).unwrap_err()),
    ];
    for (what, e) in changes {
        assert_eq!(
            (e.kind(), e.field()),
            (ErrorKind::Storage, "db"),
            "{what}: {e}"
        );
        assert!(e.message().contains("read-only"), "{what}: {e}");
    }
    // Refusals are not audited either (nothing is written), but they are still refusals (a
    // stranger is told the org does not exist).
    let stranger = Actor::Member(email("eve@evil.io"));
    let e = store.orgs().get(&stranger, &acme).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::NotFound);
    drop(store);
    assert_eq!(
        file_bytes(&path),
        bytes,
        "a read-only store changed its file"
    );

    // Without its key file a read-only store creates none: secrets read as unreadable.
    let key_file = dir.path().join("ro.redb.key");
    std::fs::remove_file(&key_file).unwrap();
    let store = Store::open_read_only(&path).unwrap();
    let cfg = store.org_configs().retrieve(&OP, &acme).unwrap();
    assert!(!cfg.config.masked_value().to_string().contains("0123456789"));
    drop(store);
    assert!(!key_file.exists());
    assert_eq!(file_bytes(&path), bytes);
}

#[test]
fn a_missing_file_is_never_created_by_a_read_only_or_must_exist_open() {
    let dir = tempfile::tempdir().unwrap();
    for (what, builder) in [
        ("read_only", StoreBuilder::new().read_only()),
        ("must_exist", StoreBuilder::new().must_exist()),
        ("both", StoreBuilder::new().must_exist().read_only()),
    ] {
        let path = dir.path().join(format!("typo-{what}.redb"));
        let e = builder.open(&path).err().unwrap();
        assert_eq!(
            (e.kind(), e.field()),
            (ErrorKind::NotFound, "db"),
            "{what}: {e}"
        );
        assert!(e.message().contains(&path.display().to_string()), "{e}");
        assert!(e.message().contains("create a store there"), "{e}");
        assert!(!path.exists(), "{what} created the file");
        assert!(!dir.path().join(format!("typo-{what}.redb.key")).exists());
    }
    // Store::open still creates.
    let path = dir.path().join("new.redb");
    Store::open(&path).unwrap();
    assert!(path.exists());
}

#[test]
fn a_format1_store_opened_read_only_is_not_migrated() {
    let dir = tempfile::tempdir().unwrap();
    let path = copy_fixture(dir.path());
    let bytes = file_bytes(&path);
    let store = Store::open_read_only(&path).unwrap();
    let acme = org("acme");
    let log = audit_all(&store, &acme);
    assert!(log.len() >= 6);
    assert_numbered_per_org(&log);
    drop(store);
    assert_eq!(file_bytes(&path), bytes);
}

fn running_as_root() -> bool {
    std::fs::read_to_string("/proc/self/status")
        .map(|s| {
            s.lines()
                .any(|l| l.starts_with("Uid:") && l.split_whitespace().nth(1) == Some("0"))
        })
        .unwrap_or(false)
}

/// Runs the CLI as a user whom the permission bits bind: as `nobody` when the tests run
/// as root (root ignores them), as this user otherwise.
#[cfg(unix)]
fn cli_unprivileged(dir: &Path, db: &Path, args: &[&str]) -> Run {
    let mut c = orgstore(args).db(db);
    if running_as_root() {
        for p in [
            dir.to_path_buf(),
            db.to_path_buf(),
            PathBuf::from(format!("{}.key", db.display())),
        ] {
            std::os::unix::fs::chown(&p, Some(65534), Some(65534)).unwrap();
        }
        c = c.user(65534, 65534);
    }
    c.run()
}

#[cfg(unix)]
#[test]
fn a_store_file_this_user_may_not_write_is_read_read_only_by_the_cli() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("o.redb");
    let key = populated(&db);
    let bytes = file_bytes(&db);
    std::fs::set_permissions(&db, std::fs::Permissions::from_mode(0o400)).unwrap();
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    let reads: &[&[&str]] = &[
        &["org", "list"],
        &["org", "show", "acme"],
        &["config", "get", "acme"],
        &["config", "history", "acme"],
        &["member", "list", "acme"],
        &["key", "list", "acme"],
        &["audit", "acme"],
        &["usage", "acme"],
    ];
    for args in reads {
        let out = cli_unprivileged(dir.path(), &db, args);
        assert!(out.status.success(), "{args:?}: {}", out.stderr);
    }
    let out = cli_unprivileged(dir.path(), &db, &["org", "list"]);
    assert!(out.stdout.contains("acme"));
    let out = cli_unprivileged(dir.path(), &db, &["check", &key, "--model", "m"]);
    assert!(out.status.success(), "{}", out.stderr);
    // A change is refused as a permission problem, not as damage.
    for args in [
        &["org", "create", "b", "--owner", "b@b.io"][..],
        &["config", "set", "acme", r#"{"routing":{"x":1}}"#],
        &["org", "suspend", "acme"],
    ] {
        let out = cli_unprivileged(dir.path(), &db, args);
        let err = out.stderr;
        assert_eq!(out.status.code(), Some(1), "{args:?}: {err}");
        assert!(err.contains("permission problem"), "{args:?}: {err}");
        assert!(!err.contains("backup"), "{args:?}: {err}");
    }
    assert_eq!(file_bytes(&db), bytes);
}

#[test]
fn read_commands_refuse_a_missing_store_file() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("typo.redb");
    let key = legacy_key(1);
    let id = format!("key_{}", "0".repeat(32));
    let reads: &[&[&str]] = &[
        &["org", "list"],
        &["org", "show", "acme"],
        &["config", "get", "acme"],
        &["config", "get", "acme", "--reveal"],
        &["config", "history", "acme"],
        &["config", "diff", "acme", "1", "2"],
        &["member", "list", "acme"],
        &["member", "orgs", "ann@acme.io"],
        &["key", "list", "acme"],
        &["key", "show", &id],
        &["audit", "acme"],
        &["usage", "acme"],
        &["check", &key, "--model", "m"],
        &["policy", "entities", "acme"],
        &["--json", "org", "list"],
        &["--as", "ann@acme.io", "org", "list"],
    ];
    for args in reads {
        let out = cli(&db, args);
        let err = out.stderr;
        assert_eq!(out.status.code(), Some(4), "{args:?}: {err}");
        assert!(err.contains(&db.display().to_string()), "{args:?}: {err}");
        assert!(err.contains("org create"), "{args:?}: {err}");
        assert!(!db.exists(), "{args:?} created the store file");
        assert!(!dir.path().join("typo.redb.key").exists(), "{args:?}");
    }
    // A command that writes creates the store.
    let out = cli(&db, &["org", "create", "acme", "--owner", "ann@acme.io"]);
    assert!(out.status.success(), "{}", out.stderr);
    assert!(db.exists());
    let out = cli(&db, &["org", "list"]);
    assert!(out.stdout.contains("acme"));
}

// ---------------------------------------------------------------------------------------
// No-op changes

/// Everything an operator can read about an org.
fn state(store: &Store, o: &OrgId) -> String {
    format!(
        "{:?}\n{:?}\n{:?}\n{:?}",
        store.orgs().get(&OP, o).unwrap(),
        store.org_configs().history(&OP, o).unwrap(),
        store.members().list(&OP, o).unwrap(),
        audit_all(store, o),
    )
}

#[test]
fn no_op_changes_write_no_version_and_no_audit_entry() {
    let f = Fixture::new();
    let (store, acme) = (&f.store, &f.org);
    let v2 =
        f.update_config(r#"{"rate_limiting":{"enabled":true,"rpm":100},"routing":{"a":[1,2]}}"#);
    assert!(v2.changed);
    let v3 = f.update_config(r#"{"allowed_models":["gpt-4o"]}"#);
    assert!(v3.changed);
    let cfg = store.org_configs();

    // Status: resume an active org; suspend a suspended one.
    let before = state(store, acme);
    let r = store.orgs().resume(&OP, acme).unwrap();
    assert!(!r.changed);
    assert_eq!(r.status, orgstore::OrgStatus::Active);
    assert_eq!(state(store, acme), before, "resume of an active org");
    assert!(store.orgs().suspend(&OP, acme).unwrap().changed);
    let before = state(store, acme);
    assert!(!store.orgs().suspend(&OP, acme).unwrap().changed);
    assert_eq!(state(store, acme), before, "suspend of a suspended org");
    assert!(store.orgs().resume(&OP, acme).unwrap().changed);

    // Config: patches that leave it as it is, and rollbacks to its content.
    let before = state(store, acme);
    let same = [
        "{}",
        "  { }  ",
        r#"{"rate_limiting":{"rpm":100}}"#,
        r#"{"rate_limiting":{"enabled":true,"rpm":100},"allowed_models":["gpt-4o"]}"#,
        r#"{"routing":{"a":[1,2]}}"#,
        r#"{"cache":null}"#,
        r#"{"routing":{"not_there":null}}"#,
    ];
    for patch in same {
        let v = cfg.update(&OP, acme, patch).unwrap();
        assert!(!v.changed, "{patch}");
        assert_eq!((v.version, v.active), (3, true), "{patch}");
        assert_eq!(state(store, acme), before, "{patch}");
    }
    let v = cfg.rollback(&OP, acme, 3).unwrap();
    assert!(!v.changed);
    assert_eq!(v.version, 3);
    assert_eq!(state(store, acme), before, "rollback to the active version");
    // A real change is still one.
    let v4 = cfg.rollback(&OP, acme, 2).unwrap();
    assert!(v4.changed);
    assert_eq!(v4.version, 4);
    // Version 3's content rolled back onto version 5 = 3: then rolling back to 3 or 5 is
    // no change.
    let v5 = cfg.rollback(&OP, acme, 3).unwrap();
    assert!(v5.changed);
    let before = state(store, acme);
    for target in [3, 5] {
        let v = cfg.rollback(&OP, acme, target).unwrap();
        assert!(!v.changed, "rollback to {target}");
        assert_eq!(v.version, 5);
    }
    assert_eq!(state(store, acme), before);
    // A no-op by someone who may not change the config is still denied.
    let viewer = email("vic@acme.io");
    store
        .members()
        .add(&OP, acme, &viewer, Role::Viewer)
        .unwrap();
    let e = cfg.update(&Actor::Member(viewer), acme, "{}").unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Denied);
}

#[test]
fn the_cli_reports_no_change() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("o.redb");
    let ok = |args: &[&str]| cli(&db, args).ok();
    ok(&["org", "create", "acme", "--owner", "ann@acme.io"]);
    ok(&["config", "set", "acme", r#"{"routing":{"x":1}}"#]);
    let audit = ok(&["--json", "audit", "acme"]);
    for (args, want) in [
        (&["org", "resume", "acme"][..], "no change"),
        (&["config", "set", "acme", "{}"], "no change"),
        (
            &["config", "set", "acme", r#"{"routing":{"x":1}}"#],
            "no change",
        ),
        (&["config", "rollback", "acme", "2"], "no change"),
    ] {
        let out = ok(args);
        assert!(out.contains(want), "{args:?}: {out}");
        assert!(!out.contains("active -> active"), "{out}");
    }
    let j: serde_json::Value =
        serde_json::from_str(&ok(&["--json", "config", "set", "acme", "{}"])).unwrap();
    assert_eq!(
        (j["changed"].clone(), j["version"].clone()),
        (false.into(), 2.into())
    );
    let j: serde_json::Value =
        serde_json::from_str(&ok(&["--json", "org", "resume", "acme"])).unwrap();
    assert_eq!(j["changed"], false);
    assert_eq!(
        ok(&["--json", "audit", "acme"]),
        audit,
        "a no-op was audited"
    );
    let j: serde_json::Value =
        serde_json::from_str(&ok(&["--json", "org", "suspend", "acme"])).unwrap();
    assert_eq!(j["changed"], true);
}

// ---------------------------------------------------------------------------------------
// Revoked keys

#[test]
fn a_revoked_key_cannot_be_changed() {
    let f = Fixture::new();
    let k = f
        .store
        .keys()
        .create(&OP, &f.org, KeySpec::new("k").rpm(10))
        .unwrap();
    let revoked = f.store.keys().revoke(&OP, &k.info.id).unwrap();
    assert_eq!(revoked.status, KeyStatus::Revoked);
    let before = (f.store.keys().show(&OP, &k.info.id).unwrap(), f.audit());
    let specs = [
        ("the same settings", revoked.spec.clone()),
        ("a new name", KeySpec::new("renamed")),
        ("a higher limit", KeySpec::new("k").rpm(1_000_000)),
        ("models", KeySpec::new("k").models(["gpt-4o"])),
    ];
    for (what, spec) in specs {
        let e = f.store.keys().update(&OP, &k.info.id, spec).unwrap_err();
        assert_eq!(
            (e.kind(), e.field()),
            (ErrorKind::Conflict, "key id"),
            "{what}: {e}"
        );
        assert!(e.message().contains("revoked"), "{e}");
    }
    // Neither by the key's owner-org members.
    let owner = Actor::Member(f.owner.clone());
    let e = f
        .store
        .keys()
        .update(&owner, &k.info.id, KeySpec::new("x"))
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Conflict);
    let e = f.store.keys().rotate(&OP, &k.info.id).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Conflict);
    assert_eq!(
        (f.store.keys().show(&OP, &k.info.id).unwrap(), f.audit()),
        before
    );
    // A live key still can be.
    let live = f.create_key("live");
    f.store
        .keys()
        .update(&OP, &live.info.id, KeySpec::new("live2"))
        .unwrap();
}

// ---------------------------------------------------------------------------------------
// Per-org audit numbers

fn assert_numbered_per_org(log_newest_first: &[AuditEntry]) {
    let seqs: Vec<u64> = log_newest_first.iter().rev().map(|e| e.seq).collect();
    let want: Vec<u64> = (1..=seqs.len() as u64).collect();
    assert_eq!(seqs, want, "audit numbers are not 1..n");
}

#[test]
fn audit_entries_are_numbered_per_org() {
    let dir = tempfile::tempdir().unwrap();
    let store = open_file_fast(dir.path());
    let busy = create_org(&store, "busy", "b@b.io");
    for i in 0..20 {
        store
            .keys()
            .create(&OP, &busy, KeySpec::new(format!("k{i}")))
            .unwrap();
    }
    let quiet = create_org(&store, "quiet", "q@q.io");
    // A denial is numbered in the org it was about (a stranger is told it does not exist).
    let e = store
        .orgs()
        .get(&Actor::Member(email("eve@evil.io")), &quiet)
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::NotFound);
    store
        .members()
        .add(&OP, &quiet, &email("m@q.io"), Role::Member)
        .unwrap();
    let third = create_org(&store, "third", "t@t.io");
    let q = audit_all(&store, &quiet);
    assert_eq!(q.iter().rev().map(|e| e.seq).collect::<Vec<_>>(), [1, 2, 3]);
    assert_eq!(q[1].action, "ReadOrg");
    assert_eq!(audit_all(&store, &third)[0].seq, 1);
    assert_eq!(audit_all(&store, &busy).len(), 21);
    for o in [&busy, &quiet, &third] {
        assert_numbered_per_org(&audit_all(&store, o));
    }
    drop(store);
    // Stable across a reopen, and numbering goes on where each org left off.
    let store = open_file_fast(dir.path());
    assert_eq!(audit_all(&store, &quiet), q);
    store.orgs().suspend(&OP, &quiet).unwrap();
    let q2 = audit_all(&store, &quiet);
    assert_eq!(q2[0].seq, 4);
    assert_eq!(audit_all(&store, &busy)[0].seq, 21);
}

#[test]
fn format1_store_wide_audit_numbers_are_renumbered_per_org_on_open() {
    // A file with this layout, rewritten to format 1's: store-wide numbers (here the orgs'
    // entries interleaved: a odd, b even), the seq inside each entry too, meta at 1.
    let dir = tempfile::tempdir().unwrap();
    let path = db_path(dir.path());
    let (a, b) = (org("a"), org("b"));
    let (before_a, before_b) = {
        let store = open_file_fast(dir.path());
        create_org(&store, "a", "ann@a.io");
        create_org(&store, "b", "bob@b.io");
        for i in 0..5 {
            store
                .keys()
                .create(&OP, &a, KeySpec::new(format!("a{i}")))
                .unwrap();
            store
                .keys()
                .create(&OP, &b, KeySpec::new(format!("b{i}")))
                .unwrap();
        }
        (audit_all(&store, &a), audit_all(&store, &b))
    };
    {
        let db = redb::Database::open(&path).unwrap();
        let w = db.begin_write().unwrap();
        {
            let mut t = w.open_table(AUDIT).unwrap();
            let rows: Vec<(String, u64, Vec<u8>)> = t
                .iter()
                .unwrap()
                .map(|i| {
                    let (k, v) = i.unwrap();
                    (k.value().0.to_owned(), k.value().1, v.value().to_vec())
                })
                .collect();
            // Highest first: the new numbers are higher, so no entry is overwritten.
            for (o, seq, mut bytes) in rows.into_iter().rev() {
                // Format byte, then the varint seq: one byte below 251.
                assert_eq!(u64::from(bytes[1]), seq);
                let global = if o == "a" { seq * 2 - 1 } else { seq * 2 };
                bytes[1] = u8::try_from(global).unwrap();
                t.remove((o.as_str(), seq)).unwrap();
                t.insert((o.as_str(), global), bytes.as_slice()).unwrap();
            }
            let mut meta = w.open_table(META).unwrap();
            meta.insert("format", 1).unwrap();
            meta.insert("audit_seq", 12).unwrap();
        }
        w.commit().unwrap();
    }
    // Read-only (not migrated): numbered per org already.
    let ro = Store::open_read_only(&path).unwrap();
    assert_eq!(audit_all(&ro, &a), before_a);
    assert_eq!(audit_all(&ro, &b), before_b);
    drop(ro);
    // Opened for writing: migrated, the same entries with the same numbers.
    let store = open_file_fast(dir.path());
    assert_eq!(audit_all(&store, &a), before_a);
    assert_eq!(audit_all(&store, &b), before_b);
    store.orgs().suspend(&OP, &b).unwrap();
    assert_eq!(audit_all(&store, &b)[0].seq, 7);
    drop(store);
    let db = redb::Database::open(&path).unwrap();
    let r = db.begin_read().unwrap();
    let meta = r.open_table(META).unwrap();
    assert_eq!(meta.get("format").unwrap().unwrap().value(), 3);
    assert!(meta.get("audit_seq").unwrap().is_none());
}

#[test]
fn the_format1_fixture_is_numbered_per_org_after_migration() {
    let dir = tempfile::tempdir().unwrap();
    let path = copy_fixture(dir.path());
    let ro = Store::open_read_only(&path).unwrap();
    let acme = org("acme");
    let before = audit_all(&ro, &acme);
    drop(ro);
    let store = Store::open(&path).unwrap();
    let after = audit_all(&store, &acme);
    assert_eq!(after, before);
    assert_numbered_per_org(&after);
    let other = create_org(&store, "other", "o@o.io");
    assert_eq!(audit_all(&store, &other)[0].seq, 1);
}

#[test]
fn a_format2_store_is_marked_3_on_open_and_keeps_its_numbers_and_data() {
    let dir = tempfile::tempdir().unwrap();
    let path = db_path(dir.path());
    let a = org("a");
    let (before, keys) = {
        let store = open_file_fast(dir.path());
        create_org(&store, "a", "ann@a.io");
        for i in 0..3 {
            store
                .keys()
                .create(&OP, &a, KeySpec::new(format!("a{i}")))
                .unwrap();
        }
        (audit_all(&store, &a), store.keys().list(&OP, &a).unwrap())
    };
    let format_of = |path: &Path| {
        let db = redb::Database::open(path).unwrap();
        let r = db.begin_read().unwrap();
        let meta = r.open_table(META).unwrap();
        meta.get("format").unwrap().unwrap().value()
    };
    assert_eq!(format_of(&path), 3);
    {
        let db = redb::Database::open(&path).unwrap();
        let w = db.begin_write().unwrap();
        w.open_table(META).unwrap().insert("format", 2).unwrap();
        w.commit().unwrap();
    }
    // Read-only: nothing is written, and the per-org numbers of format 2 stand.
    let ro = Store::open_read_only(&path).unwrap();
    assert_eq!(audit_all(&ro, &a), before);
    drop(ro);
    assert_eq!(format_of(&path), 2);
    // Opened for writing: marked 3, with the same audit numbers and keys (no renumbering).
    let store = open_file_fast(dir.path());
    assert_eq!(audit_all(&store, &a), before);
    assert_eq!(store.keys().list(&OP, &a).unwrap(), keys);
    store.orgs().suspend(&OP, &a).unwrap();
    assert_eq!(audit_all(&store, &a)[0].seq, before[0].seq + 1);
    drop(store);
    assert_eq!(format_of(&path), 3);
}
