//! A file store keeps everything across close and reopen; new files are private; a file
//! open elsewhere or full of garbage gives a clear error instead of a panic.

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::path::Path;

use crate::common::ConfigJson;
use crate::common::*;
use orgstore::{
    AuditEntry, ConfigVersion, Error, ErrorKind, ImportKey, KeyInfo, KeySpec, Member, Org, OrgId,
    Role, Store,
};

/// One config version: number, active, note, author, content.
type VersionRow = (u64, bool, String, String, serde_json::Value);

/// Everything observable about a store, for before/after comparisons.
#[derive(Debug, PartialEq)]
struct Observed {
    orgs: Vec<Org>,
    history: Vec<Vec<VersionRow>>,
    members: Vec<Vec<Member>>,
    orgs_of: Vec<Vec<(OrgId, Role)>>,
    keys: Vec<Vec<KeyInfo>>,
    audit: Vec<Vec<AuditEntry>>,
}

fn observe(store: &Store, orgs: &[OrgId], people: &[&str]) -> Observed {
    let version = |v: ConfigVersion| {
        (
            v.version,
            v.active,
            v.note,
            v.created_by,
            v.config.revealed_value(),
        )
    };
    Observed {
        orgs: store.orgs().list(&OP).unwrap(),
        history: orgs
            .iter()
            .map(|o| {
                store
                    .org_configs()
                    .history(&OP, o)
                    .unwrap()
                    .into_iter()
                    .map(version)
                    .collect()
            })
            .collect(),
        members: orgs
            .iter()
            .map(|o| store.members().list(&OP, o).unwrap())
            .collect(),
        orgs_of: people
            .iter()
            .map(|p| store.members().orgs_of(&OP, &email(p)).unwrap())
            .collect(),
        keys: orgs
            .iter()
            .map(|o| store.keys().list(&OP, o).unwrap())
            .collect(),
        audit: orgs.iter().map(|o| audit_all(store, o)).collect(),
    }
}

/// Opens a store, catching a panic so that the test can say what happened.
fn try_open(path: &Path) -> Result<Store, Error> {
    match catch_unwind(AssertUnwindSafe(|| Store::open(path))) {
        Ok(r) => r,
        Err(_) => panic!(
            "opening {} panicked instead of returning an error",
            path.display()
        ),
    }
}

#[test]
fn everything_persists_across_reopen() {
    let dir = tempfile::tempdir().unwrap();
    let people = ["ann@x.io", "bob@x.io", "carol@x.io"];
    let (orgs, before, revoked_id, rotated) = {
        let store = open_file(dir.path());
        let a = create_org(&store, "alpha", "ann@x.io");
        let b = create_org(&store, "beta", "bob@x.io");
        let gone = create_org(&store, "gone", "carol@x.io");
        store.orgs().delete(&OP, &gone).unwrap();
        store.orgs().suspend(&OP, &b).unwrap();

        let cfg = store.org_configs();
        cfg.update(&OP, &a, r#"{"rate_limiting":{"rpm":100},"providers":{"openai":{"api_key":"sk-proj-0123456789abcdef"}}}"#)
            .unwrap();
        cfg.update(
            &OP,
            &a,
            r#"{"budgets":{"limit":0.1,"period":"daily"},"rate_limiting":{"rpm":200}}"#,
        )
        .unwrap();
        cfg.rollback(&OP, &a, 2).unwrap();

        let m = store.members();
        m.add(&OP, &a, &email("Bob@X.io"), Role::Admin).unwrap();
        m.add(&OP, &b, &email("carol@x.io"), Role::Owner).unwrap();
        m.add(&OP, &a, &email("carol@x.io"), Role::Viewer).unwrap();
        m.set_role(&OP, &a, &email("carol@x.io"), Role::Member)
            .unwrap();

        let k = store.keys();
        let spec = KeySpec::new("svc")
            .rpm(10)
            .models(["gpt-4o-mini"])
            .ips(["10.0.0.0/8"])
            .meta("team", "x");
        k.create(&OP, &a, spec).unwrap();
        let revoked = k.create(&OP, &a, KeySpec::new("old")).unwrap();
        k.revoke(&OP, &revoked.info.id).unwrap();
        let to_rotate = k.create(&OP, &b, KeySpec::new("rot")).unwrap();
        let rotated = k.rotate(&OP, &to_rotate.info.id).unwrap();
        let batch: Vec<ImportKey> = (0..3)
            .map(|i| ImportKey::new(sha256_hex(&legacy_key(i)), KeySpec::new(format!("imp{i}"))))
            .collect();
        k.import(&OP, &b, &batch).unwrap();

        let orgs = vec![a, b];
        let before = observe(&store, &orgs, &people);
        (orgs, before, revoked.info.id, rotated)
    };

    let store = open_file(dir.path());
    let after = observe(&store, &orgs, &people);
    assert_eq!(after, before);
    // Spot checks, so that an empty store cannot pass by observing nothing twice.
    assert_eq!(after.orgs.len(), 2);
    assert_eq!(after.history[0].len(), 4);
    assert_eq!(after.keys[0].len(), 2);
    assert_eq!(after.keys[1].len(), 4);
    assert!(after.audit[0].len() > 5);
    let gone = store
        .orgs()
        .create(&OP, &org("gone"), "Gone", &email("x@x.io"))
        .unwrap_err();
    assert_eq!(
        gone.kind(),
        ErrorKind::Conflict,
        "the deleted id is still remembered"
    );
    assert_eq!(
        store.keys().show(&OP, &revoked_id).unwrap().status,
        orgstore::KeyStatus::Revoked
    );
    assert_eq!(
        store.keys().show(&OP, &rotated.info.id).unwrap(),
        rotated.info
    );
    // Indexes survive too: a digest already in the store is still refused.
    let dup = ImportKey::new(hex(&rotated.key.digest()), KeySpec::new("dup"));
    assert_eq!(
        store
            .keys()
            .import(&OP, &orgs[0], &[dup])
            .unwrap_err()
            .kind(),
        ErrorKind::Conflict
    );
    let rolled = store.org_configs().retrieve(&OP, &orgs[0]).unwrap();
    assert_eq!(
        (rolled.version, rolled.config.rate_limiting().rpm),
        (4, Some(100))
    );

    // Writing continues where it left off: the next version and audit sequence numbers.
    // (Audit numbers are per org; an empty patch would be no change, so set something.)
    let last_seq = after.audit[0].iter().map(|e| e.seq).max().unwrap();
    assert_eq!(
        store
            .org_configs()
            .update(&OP, &orgs[0], r#"{"routing":{"after_reopen":true}}"#)
            .unwrap()
            .version,
        5
    );
    assert!(audit_all(&store, &orgs[0])[0].seq > last_seq);
    let owners = store.orgs().get(&OP, &orgs[1]).unwrap().owner_count;
    assert_eq!(owners, 2);
}

#[cfg(unix)]
#[test]
fn a_new_store_file_is_private() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    let store = open_file(dir.path());
    create_org(&store, "a", "ann@x.io");
    drop(store);
    let mode = std::fs::metadata(db_path(dir.path()))
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o600, "mode {:o}", mode & 0o777);
}

#[test]
fn a_store_open_elsewhere_is_busy() {
    let dir = tempfile::tempdir().unwrap();
    let path = db_path(dir.path());
    let first = open_file(dir.path());
    create_org(&first, "a", "ann@x.io");

    let err = try_open(&path)
        .err()
        .expect("a second open of the same file must fail");
    assert_eq!(err.kind(), ErrorKind::Busy, "{err}");
    assert_eq!(err.field(), "db");
    let msg = err.to_string();
    assert!(
        msg.contains(&path.display().to_string()),
        "the message names the file: {msg}"
    );
    assert!(
        msg.contains("already open"),
        "the message says what is wrong: {msg}"
    );
    assert!(
        msg.contains("this process"),
        "the message covers a second Store in one process: {msg}"
    );

    // The first store is unaffected, and once it is closed the file opens again.
    assert_eq!(first.orgs().list(&OP).unwrap().len(), 1);
    drop(first);
    let again = try_open(&path).unwrap();
    assert_eq!(again.orgs().list(&OP).unwrap().len(), 1);
}

#[test]
fn a_garbage_file_is_corrupt_not_a_panic() {
    let dir = tempfile::tempdir().unwrap();
    let cases: Vec<(&str, Vec<u8>)> = vec![
        ("text", b"this is not a database\n".to_vec()),
        ("one byte", vec![0x42]),
        ("zeros", vec![0; 8192]),
        (
            "pattern",
            (0..64 * 1024)
                .map(|i: u32| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
                .collect(),
        ),
        ("ff", vec![0xff; 4096]),
    ];
    for (name, bytes) in cases {
        let path = dir.path().join(format!("{}.redb", name.replace(' ', "-")));
        std::fs::write(&path, &bytes).unwrap();
        let err = try_open(&path)
            .err()
            .unwrap_or_else(|| panic!("{name}: a garbage file opened"));
        assert_eq!(err.kind(), ErrorKind::Corrupt, "{name}: {err}");
        assert!(
            err.to_string().contains(&path.display().to_string()),
            "{name}: {err}"
        );
        // The file is left as it was: nothing is "repaired" away.
        assert_eq!(
            std::fs::read(&path).unwrap(),
            bytes,
            "{name}: the file was modified"
        );
    }
}

#[test]
fn a_damaged_store_file_is_an_error_not_a_panic() {
    let dir = tempfile::tempdir().unwrap();
    let path = db_path(dir.path());
    {
        let store = open_file(dir.path());
        let f = Fixture::with_store(store);
        f.create_key("k");
    }
    let good = std::fs::read(&path).unwrap();
    // Overwrite the header region with garbage.
    let mut bad = good.clone();
    bad[..512]
        .iter_mut()
        .enumerate()
        .for_each(|(i, b)| *b = (i as u8).wrapping_mul(37) ^ 0x5a);
    std::fs::write(&path, &bad).unwrap();
    let err = try_open(&path)
        .err()
        .expect("a store with a garbage header must not open");
    assert_eq!(err.kind(), ErrorKind::Corrupt, "{err}");
}

#[test]
fn a_store_from_a_newer_orgstore_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let path = db_path(dir.path());
    drop(open_file(dir.path()));
    {
        // What a future orgstore would leave behind: a higher store format in `meta`.
        let db = redb::Database::create(&path).unwrap();
        let txn = db.begin_write().unwrap();
        {
            let mut meta = txn
                .open_table(redb::TableDefinition::<&str, u64>::new("meta"))
                .unwrap();
            meta.insert("format", 99).unwrap();
        }
        txn.commit().unwrap();
    }
    let err = try_open(&path).err().expect("a newer store must not open");
    assert_eq!(
        (err.kind(), err.field()),
        (ErrorKind::TooNew, "db"),
        "{err}"
    );
    assert!(err.message().contains("upgrade orgstore"), "{err}");
}

#[test]
fn a_missing_directory_is_a_storage_error() {
    let dir = tempfile::tempdir().unwrap();
    let err = try_open(&dir.path().join("no/such/dir/x.redb"))
        .err()
        .unwrap();
    assert_eq!((err.kind(), err.field()), (ErrorKind::Storage, "db"));
    assert!(err.message().contains("directory exists"), "{err}");
}
