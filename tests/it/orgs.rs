//! Orgs: create, get, list, delete, suspend, resume; id rules; ids are never reused.

use crate::common::ConfigJson;
use crate::common::*;
use orgstore::{Actor, ErrorKind, OrgId, OrgStatus, Role, Store};

#[test]
fn create_get_and_list() {
    let store = Store::open_temporary().unwrap();
    let created = store
        .orgs()
        .create(&OP, &org("beta"), "  Beta Corp  ", &email("b@beta.io"))
        .unwrap();
    assert_eq!(created.id, org("beta"));
    assert_eq!(created.name, "Beta Corp", "the name is trimmed");
    assert_eq!(created.status, OrgStatus::Active);
    assert_eq!(
        (
            created.config_version,
            created.latest_version,
            created.owner_count
        ),
        (1, 1, 1)
    );

    let alpha = create_org(&store, "alpha", "a@alpha.io");
    assert_eq!(store.orgs().get(&OP, &org("beta")).unwrap(), created);

    let ids: Vec<OrgId> = crate::common::org_ids(&store);
    assert_eq!(ids, [alpha.clone(), org("beta")]);

    // The owner is a member with the Owner role; the config starts empty at version 1.
    let members = store.members().list(&OP, &alpha).unwrap();
    assert_eq!(members.len(), 1);
    assert_eq!(
        (members[0].email.as_str(), members[0].role),
        ("a@alpha.io", Role::Owner)
    );
    let cfg = store.org_configs().retrieve(&OP, &alpha).unwrap();
    assert_eq!((cfg.version, cfg.note.as_str()), (1, "initial"));
    assert_eq!(cfg.config.masked_value(), serde_json::json!({}));

    let log = audit_all(&store, &alpha);
    assert_eq!(log.len(), 1);
    assert_eq!(
        (log[0].action.as_str(), log[0].actor.as_str()),
        ("CreateOrg", "operator")
    );
    assert!(log[0].summary.contains("a@alpha.io"), "{}", log[0].summary);
}

#[test]
fn unknown_org_is_not_found() {
    let store = Store::open_temporary().unwrap();
    for err in [
        store.orgs().get(&OP, &org("nope")).unwrap_err(),
        store.orgs().delete(&OP, &org("nope")).unwrap_err(),
        store.orgs().suspend(&OP, &org("nope")).unwrap_err(),
        store.orgs().resume(&OP, &org("nope")).unwrap_err(),
    ] {
        assert_eq!(err.kind(), ErrorKind::NotFound, "{err}");
        assert_eq!(err.field(), "org");
        assert!(err.message().contains("`nope`"), "{err}");
    }
    assert!(store.orgs().list(&OP).unwrap().is_empty());
}

#[test]
fn org_ids_are_validated() {
    for ok in ["a", "0", "customer-a", "9lives", "a-", &"x".repeat(63)] {
        assert_eq!(OrgId::parse(ok).unwrap().as_str(), ok);
    }
    for bad in [
        "",
        "-a",
        "Acme",
        "a_b",
        "a b",
        "a.b",
        "ä",
        " a",
        "a\n",
        &"x".repeat(64),
    ] {
        let err = OrgId::parse(bad).unwrap_err();
        assert_eq!(err.kind(), ErrorKind::Invalid, "{bad:?}");
        assert_eq!(err.field(), "org id");
        assert!(err.message().contains("a-z, 0-9 and '-'"), "{err}");
    }
}

#[test]
fn org_names_are_validated_and_nothing_is_created() {
    let store = Store::open_temporary().unwrap();
    let owner = email("o@x.io");
    for bad in ["", "   ", "tab\there", &"n".repeat(129)] {
        let err = store
            .orgs()
            .create(&OP, &org("x"), bad, &owner)
            .unwrap_err();
        assert_eq!(
            (err.kind(), err.field()),
            (ErrorKind::Invalid, "org name"),
            "{bad:?}"
        );
        assert!(err.message().contains("1 to 128 characters"), "{err}");
    }
    assert!(store.orgs().list(&OP).unwrap().is_empty());
    assert_eq!(store.members().orgs_of(&OP, &owner).unwrap(), []);
    // 128 characters is fine.
    store
        .orgs()
        .create(&OP, &org("x"), &"n".repeat(128), &owner)
        .unwrap();
}

#[test]
fn duplicate_id_is_a_conflict_and_changes_nothing() {
    let f = Fixture::new();
    let before = f.store.orgs().get(&OP, &f.org).unwrap();
    let err = f
        .store
        .orgs()
        .create(&OP, &f.org, "Other", &email("other@x.io"))
        .unwrap_err();
    assert_eq!((err.kind(), err.field()), (ErrorKind::Conflict, "org id"));
    assert!(err.message().contains("already exists"), "{err}");
    assert_eq!(f.store.orgs().get(&OP, &f.org).unwrap(), before);
    assert_eq!(f.store.members().list(&OP, &f.org).unwrap().len(), 1);
    assert_eq!(
        f.store
            .members()
            .orgs_of(&OP, &email("other@x.io"))
            .unwrap(),
        []
    );
    assert_eq!(f.audit().len(), 1);
}

#[test]
fn deleted_org_disappears_and_its_id_is_never_reused() {
    let f = Fixture::new();
    let other = create_org(&f.store, "other", OWNER);
    let deleted = f.store.orgs().delete(&OP, &f.org).unwrap();
    assert_eq!(deleted.status, OrgStatus::Deleted);

    let err = f.store.orgs().get(&OP, &f.org).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::NotFound);
    assert!(err.message().contains("deleted"), "{err}");
    let ids: Vec<OrgId> = crate::common::org_ids(&f.store);
    assert_eq!(ids, [other]);

    // Not even the same owner may take the id again, and a second delete is NotFound.
    let err = f
        .store
        .orgs()
        .create(&OP, &f.org, "Acme again", &f.owner)
        .unwrap_err();
    assert_eq!((err.kind(), err.field()), (ErrorKind::Conflict, "org id"));
    assert!(err.message().contains("cannot be reused"), "{err}");
    assert_eq!(
        f.store.orgs().delete(&OP, &f.org).unwrap_err().kind(),
        ErrorKind::NotFound
    );
    assert_eq!(
        f.store.orgs().resume(&OP, &f.org).unwrap_err().kind(),
        ErrorKind::NotFound
    );

    // Everything hanging off a deleted org is gone from view.
    assert_eq!(
        f.store
            .org_configs()
            .retrieve(&OP, &f.org)
            .unwrap_err()
            .kind(),
        ErrorKind::NotFound
    );
    assert_eq!(
        f.store.members().list(&OP, &f.org).unwrap_err().kind(),
        ErrorKind::NotFound
    );
    assert_eq!(
        f.store.keys().list(&OP, &f.org).unwrap_err().kind(),
        ErrorKind::NotFound
    );
    let err = f
        .store
        .keys()
        .create(&OP, &f.org, orgstore::KeySpec::new("k"))
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::NotFound);

    // The audit log of a deleted org stays readable.
    let log = f.audit();
    assert_eq!(log[0].action, "DeleteOrg");
    assert!(
        log[0].summary.contains("active -> deleted"),
        "{}",
        log[0].summary
    );
}

#[test]
fn suspend_and_resume() {
    let f = Fixture::new();
    let s = f.store.orgs().suspend(&OP, &f.org).unwrap();
    assert_eq!(s.status, OrgStatus::Suspended);
    assert_eq!(
        f.store.orgs().get(&OP, &f.org).unwrap().status,
        OrgStatus::Suspended
    );
    // A suspended org is still listed (it is not gone, only refused on the gateway).
    assert_eq!(
        f.store.orgs().list(&OP).unwrap()[0].status,
        OrgStatus::Suspended
    );

    let r = f.store.orgs().resume(&OP, &f.org).unwrap();
    assert_eq!(r.status, OrgStatus::Active);
    assert_eq!(f.store.orgs().get(&OP, &f.org).unwrap(), r.org);

    // A suspended org can still be deleted.
    f.store.orgs().suspend(&OP, &f.org).unwrap();
    f.store.orgs().delete(&OP, &f.org).unwrap();

    let actions: Vec<String> = f.audit().into_iter().rev().map(|e| e.action).collect();
    assert_eq!(
        actions,
        [
            "CreateOrg",
            "SuspendOrg",
            "ResumeOrg",
            "SuspendOrg",
            "DeleteOrg"
        ]
    );
}

#[test]
fn a_member_may_create_an_org_only_as_its_own_owner() {
    // Only the operator creates orgs unless a policy permits CreateOrg.
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("self-service.cedar"),
        "@id(\"anyone-creates-orgs\")\npermit (principal, action == Action::\"CreateOrg\", resource);\n",
    )
    .unwrap();
    let store = orgstore::StoreBuilder::new().open_temporary().unwrap();
    store
        .policy_set()
        .apply_dir(&Actor::Operator, dir.path())
        .unwrap();
    let ann = Actor::from_email("Ann@X.io").unwrap();

    let err = store
        .orgs()
        .create(&ann, &org("bobs"), "Bob's", &email("bob@x.io"))
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Denied);
    assert_eq!(err.field(), "owner");
    assert!(err.message().contains("ann@x.io"), "{err}");
    assert_eq!(
        store.orgs().get(&OP, &org("bobs")).unwrap_err().kind(),
        ErrorKind::NotFound
    );

    // The owner's email is compared normalised.
    let created = store
        .orgs()
        .create(&ann, &org("anns"), "Ann's", &email("ANN@x.io"))
        .unwrap();
    assert_eq!(created.owner_count, 1);
    assert_eq!(
        store.members().orgs_of(&OP, &email("ann@x.io")).unwrap(),
        [(org("anns"), Role::Owner)]
    );
    let log = audit_all(&store, &org("anns"));
    assert_eq!(log[0].actor, "ann@x.io");
}

#[test]
fn a_member_lists_only_their_own_orgs() {
    let store = Store::open_temporary().unwrap();
    let a = create_org(&store, "a", "ann@x.io");
    let b = create_org(&store, "b", "bob@x.io");
    let c = create_org(&store, "c", "carol@x.io");
    let d = create_org(&store, "d", "ann@x.io");
    store
        .members()
        .add(&OP, &b, &email("ann@x.io"), Role::Viewer)
        .unwrap();

    let ann = Actor::from_email("ANN@x.io").unwrap();
    let ids = |actor: &Actor| -> Vec<OrgId> {
        store
            .orgs()
            .list(actor)
            .unwrap()
            .into_iter()
            .map(|o| o.id)
            .collect()
    };
    assert_eq!(ids(&ann), [a.clone(), b.clone(), d.clone()]);
    assert_eq!(
        ids(&Actor::from_email("carol@x.io").unwrap()),
        std::slice::from_ref(&c)
    );
    assert_eq!(
        ids(&Actor::from_email("nobody@x.io").unwrap()),
        Vec::<OrgId>::new()
    );
    assert_eq!(ids(&OP), [a.clone(), b.clone(), c, d.clone()]);

    // Deleted orgs drop out of a member's list too; leaving an org removes it.
    store.orgs().delete(&OP, &d).unwrap();
    store.members().remove(&OP, &b, &email("ann@x.io")).unwrap();
    assert_eq!(ids(&ann), [a]);
}
