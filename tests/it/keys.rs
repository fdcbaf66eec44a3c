//! Virtual keys: shown once, never stored, checksummed, random ids, import all or nothing,
//! rotate, revoke, spec validation, and tenancy that metadata cannot move.

use std::collections::HashSet;

use crate::common::*;
use orgstore::{
    Budget, ErrorKind, ImportKey, KEY_LEN, KEY_PREFIX, KeyFormatError, KeyInfo, KeySource, KeySpec,
    KeyStatus, Period, Timestamp, Usd, check_key_format, display_prefix,
};

fn future() -> Timestamp {
    Timestamp::parse("2099-01-01T00:00:00Z").unwrap()
}

fn full_spec() -> KeySpec {
    KeySpec::new("backend-service")
        .rpm(100)
        .tpm(50_000)
        .models(["gpt-4o", "gpt-4o-mini"])
        .ips(["10.0.0.0/8", "2001:db8::/32"])
        .budget(Budget::new(Usd::parse("200").unwrap(), Period::Monthly))
        .expires_at(future())
        .meta("team", "backend")
}

#[test]
fn the_full_key_is_shown_once_and_only_its_prefix_is_kept() {
    let f = Fixture::new();
    let created = f.store.keys().create(&OP, &f.org, full_spec()).unwrap();
    let key = created.key.expose().to_owned();
    assert!(key.starts_with(KEY_PREFIX));
    assert_eq!(key.len(), KEY_LEN);
    assert_eq!(check_key_format(&key), Ok(()));
    assert_eq!(created.info.prefix, display_prefix(&key));
    assert_eq!(created.info.prefix, format!("{}...", &key[..12]));
    assert_eq!(created.key.digest(), sha2_digest(&key));

    let info = &created.info;
    assert_eq!(
        (info.org.clone(), info.status, info.source, info.version),
        (f.org.clone(), KeyStatus::Active, KeySource::Generated, 1)
    );
    assert_eq!(info.spec, full_spec());
    assert_eq!(info.created_by, "operator");
    assert_eq!((info.revoked_at, info.rotated_at), (None, None));

    let listed = f.store.keys().list(&OP, &f.org).unwrap();
    assert_eq!(listed, std::slice::from_ref(&created.info));
    assert_eq!(f.store.keys().show(&OP, &info.id).unwrap(), created.info);

    // Nothing printable carries the secret part of the key (all after the prefix's 12 characters).
    let secret = &key[12..];
    // The serde form exists with the `serde` feature.
    #[cfg(feature = "serde")]
    let json = serde_json::to_string(&listed).unwrap();
    #[cfg(not(feature = "serde"))]
    let json = String::new();
    let printed = format!("{created:?} {listed:?} {:?} {json}", f.audit());
    assert!(!printed.contains(secret), "{printed}");
    assert!(printed.contains(&created.info.prefix));
    let log = f.audit();
    assert_eq!(log[0].action, "CreateKey");
    assert_eq!(log[0].target, info.id.to_string());
}

fn sha2_digest(key: &str) -> [u8; 32] {
    use sha2::{Digest, Sha256};
    Sha256::digest(key.as_bytes()).into()
}

#[test]
fn the_full_key_never_reaches_the_store_file() {
    let dir = tempfile::tempdir().unwrap();
    let store = open_file(dir.path());
    let f = Fixture::with_store(store);
    let mut keys = Vec::new();
    let mut digests = Vec::new();
    for i in 0..20 {
        let created = f
            .store
            .keys()
            .create(&OP, &f.org, KeySpec::new(format!("k{i}")))
            .unwrap();
        keys.push(created.key.expose().to_owned());
        digests.push(created.key.digest());
        if i % 5 == 0 {
            // The secret a rotation replaces and the one it issues are both kept out.
            let rotated = f.store.keys().rotate(&OP, &created.info.id).unwrap();
            keys.push(rotated.key.expose().to_owned());
            digests.push(rotated.key.digest());
        }
    }
    drop(f);

    let bytes = std::fs::read(db_path(dir.path())).unwrap();
    for key in &keys {
        let body = &key[KEY_PREFIX.len()..];
        assert!(
            !contains_bytes(&bytes, key.as_bytes()),
            "full key found in the file"
        );
        assert!(
            !contains_bytes(&bytes, body.as_bytes()),
            "key body found in the file"
        );
        // Not even a 16-character piece of the part that the display prefix does not show.
        for piece in key.as_bytes()[12..].chunks_exact(16) {
            assert!(
                !contains_bytes(&bytes, piece),
                "a piece of a key found in the file"
            );
        }
    }
    // The search is meaningful: what the store does keep is in the file.
    for d in &digests[digests.len() - 3..] {
        assert!(
            contains_bytes(&bytes, d),
            "digest not found: the search looked at the wrong bytes"
        );
    }
}

#[test]
fn the_checksum_rejects_a_one_character_typo() {
    let f = Fixture::new();
    let key = f.create_key("k").key.expose().to_owned();
    let alphabet = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";
    let mut tried = 0;
    for i in KEY_PREFIX.len()..key.len() {
        for &c in alphabet {
            if key.as_bytes()[i] == c {
                continue;
            }
            let mut typo = key.clone().into_bytes();
            typo[i] = c;
            let typo = String::from_utf8(typo).unwrap();
            assert_eq!(
                check_key_format(&typo),
                Err(KeyFormatError::Checksum),
                "typo at {i}"
            );
            tried += 1;
        }
    }
    assert_eq!(tried, (KEY_LEN - KEY_PREFIX.len()) * 61);

    // Swapped neighbours are caught too.
    for i in KEY_PREFIX.len()..key.len() - 1 {
        let mut swapped = key.clone().into_bytes();
        if swapped[i] == swapped[i + 1] {
            continue;
        }
        swapped.swap(i, i + 1);
        assert_eq!(
            check_key_format(std::str::from_utf8(&swapped).unwrap()),
            Err(KeyFormatError::Checksum)
        );
    }
    // A dropped, added or foreign character fails on shape alone.
    assert_eq!(
        check_key_format(&key[..key.len() - 1]),
        Err(KeyFormatError::Length)
    );
    assert_eq!(
        check_key_format(&key[..key.len() - 2]),
        Err(KeyFormatError::Length)
    );
    assert_eq!(
        check_key_format(&format!("{key}x")),
        Err(KeyFormatError::Length)
    );
    let mut foreign = key.clone().into_bytes();
    foreign[20] = b'-';
    assert_eq!(
        check_key_format(std::str::from_utf8(&foreign).unwrap()),
        Err(KeyFormatError::Charset)
    );
    assert_eq!(
        check_key_format(&key.replacen("sk-agentcc-", "sk-agentcx-", 1)),
        Err(KeyFormatError::Prefix)
    );
    // The errors say what to do and never echo the key.
    assert!(KeyFormatError::Checksum.to_string().contains("mistyped"));
}

#[test]
fn key_ids_are_random_and_unique() {
    let f = Fixture::new();
    let ids: Vec<u128> = (0..1000)
        .map(|i| {
            let id = f
                .store
                .keys()
                .create(&OP, &f.org, KeySpec::new(format!("k{i}")))
                .unwrap()
                .info
                .id;
            assert!(id.to_string().starts_with("key_") && id.to_string().len() == 36);
            u128::from_be_bytes(*id.as_bytes())
        })
        .collect();
    assert_eq!(
        ids.iter().collect::<HashSet<_>>().len(),
        1000,
        "duplicate ids"
    );
    // Not a counter: consecutive ids are not neighbours and not ordered.
    assert!(
        ids.windows(2).all(|w| w[0].abs_diff(w[1]) > 1_000_000),
        "sequential ids"
    );
    let ascending = ids.windows(2).filter(|w| w[0] < w[1]).count();
    assert!(
        (300..700).contains(&ascending),
        "ids are ordered: {ascending} of 999 ascending"
    );
    // Every byte carries randomness: the top and bottom bytes take many values.
    for shift in [0, 60, 120] {
        let distinct: HashSet<u8> = ids.iter().map(|v| (v >> shift) as u8).collect();
        assert!(
            distinct.len() > 200,
            "byte at bit {shift}: only {} values",
            distinct.len()
        );
    }
    assert_eq!(f.store.keys().list(&OP, &f.org).unwrap().len(), 1000);
}

#[test]
fn import_one_key_by_digest() {
    let f = Fixture::new();
    let legacy = legacy_key(7);
    assert_eq!(
        check_key_format(&legacy),
        Ok(()),
        "upstream keys pass the shape check"
    );
    let spec = KeySpec::new("migrated").rpm(60).meta("source", "upstream");
    let out = f
        .store
        .keys()
        .import(
            &OP,
            &f.org,
            &[ImportKey::new(sha256_hex(&legacy), spec.clone())],
        )
        .unwrap();
    assert_eq!(out.len(), 1);
    let info = &out[0];
    assert_eq!(
        (info.source, info.status, info.version, &info.spec),
        (KeySource::Imported, KeyStatus::Active, 1, &spec)
    );
    assert_eq!(info.org, f.org);
    assert!(!info.prefix.contains(&legacy[12..]));
    assert_eq!(f.store.keys().show(&OP, &info.id).unwrap(), *info);
    assert_eq!(f.store.keys().list(&OP, &f.org).unwrap(), out);
    let log = f.audit();
    assert_eq!(
        (log[0].action.as_str(), log[0].target.clone()),
        ("CreateKey", info.id.to_string())
    );

    // Upper-case hex is the same digest.
    let err = f
        .store
        .keys()
        .import(
            &OP,
            &f.org,
            &[ImportKey::new(
                sha256_hex(&legacy).to_uppercase(),
                KeySpec::new("again"),
            )],
        )
        .unwrap_err();
    assert_eq!(
        (err.kind(), err.field()),
        (ErrorKind::Conflict, "keys[0].sha256")
    );
}

#[test]
fn import_many_in_one_transaction() {
    let f = Fixture::new();
    let batch: Vec<ImportKey> = (0..50)
        .map(|i| ImportKey::new(sha256_hex(&legacy_key(i)), KeySpec::new(format!("k{i}"))))
        .collect();
    let out = f.store.keys().import(&OP, &f.org, &batch).unwrap();
    assert_eq!(out.len(), 50);
    assert_eq!(out.iter().map(|k| k.id).collect::<HashSet<_>>().len(), 50);
    assert_eq!(
        out.iter().map(|k| k.spec.name.as_str()).collect::<Vec<_>>()[..3],
        ["k0", "k1", "k2"]
    );
    assert_eq!(f.store.keys().list(&OP, &f.org).unwrap().len(), 50);
    // One audit entry for the whole batch.
    let log = f.audit();
    assert_eq!(log.len(), 2);
    assert_eq!(
        (log[0].action.as_str(), log[0].target.as_str()),
        ("CreateKey", "50 keys")
    );
    assert!(log[0].summary.contains("imported 50 keys"));
    // An empty import is allowed and imports nothing.
    assert_eq!(
        f.store.keys().import(&OP, &f.org, &[]).unwrap(),
        Vec::<KeyInfo>::new()
    );
}

#[test]
fn import_is_all_or_nothing() {
    let f = Fixture::new();
    let existing = f.create_key("existing");
    let good = |i: u64| ImportKey::new(sha256_hex(&legacy_key(i)), KeySpec::new(format!("k{i}")));
    let audit_before = f.audit();
    let list_before = f.store.keys().list(&OP, &f.org).unwrap();

    let cases: Vec<(Vec<ImportKey>, ErrorKind, &str)> = vec![
        // A malformed digest in the middle.
        (
            vec![
                good(1),
                ImportKey::new("abc123", KeySpec::new("bad")),
                good(2),
            ],
            ErrorKind::Invalid,
            "keys[1].sha256",
        ),
        (
            vec![
                good(1),
                ImportKey::new("z".repeat(64), KeySpec::new("bad")),
                good(2),
            ],
            ErrorKind::Invalid,
            "keys[1].sha256",
        ),
        // The same digest twice in one batch.
        (
            vec![good(1), good(2), good(1)],
            ErrorKind::Invalid,
            "keys[2].sha256",
        ),
        // A digest the store already has, in the middle of the batch.
        (
            vec![
                good(1),
                ImportKey::new(hex(&existing.key.digest()), KeySpec::new("dup")),
                good(2),
            ],
            ErrorKind::Conflict,
            "keys[1].sha256",
        ),
        // A bad spec in the middle.
        (
            vec![
                good(1),
                ImportKey::new(sha256_hex("x"), KeySpec::new("bad").rpm(0)),
                good(2),
            ],
            ErrorKind::Invalid,
            "keys[1].rate_limit_rpm",
        ),
        (
            vec![
                good(1),
                good(2),
                ImportKey::new(sha256_hex("y"), KeySpec::new("")),
            ],
            ErrorKind::Invalid,
            "keys[2].name",
        ),
    ];
    for (batch, kind, field) in cases {
        let err = f.store.keys().import(&OP, &f.org, &batch).unwrap_err();
        assert_eq!((err.kind(), err.field()), (kind, field), "{err}");
        assert_eq!(
            f.store.keys().list(&OP, &f.org).unwrap(),
            list_before,
            "{field}: something was imported"
        );
        assert_eq!(f.audit(), audit_before);
    }
    // The good keys of the failed batches were not left behind: they import fine now.
    f.store
        .keys()
        .import(&OP, &f.org, &[good(1), good(2)])
        .unwrap();
}

#[test]
fn a_duplicate_digest_is_rejected() {
    let f = Fixture::new();
    let other = create_org(&f.store, "other", "o@other.io");
    let digest = sha256_hex(&legacy_key(1));
    f.store
        .keys()
        .import(&OP, &f.org, &[ImportKey::new(&digest, KeySpec::new("a"))])
        .unwrap();
    // Digests are unique across the whole store, not just per org.
    for target in [&f.org, &other] {
        let err = f
            .store
            .keys()
            .import(&OP, target, &[ImportKey::new(&digest, KeySpec::new("b"))])
            .unwrap_err();
        assert_eq!(
            (err.kind(), err.field()),
            (ErrorKind::Conflict, "keys[0].sha256")
        );
        assert!(err.message().contains("already exists"), "{err}");
    }
    assert!(f.store.keys().list(&OP, &other).unwrap().is_empty());
    assert_eq!(f.store.keys().list(&OP, &f.org).unwrap().len(), 1);
}

#[test]
fn rotate_issues_a_new_secret_for_the_same_key() {
    let f = Fixture::new();
    let created = f.store.keys().create(&OP, &f.org, full_spec()).unwrap();
    let old_digest = created.key.digest();
    let rotated = f.store.keys().rotate(&OP, &created.info.id).unwrap();

    assert_ne!(rotated.key.expose(), created.key.expose());
    assert_eq!(check_key_format(rotated.key.expose()), Ok(()));
    let (old, new) = (&created.info, &rotated.info);
    assert_eq!(
        (new.id, &new.org, &new.spec, new.created_at),
        (old.id, &old.org, &old.spec, old.created_at)
    );
    assert_eq!(new.version, 2);
    assert!(new.rotated_at.is_some());
    assert_eq!(new.prefix, display_prefix(rotated.key.expose()));
    assert_eq!(f.store.keys().show(&OP, &old.id).unwrap(), *new);
    assert_eq!(f.store.keys().list(&OP, &f.org).unwrap().len(), 1);
    let log = f.audit();
    assert_eq!(log[0].action, "ManageKey");
    assert!(!format!("{log:?}").contains(&rotated.key.expose()[12..]));

    // The new digest belongs to the key; the old one is retired (never accepted again).
    let err = f
        .store
        .keys()
        .import(
            &OP,
            &f.org,
            &[ImportKey::new(
                hex(&rotated.key.digest()),
                KeySpec::new("x"),
            )],
        )
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Conflict);
    // The old digest is retired for good: importing it cannot bring the old secret back.
    let err = f
        .store
        .keys()
        .import(
            &OP,
            &f.org,
            &[ImportKey::new(hex(&old_digest), KeySpec::new("x"))],
        )
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Conflict, "{err}");

    // An imported key can be rotated into a generated-format secret.
    let imported = f
        .store
        .keys()
        .import(
            &OP,
            &f.org,
            &[ImportKey::new(sha256_hex("legacy"), KeySpec::new("l"))],
        )
        .unwrap();
    let r = f.store.keys().rotate(&OP, &imported[0].id).unwrap();
    assert_eq!(check_key_format(r.key.expose()), Ok(()));
    assert_eq!(r.info.version, 2);
}

#[test]
fn revoke_is_final() {
    let f = Fixture::new();
    let k = f.create_key("k");
    let revoked = f.store.keys().revoke(&OP, &k.info.id).unwrap();
    assert_eq!((revoked.status, revoked.version), (KeyStatus::Revoked, 2));
    assert!(revoked.revoked_at.is_some());
    assert_eq!(f.store.keys().show(&OP, &k.info.id).unwrap(), revoked);
    assert_eq!(
        f.store.keys().list(&OP, &f.org).unwrap(),
        std::slice::from_ref(&revoked),
        "revoked keys stay listed"
    );

    let err = f.store.keys().revoke(&OP, &k.info.id).unwrap_err();
    assert_eq!((err.kind(), err.field()), (ErrorKind::Conflict, "key id"));
    assert_eq!(
        f.store.keys().delete(&OP, &k.info.id).unwrap_err().kind(),
        ErrorKind::Conflict
    );
    let err = f.store.keys().rotate(&OP, &k.info.id).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Conflict);
    assert!(err.message().contains("create a new key"), "{err}");
    assert_eq!(
        f.store.keys().show(&OP, &k.info.id).unwrap(),
        revoked,
        "failed calls changed nothing"
    );

    // `delete` is the SDK's name for revoke.
    let k2 = f.create_key("k2");
    assert_eq!(
        f.store.keys().delete(&OP, &k2.info.id).unwrap().status,
        KeyStatus::Revoked
    );
    let actions: Vec<String> = f.audit().into_iter().take(2).map(|e| e.action).collect();
    assert_eq!(actions, ["ManageKey", "CreateKey"]);
}

#[test]
fn unknown_keys_and_orgs_are_not_found() {
    let f = Fixture::new();
    let ghost = orgstore::KeyId::random();
    for err in [
        f.store.keys().show(&OP, &ghost).unwrap_err(),
        f.store.keys().revoke(&OP, &ghost).unwrap_err(),
        f.store.keys().rotate(&OP, &ghost).unwrap_err(),
        f.store
            .keys()
            .update(&OP, &ghost, KeySpec::new("x"))
            .unwrap_err(),
    ] {
        assert_eq!((err.kind(), err.field()), (ErrorKind::NotFound, "key id"));
    }
    let err = f
        .store
        .keys()
        .create(&OP, &org("nope"), KeySpec::new("x"))
        .unwrap_err();
    assert_eq!((err.kind(), err.field()), (ErrorKind::NotFound, "org"));
    let err = f
        .store
        .keys()
        .import(
            &OP,
            &org("nope"),
            &[ImportKey::new(sha256_hex("a"), KeySpec::new("x"))],
        )
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::NotFound);
    assert!(orgstore::KeyId::parse("key_123").is_err());
}

#[test]
fn specs_are_validated_naming_the_field() {
    let f = Fixture::new();
    let past = Timestamp::parse("2001-01-01T00:00:00Z").unwrap();
    let many: Vec<(String, String)> = (0..65).map(|i| (format!("k{i}"), "v".into())).collect();
    let cases: Vec<(KeySpec, &str, &str)> = vec![
        (KeySpec::new("k").rpm(0), "rate_limit_rpm", "at least 1"),
        (KeySpec::new("k").tpm(0), "rate_limit_tpm", "at least 1"),
        (
            KeySpec::new("k").ips(["10.0.0.0/8", "10.0.0.0/33"]),
            "allowed_ips[1]",
            "10.0.0.0/33",
        ),
        (
            KeySpec::new("k").ips(["not-an-ip"]),
            "allowed_ips[0]",
            "not-an-ip",
        ),
        (KeySpec::new("k").expires_at(past), "expires_at", "future"),
        (KeySpec::new(""), "name", "1 to 128"),
        (KeySpec::new("   "), "name", "1 to 128"),
        (KeySpec::new("n".repeat(129)), "name", "1 to 128"),
        (KeySpec::new("bad\nname"), "name", "control"),
        (
            KeySpec::new("k").models(["gpt-4o", " "]),
            "allowed_models[1]",
            "model name",
        ),
        (KeySpec::new("k").meta("", "v"), "metadata", "1 to 64"),
        (
            KeySpec::new("k").meta("k".repeat(65), "v"),
            "metadata",
            "1 to 64",
        ),
        (
            KeySpec::new("k").meta("k", "v".repeat(1025)),
            "metadata",
            "1024",
        ),
        (
            KeySpec::new("k").meta("k", "a\u{0}b"),
            "metadata",
            "control",
        ),
        (
            many.iter()
                .fold(KeySpec::new("k"), |s, (k, v)| s.meta(k, v)),
            "metadata",
            "64 entries",
        ),
    ];
    for (spec, field, hint) in cases {
        let err = f.store.keys().create(&OP, &f.org, spec).unwrap_err();
        assert_eq!(
            (err.kind(), err.field()),
            (ErrorKind::Invalid, field),
            "{err}"
        );
        assert!(err.message().contains(hint), "{hint} missing from: {err}");
    }
    assert!(f.store.keys().list(&OP, &f.org).unwrap().is_empty());
    assert_eq!(f.audit().len(), 1, "only the org creation");

    // The limits themselves are fine, and values are normalised.
    let edge = KeySpec::new(format!("  {}  ", "n".repeat(128)))
        .rpm(1)
        .tpm(1)
        .ips(["10.1.2.3/8", "203.0.113.7", "2001:db8::1"])
        .models([" gpt-4o "])
        .meta("k".repeat(64), "v".repeat(1024));
    let edge = (0..63).fold(edge, |s, i| s.meta(format!("m{i}"), ""));
    let info = f.store.keys().create(&OP, &f.org, edge).unwrap().info;
    assert_eq!(info.spec.name, "n".repeat(128));
    assert_eq!(
        info.spec.allowed_ips,
        ["10.0.0.0/8", "203.0.113.7/32", "2001:db8::1/128"]
    );
    assert_eq!(info.spec.allowed_models, ["gpt-4o"]);
    assert_eq!(info.spec.metadata.len(), 64);

    // Update validates the same way and changes nothing on failure.
    let err = f
        .store
        .keys()
        .update(&OP, &info.id, KeySpec::new("k").rpm(0))
        .unwrap_err();
    assert_eq!(err.field(), "rate_limit_rpm");
    assert_eq!(f.store.keys().show(&OP, &info.id).unwrap(), info);
}

#[test]
fn metadata_never_moves_a_key_to_another_org() {
    let f = Fixture::new();
    let other = create_org(&f.store, "other", "o@other.io");
    let spec = KeySpec::new("sneaky")
        .meta("org_id", other.as_str())
        .meta("org", other.as_str());
    let created = f.store.keys().create(&OP, &f.org, spec).unwrap();
    assert_eq!(created.info.org, f.org);
    assert_eq!(created.info.spec.metadata["org_id"], "other");
    assert_eq!(f.store.keys().list(&OP, &f.org).unwrap().len(), 1);
    assert!(f.store.keys().list(&OP, &other).unwrap().is_empty());

    // Editing the metadata later does not move it either.
    let plain = f.create_key("plain");
    let updated = f
        .store
        .keys()
        .update(
            &OP,
            &plain.info.id,
            KeySpec::new("plain").meta("org_id", "other"),
        )
        .unwrap();
    assert_eq!((updated.org.clone(), updated.version), (f.org.clone(), 2));
    assert_eq!(f.store.keys().show(&OP, &plain.info.id).unwrap().org, f.org);
    assert!(f.store.keys().list(&OP, &other).unwrap().is_empty());

    // Nor does an import.
    let imported = f
        .store
        .keys()
        .import(
            &OP,
            &other,
            &[ImportKey::new(
                sha256_hex("i"),
                KeySpec::new("i").meta("org_id", ORG),
            )],
        )
        .unwrap();
    assert_eq!(imported[0].org, other);
    assert_eq!(f.store.keys().list(&OP, &f.org).unwrap().len(), 2);
}

#[test]
fn keys_of_one_org_are_listed_only_there() {
    let f = Fixture::new();
    let other = create_org(&f.store, "other", "o@other.io");
    let mine: HashSet<_> = (0..5)
        .map(|i| f.create_key(&format!("m{i}")).info.id)
        .collect();
    let theirs = f
        .store
        .keys()
        .create(&OP, &other, KeySpec::new("t"))
        .unwrap()
        .info
        .id;
    let listed: HashSet<_> = f
        .store
        .keys()
        .list(&OP, &f.org)
        .unwrap()
        .into_iter()
        .map(|k| k.id)
        .collect();
    assert_eq!(listed, mine);
    assert_eq!(
        f.store
            .keys()
            .list(&OP, &other)
            .unwrap()
            .into_iter()
            .map(|k| k.id)
            .collect::<Vec<_>>(),
        [theirs]
    );
    assert_eq!(f.store.keys().show(&OP, &theirs).unwrap().org, other);
}
