//! Admin writes on two replicas at once are serialized fleet-wide and decided on the state
//! they commit on: no check-then-act across replicas.

use std::sync::{Arc, Barrier};

use orgstore::{ErrorKind, KeySpec, Role, Store};

use crate::common::{OP, create_org, email};
use crate::fleet::{Fleet, check, eventually, records};
use crate::pg_cluster::PgCluster;

/// Runs `a` on one thread and `b` on another, released together.
fn at_once<A: Send, B: Send>(a: impl FnOnce() -> A + Send, b: impl FnOnce() -> B + Send) -> (A, B) {
    let go = Arc::new(Barrier::new(2));
    std::thread::scope(|s| {
        let g = go.clone();
        let ta = s.spawn(move || {
            g.wait();
            a()
        });
        let g = go.clone();
        let tb = s.spawn(move || {
            g.wait();
            b()
        });
        (ta.join().unwrap(), tb.join().unwrap())
    })
}

/// Waits until both replicas applied the same head, then compares their records.
fn converged(a: &Store, b: &Store) {
    eventually("both replicas reach the same position", || {
        a.fleet_position().unwrap() == b.fleet_position().unwrap()
    });
    assert_eq!(records(a), records(b));
}

#[test]
fn two_replicas_demoting_the_last_two_owners_at_once_leave_one_owner() {
    let Some(pg) = PgCluster::start() else { return };
    let fleet = Fleet::new(&pg, "owners");
    let (r0, r1) = (fleet.replica(0), fleet.replica(1));
    for round in 0..5 {
        let org = create_org(&r0, &format!("org{round}"), "ann@acme.io");
        let (ann, bob) = (email("ann@acme.io"), email("bob@acme.io"));
        r0.members().add(&OP, &org, &bob, Role::Owner).unwrap();
        eventually("the second owner is on replica 1", || {
            r1.orgs().get(&OP, &org).is_ok_and(|o| o.owner_count == 2)
        });
        let (a, b) = at_once(
            || r0.members().set_role(&OP, &org, &ann, Role::Admin),
            || r1.members().set_role(&OP, &org, &bob, Role::Admin),
        );
        assert!(
            a.is_ok() != b.is_ok(),
            "exactly one demotion wins: {a:?} {b:?}"
        );
        let lost = a.err().or(b.err()).unwrap();
        assert_eq!(lost.kind(), ErrorKind::Conflict, "{lost}");
        converged(&r0, &r1);
        for r in [&r0, &r1] {
            let owners = r
                .members()
                .list(&OP, &org)
                .unwrap()
                .into_iter()
                .filter(|m| m.role == Role::Owner)
                .count();
            assert_eq!(owners, 1);
            assert_eq!(r.orgs().get(&OP, &org).unwrap().owner_count, 1);
        }
    }
}

#[test]
fn the_same_key_revoked_and_rotated_at_once_on_two_replicas_ends_in_one_state() {
    let Some(pg) = PgCluster::start() else { return };
    let fleet = Fleet::new(&pg, "revoke_rotate");
    let (r0, r1) = (fleet.replica(0), fleet.replica(1));
    let acme = create_org(&r0, "acme", "ann@acme.io");
    for _ in 0..5 {
        let key = r0.keys().create(&OP, &acme, KeySpec::new("svc")).unwrap();
        eventually("the key is on replica 1", || {
            check(&r1, key.key.expose()) == "ok"
        });
        let (revoked, rotated) = at_once(
            || r0.keys().revoke(&OP, &key.info.id),
            || r1.keys().rotate(&OP, &key.info.id),
        );
        assert!(revoked.is_ok(), "a revocation always applies: {revoked:?}");
        if let Err(e) = &rotated {
            // The revocation went first: a revoked key is not rotated.
            assert_eq!(e.kind(), ErrorKind::Conflict, "{e}");
        }
        converged(&r0, &r1);
        // The old secret is refused everywhere; a new one, if the rotation went first, was
        // revoked with the key.
        for r in [&r0, &r1] {
            assert_ne!(check(r, key.key.expose()), "ok");
            if let Ok(new) = &rotated {
                assert_eq!(check(r, new.key.expose()), "revoked");
            }
            let info = r.keys().show(&OP, &key.info.id).unwrap();
            assert_eq!(info.status, orgstore::KeyStatus::Revoked);
        }
    }
}

#[test]
fn a_write_right_after_another_replicas_write_decides_on_it_not_on_a_stale_state() {
    let Some(pg) = PgCluster::start() else { return };
    let fleet = Fleet::new(&pg, "stale");
    let (r0, r1) = (fleet.replica(0), fleet.replica(1));
    for round in 0..20 {
        // Replica 1 acts at once on what replica 0 just wrote, usually before its tailer
        // applied it: the write must not fail on the state it had before.
        let org = create_org(&r0, &format!("org{round}"), "ann@acme.io");
        let key = r1
            .keys()
            .create(&OP, &org, KeySpec::new("svc"))
            .unwrap_or_else(|e| panic!("round {round}: {e}"));
        r0.keys()
            .revoke(&OP, &key.info.id)
            .unwrap_or_else(|e| panic!("round {round}: {e}"));
        // A second revocation on replica 1 is a no-op on the state that holds the first.
        let again = r1.keys().revoke(&OP, &key.info.id);
        assert!(
            again.is_ok()
                || again
                    .as_ref()
                    .is_err_and(|e| e.kind() == ErrorKind::Conflict),
            "round {round}: {again:?}"
        );
        assert_eq!(check(&r1, key.key.expose()), "revoked", "round {round}");
    }
    converged(&r0, &r1);
}

#[test]
fn concurrent_writers_on_three_replicas_get_gapless_positions_and_converge() {
    let Some(pg) = PgCluster::start() else { return };
    let fleet = Fleet::new(&pg, "writers");
    let r: Vec<Store> = (0..3).map(|i| fleet.replica(i)).collect();
    let org = create_org(&r[0], "acme", "ann@acme.io");
    for s in &r[1..] {
        eventually("the org is on every replica", || {
            s.orgs().get(&OP, &org).is_ok()
        });
    }
    const PER_THREAD: usize = 25;
    let ids: Vec<Vec<String>> = std::thread::scope(|sc| {
        let threads: Vec<_> = (0..6)
            .map(|t| {
                let (s, org) = (&r[t % 3], &org);
                sc.spawn(move || {
                    (0..PER_THREAD)
                        .map(|i| {
                            let k = s.keys().create(&OP, org, KeySpec::new(format!("t{t}-{i}")));
                            k.unwrap().info.id.to_string()
                        })
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        threads.into_iter().map(|t| t.join().unwrap()).collect()
    });
    let head = r.iter().map(|s| s.fleet_position().unwrap()).max().unwrap();
    for s in &r {
        eventually("every replica reaches the head", || {
            s.fleet_position().unwrap() == head
        });
        let listed: std::collections::BTreeSet<String> = s
            .keys()
            .list(&OP, &org)
            .unwrap()
            .into_iter()
            .map(|k| k.id.to_string())
            .collect();
        for id in ids.iter().flatten() {
            assert!(listed.contains(id), "{id} is missing on a replica");
        }
    }
    // One entry per write: the org, then every key, each at its own position, no gap.
    let mut c = postgres::Client::connect(&fleet.url, postgres::NoTls).unwrap();
    let row = c
        .query_one(
            "SELECT count(*), min(position), max(position) FROM orgstore_log",
            &[],
        )
        .unwrap();
    let (n, lo, hi): (i64, i64, i64) = (row.get(0), row.get(1), row.get(2));
    assert_eq!(hi as u64, head);
    assert_eq!(n, hi - lo + 1, "positions {lo}..={hi} have a gap");
    assert_eq!(n as usize, 1 + 6 * PER_THREAD);
    assert_eq!(records(&r[0]), records(&r[1]));
    assert_eq!(records(&r[0]), records(&r[2]));
}
