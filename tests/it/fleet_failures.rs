//! The fleet when its engine fails: stopped, restarted (`pg_ctl -m fast restart`) and
//! crashed (`-m immediate stop`) under a stream of admin writes and checks. Checks never
//! fail; writes fail with `Unavailable` (never printing the password) and change nothing;
//! every acknowledged write ends up on every replica and in the fleet's state.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use orgstore::{ErrorKind, KeyId, KeySpec, Store};

use crate::common::{OP, create_org};
use crate::fleet::{Fleet, check, eventually, records};
use crate::pg_cluster::{PgCluster, PgOptions};

/// The fleet's state rows, sorted, as the replicas' records are compared.
fn state_rows(url: &str) -> Vec<(String, Vec<u8>, Vec<u8>)> {
    let mut c = postgres::Client::connect(url, postgres::NoTls).unwrap();
    let mut rows: Vec<_> = c
        .query("SELECT tbl, k, v FROM orgstore_state", &[])
        .unwrap()
        .iter()
        .map(|r| (r.get(0), r.get(1), r.get(2)))
        .collect();
    rows.sort();
    rows
}

/// Asserts that two replicas hold the same records, naming the first difference.
pub fn same_records(
    what: &str,
    a: &[(String, Vec<u8>, Vec<u8>)],
    b: &[(String, Vec<u8>, Vec<u8>)],
) {
    if let Some(i) = (0..a.len().min(b.len())).find(|&i| a[i] != b[i]) {
        panic!(
            "{what} differ at record {i} of {} and {}: {} {:?} vs {} {:?}",
            a.len(),
            b.len(),
            a[i].0,
            a[i].1,
            b[i].0,
            b[i].1
        );
    }
    assert_eq!(a.len(), b.len(), "{what} hold different numbers of records");
}

fn sorted(mut v: Vec<(String, Vec<u8>, Vec<u8>)>) -> Vec<(String, Vec<u8>, Vec<u8>)> {
    v.sort();
    v
}

#[test]
fn with_the_engine_down_checks_are_answered_and_writes_fail_at_once_naming_it_without_its_password()
{
    let Some(pg) = PgCluster::start() else { return };
    let mut fleet = Fleet::new(&pg, "down");
    // Loopback trusts every user: the password is never checked, only carried.
    fleet.url = fleet.url.replacen("orgstore@", "orgstore:hunter2@", 1);
    let (r0, r1) = (fleet.replica(0), fleet.replica(1));
    let acme = create_org(&r0, "acme", "ann@acme.io");
    let key = r0.keys().create(&OP, &acme, KeySpec::new("svc")).unwrap();
    eventually("the key reaches replica 1", || {
        check(&r1, key.key.expose()) == "ok"
    });
    pg.stop();
    for _ in 0..3 {
        let err = r0.keys().revoke(&OP, &key.info.id).unwrap_err();
        assert_eq!(err.kind(), ErrorKind::Unavailable, "{err}");
        let text = format!("{err} {err:?}");
        assert!(text.contains("127.0.0.1"), "{text}");
        assert!(!text.contains("hunter2"), "the password leaked: {text}");
        // Nothing was applied anywhere: checks keep being answered from local state.
        assert_eq!(check(&r0, key.key.expose()), "ok");
        assert_eq!(check(&r1, key.key.expose()), "ok");
    }
    // A replica restarted during the outage serves from its file.
    drop(r1);
    let r1 = fleet.builder().open(fleet.path(1)).unwrap();
    assert_eq!(check(&r1, key.key.expose()), "ok");
    let err = r1.keys().revoke(&OP, &key.info.id).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Unavailable, "{err}");
    // A new replica cannot start without the engine.
    fleet.share_key(2);
    let Err(err) = fleet.builder().open(fleet.path(2)) else {
        panic!("a new replica opened without the engine")
    };
    assert_eq!(err.kind(), ErrorKind::Unavailable, "{err}");
    pg.start_again();
    let mut tries = 0;
    while r0.keys().revoke(&OP, &key.info.id).is_err() {
        tries += 1;
        assert!(tries < 3000, "writes never worked again");
        std::thread::sleep(Duration::from_millis(10));
    }
    eventually("the revocation reaches replica 1 after the outage", || {
        check(&r1, key.key.expose()) == "revoked"
    });
}

#[test]
fn max_staleness_fails_checks_closed_while_the_head_is_unconfirmed_and_recovers() {
    let Some(pg) = PgCluster::start() else { return };
    let fleet = Fleet::new(&pg, "staleness");
    let r0 = fleet.replica(0);
    let acme = create_org(&r0, "acme", "ann@acme.io");
    let key = r0.keys().create(&OP, &acme, KeySpec::new("svc")).unwrap();
    fleet.share_key(1);
    let strict = fleet
        .builder()
        .max_staleness(Duration::from_millis(300))
        .open(fleet.path(1))
        .unwrap();
    assert_eq!(check(&strict, key.key.expose()), "ok");
    pg.stop();
    eventually("checks answer unavailable once the head is stale", || {
        check(&strict, key.key.expose()) == "unavailable"
    });
    // Without the option a replica keeps answering.
    assert_eq!(check(&r0, key.key.expose()), "ok");
    pg.start_again();
    eventually("checks recover once the replica caught up", || {
        check(&strict, key.key.expose()) == "ok"
    });
}

#[test]
fn engine_restarts_and_crashes_under_writes_and_checks_lose_no_acknowledged_write() {
    // Durable commits: an engine that acknowledges before its WAL is written
    // (`synchronous_commit = off`) loses acknowledged commits when it crashes.
    let Some(pg) = PgCluster::start_with(PgOptions { fsync: true }) else {
        return;
    };
    let fleet = Fleet::new(&pg, "restarts");
    let r: Vec<Store> = (0..3).map(|i| fleet.replica(i)).collect();
    let acme = create_org(&r[0], "acme", "ann@acme.io");
    let steady = r[0]
        .keys()
        .create(&OP, &acme, KeySpec::new("steady"))
        .unwrap();
    for s in &r {
        eventually("the steady key is everywhere", || {
            check(s, steady.key.expose()) == "ok"
        });
    }
    let stop = Arc::new(AtomicBool::new(false));
    let (acked, failed_checks) = std::thread::scope(|sc| {
        let writers: Vec<_> = [&r[0], &r[1]]
            .into_iter()
            .map(|store| {
                let (stop, acme) = (stop.clone(), acme.clone());
                sc.spawn(move || {
                    let mut acked: Vec<KeyId> = Vec::new();
                    while !stop.load(Ordering::Acquire) {
                        match store.keys().create(&OP, &acme, KeySpec::new("w")) {
                            Ok(k) => acked.push(k.info.id),
                            Err(e) => {
                                assert_eq!(e.kind(), ErrorKind::Unavailable, "{e}");
                                std::thread::sleep(Duration::from_millis(5));
                            }
                        }
                    }
                    acked
                })
            })
            .collect();
        let checkers: Vec<_> = r
            .iter()
            .map(|store| {
                let (stop, key) = (stop.clone(), steady.key.expose().to_owned());
                sc.spawn(move || {
                    let mut failed = 0u64;
                    while !stop.load(Ordering::Acquire) {
                        if check(store, &key) != "ok" {
                            failed += 1;
                        }
                    }
                    failed
                })
            })
            .collect();
        let progress = |n: u64| {
            let start = r[2].fleet_position().unwrap();
            eventually("writes go on", || {
                r[2].fleet_position().unwrap() >= start + n
            });
        };
        progress(20);
        pg.restart_fast();
        progress(20);
        pg.crash();
        std::thread::sleep(Duration::from_millis(200));
        pg.start_again();
        progress(20);
        stop.store(true, Ordering::Release);
        let acked: Vec<KeyId> = writers
            .into_iter()
            .flat_map(|w| w.join().unwrap())
            .collect();
        let failed: u64 = checkers.into_iter().map(|c| c.join().unwrap()).sum();
        (acked, failed)
    });
    assert_eq!(failed_checks, 0, "checks never fail during the outages");
    assert!(acked.len() >= 60, "{} writes acknowledged", acked.len());
    // The engine's head: a write whose commit answer was lost in a crash may be there
    // and on no replica yet; the tailers bring it everywhere.
    let head = r[0].fleet_status().unwrap().head;
    for s in &r {
        eventually("every replica reaches the head", || {
            s.fleet_position().unwrap() == head
        });
    }
    let first = records(&r[0]);
    for s in &r[1..] {
        same_records("the replicas", &records(s), &first);
    }
    for id in &acked {
        for s in &r {
            s.keys().show(&OP, id).unwrap();
        }
    }
    #[cfg(feature = "fuzzing")]
    same_records(
        "the replicas and the fleet's state",
        &sorted(first),
        &state_rows(&fleet.url),
    );
    #[cfg(not(feature = "fuzzing"))]
    let _ = (sorted(first), state_rows(&fleet.url));
}

#[test]
fn a_replica_that_applied_commits_the_engine_then_lost_copies_the_state_again() {
    let Some(pg) = PgCluster::start() else { return };
    let fleet = Fleet::new(&pg, "lost_commits");
    let (r0, r1) = (fleet.replica(0), fleet.replica(1));
    let acme = create_org(&r0, "acme", "ann@acme.io");
    let kept = r0.keys().create(&OP, &acme, KeySpec::new("kept")).unwrap();
    let mut c = postgres::Client::connect(&fleet.url, postgres::NoTls).unwrap();
    // What a standby promoted after a crash holds: the fleet as of now.
    c.batch_execute(
        "CREATE TABLE bak_state AS SELECT * FROM orgstore_state;
         CREATE TABLE bak_log AS SELECT * FROM orgstore_log;
         CREATE TABLE bak_head AS SELECT * FROM orgstore_head;",
    )
    .unwrap();
    let lost = r0.keys().create(&OP, &acme, KeySpec::new("lost")).unwrap();
    eventually("replica 1 applied the commit that will be lost", || {
        check(&r1, lost.key.expose()) == "ok"
    });
    drop(r0);
    c.batch_execute(
        "TRUNCATE orgstore_state, orgstore_log;
         INSERT INTO orgstore_state SELECT * FROM bak_state;
         INSERT INTO orgstore_log SELECT * FROM bak_log;
         UPDATE orgstore_head SET position = (SELECT position FROM bak_head);",
    )
    .unwrap();
    // Another replica writes at the lost commit's position.
    let r2 = fleet.replica(2);
    let other = r2.keys().create(&OP, &acme, KeySpec::new("other")).unwrap();
    eventually("replica 1 follows the engine's history again", || {
        check(&r1, lost.key.expose()) == "unknown_key" && check(&r1, other.key.expose()) == "ok"
    });
    assert_eq!(check(&r1, kept.key.expose()), "ok");
    eventually("both replicas at the head", || {
        r1.fleet_position().unwrap() == r2.fleet_position().unwrap()
    });
    same_records("the replicas", &records(&r1), &records(&r2));
}
