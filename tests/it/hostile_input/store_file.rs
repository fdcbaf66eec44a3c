//! A hostile store file: corrupt, from a newer format, opened twice, its key file damaged or lost.

use super::*;

fn file_store(dir: &Path) -> (std::path::PathBuf, String) {
    let path = dir.join("s.redb");
    let store = Store::open(&path).unwrap();
    let acme = org("acme");
    store
        .orgs()
        .create(&OP, &acme, "Acme", &email("o@acme.io"))
        .unwrap();
    for i in 0..50 {
        store
            .keys()
            .create(&OP, &acme, KeySpec::new(format!("k{i}")))
            .unwrap();
    }
    let state = observe(&store);
    (path, state)
}

/// Opens `path` and reads everything; any failure must be an error, never a panic.
fn open_and_read(path: &Path) -> Result<String, Error> {
    catch_unwind(AssertUnwindSafe(|| {
        let store = Store::open(path)?;
        let mut out = String::new();
        for o in store.orgs().list(&OP)? {
            out.push_str(&format!("{:?}", store.keys().list(&OP, &o.id)?));
            out.push_str(&format!("{:?}", store.org_configs().history(&OP, &o.id)?));
        }
        Ok(out)
    }))
    .unwrap_or_else(|_| panic!("opening a damaged store panicked"))
}

#[test]
fn corrupt_store_file() {
    let dir = tempfile::tempdir().unwrap();
    let (path, _) = file_store(dir.path());
    let good = std::fs::read(&path).unwrap();
    // Garbage instead of a store: refused, the file left as it was.
    let garbage: Vec<u8> = (0..good.len())
        .map(|i| (i as u32).wrapping_mul(2_654_435_761).to_le_bytes()[2])
        .collect();
    std::fs::write(&path, &garbage).unwrap();
    let e = open_and_read(&path).unwrap_err();
    assert_eq!((e.kind(), e.field()), (ErrorKind::Corrupt, "db"), "{e}");
    assert!(e.message().contains("backup"), "{e}");
    assert_eq!(std::fs::read(&path).unwrap(), garbage);
    // Truncated files and flipped bytes anywhere: an error or a consistent store, never a
    // panic. (redb checksums its pages; what it cannot detect must still decode or fail.)
    let mut outcomes = (0, 0);
    for cut in [good.len() / 2, good.len() - 1, 4096, 100] {
        std::fs::write(&path, &good[..cut]).unwrap();
        match open_and_read(&path) {
            Ok(_) => outcomes.0 += 1,
            Err(e) => {
                assert!(
                    matches!(e.kind(), ErrorKind::Corrupt | ErrorKind::Storage),
                    "{e}"
                );
                outcomes.1 += 1;
            }
        }
    }
    for i in 0..40 {
        let mut bad = good.clone();
        let at = (i * 7919 + 4096) % bad.len();
        bad[at..(at + 8).min(good.len())]
            .iter_mut()
            .for_each(|b| *b ^= 0xa5);
        std::fs::write(&path, &bad).unwrap();
        match open_and_read(&path) {
            Ok(_) => outcomes.0 += 1,
            Err(e) => {
                assert!(
                    matches!(
                        e.kind(),
                        ErrorKind::Corrupt | ErrorKind::Storage | ErrorKind::TooNew
                    ),
                    "{e}"
                );
                outcomes.1 += 1;
            }
        }
    }
    eprintln!(
        "damaged files: {} opened consistently, {} refused",
        outcomes.0, outcomes.1
    );
}

#[test]
fn store_file_from_a_newer_format() {
    let dir = tempfile::tempdir().unwrap();
    let (path, _) = file_store(dir.path());
    let meta = redb::TableDefinition::<&str, u64>::new("meta");
    let set_format = |v: u64| {
        let db = redb::Database::create(&path).unwrap();
        let txn = db.begin_write().unwrap();
        txn.open_table(meta).unwrap().insert("format", v).unwrap();
        txn.commit().unwrap();
    };
    set_format(99);
    let e = open_and_read(&path).unwrap_err();
    assert_eq!((e.kind(), e.field()), (ErrorKind::TooNew, "db"), "{e}");
    assert!(
        e.message().contains("format 99") && e.message().contains("upgrade orgstore"),
        "{e}"
    );
    {
        // Nothing was changed: the format is still the newer one.
        use redb::ReadableDatabase;
        let db = redb::Database::create(&path).unwrap();
        let r = db.begin_read().unwrap();
        assert_eq!(
            r.open_table(meta)
                .unwrap()
                .get("format")
                .unwrap()
                .unwrap()
                .value(),
            99
        );
    }
    // One record written by a newer orgstore (record format byte 2): refused with TooNew.
    set_format(1);
    {
        let db = redb::Database::create(&path).unwrap();
        let txn = db.begin_write().unwrap();
        txn.open_table(redb::TableDefinition::<&str, &[u8]>::new("orgs"))
            .unwrap()
            .insert("future", [2u8, 0, 0].as_slice())
            .unwrap();
        txn.commit().unwrap();
    }
    let e = open_and_read(&path).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::TooNew, "{e}");
    assert!(e.message().contains("upgrade orgstore"), "{e}");
}

#[test]
fn second_process_opening_the_same_file() {
    let dir = tempfile::tempdir().unwrap();
    let (path, state) = file_store(dir.path());
    let first = Store::open(&path).unwrap();
    // A second open in this process.
    let e = Store::open(&path)
        .err()
        .expect("second open in-process succeeded");
    assert_eq!((e.kind(), e.field()), (ErrorKind::Busy, "db"), "{e}");
    // A second process (the CLI) writing to the same file.
    let out = crate::common::orgstore(&[
        "org", "create", "other", "--name", "Other", "--owner", "o@o.io",
    ])
    .db(&path)
    .run();
    assert!(!out.status.success());
    let err = out.stderr;
    assert!(err.contains("already open"), "{err}");
    assert_eq!(observe(&first), state);
    drop(first);
    let again = Store::open(&path).unwrap();
    assert_eq!(observe(&again), state);
    assert!(again.orgs().get(&OP, &org("other")).is_err());
}

#[test]
fn damaged_or_lost_store_key_file() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("s.redb");
    let key_file = dir.path().join("s.redb.key");
    let acme = org("acme");
    let key = {
        let store = Store::open(&path).unwrap();
        store
            .orgs()
            .create(&OP, &acme, "Acme", &email("o@acme.io"))
            .unwrap();
        store
            .org_configs()
            .update(&OP, &acme, r#"{"providers":{"openai":{"api_key":"sk-lost-0123456789abcdef","base_url":"https://a"}}}"#)
            .unwrap();
        store
            .keys()
            .create(&OP, &acme, KeySpec::new("k"))
            .unwrap()
            .key
    };
    // A damaged key file: refused, naming the file; nothing else touched.
    let saved = std::fs::read(&key_file).unwrap();
    std::fs::write(&key_file, "garbage").unwrap();
    let e = Store::open(&path)
        .err()
        .expect("opened with a damaged key file");
    assert_eq!(
        (e.kind(), e.field()),
        (ErrorKind::Corrupt, "key file"),
        "{e}"
    );
    assert!(e.message().contains("s.redb.key"), "{e}");
    // A lost key file: the store opens (with a new key), everything but the old secret works.
    std::fs::remove_file(&key_file).unwrap();
    {
        let store = Store::open(&path).unwrap();
        let ip = IpAddr::V4(Ipv4Addr::LOCALHOST);
        assert!(
            store
                .gateway()
                .check(&Request::new(key.expose(), "m", ip))
                .is_ok()
        );
        let masked = store
            .org_configs()
            .retrieve(&OP, &acme)
            .unwrap()
            .config
            .masked_value();
        assert_eq!(masked["providers"]["openai"]["base_url"], "https://a");
        let e = store.org_configs().reveal(&OP, &acme, None).unwrap_err();
        assert_eq!(
            (e.kind(), e.field()),
            (ErrorKind::Corrupt, "config.providers.openai.api_key"),
            "{e}"
        );
        // An update that leaves the unreadable secret in place is refused...
        let e = store
            .org_configs()
            .update(&OP, &acme, r#"{"routing":{"x":1}}"#)
            .unwrap_err();
        assert_eq!(e.field(), "config.providers.openai.api_key", "{e}");
        assert!(e.message().contains("set this value again"), "{e}");
        // ...one that sets it again repairs the config.
        store
            .org_configs()
            .update(
                &OP,
                &acme,
                r#"{"providers":{"openai":{"api_key":"sk-new-0123456789abcdef"}}}"#,
            )
            .unwrap();
        let revealed = crate::common::revealed(&store, &acme, None);
        assert_eq!(
            revealed["providers"]["openai"]["api_key"],
            "sk-new-0123456789abcdef"
        );
    }
    // The original key file, restored, reads the old version again (but not the new one).
    std::fs::write(&key_file, &saved).unwrap();
    let store = Store::open(&path).unwrap();
    let v2 = crate::common::revealed(&store, &acme, Some(2));
    assert_eq!(
        v2["providers"]["openai"]["api_key"],
        "sk-lost-0123456789abcdef"
    );
    assert!(store.org_configs().reveal(&OP, &acme, Some(3)).is_err());
}
