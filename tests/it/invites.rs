//! Invitations by email through the library: the role rules of adding a member, single use,
//! expiry, revocation, conflicts, normalised emails, tenancy, the host's hook, the audit log
//! and the token kept only as its digest.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use orgstore::{Actor, ErrorKind, InviteStatus, Role, Store, StoreBuilder};

use crate::common::{self, OP, create_org, email, org};

fn acme() -> Store {
    let store = Store::open_temporary().unwrap();
    create_org(&store, "acme", "ann@acme.io");
    create_org(&store, "globex", "gus@globex.io");
    for (who, role) in [
        ("adam@acme.io", Role::Admin),
        ("mia@acme.io", Role::Member),
        ("vic@acme.io", Role::Viewer),
    ] {
        store
            .members()
            .add(&OP, &org("acme"), &email(who), role)
            .unwrap();
    }
    store
}

#[test]
fn an_accepted_invitation_makes_the_email_a_member_with_the_role_once() {
    let store = acme();
    let acme = org("acme");
    let made = store
        .invites()
        .create(&OP, &acme, &email("  New@ACME.io "), Role::Admin)
        .unwrap();
    assert_eq!(made.invite.email.as_str(), "new@acme.io");
    assert_eq!(made.invite.status, InviteStatus::Pending);
    assert_eq!(
        made.invite.expires_at.as_micros() - made.invite.created_at.as_micros(),
        7 * 24 * 3600 * 1_000_000
    );
    assert_eq!(
        store.invites().list(&OP, &acme).unwrap(),
        vec![made.invite.clone()]
    );
    let joined = store.invites().accept(made.token.expose()).unwrap();
    assert_eq!(joined.member.role, Role::Admin);
    assert_eq!(joined.member.added_by, "operator");
    assert_eq!(joined.invite.status, InviteStatus::Accepted);
    let m = store.members().list(&OP, &acme).unwrap();
    assert!(
        m.iter()
            .any(|m| m.email.as_str() == "new@acme.io" && m.role == Role::Admin)
    );
    // Single use: the second try changes nothing and says why.
    let again = store.invites().accept(made.token.expose()).unwrap_err();
    assert_eq!(again.kind(), ErrorKind::Conflict);
    assert!(again.message().contains("accepted"), "{again}");
    assert!(store.invites().list(&OP, &acme).unwrap().is_empty());
    // The audit log: the invitation by the operator, the acceptance by the invited person.
    let log = common::audit_all(&store, &acme);
    let invited = log.iter().find(|e| e.action == "InviteMember").unwrap();
    assert_eq!(
        (invited.actor.as_str(), invited.target.as_str()),
        ("operator", "new@acme.io")
    );
    let accepted = log.iter().find(|e| e.action == "AcceptInvite").unwrap();
    assert_eq!(accepted.actor, "new@acme.io");
    for e in &log {
        assert!(!e.summary.contains(made.token.expose()), "{e:?}");
    }
}

#[test]
fn invitations_follow_the_rules_of_adding_a_member() {
    let store = acme();
    let acme = org("acme");
    let who = |e: &str| Actor::member(email(e));
    // (actor, invited role, allowed)
    let cases = [
        ("ann@acme.io", Role::Owner, true),
        ("ann@acme.io", Role::Member, true),
        ("adam@acme.io", Role::Admin, true),
        ("adam@acme.io", Role::Owner, false),
        ("mia@acme.io", Role::Viewer, false),
        ("vic@acme.io", Role::Viewer, false),
    ];
    for (i, (actor, role, allowed)) in cases.into_iter().enumerate() {
        let target = email(&format!("p{i}@acme.io"));
        let got = store.invites().create(&who(actor), &acme, &target, role);
        match got {
            Ok(_) => assert!(allowed, "{actor} invited a {role}"),
            Err(e) => {
                assert!(!allowed, "{actor} could not invite a {role}: {e}");
                assert_eq!(e.kind(), ErrorKind::Denied, "{e}");
                assert_eq!(e.denial().unwrap().action(), "InviteMember");
            }
        }
    }
    // Listing: owners and admins only.
    assert_eq!(
        store
            .invites()
            .list(&who("adam@acme.io"), &acme)
            .unwrap()
            .len(),
        3
    );
    for viewer in ["mia@acme.io", "vic@acme.io"] {
        let e = store.invites().list(&who(viewer), &acme).unwrap_err();
        assert_eq!(e.kind(), ErrorKind::Denied);
    }
    // Revoking: an admin may revoke an invitation below owner, not an owner's.
    let list = store.invites().list(&OP, &acme).unwrap();
    let owner_invite = list.iter().find(|i| i.role == Role::Owner).unwrap();
    let member_invite = list.iter().find(|i| i.role == Role::Member).unwrap();
    let e = store
        .invites()
        .revoke(&who("adam@acme.io"), &owner_invite.id)
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Denied);
    let e = store
        .invites()
        .revoke(&who("mia@acme.io"), &member_invite.id)
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Denied);
    let r = store
        .invites()
        .revoke(&who("adam@acme.io"), &member_invite.id)
        .unwrap();
    assert_eq!(r.status, InviteStatus::Revoked);
    assert_eq!(store.invites().list(&OP, &acme).unwrap().len(), 2);
}

#[test]
fn an_owner_invitation_accepted_counts_as_an_owner() {
    let store = acme();
    let acme = org("acme");
    let made = store
        .invites()
        .create(
            &Actor::member(email("ann@acme.io")),
            &acme,
            &email("co@acme.io"),
            Role::Owner,
        )
        .unwrap();
    store.invites().accept(made.token.expose()).unwrap();
    assert_eq!(store.orgs().get(&OP, &acme).unwrap().owner_count, 2);
    // With two owners, the first may now step down.
    store
        .members()
        .set_role(&OP, &acme, &email("ann@acme.io"), Role::Admin)
        .unwrap();
}

#[test]
fn members_and_pending_invitations_are_conflicts_and_bad_tokens_clear_errors() {
    let store = acme();
    let acme = org("acme");
    let e = store
        .invites()
        .create(&OP, &acme, &email("VIC@acme.io"), Role::Admin)
        .unwrap_err();
    assert_eq!((e.kind(), e.field()), (ErrorKind::Conflict, "email"));
    let made = store
        .invites()
        .create(&OP, &acme, &email("n@acme.io"), Role::Member)
        .unwrap();
    let e = store
        .invites()
        .create(&OP, &acme, &email("N@acme.io"), Role::Viewer)
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Conflict);
    assert!(e.message().contains(&made.invite.id.to_string()), "{e}");
    // The same person may be invited to another org.
    store
        .invites()
        .create(&OP, &org("globex"), &email("n@acme.io"), Role::Member)
        .unwrap();
    // The person joined some other way meanwhile: accepting is a conflict, nothing changes.
    store
        .members()
        .add(&OP, &acme, &email("n@acme.io"), Role::Viewer)
        .unwrap();
    let e = store.invites().accept(made.token.expose()).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Conflict);
    let m = store.members().list(&OP, &acme).unwrap();
    let n = m.iter().find(|m| m.email.as_str() == "n@acme.io").unwrap();
    assert_eq!(n.role, Role::Viewer);
    // Malformed, mistyped and unknown tokens.
    let t = made.token.expose();
    let mut typo = t.to_owned().into_bytes();
    typo[20] = if typo[20] == b'a' { b'b' } else { b'a' };
    let typo = String::from_utf8(typo).unwrap();
    for bad in ["", "orgstore_inv_", "sk-agentcc-x", typo.as_str()] {
        let e = store.invites().accept(bad).unwrap_err();
        assert_eq!(
            (e.kind(), e.field()),
            (ErrorKind::Invalid, "invite token"),
            "{bad}"
        );
    }
    let fresh = Store::open_temporary().unwrap();
    let e = fresh.invites().accept(t).unwrap_err();
    assert_eq!((e.kind(), e.field()), (ErrorKind::NotFound, "invite token"));
    // Validity bounds.
    for d in [Duration::ZERO, Duration::from_secs(91 * 24 * 3600)] {
        let e = store
            .invites()
            .create_valid_for(&OP, &acme, &email("z@acme.io"), Role::Viewer, d)
            .unwrap_err();
        assert_eq!(e.kind(), ErrorKind::Invalid);
    }
}

#[test]
fn revoked_and_expired_invitations_cannot_be_used() {
    let store = acme();
    let acme = org("acme");
    let revoked = store
        .invites()
        .create(&OP, &acme, &email("r@acme.io"), Role::Member)
        .unwrap();
    store.invites().revoke(&OP, &revoked.invite.id).unwrap();
    let e = store.invites().accept(revoked.token.expose()).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Conflict);
    assert!(e.message().contains("revoked"), "{e}");
    let e = store.invites().revoke(&OP, &revoked.invite.id).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Conflict);
    let short = store
        .invites()
        .create_valid_for(
            &OP,
            &acme,
            &email("x@acme.io"),
            Role::Member,
            Duration::from_secs(1),
        )
        .unwrap();
    // Past its expiry (the store reads the wall clock).
    while orgstore::Timestamp::now() <= short.invite.expires_at {
        std::thread::sleep(Duration::from_millis(100));
    }
    let e = store.invites().accept(short.token.expose()).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Conflict);
    assert!(e.message().contains("expired"), "{e}");
    assert!(store.invites().list(&OP, &acme).unwrap().is_empty());
    // An expired one is not pending: a new invitation may be sent.
    store
        .invites()
        .create(&OP, &acme, &email("x@acme.io"), Role::Member)
        .unwrap();
    assert!(
        !store
            .members()
            .list(&OP, &acme)
            .unwrap()
            .iter()
            .any(|m| m.email.as_str() == "x@acme.io" || m.email.as_str() == "r@acme.io")
    );
}

#[test]
fn another_orgs_invitation_answers_like_a_missing_one() {
    let store = acme();
    let made = store
        .invites()
        .create(&OP, &org("acme"), &email("n@acme.io"), Role::Member)
        .unwrap();
    let gus = Actor::member(email("gus@globex.io"));
    let theirs = store.invites().revoke(&gus, &made.invite.id).unwrap_err();
    // The same id in a store without it.
    let missing = acme().invites().revoke(&gus, &made.invite.id).unwrap_err();
    assert_eq!(theirs, missing);
    assert_eq!(theirs.kind(), ErrorKind::NotFound);
    let e = store.invites().list(&gus, &org("acme")).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::NotFound);
    let e = store
        .invites()
        .create(&gus, &org("acme"), &email("gus@globex.io"), Role::Owner)
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::NotFound);
    // Still pending, and the attempts are in acme's log as denials.
    assert_eq!(store.invites().list(&OP, &org("acme")).unwrap().len(), 1);
    let denials = common::audit_all(&store, &org("acme"))
        .into_iter()
        .filter(|e| e.actor == "gus@globex.io" && e.outcome == orgstore::AuditOutcome::Denied)
        .count();
    assert_eq!(denials, 3);
    // A deleted org's invitation cannot be accepted.
    store.orgs().delete(&OP, &org("acme")).unwrap();
    let e = store.invites().accept(made.token.expose()).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::NotFound);
}

#[test]
fn the_hook_gets_the_email_and_the_token_and_the_file_keeps_only_a_digest() {
    let dir = tempfile::tempdir().unwrap();
    let db = common::db_path(dir.path());
    let outbox = Arc::new(Mutex::new(Vec::new()));
    let sent = outbox.clone();
    let store = StoreBuilder::new()
        .non_durable()
        .on_invite(move |invite, token| {
            sent.lock()
                .unwrap()
                .push((invite.email.to_string(), invite.role, token.to_owned()))
        })
        .open(&db)
        .unwrap();
    create_org(&store, "acme", "ann@acme.io");
    let made = store
        .invites()
        .create(&OP, &org("acme"), &email("n@acme.io"), Role::Viewer)
        .unwrap();
    let token = made.token.expose().to_owned();
    assert_eq!(
        *outbox.lock().unwrap(),
        vec![("n@acme.io".to_owned(), Role::Viewer, token.clone())]
    );
    // A refused invitation calls no hook.
    assert!(
        store
            .invites()
            .create(
                &Actor::member(email("nobody@x.io")),
                &org("acme"),
                &email("q@x.io"),
                Role::Viewer
            )
            .is_err()
    );
    assert_eq!(outbox.lock().unwrap().len(), 1);
    drop(store);
    let bytes = std::fs::read(&db).unwrap();
    assert!(!common::contains_bytes(&bytes, token.as_bytes()));
    // It survives a reopen, and is accepted there.
    let store = common::open_file_fast(dir.path());
    assert_eq!(store.invites().list(&OP, &org("acme")).unwrap().len(), 1);
    store.invites().accept(&token).unwrap();
}
