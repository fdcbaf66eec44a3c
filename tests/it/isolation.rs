//! Tenant isolation: a seeded random walk of operations by members of org A (reads and
//! writes on A's config, keys, members and audit log, and every id of org B they could get
//! hold of) never reads or changes anything of org B. Every attempt on B is denied or not
//! found; B's records, config, keys, members and applied audit entries are unchanged, and its
//! keys answer the gateway as before. A's own results follow the role matrix (README,
//! "Roles").

use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr};

use orgstore::{
    Actor, AuditOutcome, Email, Error, ErrorKind, ImportKey, KeyId, KeySpec, KeyStatus, OrgId,
    Request, Role, Store, Timestamp,
};
use rand::Rng;

use crate::common::ConfigJson;
use crate::common::{OP, email};

const STEPS: usize = 600;

/// Everything of B an operator can see, except denial entries in its audit log (a denied
/// attempt on B is recorded in B's log by design).
fn observe_b(store: &Store, b: &OrgId, b_keys: &[String]) -> String {
    let mut out = format!("{:?}\n", store.orgs().get(&OP, b).unwrap());
    for v in store.org_configs().history(&OP, b).unwrap() {
        out.push_str(&format!(
            "{} {} {}\n",
            v.version,
            v.active,
            v.config.revealed_value()
        ));
    }
    out.push_str(&format!("{:?}\n", store.members().list(&OP, b).unwrap()));
    out.push_str(&format!("{:?}\n", store.keys().list(&OP, b).unwrap()));
    for e in store.audit().list(&OP, b, usize::MAX).unwrap() {
        if e.outcome == AuditOutcome::Applied {
            out.push_str(&format!("{e:?}\n"));
        }
    }
    let gw = store.gateway();
    for k in b_keys {
        let code = gw
            .check(&Request::new(
                k,
                "gpt-4o-mini",
                IpAddr::V4(Ipv4Addr::LOCALHOST),
            ))
            .map_or_else(|d| d.code(), |_| "ok");
        out.push_str(&format!("{code}\n"));
    }
    out
}

/// Asserts an attempt on B failed without revealing anything.
fn refused_on_b<T: std::fmt::Debug>(what: &str, got: Result<T, Error>) {
    match got {
        Ok(v) => panic!("{what}: a member of A succeeded on B: {v:?}"),
        Err(e) => assert!(
            matches!(e.kind(), ErrorKind::Denied | ErrorKind::NotFound),
            "{what}: {e}"
        ),
    }
}

/// What the role matrix allows an A member with `role` (None: not a member any more).
fn may(role: Option<Role>, roles: &[Role]) -> bool {
    role.is_some_and(|r| roles.contains(&r))
}

const ALL: &[Role] = &[Role::Owner, Role::Admin, Role::Member, Role::Viewer];
const MANAGERS: &[Role] = &[Role::Owner, Role::Admin];

/// Checks an operation on A against the matrix: denied when the matrix says no; otherwise a
/// success or a conflict with A's state (duplicate member, revoked key...). Returns whether
/// it succeeded.
fn on_a<T: std::fmt::Debug>(
    role: Option<Role>,
    what: &str,
    allowed: bool,
    got: &Result<T, Error>,
) -> bool {
    match got {
        Ok(_) => {
            assert!(allowed, "{what}: succeeded but the matrix says no");
            true
        }
        // Somebody who left A is answered as if A (or the key of A) did not exist.
        Err(e) if !allowed && role.is_none() => {
            assert_eq!(e.kind(), ErrorKind::NotFound, "{what}: {e}");
            assert!(matches!(e.field(), "org" | "key id"), "{what}: {e}");
            false
        }
        Err(e) if !allowed => {
            assert_eq!(e.kind(), ErrorKind::Denied, "{what}: {e}");
            false
        }
        Err(e) => {
            assert!(
                matches!(e.kind(), ErrorKind::Conflict | ErrorKind::NotFound),
                "{what}: the matrix allows it: {e}"
            );
            false
        }
    }
}

/// The last Owner can be neither demoted nor removed: refused by policy or by the store.
fn last_owner_refused<T: std::fmt::Debug>(what: &str, got: &Result<T, Error>) {
    match got {
        Ok(v) => panic!("{what}: the last owner went: {v:?}"),
        Err(e) => assert!(
            matches!(e.kind(), ErrorKind::Denied | ErrorKind::Conflict),
            "{what}: {e}"
        ),
    }
}

#[test]
fn members_of_one_org_never_touch_another() {
    let store = Store::open_temporary().unwrap();
    let (a, b) = (
        OrgId::parse("org-a").unwrap(),
        OrgId::parse("org-b").unwrap(),
    );
    store
        .orgs()
        .create(&OP, &a, "A", &email("owner@a.io"))
        .unwrap();
    store
        .orgs()
        .create(&OP, &b, "B", &email("owner@b.io"))
        .unwrap();
    let mut a_roles: BTreeMap<Email, Role> = BTreeMap::from([(email("owner@a.io"), Role::Owner)]);
    for (who, role) in [
        ("owner2@a.io", Role::Owner),
        ("admin@a.io", Role::Admin),
        ("member@a.io", Role::Member),
        ("viewer@a.io", Role::Viewer),
    ] {
        store.members().add(&OP, &a, &email(who), role).unwrap();
        a_roles.insert(email(who), role);
    }
    let b_people = [
        email("owner@b.io"),
        email("admin@b.io"),
        email("member@b.io"),
    ];
    store
        .members()
        .add(&OP, &b, &b_people[1], Role::Admin)
        .unwrap();
    store
        .members()
        .add(&OP, &b, &b_people[2], Role::Member)
        .unwrap();
    store
        .org_configs()
        .update(&OP, &b, r#"{"rate_limiting":{"rpm":1000},"providers":{"openai":{"api_key":"sk-b-secret-0123456789"}}}"#)
        .unwrap();
    let mut b_secrets = Vec::new();
    let mut b_ids = Vec::new();
    for (i, by) in [
        Actor::Operator,
        Actor::member(b_people[0].clone()),
        Actor::member(b_people[2].clone()),
    ]
    .iter()
    .enumerate()
    {
        // B's members create keys as the operator would let them; fall back to the operator
        // while member permissions are not enforced yet.
        let k = store
            .keys()
            .create(by, &b, KeySpec::new(format!("b{i}")))
            .or_else(|_| store.keys().create(&OP, &b, KeySpec::new(format!("b{i}"))))
            .unwrap();
        b_secrets.push(k.key.expose().to_owned());
        b_ids.push(k.info.id);
    }
    // A's keys with who created them.
    let mut a_keys: Vec<(KeyId, String)> = Vec::new();
    for who in ["operator", "member@a.io"] {
        let actor = if who == "operator" {
            OP
        } else {
            Actor::member(email(who))
        };
        if let Ok(k) = store.keys().create(&actor, &a, KeySpec::new(who)) {
            a_keys.push((k.info.id, who.to_owned()));
        }
    }
    let before = observe_b(&store, &b, &b_secrets);
    let last_seq = store.audit().list(&OP, &a, 1).unwrap()[0]
        .seq
        .max(store.audit().list(&OP, &b, 1).unwrap()[0].seq);
    let b_secret_text = "sk-b-secret-0123456789";

    let mut rng = crate::common::rng(0x150_1a7e);
    let people: Vec<Email> = a_roles.keys().cloned().collect();
    let (mut a_ok, mut a_total) = (0usize, 0usize);
    for step in 0..STEPS {
        let me = people[rng.random_range(0..people.len())].clone();
        let actor = Actor::member(me.clone());
        let role = a_roles.get(&me).copied();
        let b_key = b_ids[rng.random_range(0..b_ids.len())];
        let b_person = &b_people[rng.random_range(0..b_people.len())];
        let any_role = ALL[rng.random_range(0..4)];
        let w = |s: &str| format!("step {step}: {me} ({role:?}) {s}");
        match rng.random_range(0..30) {
            // ---- attempts on B ----
            0 => refused_on_b(
                &w("reads B's config"),
                store.org_configs().retrieve(&actor, &b),
            ),
            1 => refused_on_b(
                &w("reveals B's config"),
                store.org_configs().reveal(&actor, &b, None),
            ),
            2 => refused_on_b(
                &w("updates B's config"),
                store
                    .org_configs()
                    .update(&actor, &b, r#"{"rate_limiting":{"rpm":1}}"#),
            ),
            3 => refused_on_b(
                &w("rolls back B's config"),
                store.org_configs().rollback(&actor, &b, 1),
            ),
            4 => refused_on_b(
                &w("reads B's history"),
                store.org_configs().history(&actor, &b),
            ),
            5 => refused_on_b(
                &w("diffs B's config"),
                store.org_configs().diff(&actor, &b, 1, 2),
            ),
            6 => refused_on_b(&w("lists B's keys"), store.keys().list(&actor, &b)),
            7 => refused_on_b(&w("shows a B key"), store.keys().show(&actor, &b_key)),
            8 => refused_on_b(&w("revokes a B key"), store.keys().revoke(&actor, &b_key)),
            9 => refused_on_b(&w("rotates a B key"), store.keys().rotate(&actor, &b_key)),
            10 => refused_on_b(
                &w("edits a B key"),
                store.keys().update(&actor, &b_key, KeySpec::new("pwned")),
            ),
            11 => refused_on_b(
                &w("creates a key in B"),
                store.keys().create(&actor, &b, KeySpec::new("x")),
            ),
            12 => refused_on_b(
                &w("imports into B"),
                store.keys().import(
                    &actor,
                    &b,
                    &[ImportKey::new("ab".repeat(32), KeySpec::new("x"))],
                ),
            ),
            13 => refused_on_b(
                &w("adds to B"),
                store.members().add(&actor, &b, &me, Role::Owner),
            ),
            14 => refused_on_b(
                &w("changes a B role"),
                store.members().set_role(&actor, &b, b_person, any_role),
            ),
            15 => refused_on_b(
                &w("removes a B member"),
                store.members().remove(&actor, &b, b_person),
            ),
            16 => refused_on_b(&w("lists B's members"), store.members().list(&actor, &b)),
            17 => refused_on_b(
                &w("reads B's audit log"),
                store.audit().list(&actor, &b, 100),
            ),
            18 => refused_on_b(&w("reads B"), store.orgs().get(&actor, &b)),
            19 => {
                refused_on_b(&w("deletes B"), store.orgs().delete(&actor, &b));
                refused_on_b(&w("suspends B"), store.orgs().suspend(&actor, &b));
            }
            20 => {
                refused_on_b(&w("reads B's usage"), store.orgs().usage(&actor, &b));
                refused_on_b(
                    &w("reads a B key's usage"),
                    store.keys().usage(&actor, &b_key),
                );
            }
            21 => {
                let e = store.members().orgs_of(&actor, b_person).unwrap_err();
                assert_eq!(
                    e.kind(),
                    ErrorKind::Denied,
                    "{}",
                    w("asks about a B member")
                );
            }
            // ---- A's own business, by the matrix; results never carry B ----
            22 => {
                let got = store.org_configs().update(
                    &actor,
                    &a,
                    &format!(r#"{{"routing":{{"step":{step}}}}}"#),
                );
                a_ok += usize::from(on_a(
                    role,
                    &w("updates A's config"),
                    may(role, MANAGERS),
                    &got,
                ));
                a_total += 1;
            }
            23 => {
                let got = store.org_configs().retrieve(&actor, &a);
                if let Ok(v) = &got {
                    assert_eq!(v.org, a);
                    assert!(
                        !v.config
                            .revealed_value()
                            .to_string()
                            .contains(b_secret_text)
                    );
                }
                a_ok += usize::from(on_a(role, &w("reads A's config"), may(role, ALL), &got));
                a_total += 1;
            }
            24 => {
                let got = store.keys().create(
                    &actor,
                    &a,
                    KeySpec::new("k").expires_at(Timestamp::from_micros(i64::MAX)),
                );
                if let Ok(k) = &got {
                    assert_eq!(k.info.org, a);
                    a_keys.push((k.info.id, me.to_string()));
                }
                a_ok += usize::from(on_a(
                    role,
                    &w("creates an A key"),
                    may(role, &[Role::Owner, Role::Admin, Role::Member]),
                    &got,
                ));
                a_total += 1;
            }
            25 if !a_keys.is_empty() => {
                let (id, creator) = a_keys[rng.random_range(0..a_keys.len())].clone();
                let allowed =
                    may(role, MANAGERS) || (role == Some(Role::Member) && creator == me.as_str());
                let got = if rng.random_bool(0.5) {
                    store.keys().rotate(&actor, &id).map(|k| k.info)
                } else {
                    store.keys().revoke(&actor, &id)
                };
                if let Ok(info) = &got {
                    assert_eq!(info.org, a);
                }
                a_ok += usize::from(on_a(role, &w("manages an A key"), allowed, &got));
                a_total += 1;
            }
            26 => {
                let got = store.keys().list(&actor, &a);
                if let Ok(keys) = &got {
                    assert!(
                        keys.iter().all(|k| k.org == a),
                        "{}",
                        w("sees a B key in A's list")
                    );
                    assert!(keys.iter().all(|k| !b_ids.contains(&k.id)));
                }
                let got2 = store.members().list(&actor, &a);
                if let Ok(ms) = &got2 {
                    assert!(ms.iter().all(|m| m.org == a));
                }
                let got3 = store.audit().list(&actor, &a, usize::MAX);
                if let Ok(log) = &got3 {
                    assert!(
                        log.iter()
                            .all(|e| e.org == a && !e.summary.contains(b_secret_text))
                    );
                }
                let mine = store.orgs().list(&actor).unwrap();
                assert!(
                    mine.iter().all(|o| o.id != b),
                    "{}",
                    w("lists B among its orgs")
                );
                let of = store.members().orgs_of(&actor, &me).unwrap();
                assert!(of.iter().all(|(o, _)| *o != b));
                a_ok += usize::from(on_a(role, &w("lists A's keys"), may(role, ALL), &got));
                a_ok += usize::from(on_a(
                    role,
                    &w("reads A's audit log"),
                    may(role, MANAGERS),
                    &got3,
                ));
                a_total += 2;
            }
            27 => {
                // Adding someone to A (B's people included) is A's business only.
                let who = if rng.random_bool(0.5) {
                    b_person.clone()
                } else {
                    email(&format!("new{step}@a.io"))
                };
                let allowed = match role {
                    Some(Role::Owner) => true,
                    Some(Role::Admin) => any_role != Role::Owner,
                    _ => false,
                };
                let got = store.members().add(&actor, &a, &who, any_role);
                if got.is_ok() {
                    a_roles.insert(who, any_role);
                }
                a_ok += usize::from(on_a(
                    role,
                    &w(&format!("adds {any_role} to A")),
                    allowed,
                    &got,
                ));
                a_total += 1;
            }
            28 => {
                let target = people[rng.random_range(0..people.len())].clone();
                let Some(cur) = a_roles.get(&target).copied() else {
                    continue;
                };
                let owners = a_roles.values().filter(|r| **r == Role::Owner).count();
                let remove = rng.random_bool(0.3);
                let what = w(&format!(
                    "{} {target} ({cur}) in A",
                    if remove {
                        "removes".to_owned()
                    } else {
                        format!("makes {any_role}")
                    }
                ));
                let allowed = match role {
                    Some(Role::Owner) => true,
                    Some(Role::Admin) => cur != Role::Owner && (remove || any_role != Role::Owner),
                    // Anyone may leave.
                    Some(_) => remove && target == me,
                    None => false,
                };
                let got = if remove {
                    store.members().remove(&actor, &a, &target)
                } else {
                    store
                        .members()
                        .set_role(&actor, &a, &target, any_role)
                        .map(|_| ())
                };
                if cur == Role::Owner
                    && owners == 1
                    && (remove || any_role != Role::Owner)
                    && allowed
                {
                    last_owner_refused(&what, &got);
                    continue;
                }
                if got.is_ok() {
                    if remove {
                        a_roles.remove(&target);
                    } else {
                        a_roles.insert(target, any_role);
                    }
                }
                a_ok += usize::from(on_a(role, &what, allowed, &got));
                a_total += 1;
            }
            _ => {
                // B's people are nobody in A (unless A added them): their ids do not work
                // through A.
                if !a_roles.contains_key(b_person) {
                    let e = store
                        .members()
                        .set_role(&actor, &a, b_person, Role::Viewer)
                        .unwrap_err();
                    assert_eq!(
                        e.kind(),
                        ErrorKind::NotFound,
                        "{}",
                        w("changes a B member through A")
                    );
                    let e = store.members().remove(&actor, &a, b_person).unwrap_err();
                    assert_eq!(
                        e.kind(),
                        ErrorKind::NotFound,
                        "{}",
                        w("removes a B member through A")
                    );
                }
            }
        }
    }
    let after = observe_b(&store, &b, &b_secrets);
    assert!(
        after == before,
        "org B changed:\n--- before\n{before}\n--- after\n{after}"
    );
    // What the walk added to B's log is denials of A's members only.
    for e in store
        .audit()
        .list(&OP, &b, usize::MAX)
        .unwrap()
        .iter()
        .filter(|e| e.seq > last_seq)
    {
        assert!(
            e.outcome == AuditOutcome::Denied && people.contains(&email(&e.actor)),
            "{e:?}"
        );
    }
    // B's keys are untouched: all still active.
    assert!(
        store
            .keys()
            .list(&OP, &b)
            .unwrap()
            .iter()
            .all(|k| k.status == KeyStatus::Active)
    );
    eprintln!(
        "{STEPS} steps, A operations allowed by the matrix that succeeded: {a_ok} of {a_total}"
    );
    // The walk must have done real work in A, or it proves nothing about B.
    assert!(
        a_ok * 4 >= a_total,
        "only {a_ok} of {a_total} operations in A succeeded: are member permissions enforced?"
    );
}
