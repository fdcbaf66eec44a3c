//! Impact analysis of a proposed policy set on a store of 1,000 members (10 orgs of 100) and
//! 100,000 keys (imported by digest, 10,000 per org):
//!
//! - `policy_impact/1k_members_100k_keys`: one `Store::policy_impact` of the example policy
//!   `require-key-expiry.cedar`. Target: at most 3 s, ideally under 1 s (see `docs/performance.md`).
//!
//! Building the store takes a while; run it alone (`cargo bench --bench policy_impact`).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::hint::black_box;
use std::time::Duration;

use criterion::{Criterion, SamplingMode, criterion_group, criterion_main};
use orgstore::{Actor, Email, ImportKey, KeySpec, OrgId, Policies, Role, StoreBuilder};
use sha2::{Digest, Sha256};

const ORGS: usize = 10;
const MEMBERS_PER_ORG: usize = 100;
const KEYS_PER_ORG: usize = 10_000;

fn impact(c: &mut Criterion) {
    let dir = tempfile::tempdir().unwrap();
    let store = StoreBuilder::new()
        .non_durable()
        .open(dir.path().join("impact.redb"))
        .unwrap();
    let op = Actor::Operator;
    let roles = [Role::Admin, Role::Member, Role::Viewer];
    for o in 0..ORGS {
        let org = OrgId::parse(&format!("org-{o}")).unwrap();
        let owner = Email::parse(&format!("owner@org-{o}.example")).unwrap();
        store.orgs().create(&op, &org, "Org", &owner).unwrap();
        for m in 1..MEMBERS_PER_ORG {
            let who = Email::parse(&format!("m{m}@org-{o}.example")).unwrap();
            store
                .members()
                .add(&op, &org, &who, roles[m % roles.len()])
                .unwrap();
        }
        let batch: Vec<ImportKey> = (0..KEYS_PER_ORG)
            .map(|i| {
                let key = format!("sk-agentcc-{:048x}", o * KEYS_PER_ORG + i);
                let hex: String = Sha256::digest(key.as_bytes())
                    .iter()
                    .map(|b| format!("{b:02x}"))
                    .collect();
                ImportKey::new(hex, KeySpec::new(format!("k{i}")))
            })
            .collect();
        store.keys().import(&op, &org, &batch).unwrap();
    }
    let rule = include_str!("../policies/examples/require-key-expiry.cedar");
    let proposed =
        Policies::from_files(&[("require-key-expiry.cedar".to_owned(), rule.to_owned())]).unwrap();
    let mut g = c.benchmark_group("policy_impact");
    g.sampling_mode(SamplingMode::Flat);
    g.sample_size(10);
    g.measurement_time(Duration::from_secs(10));
    g.bench_function("1k_members_100k_keys", |b| {
        b.iter(|| black_box(store.policy_impact(&proposed).unwrap()))
    });
    g.finish();
}

criterion_group!(benches, impact);
criterion_main!(benches);
