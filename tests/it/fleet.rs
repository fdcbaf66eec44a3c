//! The fleet: replicas sharing one truth on PostgreSQL (feature `fleet`). Every test starts
//! a throwaway cluster on a loopback port (`tests/support/pg_cluster.rs`); without
//! PostgreSQL they skip, under `CI=true` they fail.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use orgstore::{KeySpec, Request, Store, StoreBuilder};

use crate::common::{OP, create_org};
use crate::pg_cluster::PgCluster;

#[test]
fn a_throwaway_cluster_starts_and_answers_queries() {
    let Some(pg) = PgCluster::start() else { return };
    let url = pg.database("smoke");
    let mut client = postgres::Client::connect(&url, postgres::NoTls).unwrap();
    let row = client.query_one("SELECT 40 + 2", &[]).unwrap();
    assert_eq!(row.get::<_, i32>(0), 42);
    pg.restart_fast();
    let mut client = postgres::Client::connect(&url, postgres::NoTls).unwrap();
    let v: String = client.query_one("SHOW server_version", &[]).unwrap().get(0);
    let major: u32 = v.split('.').next().unwrap().parse().unwrap();
    assert!(major >= 15, "PostgreSQL {v} is older than 15");
}

/// A fleet in database `name` of `pg`, with its schema, and a directory for replica files.
pub struct Fleet {
    pub url: String,
    pub dir: tempfile::TempDir,
}

impl Fleet {
    pub fn new(pg: &PgCluster, name: &str) -> Self {
        let url = pg.database(name);
        StoreBuilder::new().fleet(&url).init().unwrap();
        Self {
            url,
            dir: tempfile::tempdir().unwrap(),
        }
    }

    /// The file of replica `i`.
    pub fn path(&self, i: usize) -> PathBuf {
        self.dir.path().join(format!("r{i}.redb"))
    }

    /// The builder replicas open with: non-durable files, a short poll.
    pub fn builder(&self) -> orgstore::FleetBuilder {
        StoreBuilder::new()
            .non_durable()
            .fleet(&self.url)
            .poll_interval(Duration::from_millis(20))
    }

    /// Opens replica `i`, giving it the key file of replica 0 first when it has none.
    pub fn replica(&self, i: usize) -> Store {
        self.share_key(i);
        self.builder()
            .replica_name(format!("r{i}"))
            .open(self.path(i))
            .unwrap()
    }

    /// Copies replica 0's key file to replica `i` (what an operator does for a new one).
    pub fn share_key(&self, i: usize) {
        let key = key_file(&self.path(i));
        let first = key_file(&self.path(0));
        if i > 0 && !key.exists() && first.exists() {
            std::fs::copy(first, key).unwrap();
        }
    }
}

pub fn key_file(db: &Path) -> PathBuf {
    let mut s = db.as_os_str().to_owned();
    s.push(".key");
    PathBuf::from(s)
}

/// Waits (up to a generous deadline) until `f` holds.
pub fn eventually(what: &str, mut f: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while !f() {
        assert!(Instant::now() < deadline, "never happened: {what}");
        std::thread::sleep(Duration::from_millis(5));
    }
}

/// The code a check of `key` for gpt-4o answers on `store` (`ok` when allowed).
pub fn check(store: &Store, key: &str) -> String {
    let ip = "10.0.0.1".parse().unwrap();
    match store.gateway().check(&Request::new(key, "gpt-4o", ip)) {
        Ok(_) => "ok".to_owned(),
        Err(d) => d.code().to_owned(),
    }
}

/// Every replicated record of `store` (with the `fuzzing` hooks: the raw records; without
/// them, what the public API lists).
pub fn records(store: &Store) -> Vec<(String, Vec<u8>, Vec<u8>)> {
    #[cfg(feature = "fuzzing")]
    return orgstore::fuzz_support::replicated_records(store).unwrap();
    #[cfg(not(feature = "fuzzing"))]
    {
        let mut out = Vec::new();
        for org in store.orgs().list(&OP).unwrap() {
            let keys = store.keys().list(&OP, &org.id).unwrap();
            let members = store.members().list(&OP, &org.id).unwrap();
            out.push((
                org.id.to_string(),
                format!("{org:?}").into_bytes(),
                format!("{keys:?}{members:?}").into_bytes(),
            ));
        }
        out
    }
}

#[test]
fn a_key_created_on_one_replica_works_on_all_and_a_revocation_anywhere_denies_it_everywhere() {
    let Some(pg) = PgCluster::start() else { return };
    let fleet = Fleet::new(&pg, "propagation");
    let r: Vec<Store> = (0..3).map(|i| fleet.replica(i)).collect();
    let acme = create_org(&r[0], "acme", "owner@acme.io");
    let key = r[0].keys().create(&OP, &acme, KeySpec::new("svc")).unwrap();
    // Read your writes: the writing replica answers at once.
    assert_eq!(check(&r[0], key.key.expose()), "ok");
    for s in &r[1..] {
        eventually("the key works on every replica", || {
            check(s, key.key.expose()) == "ok"
        });
    }
    r[1].keys().revoke(&OP, &key.info.id).unwrap();
    assert_eq!(check(&r[1], key.key.expose()), "revoked");
    for s in [&r[0], &r[2]] {
        eventually("the revocation is seen on every replica", || {
            check(s, key.key.expose()) == "revoked"
        });
    }
    let head = r[1].fleet_position().unwrap();
    for s in &r {
        eventually("every replica reaches the head", || {
            s.fleet_position().unwrap() == head
        });
    }
    let first = records(&r[0]);
    assert!(first.iter().any(|(t, _, _)| t == "keys"));
    for s in &r[1..] {
        assert_eq!(records(s), first, "replicas hold the same records");
    }
}

#[test]
fn usage_on_any_replica_reports_the_spend_of_the_whole_fleet() {
    let Some(pg) = PgCluster::start() else { return };
    let fleet = Fleet::new(&pg, "usage");
    let r: Vec<Store> = (0..2).map(|i| fleet.replica(i)).collect();
    let acme = create_org(&r[0], "acme", "owner@acme.io");
    r[0].org_configs()
        .update(&OP, &acme, r#"{"budgets":{"limit":10,"period":"monthly"}}"#)
        .unwrap();
    let key = r[0].keys().create(&OP, &acme, KeySpec::new("svc")).unwrap();
    let ip = "10.0.0.1".parse().unwrap();
    let usd = |m: i64| orgstore::Usd::from_micros(m).unwrap();
    // 1.25 dollars on replica 0 and 2.5 on replica 1 (more than their estimates: a
    // budget's first lease is small), each written to its own file.
    for (s, cost) in [(&r[0], 1_250_000), (&r[1], 2_500_000)] {
        eventually("the key and its budget reach the replica", || {
            check(s, key.key.expose()) == "ok"
        });
        let gw = s.gateway();
        let g = gw
            .check(&Request::new(key.key.expose(), "gpt-4o", ip).estimate(usd(10_000)))
            .unwrap();
        gw.record_usage(&g, orgstore::Usage::new(10, 10, usd(cost)));
        s.flush().unwrap();
    }
    let both = usd(3_750_000);
    for s in &r {
        eventually("each replica reports the fleet's spend", || {
            let k = s.keys().usage(&OP, &key.info.id).unwrap();
            let o = s.orgs().usage(&OP, &acme).unwrap();
            [
                k.today,
                k.this_month,
                k.total,
                o.today,
                o.this_week,
                o.total,
            ] == [both; 6]
                && o.budget.as_ref().is_some_and(|b| b.spent == both)
        });
    }
    let o = r[1].orgs().usage(&OP, &acme).unwrap();
    let b = o.budget.unwrap();
    assert_eq!(b.remaining, usd(10_000_000 - 3_750_000), "{b:?}");
}

#[test]
fn a_replica_bootstrapped_from_the_state_holds_the_same_records_indexes_included() {
    let Some(pg) = PgCluster::start() else { return };
    let fleet = Fleet::new(&pg, "bootstrap_copy");
    let r0 = fleet.replica(0);
    let acme = create_org(&r0, "acme", "owner@acme.io");
    let beta = create_org(&r0, "beta", "owner@beta.io");
    let mut live = Vec::new();
    for (i, org) in [&acme, &beta, &acme, &beta, &acme].into_iter().enumerate() {
        live.push(
            r0.keys()
                .create(&OP, org, KeySpec::new(format!("k{i}")))
                .unwrap(),
        );
    }
    let old = live.remove(0);
    let rotated = r0.keys().rotate(&OP, &old.info.id).unwrap();
    let rotated = r0.keys().rotate(&OP, &rotated.info.id).unwrap();
    let revoked = live.remove(0);
    r0.keys().revoke(&OP, &revoked.info.id).unwrap();
    let bob = orgstore::Email::parse("bob@acme.io").unwrap();
    r0.members()
        .add(&OP, &acme, &bob, orgstore::Role::Admin)
        .unwrap();
    let carol = orgstore::Email::parse("carol@beta.io").unwrap();
    r0.invites()
        .create(&OP, &beta, &carol, orgstore::Role::Member)
        .unwrap();
    // What a writer's trim does once the log is longer than the retention: a new replica
    // must copy the state.
    let mut c = postgres::Client::connect(&fleet.url, postgres::NoTls).unwrap();
    c.batch_execute(
        "DELETE FROM orgstore_log; UPDATE orgstore_head SET trimmed_to = position WHERE id = 1",
    )
    .unwrap();

    let r1 = fleet.replica(1);
    assert_eq!(
        records(&r1),
        records(&r0),
        "the copy holds the same records"
    );
    assert_eq!(check(&r1, rotated.key.expose()), "ok");
    assert_eq!(check(&r1, old.key.expose()), "unknown_key");
    assert_eq!(check(&r1, revoked.key.expose()), "revoked");
    for k in &live {
        assert_eq!(check(&r1, k.key.expose()), "ok");
    }
    // Entries written after the copy apply onto the rebuilt indexes as on the source.
    let again = r1.keys().rotate(&OP, &rotated.info.id).unwrap();
    r1.keys().create(&OP, &beta, KeySpec::new("later")).unwrap();
    eventually("replica 0 has the writes made after the copy", || {
        check(&r0, again.key.expose()) == "ok"
    });
    eventually("both replicas at the same position", || {
        r0.fleet_position().unwrap() == r1.fleet_position().unwrap()
    });
    assert_eq!(records(&r1), records(&r0), "the replicas converge");
}
