//! Admin path on a store file with the default (durable) settings:
//!
//! - `admin/key_create_durable`: one `keys().create` per iteration, each its own fsynced
//!   commit. Target: >= 2,000 creates/s (redb's durable single-insert floor is ~4,100/s).
//! - `admin/key_import_100k`: one `keys().import` of 100,000 keys by digest, one
//!   transaction, into a fresh store each time. Target: >= 100,000 keys/s.
//!
//! - `admin_authorize/*`: one Cedar admin decision per request shape (expected ~10 us).
//!
//! Criterion reports throughput in elements/s: creates/s and imported keys/s.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::hint::black_box;
use std::path::Path;
use std::time::{Duration, Instant};

use criterion::{Criterion, SamplingMode, Throughput, criterion_group, criterion_main};
use orgstore::{
    Actor, AdminAction, AdminRequest, Email, ImportKey, KeyId, KeySpec, OrgId, Policies, Role,
    Store, Target,
};
use sha2::{Digest, Sha256};

const IMPORT_BATCH: usize = 100_000;

/// A durable store file in `dir` with one org.
fn store_with_org(dir: &Path) -> (Store, OrgId) {
    let store = Store::open(dir.join("bench.redb")).unwrap();
    let org = OrgId::parse("bench").unwrap();
    store
        .orgs()
        .create(
            &Actor::Operator,
            &org,
            "Bench",
            &Email::parse("owner@bench.io").unwrap(),
        )
        .unwrap();
    (store, org)
}

/// `n` distinct keys to import, as upstream would hand them over: SHA-256 hex and settings.
fn import_batch(n: usize) -> Vec<ImportKey> {
    (0..n)
        .map(|i| {
            let key = format!("sk-agentcc-{i:048x}");
            let hex: String = Sha256::digest(key.as_bytes())
                .iter()
                .map(|b| format!("{b:02x}"))
                .collect();
            ImportKey::new(hex, KeySpec::new(format!("migrated-{i}")).rpm(600))
        })
        .collect()
}

fn durable_create(c: &mut Criterion) {
    let dir = tempfile::tempdir().unwrap();
    let (store, org) = store_with_org(dir.path());
    let op = Actor::Operator;
    let mut g = c.benchmark_group("admin");
    g.throughput(Throughput::Elements(1));
    g.bench_function("key_create_durable", |b| {
        b.iter(|| {
            black_box(
                store
                    .keys()
                    .create(&op, &org, KeySpec::new("svc").rpm(100))
                    .unwrap(),
            )
        })
    });
    g.finish();
}

fn bulk_import(c: &mut Criterion) {
    let batch = import_batch(IMPORT_BATCH);
    let op = Actor::Operator;
    let mut g = c.benchmark_group("admin");
    g.sample_size(10)
        .sampling_mode(SamplingMode::Flat)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(15))
        .throughput(Throughput::Elements(IMPORT_BATCH as u64));
    g.bench_function("key_import_100k", |b| {
        b.iter_custom(|iters| {
            let mut total = Duration::ZERO;
            for _ in 0..iters {
                // A fresh store each time: set-up and close are not measured.
                let dir = tempfile::tempdir().unwrap();
                let (store, org) = store_with_org(dir.path());
                let start = Instant::now();
                let imported = store.keys().import(&op, &org, black_box(&batch)).unwrap();
                total += start.elapsed();
                assert_eq!(imported.len(), IMPORT_BATCH);
                drop(imported);
                drop(store);
            }
            total
        })
    });
    g.finish();
}

/// Admin authorization cost: one Cedar decision per request shape (the store makes one per
/// admin operation).
fn admin_authorize(c: &mut Criterion) {
    let p = Policies::default_set().expect("policies");
    let org = OrgId::parse("acme").expect("org");
    let ann = Email::parse("ann@acme.io").expect("email");
    let bob = Email::parse("bob@acme.io").expect("email");
    let actor = Actor::member(ann.clone());
    let key = KeyId::random();
    let req = |role, action, target| AdminRequest {
        actor: &actor,
        actor_role: Some(role),
        action,
        org: &org,
        owner_count: 2,
        target,
    };
    let read = req(Role::Viewer, AdminAction::ReadOrg, Target::Org);
    let update = req(Role::Admin, AdminAction::UpdateConfig, Target::Config);
    let change = req(
        Role::Admin,
        AdminAction::ChangeRole,
        Target::Membership {
            email: &bob,
            role: Some(Role::Member),
            new_role: Some(Role::Viewer),
        },
    );
    let own_key = req(
        Role::Member,
        AdminAction::ManageKey,
        Target::Key {
            id: key,
            created_by: "ann@acme.io",
        },
    );
    let denied = req(Role::Viewer, AdminAction::UpdateConfig, Target::Config);
    assert!(p.authorize(&read).is_ok() && p.authorize(&update).is_ok());
    assert!(p.authorize(&change).is_ok() && p.authorize(&own_key).is_ok());
    assert!(p.authorize(&denied).is_err());
    let mut g = c.benchmark_group("admin_authorize");
    g.bench_function("viewer_read_org", |b| {
        b.iter(|| p.authorize(black_box(&read)).is_ok())
    });
    g.bench_function("admin_update_config", |b| {
        b.iter(|| p.authorize(black_box(&update)).is_ok())
    });
    g.bench_function("admin_change_role", |b| {
        b.iter(|| p.authorize(black_box(&change)).is_ok())
    });
    g.bench_function("member_manage_own_key", |b| {
        b.iter(|| p.authorize(black_box(&own_key)).is_ok())
    });
    g.bench_function("viewer_update_config_denied", |b| {
        b.iter(|| p.authorize(black_box(&denied)).is_ok())
    });
    g.finish();
}

criterion_group!(benches, durable_create, bulk_import, admin_authorize);
criterion_main!(benches);
