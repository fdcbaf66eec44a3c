//! Bad input: for each row of the table in `docs/hostile-input.md`, a clear error that names
//! the field, nothing changed in the store, and no panic.

use std::net::{IpAddr, Ipv4Addr};
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::path::Path;

use orgstore::{
    Budget, Email, Error, ErrorKind, ImportKey, KeyFormatError, KeyId, KeySpec, OrgId, Period,
    Request, Role, SecretKey, Store, Timestamp, Usd, key_from_headers,
};
use serde_json::json;

use crate::common::ConfigJson;
use crate::common::{OP, email, org};

/// A store with org `acme` (owner `owner@acme.io`, one admin, one key, a config version 2).
fn fixture() -> (Store, OrgId) {
    let store = Store::open_temporary().unwrap();
    let acme = org("acme");
    store
        .orgs()
        .create(&OP, &acme, "Acme", &email("owner@acme.io"))
        .unwrap();
    store
        .members()
        .add(&OP, &acme, &email("admin@acme.io"), Role::Admin)
        .unwrap();
    store
        .keys()
        .create(&OP, &acme, KeySpec::new("svc").rpm(10))
        .unwrap();
    store
        .org_configs()
        .update(&OP, &acme, r#"{"rate_limiting":{"rpm":100},"providers":{"openai":{"api_key":"sk-hostile-0123456789"}}}"#)
        .unwrap();
    (store, acme)
}

/// Everything observable through the API, for before/after comparisons.
fn observe(store: &Store) -> String {
    let mut out = String::new();
    for o in store.orgs().list(&OP).unwrap() {
        out.push_str(&format!("{o:?}\n"));
        for v in store.org_configs().history(&OP, &o.id).unwrap() {
            out.push_str(&format!(
                "{} {} {}\n",
                v.version,
                v.active,
                v.config.revealed_value()
            ));
        }
        out.push_str(&format!(
            "{:?}\n",
            store.members().list(&OP, &o.id).unwrap()
        ));
        out.push_str(&format!("{:?}\n", store.keys().list(&OP, &o.id).unwrap()));
        out.push_str(&format!(
            "{:?}\n",
            store.audit().list(&OP, &o.id, usize::MAX).unwrap()
        ));
    }
    out
}

/// Runs `f` against the fixture: it must fail with `kind` naming `field`, change nothing
/// and not panic. Returns the error for further checks.
fn refused<T: std::fmt::Debug>(
    kind: ErrorKind,
    field: &str,
    f: impl FnOnce(&Store, &OrgId) -> Result<T, Error>,
) -> Error {
    let (store, acme) = fixture();
    let before = observe(&store);
    let got = catch_unwind(AssertUnwindSafe(|| f(&store, &acme)))
        .unwrap_or_else(|_| panic!("panicked (field {field})"));
    let err = got.expect_err("hostile input was accepted");
    assert_eq!((err.kind(), err.field()), (kind, field), "{err}");
    assert!(!err.message().is_empty());
    assert!(
        observe(&store) == before,
        "a refused call changed the store ({err})"
    );
    err
}

#[test]
fn oversized_config_json() {
    let big = format!(r#"{{"routing":{{"blob":"{}"}}}}"#, "x".repeat(1 << 20));
    let e = refused(ErrorKind::Invalid, "config", |s, o| {
        s.org_configs().update(&OP, o, &big)
    });
    assert!(e.message().contains("1 MiB"), "{e}");
    // Two patches that only add up to too much: the merged result is refused.
    let (store, acme) = fixture();
    let half = format!(r#"{{"routing":{{"a":"{}"}}}}"#, "y".repeat(600 * 1024));
    store.org_configs().update(&OP, &acme, &half).unwrap();
    let before = observe(&store);
    let e = store
        .org_configs()
        .update(&OP, &acme, &half.replace("\"a\"", "\"b\""))
        .unwrap_err();
    assert_eq!((e.kind(), e.field()), (ErrorKind::Invalid, "config"));
    assert!(observe(&store) == before);
}

#[test]
fn deeply_nested_config_json() {
    for depth in [200, 10_000, 100_000] {
        let deep = format!(
            r#"{{"routing":{}1{}}}"#,
            r#"{"a":"#.repeat(depth),
            "}".repeat(depth)
        );
        let e = refused(ErrorKind::Invalid, "config", |s, o| {
            s.org_configs().update(&OP, o, &deep)
        });
        assert!(e.message().contains("128 levels"), "{e}");
        let arrays = format!(
            r#"{{"routing":{{"a":{}{}}}}}"#,
            "[".repeat(depth),
            "]".repeat(depth)
        );
        refused(ErrorKind::Invalid, "config", |s, o| {
            s.org_configs().update(&OP, o, &arrays)
        });
    }
    // Nesting within the limit is stored and read back.
    let (store, acme) = fixture();
    let ok = format!(
        r#"{{"routing":{}1{}}}"#,
        r#"{"a":"#.repeat(100),
        "}".repeat(100)
    );
    store.org_configs().update(&OP, &acme, &ok).unwrap();
    assert_eq!(store.org_configs().retrieve(&OP, &acme).unwrap().version, 3);
}

#[test]
fn invalid_cidr() {
    for (bad, i) in [
        ("10.0.0.0/33", 0),
        ("300.1.1.1", 0),
        ("fe80::/129", 0),
        ("", 0),
        ("10.0.0.1 ", 99),
    ] {
        let field = format!("config.ip_acl.allow[{i}]");
        let mut list: Vec<&str> = vec!["10.0.0.0/8"; i];
        list.push(bad);
        if bad.ends_with(' ') {
            // Surrounding blanks are trimmed: this one is fine.
            let (store, acme) = fixture();
            store
                .org_configs()
                .update(&OP, &acme, &json!({"ip_acl": {"allow": list}}).to_string())
                .unwrap();
            continue;
        }
        let patch = json!({"ip_acl": {"allow": list}}).to_string();
        let e = refused(ErrorKind::Invalid, &field, |s, o| {
            s.org_configs().update(&OP, o, &patch)
        });
        assert!(e.message().contains("not an IP address or CIDR"), "{e}");
        refused(ErrorKind::Invalid, "allowed_ips[1]", |s, o| {
            s.keys()
                .create(&OP, o, KeySpec::new("k").ips(["10.0.0.1", bad]))
        });
    }
    // A 1 MB "address" is quoted back truncated, not whole.
    let huge = "1".repeat(1 << 20);
    let e = refused(ErrorKind::Invalid, "allowed_ips[0]", |s, o| {
        s.keys()
            .create(&OP, o, KeySpec::new("k").ips([huge.as_str()]))
    });
    assert!(e.message().len() < 1000, "{} bytes", e.message().len());
    refused(ErrorKind::Invalid, "allowed_ips", |s, o| {
        s.keys()
            .create(&OP, o, KeySpec::new("k").ips(vec!["10.0.0.1"; 10_001]))
    });
}

#[test]
fn empty_or_over_long_names() {
    for bad in [
        "",
        "   ",
        &"n".repeat(129),
        "tab\there",
        "nul\0",
        "bidi\u{202e}gnp.exe",
        "iso\u{2066}late",
    ] {
        refused(ErrorKind::Invalid, "org name", |s, _| {
            s.orgs().create(&OP, &org("new"), bad, &email("o@x.io"))
        });
        refused(ErrorKind::Invalid, "name", |s, o| {
            s.keys().create(&OP, o, KeySpec::new(bad))
        });
    }
    for bad in ["", "Acme", "a_b", "-a", &"a".repeat(64), "ünï", "a b"] {
        let e = OrgId::parse(bad).unwrap_err();
        assert_eq!(
            (e.kind(), e.field()),
            (ErrorKind::Invalid, "org id"),
            "{bad:?}"
        );
    }
    // The limits themselves are fine; unicode names are fine.
    let (store, acme) = fixture();
    store
        .orgs()
        .create(
            &OP,
            &org(&"a".repeat(63)),
            &"n".repeat(128),
            &email("o@x.io"),
        )
        .unwrap();
    store
        .keys()
        .create(&OP, &acme, KeySpec::new("Zoë’s key 🔑"))
        .unwrap();
}

#[test]
fn unicode_and_mixed_case_emails() {
    // Mixed case is the same person: adding them twice is a conflict.
    let e = refused(ErrorKind::Conflict, "email", |s, o| {
        s.members()
            .add(&OP, o, &email("  ADMIN@Acme.IO "), Role::Viewer)
    });
    assert!(e.message().contains("admin@acme.io"), "{e}");
    // Unicode letters are lower-cased the same way.
    let (store, acme) = fixture();
    store
        .members()
        .add(&OP, &acme, &email("ZOË@EXÄMPLE.COM"), Role::Viewer)
        .unwrap();
    let err = store
        .members()
        .add(&OP, &acme, &email("zoë@exämple.com"), Role::Admin)
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Conflict);
    // Invisible and direction-changing characters would make two different people look
    // alike: refused.
    for bad in [
        "ann\u{200b}@x.io",
        "ann@x.io\u{202e}",
        "\u{feff}ann@x.io",
        "ann\u{2066}@x.io",
        "ann@x\u{00ad}.io",
        "ann @x.io",
        "ann@@x.io",
        "@x.io",
        "ann@",
        "ann@.x.io",
        "no-at-sign",
        &format!("{}@x.io", "a".repeat(250)),
        "nul\0@x.io",
    ] {
        let e = Email::parse(bad).unwrap_err();
        assert_eq!(
            (e.kind(), e.field()),
            (ErrorKind::Invalid, "email"),
            "{bad:?}"
        );
        assert!(e.message().contains("name@example.com"), "{e}");
    }
}

#[test]
fn duplicate_org_ids() {
    let e = refused(ErrorKind::Conflict, "org id", |s, o| {
        s.orgs().create(&OP, o, "Again", &email("x@y.io"))
    });
    assert!(e.message().contains("already exists"), "{e}");
    // A deleted org's id is never reused, and the deleted org stays deleted.
    let (store, acme) = fixture();
    store.orgs().delete(&OP, &acme).unwrap();
    let e = store
        .orgs()
        .create(&OP, &acme, "Again", &email("x@y.io"))
        .unwrap_err();
    assert_eq!((e.kind(), e.field()), (ErrorKind::Conflict, "org id"));
    assert!(e.message().contains("cannot be reused"), "{e}");
    assert!(store.orgs().list(&OP).unwrap().is_empty());
}

#[test]
fn negative_nan_or_absurd_budgets() {
    let field = "config.budgets.limit";
    for limit in [
        "-5",
        "-0.000001",
        "\"NaN\"",
        "\"Infinity\"",
        "1000000000.000001",
        "1e30",
        "0.0000001",
        "\"100 USD\"",
        "null",
    ] {
        let patch = format!(r#"{{"budgets":{{"limit":{limit}}}}}"#);
        if limit == "null" {
            // null removes the limit (merge patch): fine.
            let (store, acme) = fixture();
            store.org_configs().update(&OP, &acme, &patch).unwrap();
            continue;
        }
        let e = refused(ErrorKind::Invalid, field, |s, o| {
            s.org_configs().update(&OP, o, &patch)
        });
        assert!(
            e.message().contains("dollar amount") || e.message().contains("number"),
            "{limit}: {e}"
        );
    }
    // JSON has no NaN or infinity; a literal that overflows a float is not valid JSON.
    for limit in ["NaN", "Infinity", "1e400", "-1e400"] {
        let patch = format!(r#"{{"budgets":{{"limit":{limit}}}}}"#);
        let e = refused(ErrorKind::Invalid, "config", |s, o| {
            s.org_configs().update(&OP, o, &patch)
        });
        assert!(e.message().contains("not valid JSON"), "{limit}: {e}");
    }
    for threshold in ["0", "1.5", "-0.1", "\"high\""] {
        let patch = format!(r#"{{"budgets":{{"limit":10,"warn_threshold":{threshold}}}}}"#);
        refused(
            ErrorKind::Invalid,
            "config.budgets.warn_threshold",
            |s, o| s.org_configs().update(&OP, o, &patch),
        );
    }
    refused(ErrorKind::Invalid, "config.budgets.period", |s, o| {
        s.org_configs()
            .update(&OP, o, r#"{"budgets":{"limit":10,"period":"fortnightly"}}"#)
    });
    // Key budgets are typed: the amount parser refuses what the CLI and imports could pass.
    for amount in [
        "-1",
        "NaN",
        "inf",
        "1e400",
        "1e10",
        "0.0000001",
        "",
        "1,5",
        "$5",
    ] {
        let e = Usd::parse(amount).unwrap_err();
        assert_eq!(e.kind(), ErrorKind::Invalid, "{amount}");
        assert!(Usd::from_micros(-1).is_err());
    }
    let e = refused(ErrorKind::Invalid, "keys[0].sha256", |s, o| {
        let spec = KeySpec::new("k").budget(Budget::new(
            Usd::parse("1000000000").unwrap(),
            Period::Total,
        ));
        s.keys().import(&OP, o, &[ImportKey::new("zz", spec)])
    });
    assert!(e.message().contains("64 hex digits"), "{e}");
}

#[test]
fn rpm_zero() {
    for field in ["rpm", "tpm", "per_key_rpm", "per_key_tpm"] {
        for bad in ["0", "-1", "1.5", "\"100\"", "100000000000000000000"] {
            let patch = format!(r#"{{"rate_limiting":{{"{field}":{bad}}}}}"#);
            let e = refused(
                ErrorKind::Invalid,
                &format!("config.rate_limiting.{field}"),
                |s, o| s.org_configs().update(&OP, o, &patch),
            );
            // 1e20 written out is refused while reading the JSON (it is beyond what is held
            // exactly), naming the same field.
            assert!(e.message().contains("whole number"), "{e}");
        }
    }
    refused(ErrorKind::Invalid, "rate_limit_rpm", |s, o| {
        s.keys().create(&OP, o, KeySpec::new("k").rpm(0))
    });
    refused(ErrorKind::Invalid, "rate_limit_tpm", |s, o| {
        s.keys().create(&OP, o, KeySpec::new("k").tpm(0))
    });
    // A key's rpm 0 is refused on edit too, and the key keeps its settings.
    refused(ErrorKind::Invalid, "rate_limit_rpm", |s, o| {
        let id = s.keys().list(&OP, o)?[0].id;
        s.keys().update(&OP, &id, KeySpec::new("svc").rpm(0))
    });
}

#[test]
fn expiry_in_the_past() {
    for past in [
        Timestamp::from_micros(0),
        Timestamp::from_micros(i64::MIN),
        Timestamp::from_micros(Timestamp::now().as_micros() - 1),
    ] {
        let e = refused(ErrorKind::Invalid, "expires_at", |s, o| {
            s.keys().create(&OP, o, KeySpec::new("k").expires_at(past))
        });
        assert!(e.message().contains("in the past"), "{e}");
    }
    refused(ErrorKind::Invalid, "keys[0].expires_at", |s, o| {
        let spec = KeySpec::new("k").expires_at(Timestamp::from_micros(1));
        s.keys()
            .import(&OP, o, &[ImportKey::new("ab".repeat(32), spec)])
    });
    for bad in [
        "yesterday",
        "2026-13-01T00:00:00Z",
        "",
        "9999999-01-01T00:00:00Z",
    ] {
        assert_eq!(
            Timestamp::parse(bad).unwrap_err().field(),
            "timestamp",
            "{bad}"
        );
    }
    // The far future is fine and prints.
    let (store, acme) = fixture();
    let k = store
        .keys()
        .create(
            &OP,
            &acme,
            KeySpec::new("k").expires_at(Timestamp::from_micros(i64::MAX)),
        )
        .unwrap();
    assert!(!k.info.spec.expires_at.unwrap().to_string().is_empty());
}

#[test]
fn unknown_role() {
    for bad in ["superuser", "", "root", "owners", "0", "15"] {
        let e = bad.parse::<Role>().unwrap_err();
        assert_eq!((e.kind(), e.field()), (ErrorKind::Invalid, "role"), "{bad}");
        assert!(e.message().contains("owner, admin, member, viewer"), "{e}");
    }
    assert_eq!(" ADMIN ".parse::<Role>().unwrap(), Role::Admin);
    // Through the CLI: a usage error, nothing written.
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("s.redb");
    let cli = |args: &[&str]| crate::common::orgstore(args).db(&db).run();
    assert!(
        cli(&[
            "org",
            "create",
            "acme",
            "--name",
            "Acme",
            "--owner",
            "o@acme.io"
        ])
        .status
        .success()
    );
    let out = cli(&[
        "member",
        "add",
        "acme",
        "ann@acme.io",
        "--role",
        "superuser",
    ]);
    assert!(!out.status.success());
    let err = out.stderr;
    assert!(err.contains("superuser") || err.contains("role"), "{err}");
    let list = cli(&["--json", "member", "list", "acme"]).stdout;
    assert!(!list.contains("ann@acme.io"), "{list}");
}

/// The gateway's answer code for `key` (never a grant).
fn deny_code(store: &Store, key: &str) -> Result<&'static str, String> {
    let ip = IpAddr::V4(Ipv4Addr::LOCALHOST);
    match store.gateway().check(&Request::new(key, "gpt-4o-mini", ip)) {
        Ok(_) => Err(format!("granted {:?}", &key[..key.len().min(20)])),
        Err(d) => Ok(d.code()),
    }
}

#[test]
fn hostile_keys() {
    let (store, _) = fixture();
    let before = observe(&store);
    let good = SecretKey::generate();
    let g = good.expose();
    let mut typo = g.to_owned();
    typo.replace_range(30..31, if &g[30..31] == "A" { "B" } else { "A" });
    let mut non_ascii = g[..g.len() - 2].to_owned();
    non_ascii.push('é'); // the same byte length, one character outside the alphabet
    let one_mb = format!("sk-agentcc-{}", "A".repeat(1 << 20));
    let cases: Vec<(&str, String, KeyFormatError)> = vec![
        (
            "wrong prefix",
            g.replacen("sk-agentcc-", "sk-agentcx-", 1),
            KeyFormatError::Prefix,
        ),
        (
            "openai key",
            "sk-proj-abcdefghijklmnopqrstuvwxyz0123456789".into(),
            KeyFormatError::Prefix,
        ),
        ("empty", String::new(), KeyFormatError::Prefix),
        (
            "upper-case prefix",
            g.to_uppercase(),
            KeyFormatError::Prefix,
        ),
        ("bad checksum", typo, KeyFormatError::Checksum),
        ("1 MB", one_mb.clone(), KeyFormatError::Length),
        (
            "truncated",
            g[..g.len() - 2].to_owned(),
            KeyFormatError::Length,
        ),
        (
            "one short",
            g[..g.len() - 1].to_owned(),
            KeyFormatError::Length,
        ),
        (
            "upstream length, not hex",
            format!("sk-agentcc-{}", "g".repeat(48)),
            KeyFormatError::Charset,
        ),
        ("non-ASCII", non_ascii, KeyFormatError::Charset),
        (
            "non-ASCII prefix",
            "ѕk-agentcc-".to_owned() + &g[11..],
            KeyFormatError::Prefix,
        ),
        (
            "NUL inside",
            // NUL in the body only (a random body character may also occur in the prefix).
            format!("{}\0{}", &g[..20], &g[21..]),
            KeyFormatError::Charset,
        ),
        (
            "legacy upper hex",
            format!("sk-agentcc-{}", "ABCDEF0123456789".repeat(3)),
            KeyFormatError::Charset,
        ),
    ];
    // Length is decided before anything reads the body: a megabyte that is not even in the
    // alphabet is refused for its length, so its cost cannot grow with what it holds.
    let one_mb_junk = format!("sk-agentcc-{}", "\u{1f600}".repeat(1 << 18));
    assert_eq!(
        orgstore::check_key_format(&one_mb_junk),
        Err(KeyFormatError::Length)
    );
    assert_eq!(deny_code(&store, &one_mb_junk), Ok("malformed_key"));
    for (name, key, why) in &cases {
        assert_eq!(orgstore::check_key_format(key), Err(*why), "{name}");
        assert_eq!(deny_code(&store, key), Ok("malformed_key"), "{name}");
        let d = store
            .gateway()
            .check(&Request::new(key, "m", IpAddr::V4(Ipv4Addr::LOCALHOST)))
            .unwrap_err();
        assert!(
            !d.to_string().contains(&key[key.len().saturating_sub(20)..]) || key.len() < 20,
            "{name}: the denial quotes the key"
        );
        assert_eq!(d.http_status(), 401);
    }
    // A well-formed key that was never issued is unknown, not malformed.
    assert_eq!(deny_code(&store, g), Ok("unknown_key"));
    // Header extraction copes with the same inputs.
    assert_eq!(
        key_from_headers(Some(&format!("Bearer {one_mb}")), None).map(str::len),
        Ok(one_mb.len())
    );
    assert!(key_from_headers(Some("Bearer "), None).is_err());
    assert!(key_from_headers(Some("Bearer a b"), None).is_err());
    assert!(key_from_headers(Some("Token abc"), None).is_err());
    // Key ids: the admin API refuses bad ids before touching the store.
    for bad in [
        "",
        "key_",
        "key_zz",
        &format!("key_{}", "0".repeat(31)),
        &format!("key_{}é", "0".repeat(31)),
        "sk-agentcc-x",
    ] {
        let e = KeyId::parse(bad).unwrap_err();
        assert_eq!(
            (e.kind(), e.field()),
            (ErrorKind::Invalid, "key id"),
            "{bad}"
        );
    }
    let e = store.keys().revoke(&OP, &KeyId::random()).unwrap_err();
    assert_eq!((e.kind(), e.field()), (ErrorKind::NotFound, "key id"));
    assert_eq!(observe(&store), before);
}

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
