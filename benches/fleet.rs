//! The fleet on a throwaway PostgreSQL cluster (`tests/support/pg_cluster.rs`; skipped with a
//! message when PostgreSQL is absent).
//!
//! Cases: propagation of an admin write on replica A until B and C answer it (p50 / p99
//! printed besides criterion's estimate), fleet-wide admin writes from three replicas in
//! turn and from six writers at once (two per replica), the bootstrap of a fresh replica from a fleet of ORGSTORE_BENCH_BOOTSTRAP_KEYS keys
//! (default 1M), and the warm check with fleet mode on against off, as paired differences
//! of alternating batches, next to off against off (the noise of the same comparison).

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

#[path = "../tests/support/pg_cluster.rs"]
mod pg_cluster;
mod support;

use support::warm::checks;

use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use criterion::{Criterion, criterion_group, criterion_main};
use orgstore::{Actor, Email, KeySpec, OrgId, Request, Store, StoreBuilder};
use pg_cluster::{PgCluster, PgOptions};

fn env_count(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn key_file(db: &Path) -> PathBuf {
    let mut s = db.as_os_str().to_owned();
    s.push(".key");
    PathBuf::from(s)
}

fn replica(url: &str, path: &Path, from_key: &Path) -> Store {
    if !key_file(path).exists() && key_file(from_key).exists() {
        std::fs::copy(key_file(from_key), key_file(path)).unwrap();
    }
    StoreBuilder::new()
        .non_durable()
        .fleet(url)
        .poll_interval(Duration::from_millis(50))
        .open(path)
        .unwrap()
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

fn ip() -> IpAddr {
    "10.0.0.1".parse().unwrap()
}

fn sees(store: &Store, key: &str) -> bool {
    store
        .gateway()
        .check(&Request::new(key, "gpt-4o", ip()))
        .is_ok()
}

/// Propagation and admin writes on a fleet of three replicas.
fn propagation_and_writes(c: &mut Criterion, pg: &PgCluster) {
    let url = pg.database("bench_propagation");
    StoreBuilder::new().fleet(&url).init().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let path = |i: usize| dir.path().join(format!("r{i}.redb"));
    let r: Vec<Store> = (0..3).map(|i| replica(&url, &path(i), &path(0))).collect();
    let op = Actor::Operator;
    let acme = OrgId::parse("acme").unwrap();
    r[0].orgs()
        .create(&op, &acme, "Acme", &Email::parse("o@acme.io").unwrap())
        .unwrap();
    let mut samples = Vec::new();
    let mut g = c.benchmark_group("fleet");
    g.sample_size(20).measurement_time(Duration::from_secs(3));
    g.bench_function("propagation A -> B and C", |b| {
        b.iter_custom(|iters| {
            let mut total = Duration::ZERO;
            for _ in 0..iters {
                let k = r[0].keys().create(&op, &acme, KeySpec::new("p")).unwrap();
                let t = Instant::now();
                while !(sees(&r[1], k.key.expose()) && sees(&r[2], k.key.expose())) {
                    std::thread::yield_now();
                }
                let d = t.elapsed();
                samples.push(d);
                total += d;
            }
            total
        })
    });
    samples.sort();
    if !samples.is_empty() {
        eprintln!(
            "fleet/propagation A -> B and C over {} writes: p50 {:?}, p99 {:?}, max {:?}",
            samples.len(),
            percentile(&samples, 0.5),
            percentile(&samples, 0.99),
            samples[samples.len() - 1]
        );
    }
    let mut turn = 0usize;
    g.bench_function("admin write, replicas in turn", |b| {
        b.iter(|| {
            turn = (turn + 1) % 3;
            r[turn]
                .keys()
                .create(&op, &acme, KeySpec::new("w"))
                .unwrap()
        })
    });
    // Wall time per write with two writers on each replica at once: 1 / writes per second.
    g.bench_function("admin writes, 3 replicas x 2 threads at once", |b| {
        b.iter_custom(|iters| {
            let per = (iters as usize).div_ceil(6);
            let t = Instant::now();
            std::thread::scope(|s| {
                for w in 0..6 {
                    let (r, op, acme) = (&r[w % 3], &op, &acme);
                    s.spawn(move || {
                        for _ in 0..per {
                            r.keys().create(op, acme, KeySpec::new("c")).unwrap();
                        }
                    });
                }
            });
            t.elapsed().mul_f64(iters as f64 / (per * 6) as f64)
        })
    });
    g.finish();
}

/// The time to open a fresh replica of a fleet of `n` keys (copy of the state, then the
/// snapshot).
fn bootstrap(c: &mut Criterion, pg: &PgCluster) {
    let n = env_count("ORGSTORE_BENCH_BOOTSTRAP_KEYS", 1_000_000);
    let url = pg.database("bench_bootstrap");
    let mut fixture = support::build_store(n, false).unwrap();
    fixture.close().unwrap();
    let t = Instant::now();
    StoreBuilder::new()
        .fleet(&url)
        .init_from(&fixture.path)
        .unwrap();
    eprintln!("fleet/init --from a file of {n} keys: {:?}", t.elapsed());
    let dir = tempfile::tempdir().unwrap();
    let mut g = c.benchmark_group("fleet");
    g.sample_size(10).measurement_time(Duration::from_secs(5));
    let mut round = 0;
    g.bench_function(format!("bootstrap a replica of {n} keys"), |b| {
        b.iter_custom(|iters| {
            let mut total = Duration::ZERO;
            for _ in 0..iters {
                round += 1;
                let path = dir.path().join(format!("fresh-{round}.redb"));
                std::fs::copy(key_file(&fixture.path), key_file(&path)).unwrap();
                let t = Instant::now();
                let s = StoreBuilder::new()
                    .non_durable()
                    .fleet(&url)
                    .open(&path)
                    .unwrap();
                total += t.elapsed();
                assert!(s.gateway().key_count() >= n);
                drop(s);
                let _ = std::fs::remove_file(&path);
                let _ = std::fs::remove_file(key_file(&path));
            }
            total
        })
    });
    g.finish();
}

/// Median per-check difference (ns) of `a` minus `b` over alternating batches.
fn paired(a: &Store, b: &Store, keys: &[String], rounds: usize) -> (f64, f64, f64) {
    const BATCH: usize = 20_000;
    let (mut ja, mut jb) = (0, 0);
    support::warm::paired(
        rounds,
        BATCH,
        || checks(a, keys, &mut ja, BATCH),
        || checks(b, keys, &mut jb, BATCH),
    )
}

/// The warm check with fleet mode on and off, paired, next to off against off.
fn hot_path(c: &mut Criterion, pg: &PgCluster) {
    let n = env_count("ORGSTORE_BENCH_KEYS", 100_000);
    let url = pg.database("bench_hot_path");
    let mut fixture = support::build_store(n, false).unwrap();
    let hot: Vec<String> = fixture.keys.iter().take(1000).cloned().collect();
    fixture.close().unwrap();
    let dir = tempfile::tempdir().unwrap();
    // A second plain copy of the same file for the off-against-off comparison.
    let copy = dir.path().join("copy.redb");
    std::fs::copy(&fixture.path, &copy).unwrap();
    std::fs::copy(key_file(&fixture.path), key_file(&copy)).unwrap();
    let off_a = StoreBuilder::new().non_durable().open(&copy).unwrap();
    StoreBuilder::new()
        .fleet(&url)
        .init_from(&fixture.path)
        .unwrap();
    let off_b = StoreBuilder::new()
        .non_durable()
        .open(&fixture.path)
        .unwrap();
    let on = replica(&url, &dir.path().join("on.redb"), &fixture.path);
    let (mut j_on, mut j_off) = (0, 0);
    let mut g = c.benchmark_group("fleet");
    g.sample_size(20).measurement_time(Duration::from_secs(2));
    g.bench_function("warm check, fleet on", |b| {
        b.iter_custom(|iters| checks(&on, &hot, &mut j_on, iters as usize))
    });
    g.bench_function("warm check, fleet off", |b| {
        b.iter_custom(|iters| checks(&off_a, &hot, &mut j_off, iters as usize))
    });
    g.finish();
    for _ in 0..3 {
        let (a, b, d) = paired(&on, &off_a, &hot, 41);
        eprintln!(
            "fleet/warm check paired: on {a:.1} ns, off {b:.1} ns, median difference {d:+.1} ns"
        );
        let (a, b, d) = paired(&off_b, &off_a, &hot, 41);
        eprintln!(
            "fleet/warm check paired: off {a:.1} ns, off {b:.1} ns, median difference {d:+.1} ns"
        );
    }
}

fn benches(c: &mut Criterion) {
    let Some(pg) = PgCluster::start_with(PgOptions { fsync: true }) else {
        return;
    };
    let only = std::env::var("ORGSTORE_BENCH_FLEET").unwrap_or_default();
    let run = |name: &str| only.is_empty() || only.split(',').any(|o| o == name);
    if run("propagation") {
        propagation_and_writes(c, &pg);
    }
    if run("hot_path") {
        hot_path(c, &pg);
    }
    if run("bootstrap") {
        bootstrap(c, &pg);
    }
}

criterion_group!(fleet, benches);
criterion_main!(fleet);
