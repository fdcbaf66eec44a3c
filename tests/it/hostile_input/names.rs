//! Hostile names: empty or over-long names, look-alike and mixed-case emails, duplicate ids, unknown roles.

use super::*;

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
