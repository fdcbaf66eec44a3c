//! Budgets held fleet-wide: replicas (separate stores in this process) share one org budget
//! through leases on a throwaway PostgreSQL cluster. Without PostgreSQL they skip, under
//! `CI=true` they fail.

use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, Ordering};
use std::time::Duration;

use orgstore::fuzz_support::fleet_limits::{self, Limits};
use orgstore::*;

use crate::common::OP;
use crate::pg_cluster::PgCluster;

const LIMIT: i64 = 10_000_000;
const ESTIMATE: i64 = 10_000;

fn usd_micros(m: i64) -> Usd {
    Usd::from_micros(m).unwrap()
}

/// A replica: its own store with the org `acme` (a $10 hard monthly budget) and a key,
/// and its limits thread.
struct Replica {
    store: Store,
    key: String,
    limits: Option<Limits>,
}

/// A store with the org `acme` configured with `config` and a key of it.
fn store_with(config: &str) -> (Store, String) {
    let store = Store::open_temporary().unwrap();
    let org = crate::common::create_org(&store, "acme", "o@acme.io");
    store.org_configs().update(&OP, &org, config).unwrap();
    let key = store
        .keys()
        .create(&OP, &org, KeySpec::new("svc"))
        .unwrap()
        .key
        .expose()
        .to_owned();
    (store, key)
}

fn replica(url: &str, name: &str, lease_ttl: Duration) -> Replica {
    let (store, key) = store_with(r#"{"budgets":{"limit":10,"period":"monthly"}}"#);
    let limits = fleet_limits::start(&store, url, name, lease_ttl).unwrap();
    Replica {
        store,
        key,
        limits: Some(limits),
    }
}

/// Traffic of one thread: requests estimated at a cent costing half a cent to a cent,
/// until the budget has refused everything for four seconds (refills and reclaims run in
/// the background, so a refusal alone does not mean the fleet's budget is gone).
fn traffic(r: &Replica, seed: u64, stop: &AtomicBool, spent: &AtomicI64, admitted: &AtomicU64) {
    let gw = r.store.gateway();
    let ip = "10.0.0.1".parse().unwrap();
    let mut refused_in_a_row = 0;
    let mut n = seed;
    while refused_in_a_row < 2_000 && !stop.load(Ordering::Relaxed) {
        let req = Request::new(&r.key, "m", ip).estimate(usd_micros(ESTIMATE));
        match gw.check(&req) {
            Ok(g) => {
                refused_in_a_row = 0;
                n = n
                    .wrapping_mul(6364136223846793005)
                    .wrapping_add(1442695040888963407);
                let cost = ESTIMATE / 2 + ((n >> 33) as i64 % (ESTIMATE / 2 + 1));
                admitted.fetch_add(1, Ordering::Relaxed);
                spent.fetch_add(cost, Ordering::Relaxed);
                gw.record_usage(&g, Usage::new(1, 1, usd_micros(cost)));
                std::thread::sleep(Duration::from_millis(1));
            }
            Err(d) => {
                assert_eq!(d.code(), "budget_exceeded", "{d:?}");
                refused_in_a_row += 1;
                std::thread::sleep(Duration::from_millis(2));
            }
        }
    }
}

fn query_i64(url: &str, sql: &str) -> i64 {
    let mut c = postgres::Client::connect(url, postgres::NoTls).unwrap();
    c.query_one(sql, &[]).unwrap().get(0)
}

/// Polls until `count_sql` counts a row (connecting again while the server starts).
fn wait_for(url: &str, count_sql: &str) {
    for _ in 0..600 {
        let found = postgres::Client::connect(url, postgres::NoTls)
            .and_then(|mut c| c.query_one(count_sql, &[]))
            .is_ok_and(|r| r.get::<_, i64>(0) > 0);
        if found {
            return;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    panic!("never true: {count_sql}");
}

#[test]
fn three_replicas_of_two_threads_share_a_ten_dollar_budget() {
    let Some(pg) = PgCluster::start() else { return };
    let url = pg.database("budget");
    let replicas: Vec<Replica> = (0..3)
        .map(|i| replica(&url, &format!("r{i}"), Duration::from_secs(10)))
        .collect();
    let spent = AtomicI64::new(0);
    let admitted = AtomicU64::new(0);
    let stop = AtomicBool::new(false);
    std::thread::scope(|s| {
        for (i, r) in replicas.iter().enumerate() {
            for t in 0..2 {
                let (spent, admitted, stop) = (&spent, &admitted, &stop);
                s.spawn(move || traffic(r, (i * 2 + t) as u64, stop, spent, admitted));
            }
        }
    });
    let spent = spent.load(Ordering::Relaxed);
    // Estimates never sum past the limit; costs stay within their estimates here, so the
    // fleet's spend is within the limit (the bound allows one estimate's error more).
    assert!(
        spent <= LIMIT + ESTIMATE,
        "the fleet spent {spent} of {LIMIT}"
    );
    assert!(
        spent * 100 >= LIMIT * 95,
        "only {spent} of {LIMIT} was usable before the budget refused"
    );
    let granted = query_i64(&url, "SELECT granted FROM fleet_budget");
    assert!(granted <= LIMIT, "granted {granted}");
    // Every replica's spend reaches the fleet's spend table; usage reads the total.
    let org = OrgId::parse("acme").unwrap();
    for r in &replicas {
        let own = r.store.orgs().usage(&OP, &org).unwrap().this_month;
        r.limits.as_ref().unwrap().record_org_spend(&org, own);
    }
    let limits: Vec<Limits> = replicas
        .into_iter()
        .filter_map(|mut r| r.limits.take())
        .collect();
    let fleet = limits[0].fleet_org_spent(&org, Period::Monthly).unwrap();
    // Queued on the first replica, still to be written by the others.
    assert!(fleet.micros() <= spent);
    for l in limits {
        l.shutdown().unwrap();
    }
    // Clean shutdown wrote every replica's queued spend and returned every unused chunk.
    let total = query_i64(
        &url,
        "SELECT sum(micros)::BIGINT FROM fleet_spend WHERE scope = 'o:acme' AND day <> -9223372036854775808",
    );
    assert_eq!(
        total, spent,
        "the fleet's spend table holds the fleet's total"
    );
    let granted = query_i64(&url, "SELECT granted FROM fleet_budget");
    let used = query_i64(&url, "SELECT sum(used)::BIGINT FROM fleet_budget_lease");
    assert_eq!(granted, used, "unused chunks went back");
    assert!(
        granted >= spent && granted <= LIMIT,
        "granted {granted}, spent {spent}"
    );
}

#[test]
fn a_replica_that_dies_holding_leases_overshoots_nothing_and_its_chunks_come_back() {
    let Some(pg) = PgCluster::start() else { return };
    let url = pg.database("death");
    let ttl = Duration::from_secs(1);
    let a = replica(&url, "a", ttl);
    let b = replica(&url, "b", ttl);
    let spent = AtomicI64::new(0);
    let admitted = AtomicU64::new(0);
    // A alone takes leases for a while, then dies without returning anything.
    let stop = AtomicBool::new(false);
    std::thread::scope(|s| {
        s.spawn(|| traffic(&a, 1, &stop, &spent, &admitted));
        while admitted.load(Ordering::Relaxed) < 150 {
            std::thread::sleep(Duration::from_millis(5));
        }
        stop.store(true, Ordering::Relaxed);
    });
    let Replica {
        store: a_store,
        limits,
        ..
    } = a;
    limits.unwrap().abandon();
    let lease = |col: &str| {
        query_i64(
            &url,
            &format!("SELECT {col} FROM fleet_budget_lease WHERE replica LIKE 'a/%'"),
        )
    };
    let (granted, claimed) = (lease("granted"), lease("claimed"));
    assert!(
        granted > claimed,
        "A held an unclaimed chunk: {granted} > {claimed}"
    );
    // `fleet status` shows the lease as the table holds it.
    let status = StoreBuilder::new().fleet(&url).init().unwrap();
    let shown: Vec<_> = status
        .budget_leases
        .iter()
        .filter(|l| l.holder.starts_with("a/"))
        .collect();
    assert_eq!(shown.len(), 1, "{:?}", status.budget_leases);
    assert_eq!(shown[0].scope, "acme");
    assert_eq!(
        (shown[0].granted.micros(), shown[0].claimed.micros()),
        (granted, claimed)
    );
    assert!(shown[0].window_start.is_some(), "a monthly window");
    assert!(
        status
            .budget_leases
            .iter()
            .any(|l| l.holder.starts_with("b/")),
        "B holds a lease too: {:?}",
        status.budget_leases
    );
    // Once A's lease lapsed, B's limits thread returns A's unclaimed chunk to the counter.
    wait_for(
        &url,
        "SELECT count(*) FROM fleet_budget_lease WHERE replica LIKE 'a/%' AND granted = claimed",
    );
    assert_eq!(lease("claimed"), claimed, "what A claimed stays spent");
    let status = StoreBuilder::new().fleet(&url).status().unwrap();
    let a_lease = status
        .budget_leases
        .iter()
        .find(|l| l.holder.starts_with("a/"));
    assert_eq!(
        a_lease.map(|l| (l.expires_in, l.granted)),
        Some((None, usd_micros(claimed))),
        "A's lease is shown lapsed, its unclaimed part returned"
    );
    // B spends the rest, including A's unclaimed chunk.
    let stop = AtomicBool::new(false);
    std::thread::scope(|s| {
        for t in 0..2 {
            let (spent, admitted, stop, b) = (&spent, &admitted, &stop, &b);
            s.spawn(move || traffic(b, 10 + t, stop, spent, admitted));
        }
    });
    assert_eq!(
        lease("granted"),
        lease("claimed"),
        "A's unclaimed part came back"
    );
    let spent = spent.load(Ordering::Relaxed);
    assert!(
        spent <= LIMIT + ESTIMATE,
        "the fleet spent {spent} of {LIMIT}"
    );
    // What A claimed but never spent is the only loss.
    let org = OrgId::parse("acme").unwrap();
    let a_spent = a_store.orgs().usage(&OP, &org).unwrap().this_month.micros();
    let stranded = lease("claimed") - a_spent;
    assert!(stranded >= 0);
    assert!(
        (spent + stranded) * 100 >= LIMIT * 95,
        "{spent} spent and {stranded} stranded of {LIMIT}"
    );
    b.limits.unwrap().shutdown().unwrap();
}

#[test]
fn with_the_database_down_replicas_admit_within_their_claims_then_catch_up() {
    let Some(pg) = PgCluster::start() else { return };
    let url = pg.database("outage");
    let r = replica(&url, "r", Duration::from_secs(10));
    let spent = AtomicI64::new(0);
    let admitted = AtomicU64::new(0);
    let stop = AtomicBool::new(false);
    std::thread::scope(|s| {
        s.spawn(|| traffic(&r, 1, &stop, &spent, &admitted));
        while admitted.load(Ordering::Relaxed) < 50 {
            std::thread::sleep(Duration::from_millis(5));
        }
        pg.stop();
    });
    // The thread stopped by itself: with no new claims, the replica admitted within what
    // it had claimed before the outage, then refused.
    let during = spent.load(Ordering::Relaxed);
    assert!(
        during < LIMIT,
        "the replica kept admitting without leases: {during}"
    );
    pg.start_again();
    // The limits thread reconnects and renews its lease.
    wait_for(&url, "SELECT 1::BIGINT");
    let before = query_i64(
        &url,
        "SELECT (extract(epoch FROM expires_at) * 1000000)::BIGINT FROM fleet_budget_lease",
    );
    wait_for(
        &url,
        &format!(
            "SELECT count(*) FROM fleet_budget_lease
             WHERE (extract(epoch FROM expires_at) * 1000000)::BIGINT > {before}"
        ),
    );
    let stop = AtomicBool::new(false);
    std::thread::scope(|s| {
        s.spawn(|| traffic(&r, 2, &stop, &spent, &admitted));
    });
    let claimed = query_i64(&url, "SELECT claimed FROM fleet_budget_lease");
    let spent = spent.load(Ordering::Relaxed);
    assert!(spent <= LIMIT + ESTIMATE && claimed <= LIMIT);
    assert!(spent * 100 >= LIMIT * 95, "after the outage: {spent}");
    r.limits.unwrap().shutdown().unwrap();
}

#[test]
fn three_replicas_share_an_org_rate_limit_by_demand() {
    let Some(pg) = PgCluster::start() else { return };
    let url = pg.database("rate");
    const RPM: u64 = 300;
    const TPM: u64 = 3_000_000;
    let replicas: Vec<(Store, String, Limits)> = (0..3)
        .map(|i| {
            // A second scope (tpm) rides in the same statements as the rpm one.
            let config =
                format!(r#"{{"rate_limiting":{{"enabled":true,"rpm":{RPM},"tpm":{TPM}}}}}"#);
            let (store, key) = store_with(&config);
            let name = format!("r{i}");
            let limits = fleet_limits::start(&store, &url, &name, Duration::from_secs(10)).unwrap();
            (store, key, limits)
        })
        .collect();
    let share = |r: &str| {
        query_i64(
            &url,
            &format!(
                "SELECT share FROM fleet_rate_share
                 WHERE replica LIKE '{r}/%' AND scope LIKE '%/rpm'"
            ),
        )
    };
    // Replica 0 asks far more than the limit, 1 a little, 2 nothing; the test runs well
    // under a minute, so everything admitted is in one 60-second window.
    let admitted = AtomicU64::new(0);
    let stop = AtomicBool::new(false);
    std::thread::scope(|s| {
        for (i, (store, key, _)) in replicas.iter().enumerate().take(2) {
            let (admitted, stop) = (&admitted, &stop);
            s.spawn(move || {
                let gw = store.gateway();
                let ip = "10.0.0.1".parse().unwrap();
                let pause = Duration::from_millis(if i == 0 { 2 } else { 400 });
                while !stop.load(Ordering::Relaxed) {
                    if let Ok(g) = gw.check(&Request::new(key, "m", ip)) {
                        admitted.fetch_add(1, Ordering::Relaxed);
                        gw.record_usage(&g, Usage::default());
                    }
                    std::thread::sleep(pause);
                }
            });
        }
        // The busy replica's share grows past the idle one's as it asks for more.
        let mut polls = 0;
        while share("r0") <= share("r2") + 20 {
            polls += 1;
            assert!(
                polls < 600,
                "shares never followed demand: {} {}",
                share("r0"),
                share("r2")
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        stop.store(true, Ordering::Relaxed);
    });
    let status = StoreBuilder::new().fleet(&url).init().unwrap();
    let shown = |r: &str| {
        let mut s: Vec<_> = status
            .rate_shares
            .iter()
            .filter(|s| s.holder.starts_with(&format!("{r}/")))
            .collect();
        s.sort_by_key(|s| s.unit.clone());
        assert_eq!(s.len(), 2, "{:?}", status.rate_shares);
        assert_eq!((s[0].scope.as_str(), s[0].unit.as_str()), ("acme", "rpm"));
        assert_eq!((s[1].scope.as_str(), s[1].unit.as_str()), ("acme", "tpm"));
        assert!(
            s.iter().all(|s| s.expires_in.is_some()),
            "live shares: {s:?}"
        );
        s[0].share
    };
    assert!(shown("r0") > shown("r2"), "{:?}", status.rate_shares);
    let n = admitted.load(Ordering::Relaxed);
    assert!(
        n <= RPM + RPM / 20 + 3,
        "{n} admitted in under a minute, limit {RPM}"
    );
    // Reserved capacity (shares and holds) passes the limit only by the least share of
    // replicas that joined while everything was leased.
    let reserved = |unit: &str| {
        query_i64(
            &url,
            &format!(
                "SELECT sum(greatest(share, coalesce((
                     SELECT max(a) FROM unnest(hold_amounts, hold_untils) AS h(a, u)
                     WHERE u > (extract(epoch FROM now()) * 1000000)::BIGINT), 0)))::BIGINT
                 FROM fleet_rate_share WHERE scope LIKE '%/{unit}'"
            ),
        )
    };
    let (rpm, tpm) = (reserved("rpm"), reserved("tpm"));
    assert!(rpm as u64 <= RPM + 3, "reserved {rpm} of {RPM} rpm");
    assert!(tpm as u64 <= TPM + 3, "reserved {tpm} of {TPM} tpm");
    assert!(
        tpm as u64 >= TPM / 2,
        "the tpm shares are leased: {tpm} of {TPM}"
    );
    for (_, _, l) in replicas {
        l.shutdown().unwrap();
    }
}

/// A replica that asks for less is lowered at once, and its former share stays held on its
/// own row (so no one grows into it while it could still be in use); the busy replica that
/// joined later gets only what is free meanwhile.
#[test]
fn a_lowered_share_stays_held_on_its_row_while_the_busy_replica_waits_for_it() {
    let Some(pg) = PgCluster::start() else { return };
    let url = pg.database("rate_hold");
    const RPM: u64 = 300;
    let config = format!(r#"{{"rate_limiting":{{"enabled":true,"rpm":{RPM}}}}}"#);
    // The idle replica starts first and is given the whole limit.
    let (idle, _) = store_with(&config);
    let idle_limits = fleet_limits::start(&idle, &url, "idle", Duration::from_secs(10)).unwrap();
    let (busy, key) = store_with(&config);
    let busy_limits = fleet_limits::start(&busy, &url, "busy", Duration::from_secs(10)).unwrap();
    let row = |r: &str| {
        let mut c = postgres::Client::connect(&url, postgres::NoTls).unwrap();
        let row = c
            .query_one(
                "SELECT share, hold_amounts FROM fleet_rate_share WHERE replica LIKE $1",
                &[&format!("{r}/%")],
            )
            .unwrap();
        (row.get::<_, i64>(0), row.get::<_, Vec<i64>>(1))
    };
    let stop = AtomicBool::new(false);
    std::thread::scope(|s| {
        s.spawn(|| {
            let gw = busy.gateway();
            let ip = "10.0.0.1".parse().unwrap();
            while !stop.load(Ordering::Relaxed) {
                if let Ok(g) = gw.check(&Request::new(&key, "m", ip)) {
                    gw.record_usage(&g, Usage::default());
                }
                std::thread::sleep(Duration::from_millis(2));
            }
        });
        let mut polls = 0;
        while row("idle").0 >= RPM as i64 {
            polls += 1;
            assert!(
                polls < 600,
                "the idle replica was never lowered: {:?}",
                row("idle")
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        stop.store(true, Ordering::Relaxed);
    });
    let (share, holds) = row("idle");
    assert!(
        holds.iter().any(|&h| h > share),
        "the former share is held: share {share}, holds {holds:?}"
    );
    let (busy_share, busy_holds) = row("busy");
    assert!(
        busy_holds.is_empty(),
        "the busy replica was never lowered: {busy_holds:?}"
    );
    let held = holds.iter().copied().max().unwrap_or(0);
    assert!(
        (busy_share + held) as u64 <= RPM + 1,
        "what is reserved stays within the limit: busy {busy_share} + held {held}"
    );
    idle_limits.shutdown().unwrap();
    busy_limits.shutdown().unwrap();
}

/// An idle budget's lease row is left alone between renewals (passes run ten times a
/// second; only a changed use, a plan asking for more or a renewal writes the row), and a
/// budget in use is written again within a pass or two.
#[test]
fn an_idle_budget_costs_the_database_nothing_between_renewals() {
    let Some(pg) = PgCluster::start() else { return };
    let url = pg.database("idle");
    // A 30 s lease: renewed every 10 s.
    let r = replica(&url, "r0", Duration::from_secs(30));
    wait_for(
        &url,
        "SELECT count(*) FROM fleet_budget_lease WHERE replica LIKE 'r0/%'",
    );
    let version = || {
        query_i64(
            &url,
            "SELECT xmin::TEXT::BIGINT FROM fleet_budget_lease WHERE replica LIKE 'r0/%'",
        )
    };
    // Settled after the first passes (the spend rate's estimate decays to nothing).
    std::thread::sleep(Duration::from_millis(1500));
    let idle = version();
    std::thread::sleep(Duration::from_millis(1500));
    assert_eq!(version(), idle, "an idle lease row was rewritten");
    let gw = r.store.gateway();
    let g = gw
        .check(&Request::new(&r.key, "m", "10.0.0.1".parse().unwrap()))
        .unwrap();
    gw.record_usage(&g, Usage::new(1, 1, usd_micros(ESTIMATE)));
    let mut polls = 0;
    while version() == idle {
        polls += 1;
        assert!(polls < 100, "a used budget's lease was never written");
        std::thread::sleep(Duration::from_millis(50));
    }
    let used = query_i64(
        &url,
        "SELECT used FROM fleet_budget_lease WHERE replica LIKE 'r0/%'",
    );
    assert!(used > 0, "the use is reported: {used}");
}
