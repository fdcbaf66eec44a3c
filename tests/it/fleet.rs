//! The fleet: replicas sharing one truth on PostgreSQL (feature `fleet`). Every test starts
//! a throwaway cluster on a loopback port (`tests/support/pg_cluster.rs`); without
//! PostgreSQL they skip, under `CI=true` they fail.

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
