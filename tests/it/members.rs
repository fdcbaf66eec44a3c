//! Members: one person in many orgs, emails compared case-insensitively, roles, and the
//! last Owner rule with a correct owner count.

use crate::common::*;
use orgstore::{Email, ErrorKind, Member, OrgId, Role, Store};

fn roles(store: &Store, org: &OrgId) -> Vec<(String, Role)> {
    store
        .members()
        .list(&OP, org)
        .unwrap()
        .into_iter()
        .map(|m| (m.email.to_string(), m.role))
        .collect()
}

fn owner_count(store: &Store, org: &OrgId) -> u32 {
    store.orgs().get(&OP, org).unwrap().owner_count
}

#[test]
fn a_person_may_belong_to_many_orgs() {
    let store = Store::open_temporary().unwrap();
    let a = create_org(&store, "a", "ann@x.io");
    let b = create_org(&store, "b", "bob@x.io");
    let c = create_org(&store, "c", "carol@x.io");
    let _d = create_org(&store, "d", "dave@x.io");
    let ann = email("ann@x.io");
    store.members().add(&OP, &b, &ann, Role::Admin).unwrap();
    store.members().add(&OP, &c, &ann, Role::Viewer).unwrap();

    assert_eq!(
        store.members().orgs_of(&OP, &ann).unwrap(),
        [
            (a.clone(), Role::Owner),
            (b.clone(), Role::Admin),
            (c.clone(), Role::Viewer)
        ]
    );
    assert_eq!(
        roles(&store, &b),
        [
            ("ann@x.io".into(), Role::Admin),
            ("bob@x.io".into(), Role::Owner)
        ]
    );
    assert_eq!(
        store.members().orgs_of(&OP, &email("nobody@x.io")).unwrap(),
        []
    );

    // Role changes show in both directions of the relation.
    store
        .members()
        .set_role(&OP, &c, &ann, Role::Member)
        .unwrap();
    store.members().remove(&OP, &b, &ann).unwrap();
    assert_eq!(
        store.members().orgs_of(&OP, &ann).unwrap(),
        [(a, Role::Owner), (c.clone(), Role::Member)]
    );
    assert_eq!(roles(&store, &b), [("bob@x.io".into(), Role::Owner)]);
    assert_eq!(
        roles(&store, &c),
        [
            ("ann@x.io".into(), Role::Member),
            ("carol@x.io".into(), Role::Owner)
        ]
    );
}

#[test]
fn emails_are_one_person_whatever_their_case() {
    let f = Fixture::new();
    let added = f
        .store
        .members()
        .add(&OP, &f.org, &email("Ann@X.io"), Role::Member)
        .unwrap();
    assert_eq!(added.email.as_str(), "ann@x.io");
    assert_eq!(email("Ann@X.io"), email(" ann@x.io "));

    let err = f
        .store
        .members()
        .add(&OP, &f.org, &email("ann@x.io"), Role::Viewer)
        .unwrap_err();
    assert_eq!((err.kind(), err.field()), (ErrorKind::Conflict, "email"));
    assert!(err.message().contains("already a member"), "{err}");

    f.store
        .members()
        .set_role(&OP, &f.org, &email("ANN@X.IO"), Role::Admin)
        .unwrap();
    assert_eq!(
        roles(&f.store, &f.org),
        [
            ("ann@x.io".into(), Role::Admin),
            (OWNER.into(), Role::Owner)
        ]
    );
    assert_eq!(
        f.store.members().orgs_of(&OP, &email("aNn@x.Io")).unwrap(),
        [(f.org.clone(), Role::Admin)]
    );
    f.store
        .members()
        .remove(&OP, &f.org, &email("ANN@x.io"))
        .unwrap();
    assert_eq!(roles(&f.store, &f.org), [(OWNER.into(), Role::Owner)]);
}

#[test]
fn emails_are_validated() {
    for bad in [
        "",
        "not-an-email",
        "a@",
        "@x.io",
        "a b@x.io",
        "a@b@c",
        "a@.x",
        "a@x.",
        &format!("{}@x.io", "a".repeat(250)),
    ] {
        let err = Email::parse(bad).unwrap_err();
        assert_eq!(
            (err.kind(), err.field()),
            (ErrorKind::Invalid, "email"),
            "{bad:?}"
        );
        assert!(err.message().contains("name@example.com"), "{err}");
    }
}

#[test]
fn every_role_can_be_given_and_changed() {
    let f = Fixture::new();
    for (who, role) in [
        ("v@x.io", Role::Viewer),
        ("m@x.io", Role::Member),
        ("a@x.io", Role::Admin),
        ("o@x.io", Role::Owner),
    ] {
        let m: Member = f
            .store
            .members()
            .add(&OP, &f.org, &email(who), role)
            .unwrap();
        assert_eq!(
            (m.role, m.org.clone(), m.added_by.as_str()),
            (role, f.org.clone(), "operator")
        );
    }
    assert_eq!(
        roles(&f.store, &f.org),
        [
            ("a@x.io".into(), Role::Admin),
            ("m@x.io".into(), Role::Member),
            ("o@x.io".into(), Role::Owner),
            (OWNER.into(), Role::Owner),
            ("v@x.io".into(), Role::Viewer),
        ]
    );
    assert_eq!(owner_count(&f.store, &f.org), 2);

    let m = f
        .store
        .members()
        .set_role(&OP, &f.org, &email("v@x.io"), Role::Admin)
        .unwrap();
    assert_eq!(m.role, Role::Admin);
    // Setting the same role again is a no-op that succeeds.
    let audit_len = f.audit().len();
    f.store
        .members()
        .set_role(&OP, &f.org, &email("v@x.io"), Role::Admin)
        .unwrap();
    assert_eq!(f.audit().len(), audit_len);

    let actions: Vec<(String, String)> = f
        .audit()
        .into_iter()
        .take(2)
        .map(|e| (e.action, e.summary))
        .collect();
    assert_eq!(
        actions[0],
        ("ChangeRole".to_owned(), "viewer -> admin".to_owned())
    );
    assert_eq!(
        actions[1],
        ("AddMember".to_owned(), "added as owner".to_owned())
    );
}

#[test]
fn the_last_owner_can_be_neither_demoted_nor_removed() {
    let f = Fixture::new();
    let before = f.audit();
    for role in [Role::Admin, Role::Member, Role::Viewer] {
        let err = f
            .store
            .members()
            .set_role(&OP, &f.org, &f.owner, role)
            .unwrap_err();
        assert_eq!((err.kind(), err.field()), (ErrorKind::Conflict, "role"));
        assert!(err.message().contains("last owner"), "{err}");
    }
    let err = f.store.members().remove(&OP, &f.org, &f.owner).unwrap_err();
    assert_eq!((err.kind(), err.field()), (ErrorKind::Conflict, "role"));
    assert_eq!(roles(&f.store, &f.org), [(OWNER.into(), Role::Owner)]);
    assert_eq!(owner_count(&f.store, &f.org), 1);
    assert_eq!(
        f.audit(),
        before,
        "failed changes are not audited as applied"
    );
}

#[test]
fn owner_count_follows_every_change() {
    let f = Fixture::new();
    let (ann, bob) = (email("ann@x.io"), email("bob@x.io"));
    assert_eq!(owner_count(&f.store, &f.org), 1);

    f.store
        .members()
        .add(&OP, &f.org, &ann, Role::Admin)
        .unwrap();
    assert_eq!(owner_count(&f.store, &f.org), 1);
    f.store
        .members()
        .set_role(&OP, &f.org, &ann, Role::Owner)
        .unwrap();
    assert_eq!(owner_count(&f.store, &f.org), 2);
    f.store
        .members()
        .add(&OP, &f.org, &bob, Role::Owner)
        .unwrap();
    assert_eq!(owner_count(&f.store, &f.org), 3);

    // With others owning the org, the first owner may step down and then leave.
    f.store
        .members()
        .set_role(&OP, &f.org, &f.owner, Role::Member)
        .unwrap();
    assert_eq!(owner_count(&f.store, &f.org), 2);
    f.store.members().remove(&OP, &f.org, &f.owner).unwrap();
    assert_eq!(owner_count(&f.store, &f.org), 2);
    f.store.members().remove(&OP, &f.org, &bob).unwrap();
    assert_eq!(owner_count(&f.store, &f.org), 1);

    // Ann is now the last owner.
    assert_eq!(
        f.store
            .members()
            .remove(&OP, &f.org, &ann)
            .unwrap_err()
            .kind(),
        ErrorKind::Conflict
    );
    assert_eq!(
        f.store
            .members()
            .set_role(&OP, &f.org, &ann, Role::Admin)
            .unwrap_err()
            .kind(),
        ErrorKind::Conflict
    );
    assert_eq!(owner_count(&f.store, &f.org), 1);

    // The count always equals the owners actually listed.
    let listed = f
        .store
        .members()
        .list(&OP, &f.org)
        .unwrap()
        .iter()
        .filter(|m| m.role == Role::Owner)
        .count();
    assert_eq!(listed, 1);
}

#[test]
fn owner_counts_are_per_org() {
    let store = Store::open_temporary().unwrap();
    let a = create_org(&store, "a", "ann@x.io");
    let b = create_org(&store, "b", "ann@x.io");
    store
        .members()
        .add(&OP, &a, &email("bob@x.io"), Role::Owner)
        .unwrap();
    assert_eq!((owner_count(&store, &a), owner_count(&store, &b)), (2, 1));
    // Ann may leave a (Bob still owns it) but not b.
    store.members().remove(&OP, &a, &email("ann@x.io")).unwrap();
    assert_eq!(
        store
            .members()
            .remove(&OP, &b, &email("ann@x.io"))
            .unwrap_err()
            .kind(),
        ErrorKind::Conflict
    );
    assert_eq!(
        store.members().orgs_of(&OP, &email("ann@x.io")).unwrap(),
        [(b, Role::Owner)]
    );
}

#[test]
fn missing_members_and_orgs_are_not_found() {
    let f = Fixture::new();
    let ghost = email("ghost@x.io");
    let err = f
        .store
        .members()
        .set_role(&OP, &f.org, &ghost, Role::Admin)
        .unwrap_err();
    assert_eq!((err.kind(), err.field()), (ErrorKind::NotFound, "email"));
    let err = f.store.members().remove(&OP, &f.org, &ghost).unwrap_err();
    assert_eq!((err.kind(), err.field()), (ErrorKind::NotFound, "email"));
    for err in [
        f.store
            .members()
            .add(&OP, &org("nope"), &ghost, Role::Admin)
            .unwrap_err(),
        f.store.members().list(&OP, &org("nope")).unwrap_err(),
    ] {
        assert_eq!((err.kind(), err.field()), (ErrorKind::NotFound, "org"));
    }
    assert_eq!(f.store.members().orgs_of(&OP, &ghost).unwrap(), []);
}

#[test]
fn a_deleted_org_is_not_listed_among_a_persons_orgs() {
    let store = Store::open_temporary().unwrap();
    let a = create_org(&store, "a", "ann@x.io");
    let b = create_org(&store, "b", "ann@x.io");
    store.orgs().delete(&OP, &b).unwrap();
    assert_eq!(
        store.members().orgs_of(&OP, &email("ann@x.io")).unwrap(),
        [(a, Role::Owner)]
    );
}

#[test]
fn membership_changes_are_audited() {
    let f = Fixture::new();
    let ann = email("ann@x.io");
    f.store
        .members()
        .add(&OP, &f.org, &ann, Role::Viewer)
        .unwrap();
    f.store
        .members()
        .set_role(&OP, &f.org, &ann, Role::Member)
        .unwrap();
    f.store.members().remove(&OP, &f.org, &ann).unwrap();
    let log: Vec<(String, String, String)> = f
        .audit()
        .into_iter()
        .take(3)
        .map(|e| (e.action, e.target, e.actor))
        .collect();
    let expect = |a: &str| (a.to_owned(), "ann@x.io".to_owned(), "operator".to_owned());
    assert_eq!(
        log,
        [
            expect("RemoveMember"),
            expect("ChangeRole"),
            expect("AddMember")
        ]
    );
}
