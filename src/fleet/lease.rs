//! The fleet's limits on PostgreSQL: budget leases ([`super::budget`]) and fleet spend,
//! kept by one background thread per replica. No request ever waits for it: it moves
//! allowances into the snapshot's budget counters (a fleet cap, see
//! [`crate::limits::BudgetCounter::set_fleet_cap`]) and batches spend out.
//!
//! Rate limits are shared the same way (see [`super::lease_rate`]): every pass samples
//! the limiters, every fifth renews the shares.
//!
//! Each pass (every [`LimitsOptions::tick`]) runs one transaction over every hard budget
//! the snapshot enforces, in a handful of set-wide statements ([`super::lease_sql`]):
//! it locks the windows' counters in sorted order, reclaims lapsed leases (each window
//! about once a second), takes the chunks the plans ask for with the conditional
//! `UPDATE .. SET granted = granted + amount WHERE granted + amount <= limit_micros`,
//! commits the claims with the reported use, renewing the leases, and only after the
//! commit raises the counters' caps. Queued spend is added to `fleet_spend` in the same
//! transaction (per scope and UTC day, plus an all-time row). Nothing here ever NOTIFYs.
//!
//! When the database is unreachable a pass fails as a whole: caps stay where the last
//! commit put them (the replica admits within what it claimed, then denies), spend stays
//! queued, and the thread reconnects with backoff.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use postgres::{Client, NoTls};

use super::budget::{Allowance, ChunkPolicy, Micros};
use super::lease_rate::{RATE_SCHEMA, Rates};
pub(crate) use super::lease_sql::LIMITS_SCHEMA;
use super::lease_sql::{
    Counter, TOTAL_DAY, Window, claim_leases, create_pools, lock_pools, reclaim, release,
    set_limits, take, write_spend,
};
use super::rate::MIN_SHARE;
use crate::error::{Error, ErrorKind};
use crate::limits::DAY_MICROS;
use crate::model::{Period, Timestamp};
use crate::snapshot::{SnapshotCell, SpenderId};
use crate::store::records::{key_ledger_name, org_ledger_name};
use crate::store::usage::FLEET_PERIODS as PERIODS;

/// How the background thread runs.
#[derive(Clone, Copy, Debug)]
pub(crate) struct LimitsOptions {
    /// Time between two passes.
    pub tick: Duration,
    /// A lease not renewed for this long is reclaimed by the other replicas.
    pub lease_ttl: Duration,
    /// Chunk and claim sizing.
    pub chunks: ChunkPolicy,
}

impl Default for LimitsOptions {
    fn default() -> Self {
        Self {
            tick: Duration::from_millis(100),
            lease_ttl: Duration::from_secs(10),
            chunks: ChunkPolicy::default(),
        }
    }
}

/// The limits' thread of one replica. [`LimitsHandle::shutdown`] returns what it holds;
/// dropping the handle stops the thread without returning anything (the leases then lapse
/// and are reclaimed, as for a replica that died).
pub(crate) struct LimitsHandle {
    shared: Arc<Shared>,
    thread: Option<JoinHandle<Worker>>,
}

/// What the handle and the thread share.
struct Shared {
    stop: AtomicBool,
    /// Spend waiting to be written: (scope, day) -> micros.
    spend: Mutex<HashMap<(String, i64), i64>>,
    url: String,
}

impl Shared {
    /// A copy of the spend queued for the engine, by (scope, day): what a
    /// pass reports, taken without holding the queue's lock through the round trip.
    fn queued_spend(&self) -> Vec<((String, i64), i64)> {
        let q = self
            .spend
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        q.iter().map(|(k, v)| (k.clone(), *v)).collect()
    }
}

/// Starts the limits' thread of replica `replica` (unique per process start: a random
/// suffix is added) on the database at `url`, sharing the hard budgets of `cell`. Creates
/// the tables if needed and runs one pass before returning, so the budgets the snapshot
/// holds are capped (and leased for) before the caller serves a request. New hard budget
/// counters start at a cap of 0 from now on.
pub(crate) fn start_limits(
    url: &str,
    replica: &str,
    cell: Arc<SnapshotCell>,
    options: LimitsOptions,
) -> Result<LimitsHandle, Error> {
    cell.fleet_budgets.store(true, Ordering::Release);
    cell.share_rates(MIN_SHARE);
    let mut client = connect(url)?;
    client.batch_execute(LIMITS_SCHEMA).map_err(unavailable)?;
    client.batch_execute(RATE_SCHEMA).map_err(unavailable)?;
    let shared = Arc::new(Shared {
        stop: AtomicBool::new(false),
        spend: Mutex::new(HashMap::new()),
        url: url.to_owned(),
    });
    let mut worker = Worker {
        url: url.to_owned(),
        pools: HashSet::new(),
        replica: format!("{replica}/{:016x}", rand::random::<u64>()),
        cell,
        options,
        allowances: HashMap::new(),
        client: Some(client),
        last_reclaim: HashMap::new(),
        sent: HashMap::new(),
        rates: Rates::default(),
    };
    // Caps first, so nothing admits beyond a lease even if the first pass fails.
    worker.cap_unseen();
    worker.pass(&shared).map_err(unavailable)?;
    let thread_shared = shared.clone();
    let thread = std::thread::Builder::new()
        .name("orgstore-fleet-limits".into())
        .spawn(move || worker.run(&thread_shared))
        .map_err(|e| Error::storage("starting the fleet limits thread", e))?;
    Ok(LimitsHandle {
        shared,
        thread: Some(thread),
    })
}

impl LimitsHandle {
    /// Queues spend the store just wrote to its own ledger (the flusher's drained amounts:
    /// `drained.iter().map(|d| (&d.spender, d.micros))`)
    /// for the fleet's spend table; the thread writes it in its next pass.
    pub fn record_spend<'a>(&self, drained: impl IntoIterator<Item = (&'a SpenderId, i64)>) {
        let day = Timestamp::now().as_micros().div_euclid(DAY_MICROS) * DAY_MICROS;
        let mut q = self
            .shared
            .spend
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        for (spender, micros) in drained {
            let name = ledger_name(spender);
            for row in [day, TOTAL_DAY] {
                let e = q.entry((name.clone(), row)).or_insert(0);
                *e = e.saturating_add(micros);
            }
        }
    }

    /// The fleet's spend of `spender` in the window of `period` containing `now_micros`,
    /// from the database (an admin read: it opens a connection). Spend still queued on
    /// this replica is included; other replicas' last second may not be.
    pub fn fleet_spent(
        &self,
        spender: &SpenderId,
        period: Period,
        now_micros: i64,
    ) -> Result<Micros, Error> {
        let i = PERIODS.iter().position(|p| *p == period).unwrap_or(3);
        Ok(self.fleet_spend(spender, now_micros)?[i])
    }

    /// The fleet's spend of `spender` today, this week, this month and in all (the
    /// windows of [`PERIODS`] containing `now_micros`), in one query, as
    /// [`Self::fleet_spent`] reads one.
    pub fn fleet_spend(&self, spender: &SpenderId, now_micros: i64) -> Result<[Micros; 4], Error> {
        let name = ledger_name(spender);
        let windows = PERIODS.map(|p| match p {
            Period::Total => (TOTAL_DAY, TOTAL_DAY + 1),
            p => p.window(now_micros),
        });
        let mut client = connect(&self.shared.url)?;
        let row = client
            .query_one(
                "SELECT coalesce(sum(micros) FILTER (WHERE day >= $2 AND day < $3), 0)::BIGINT,
                        coalesce(sum(micros) FILTER (WHERE day >= $4 AND day < $5), 0)::BIGINT,
                        coalesce(sum(micros) FILTER (WHERE day >= $6 AND day < $7), 0)::BIGINT,
                        coalesce(sum(micros) FILTER (WHERE day >= $8 AND day < $9), 0)::BIGINT
                 FROM fleet_spend WHERE scope = $1",
                &[
                    &name,
                    &windows[0].0,
                    &windows[0].1,
                    &windows[1].0,
                    &windows[1].1,
                    &windows[2].0,
                    &windows[2].1,
                    &windows[3].0,
                    &windows[3].1,
                ],
            )
            .map_err(unavailable)?;
        let mut out = [0i64; 4];
        for (i, o) in out.iter_mut().enumerate() {
            *o = row.get(i);
        }
        let q = self
            .shared
            .spend
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        for ((s, day), m) in q.iter() {
            if *s != name {
                continue;
            }
            for (o, (from, to)) in out.iter_mut().zip(windows) {
                if *day >= from && *day < to {
                    *o = o.saturating_add(*m);
                }
            }
        }
        Ok(out)
    }

    /// Clean shutdown: stops the thread, freezes every shared budget at what it committed,
    /// returns the unused part of every lease and writes the queued spend. Fails (leaving
    /// the leases to lapse and be reclaimed) when the database cannot be reached.
    pub fn shutdown(mut self) -> Result<(), Error> {
        self.shared.stop.store(true, Ordering::Release);
        let Some(thread) = self.thread.take() else {
            return Ok(());
        };
        let mut worker = thread.join().map_err(|_| {
            Error::storage("stopping the fleet limits thread", "the thread panicked")
        })?;
        worker.release_all(&self.shared).map_err(unavailable)
    }
}

impl Drop for LimitsHandle {
    /// Stops the thread without returning the leases (they lapse and are reclaimed).
    fn drop(&mut self) {
        self.shared.stop.store(true, Ordering::Release);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// The thread's state.
struct Worker {
    url: String,
    replica: String,
    /// The windows whose central counter exists (created by this replica or found).
    pools: HashSet<Window>,
    /// What the last committed pass of each window wrote and read: a window whose use
    /// and plan did not change since is left out of passes until its lease is due for
    /// renewal, so idle budgets cost the database nothing between renewals.
    sent: HashMap<Window, Sent>,
    cell: Arc<SnapshotCell>,
    options: LimitsOptions,
    /// By (scope, window start).
    allowances: HashMap<(String, i64), Allowance>,
    client: Option<Client>,
    /// When each window was last reclaimed.
    last_reclaim: HashMap<Window, Instant>,
    rates: Rates,
}

/// Whether lapsed leases of a window are due to be reclaimed (once a second at most).
fn reclaim_due(last: &HashMap<Window, Instant>, k: &Window, tick: Instant) -> bool {
    last.get(k)
        .is_none_or(|&t| tick.saturating_duration_since(t) >= Duration::from_secs(1))
}

/// What a pass committed for one window (see [`Worker::sent`]).
#[derive(Clone, Copy, Debug)]
struct Sent {
    used: Micros,
    limit: Micros,
    /// The counter as the pass left it.
    counter: Counter,
    /// When (monotonic: a step of the system clock neither delays a renewal nor forces one).
    at: Instant,
}

impl Worker {
    /// Whether a window must be in this pass: never committed, its use or limit changed,
    /// its plan asks for more (and the counter may have it, or lapsed leases are due for
    /// reclaiming), or its lease is due for renewal (a third of its life).
    fn wanted(&self, k: &Window, limit: Micros, used: Micros, tick: Instant) -> bool {
        let (Some(sent), Some(a)) = (self.sent.get(k), self.allowances.get(k)) else {
            return true;
        };
        let renew = self.options.lease_ttl / 3;
        if sent.used != used
            || sent.limit != limit
            || tick.saturating_duration_since(sent.at) >= renew
        {
            return true;
        }
        let remaining = sent.counter.remaining();
        let plan = a.plan(
            used,
            Some(remaining),
            sent.counter.leases,
            &self.options.chunks,
        );
        let reclaim_due = reclaim_due(&self.last_reclaim, k, tick);
        (plan.take > 0 && (remaining > 0 || reclaim_due)) || plan.claim > a.claimed
    }

    fn run(mut self, shared: &Shared) -> Self {
        let mut backoff = self.options.tick;
        while !shared.stop.load(Ordering::Acquire) {
            std::thread::sleep(backoff);
            match self.pass(shared) {
                Ok(()) => backoff = self.options.tick,
                Err(_) => {
                    // Unreachable or failed: caps stay at the last commit; reconnect.
                    self.client = None;
                    backoff = (backoff * 2).min(Duration::from_secs(2));
                }
            }
        }
        self
    }

    fn client(&mut self) -> Result<&mut Client, postgres::Error> {
        let c = match self.client.take() {
            Some(c) => c,
            None => Client::connect(&self.url, NoTls)?,
        };
        Ok(self.client.insert(c))
    }

    /// Caps counters the fleet has not leased for yet at what they hold (nothing more).
    fn cap_unseen(&self) {
        let now = Timestamp::now().as_micros();
        for (_, counter) in self.cell.hard_budgets() {
            if counter.fleet_cap().is_none() {
                let u = counter.snapshot(now);
                counter.set_fleet_cap(u.window_start, Some(u.spent_micros + u.reserved_micros));
            }
        }
    }

    /// One pass: every budget window and the spend in one transaction, then the rate
    /// shares when they are due.
    fn pass(&mut self, shared: &Shared) -> Result<(), postgres::Error> {
        let renew_rates = self.rates.sample(&self.cell.clone());
        self.budgets(shared)?;
        if renew_rates {
            let cell = self.cell.clone();
            let replica = self.replica.clone();
            let mut rates = std::mem::take(&mut self.rates);
            let renewed = self.client().and_then(|c| rates.renew(c, &cell, &replica));
            self.rates = rates;
            renewed?;
        }
        Ok(())
    }

    /// The budget windows and the spend, in one transaction of a few set-wide statements
    /// (see [`super::lease_sql`]).
    fn budgets(&mut self, shared: &Shared) -> Result<(), postgres::Error> {
        let now = Timestamp::now().as_micros();
        let tick = Instant::now();
        let cell = self.cell.clone();
        let budgets = cell.hard_budgets();
        let ttl = lease_ttl_secs(&self.options);
        let chunks = self.options.chunks;
        let replica = self.replica.clone();
        let spend = shared.queued_spend();
        // Plans outside the transaction: allowances for windows not seen yet. By window:
        // (limit, used, the counter's index in `budgets`).
        let mut seen: BTreeMap<Window, (Micros, Micros, usize)> = BTreeMap::new();
        for (ix, (spender, counter)) in budgets.iter().enumerate() {
            let u = counter.snapshot(now);
            let key = (ledger_name(spender), u.window_start);
            let committed = u.spent_micros + u.reserved_micros;
            let a = self
                .allowances
                .entry(key.clone())
                .or_insert_with(|| Allowance::new(u.window_start, committed, now));
            let used = a.used(committed);
            a.observe(used, now, &chunks);
            seen.insert(key, (u.limit_micros, used, ix));
        }
        // Windows this replica holds but no counter is in any more (rolled, or the budget
        // went away): their unused part goes back, and what the counter claimed there
        // stays spent.
        let ended: Vec<(Window, Micros)> = self
            .allowances
            .iter()
            .filter(|(k, _)| !seen.contains_key(*k))
            .map(|(k, a)| (k.clone(), a.claimed))
            .collect();
        // Idle windows wait for their renewal.
        seen.retain(|k, v| self.wanted(k, v.0, v.1, tick));
        if seen.is_empty() && ended.is_empty() && spend.is_empty() {
            return Ok(());
        }
        let missing: Vec<(&Window, Micros)> = seen
            .iter()
            .filter(|(k, _)| !self.pools.contains(*k))
            .map(|(k, v)| (k, v.0))
            .collect();
        let mut locked: Vec<&Window> = seen.keys().chain(ended.iter().map(|e| &e.0)).collect();
        locked.sort_unstable();
        let client = match self.client.take() {
            Some(c) => self.client.insert(c),
            None => self.client.insert(Client::connect(&self.url, NoTls)?),
        };
        create_pools(client, &missing)?;
        self.pools.extend(missing.iter().map(|(k, _)| (*k).clone()));
        let mut tx = client.transaction()?;
        let mut pools = lock_pools(&mut tx, &locked)?;
        // A window whose counter went away (it is created again on the next pass).
        self.pools
            .retain(|k| !seen.contains_key(k) || pools.contains_key(k));
        let changed: Vec<(&Window, Micros)> = seen
            .iter()
            .filter(|(k, v)| pools.get(*k).is_some_and(|p| p.limit != v.0))
            .map(|(k, v)| (k, v.0))
            .collect();
        set_limits(&mut tx, &changed)?;
        let due: Vec<&Window> = seen
            .keys()
            .filter(|k| pools.contains_key(*k))
            .filter(|k| reclaim_due(&self.last_reclaim, k, tick))
            .collect();
        let back = reclaim(&mut tx, &due)?;
        for (k, v) in &seen {
            if let Some(p) = pools.get_mut(k) {
                p.limit = v.0;
                p.granted -= back.get(k).copied().unwrap_or(0);
            }
        }
        // The chunks to take, from what each counter has left now that it is locked.
        let mut plans: Vec<(&Window, Allowance, Micros, Micros)> = Vec::with_capacity(seen.len());
        let mut takes: Vec<(&Window, Micros)> = Vec::new();
        for (k, (_, used, _)) in &seen {
            let (Some(p), Some(a)) = (pools.get(k), self.allowances.get(k)) else {
                continue;
            };
            let plan = a.plan(*used, Some(p.remaining()), p.leases, &chunks);
            let amount = plan.take.min(p.remaining());
            if amount > 0 {
                takes.push((k, amount));
            }
            plans.push((k, a.clone(), *used, plan.claim));
        }
        let got = take(&mut tx, &replica, &takes, ttl)?;
        let mut claims: Vec<(&Window, (Micros, Micros))> = Vec::with_capacity(plans.len());
        for (k, a, used, first_claim) in &mut plans {
            let Some(p) = pools.get(*k) else { continue };
            let granted = got.get(*k).copied().unwrap_or(0);
            a.add_granted(granted);
            let claim = a
                .plan(*used, Some(p.remaining() - granted), p.leases, &chunks)
                .claim
                .max(*first_claim);
            claims.push((k, (claim, *used)));
        }
        let leases = claim_leases(&mut tx, &replica, &claims, ttl)?;
        let ended_used: Vec<(&Window, Micros)> = ended.iter().map(|(k, u)| (k, *u)).collect();
        release(&mut tx, &replica, &ended_used)?;
        write_spend(&mut tx, &spend)?;
        tx.commit()?;
        // Committed: raise the caps, forget what was written.
        let due: HashSet<&Window> = due.into_iter().collect();
        for (k, mut a, used, _) in plans {
            let (granted, claimed) = leases.get(k).copied().unwrap_or((0, 0));
            a.committed(granted, claimed);
            if let (Some(c), Some((limit, _, _))) = (pools.get(k), seen.get(k)) {
                let mut counter = *c;
                counter.granted += got.get(k).copied().unwrap_or(0);
                let sent = Sent {
                    used,
                    limit: *limit,
                    counter,
                    at: tick,
                };
                self.sent.insert(k.clone(), sent);
            }
            if due.contains(k) {
                self.last_reclaim.insert(k.clone(), tick);
            }
            if let Some((_, _, ix)) = seen.get(k)
                && let Some((_, counter)) = budgets.get(*ix)
            {
                counter.set_fleet_cap(k.1, Some(a.cap()));
            }
            self.allowances.insert(k.clone(), a);
        }
        for (key, _) in ended {
            self.allowances.remove(&key);
            self.last_reclaim.remove(&key);
            self.sent.remove(&key);
        }
        let mut q = shared
            .spend
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        for (k, v) in spend {
            if let Some(e) = q.get_mut(&k) {
                *e -= v;
                if *e == 0 {
                    q.remove(&k);
                }
            }
        }
        Ok(())
    }

    /// Freezes every shared counter at what it committed, then returns the rest of every
    /// lease and writes the queued spend.
    fn release_all(&mut self, shared: &Shared) -> Result<(), postgres::Error> {
        let now = Timestamp::now().as_micros();
        let cell = self.cell.clone();
        let mut frozen: Vec<(Window, Micros)> = Vec::new();
        for (spender, counter) in cell.hard_budgets() {
            let u = counter.snapshot(now);
            let committed = u.spent_micros + u.reserved_micros;
            counter.set_fleet_cap(u.window_start, Some(committed));
            let key = (ledger_name(&spender), u.window_start);
            if let Some(a) = self.allowances.get(&key) {
                let used = a.used(committed);
                frozen.push((key, used));
            }
        }
        frozen.sort_unstable();
        let replica = self.replica.clone();
        let spend = shared.queued_spend();
        let mut rates = std::mem::take(&mut self.rates);
        let client = self.client()?;
        let mut tx = client.transaction()?;
        let windows: Vec<&Window> = frozen.iter().map(|f| &f.0).collect();
        lock_pools(&mut tx, &windows)?;
        let leases: Vec<(&Window, Micros)> = frozen.iter().map(|(k, u)| (k, *u)).collect();
        release(&mut tx, &replica, &leases)?;
        rates.release(&mut tx, &cell, &replica)?;
        write_spend(&mut tx, &spend)?;
        tx.commit()?;
        shared
            .spend
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clear();
        self.allowances.clear();
        Ok(())
    }
}

/// Connects to the fleet's database.
fn connect(url: &str) -> Result<Client, Error> {
    Client::connect(url, NoTls).map_err(unavailable)
}

/// The error for a database that cannot be reached or refused a statement. The source
/// is the driver's error, which never carries the URL's password.
fn unavailable(e: postgres::Error) -> Error {
    Error::new(
        ErrorKind::Storage,
        "fleet",
        "the fleet's PostgreSQL engine could not be reached or refused the operation; \
         check that it runs and that the fleet URL is right, then retry",
    )
    .with_source(e)
}

/// A spender's scope name: the local ledger's.
fn ledger_name(s: &SpenderId) -> String {
    match s {
        SpenderId::Key(k) => key_ledger_name(k),
        SpenderId::Org(o) => org_ledger_name(o),
    }
}

fn lease_ttl_secs(o: &LimitsOptions) -> f64 {
    o.lease_ttl.as_secs_f64()
}
