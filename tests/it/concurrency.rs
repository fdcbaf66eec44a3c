//! Readers checking keys while writers create, rotate and revoke them (and republish their
//! orgs, flush spend and reload policies): no torn reads (every grant names the key and org
//! of the secret that was checked), no stale grant once a revoke or rotation has returned,
//! and no deadlock (a watchdog aborts the process if the run does not finish in time).
//!
//! How long it runs is set by work done, not by a clock: the writers go on until each has
//! made `MIN_WRITES` calls, the readers have made `MIN_CHECKS` checks with `MIN_GRANTS`
//! grants among them and the policies were reloaded `MIN_RELOADS` times, all while the
//! writers were still writing.

use std::net::{IpAddr, Ipv4Addr};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use orgstore::{Email, KeyId, KeySpec, OrgId, Request, StoreBuilder, Usage, Usd};
use rand::Rng;

use crate::common::OP;

/// Admin calls each writer makes at least.
const MIN_WRITES: u64 = 150;
/// Checks (and grants among them) the readers make at least while the writers write.
const MIN_CHECKS: u64 = 20_000;
const MIN_GRANTS: u64 = 2_000;
/// Policy reloads at least while the writers write.
const MIN_RELOADS: u64 = 3;
/// Only a deadlock comes near this: the work above takes a few seconds in a debug build.
const WATCHDOG: Duration = Duration::from_secs(300);
const MODEL: &str = "gpt-4o-mini";

/// One secret that was handed out, and whether it is known to be dead (its key revoked or
/// rotated away) because the call that killed it has returned.
struct Credential {
    secret: String,
    key: KeyId,
    org: OrgId,
    dead: AtomicBool,
}

#[derive(Default)]
struct Counts {
    checks: AtomicU64,
    grants: AtomicU64,
    denied_dead: AtomicU64,
    writes: AtomicU64,
    reloads: AtomicU64,
}

impl Counts {
    /// Whether the readers and the reloader have done their share.
    fn others_done(&self) -> bool {
        self.checks.load(Ordering::Relaxed) >= MIN_CHECKS
            && self.grants.load(Ordering::Relaxed) >= MIN_GRANTS
            && self.reloads.load(Ordering::Relaxed) >= MIN_RELOADS
    }
}

/// Aborts the whole process unless `done` is signalled within `limit`: a deadlock fails
/// the test instead of hanging CI.
fn watchdog(limit: Duration) -> std::sync::mpsc::Sender<()> {
    let (tx, rx) = std::sync::mpsc::channel::<()>();
    std::thread::spawn(move || {
        if rx.recv_timeout(limit) == Err(std::sync::mpsc::RecvTimeoutError::Timeout) {
            eprintln!("concurrency test did not finish in {limit:?}: deadlock; aborting");
            std::process::abort();
        }
    });
    tx
}

#[test]
fn readers_never_see_torn_or_stale_keys_while_writers_churn() {
    let done = watchdog(WATCHDOG);
    let store = StoreBuilder::new()
        .spend_flush_interval(Duration::from_millis(5))
        .open_temporary()
        .unwrap();
    let orgs: Vec<OrgId> = ["shared", "w0", "w1"]
        .iter()
        .map(|id| {
            let id = OrgId::parse(id).unwrap();
            store
                .orgs()
                .create(&OP, &id, "Org", &Email::parse("o@x.io").unwrap())
                .unwrap();
            id
        })
        .collect();
    let registry: Arc<RwLock<Vec<Arc<Credential>>>> = Arc::default();
    let stop = Arc::new(AtomicBool::new(false));
    let counts = Arc::new(Counts::default());
    let started = Instant::now();

    let mut writers = Vec::new();
    let mut handles = Vec::new();
    for w in 0..2u64 {
        let (store, registry, counts) = (store.clone(), registry.clone(), counts.clone());
        let my_orgs = [orgs[0].clone(), orgs[1 + w as usize].clone()];
        writers.push(std::thread::spawn(move || {
            let mut rng = crate::common::rng(w);
            // This writer's live credentials (index into the registry).
            let mut live: Vec<Arc<Credential>> = Vec::new();
            let mut made = 0u64;
            while made < MIN_WRITES || !counts.others_done() {
                let org = &my_orgs[rng.random_range(0..my_orgs.len())];
                match rng.random_range(0..10) {
                    0..=2 => {
                        let k = store.keys().create(&OP, org, KeySpec::new("c")).unwrap();
                        let c = Arc::new(Credential {
                            secret: k.key.expose().to_owned(),
                            key: k.info.id,
                            org: org.clone(),
                            dead: AtomicBool::new(false),
                        });
                        registry.write().unwrap().push(c.clone());
                        live.push(c);
                    }
                    3 | 4 if !live.is_empty() => {
                        let c = live.swap_remove(rng.random_range(0..live.len()));
                        store.keys().revoke(&OP, &c.key).unwrap();
                        // The revoke has returned: from now on no check may grant it.
                        c.dead.store(true, Ordering::Release);
                    }
                    5..=7 if !live.is_empty() => {
                        let i = rng.random_range(0..live.len());
                        let old = live[i].clone();
                        let k = store.keys().rotate(&OP, &old.key).unwrap();
                        old.dead.store(true, Ordering::Release);
                        let c = Arc::new(Credential {
                            secret: k.key.expose().to_owned(),
                            key: old.key,
                            org: old.org.clone(),
                            dead: AtomicBool::new(false),
                        });
                        registry.write().unwrap().push(c.clone());
                        live[i] = c;
                    }
                    8 => {
                        // Republishes the org: its keys are re-resolved.
                        let rpm = rng.random_range(100_000..200_000);
                        let patch = format!(r#"{{"rate_limiting":{{"per_key_rpm":{rpm}}}}}"#);
                        store.org_configs().update(&OP, org, &patch).unwrap();
                    }
                    _ => {
                        let keys = store.keys().list(&OP, org).unwrap();
                        assert!(keys.iter().all(|k| k.org == *org));
                    }
                }
                counts.writes.fetch_add(1, Ordering::Relaxed);
                made += 1;
            }
        }));
    }
    {
        // Policy reloads contend for the writer lock and invalidate every memo.
        let (store, stop, counts) = (store.clone(), stop.clone(), counts.clone());
        handles.push(std::thread::spawn(move || {
            // Two sets in turn (a rule about a model nothing uses, then none): each apply
            // is a new version.
            let rule = "@id(\"unused-model\")\nforbid (principal, action == Action::\"invoke\", resource == Model::\"never-asked\");\n";
            let sets = [vec![("unused.cedar".to_owned(), rule.to_owned())], Vec::new()];
            let mut turn = 0usize;
            while !stop.load(Ordering::Relaxed) {
                let v = store
                    .policy_set()
                    .apply(&orgstore::Actor::Operator, &sets[turn % 2])
                    .unwrap();
                turn += 1;
                assert!(v.changed);
                counts.reloads.fetch_add(1, Ordering::Relaxed);
                // Paced only so that reloads do not crowd out the writers.
                std::thread::sleep(Duration::from_millis(50));
            }
        }));
    }
    for r in 0..3u64 {
        let (gw, registry, stop, counts) = (
            store.gateway().clone(),
            registry.clone(),
            stop.clone(),
            counts.clone(),
        );
        handles.push(std::thread::spawn(move || {
            let mut rng = crate::common::rng(100 + r);
            let ip = IpAddr::V4(Ipv4Addr::new(10, 0, 0, 1));
            while !stop.load(Ordering::Relaxed) {
                let c = {
                    let reg = registry.read().unwrap();
                    if reg.is_empty() {
                        drop(reg);
                        std::thread::yield_now();
                        continue;
                    }
                    reg[rng.random_range(0..reg.len())].clone()
                };
                let dead_before = c.dead.load(Ordering::Acquire);
                let got = gw.check(&Request::new(&c.secret, MODEL, ip));
                counts.checks.fetch_add(1, Ordering::Relaxed);
                match got {
                    Ok(grant) => {
                        assert!(
                            !dead_before,
                            "stale grant: key {} granted after its revoke or rotation returned",
                            c.key
                        );
                        assert_eq!(grant.key_id(), c.key, "torn read: grant names another key");
                        assert_eq!(grant.org_id(), &c.org, "torn read: grant names another org");
                        counts.grants.fetch_add(1, Ordering::Relaxed);
                        if rng.random_ratio(1, 8) {
                            gw.record_usage(&grant, Usage::new(1, 1, Usd::from_micros(1).unwrap()));
                        }
                    }
                    Err(d) => {
                        assert!(
                            matches!(d.code(), "revoked" | "unknown_key"),
                            "key {} denied with {d} ({})",
                            c.key,
                            d.code()
                        );
                        if dead_before {
                            counts.denied_dead.fetch_add(1, Ordering::Relaxed);
                        }
                    }
                }
            }
        }));
    }

    for h in writers {
        h.join().unwrap();
    }
    stop.store(true, Ordering::Relaxed);
    for h in handles {
        h.join().unwrap();
    }
    // Afterwards every credential answers exactly as its state says.
    let gw = store.gateway();
    let ip = IpAddr::V4(Ipv4Addr::LOCALHOST);
    let reg = registry.read().unwrap();
    for c in reg.iter() {
        let got = gw.check(&Request::new(&c.secret, MODEL, ip));
        assert_eq!(
            got.is_ok(),
            !c.dead.load(Ordering::Acquire),
            "key {}: {got:?}",
            c.key
        );
    }
    store.flush().unwrap();
    done.send(()).unwrap();
    eprintln!(
        "{} checks ({} granted, {} denied after the kill returned), {} admin calls, {} policy \
         reloads, {} credentials, in {:.1?}",
        counts.checks.load(Ordering::Relaxed),
        counts.grants.load(Ordering::Relaxed),
        counts.denied_dead.load(Ordering::Relaxed),
        counts.writes.load(Ordering::Relaxed),
        counts.reloads.load(Ordering::Relaxed),
        reg.len(),
        started.elapsed()
    );
}
