//! The budget leases' statements (see [`super::lease`] for when each runs). Each one
//! handles every window of a pass at once (arrays through `unnest`), so a pass costs a
//! handful of round trips whatever the number of budgets. Every amount moves under a row
//! lock, and `fleet_budget.granted` only grows through the conditional update in [`take`].

use std::collections::HashMap;

use postgres::{Client, Transaction};

use super::budget::Micros;

/// The tables of the fleet's limits; idempotent, run at every start.
pub(crate) const LIMITS_SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS fleet_budget (
    scope TEXT NOT NULL,
    window_start BIGINT NOT NULL,
    limit_micros BIGINT NOT NULL,
    granted BIGINT NOT NULL DEFAULT 0 CHECK (granted >= 0),
    PRIMARY KEY (scope, window_start)
);
CREATE TABLE IF NOT EXISTS fleet_budget_lease (
    scope TEXT NOT NULL,
    window_start BIGINT NOT NULL,
    replica TEXT NOT NULL,
    granted BIGINT NOT NULL DEFAULT 0,
    claimed BIGINT NOT NULL DEFAULT 0 CHECK (claimed <= granted),
    used BIGINT NOT NULL DEFAULT 0,
    expires_at TIMESTAMPTZ NOT NULL,
    PRIMARY KEY (scope, window_start, replica)
);
CREATE TABLE IF NOT EXISTS fleet_spend (
    scope TEXT NOT NULL,
    day BIGINT NOT NULL,
    micros BIGINT NOT NULL,
    PRIMARY KEY (scope, day)
);
";

/// The `fleet_spend` row that accumulates all-time spend (as in the local ledger).
pub(super) const TOTAL_DAY: i64 = i64::MIN;

/// A budget window on the database: (scope, window start).
pub(super) type Window = (String, i64);

/// A window's central counter as [`lock_pools`] read it.
#[derive(Clone, Copy, Debug)]
pub(super) struct Counter {
    pub limit: Micros,
    pub granted: Micros,
    /// Replicas holding a live lease on it (at least 1: a hint for sizing chunks).
    pub leases: u32,
}

impl Counter {
    /// What the counter has left to grant.
    pub fn remaining(&self) -> Micros {
        (self.limit - self.granted).max(0)
    }
}

fn columns<'a, T: Copy>(rows: &[(&'a Window, T)]) -> (Vec<&'a str>, Vec<i64>, Vec<T>) {
    (
        rows.iter().map(|(w, _)| w.0.as_str()).collect(),
        rows.iter().map(|(w, _)| w.1).collect(),
        rows.iter().map(|(_, v)| *v).collect(),
    )
}

fn window_columns<'a>(windows: &[&'a Window]) -> (Vec<&'a str>, Vec<i64>) {
    (
        windows.iter().map(|w| w.0.as_str()).collect(),
        windows.iter().map(|w| w.1).collect(),
    )
}

/// Creates the central counters of windows that have none yet, with their limits, in a
/// statement of its own outside the pass's transaction (in sorted order, so two replicas
/// creating the same windows never wait on each other crosswise).
pub(super) fn create_pools(
    client: &mut Client,
    pools: &[(&Window, Micros)],
) -> Result<(), postgres::Error> {
    if pools.is_empty() {
        return Ok(());
    }
    let (scopes, starts, limits) = columns(pools);
    client.execute(
        "INSERT INTO fleet_budget (scope, window_start, limit_micros)
         SELECT * FROM unnest($1::TEXT[], $2::BIGINT[], $3::BIGINT[]) ORDER BY 1, 2
         ON CONFLICT (scope, window_start) DO NOTHING",
        &[&scopes, &starts, &limits],
    )?;
    Ok(())
}

/// Locks the windows' central counters (sorted: every pass of every replica locks them in
/// the same order, so passes queue rather than deadlock) and reads them. A window without
/// a counter is absent from the answer.
pub(super) fn lock_pools(
    tx: &mut Transaction<'_>,
    windows: &[&Window],
) -> Result<HashMap<Window, Counter>, postgres::Error> {
    if windows.is_empty() {
        return Ok(HashMap::new());
    }
    let (scopes, starts) = window_columns(windows);
    let rows = tx.query(
        "SELECT b.scope, b.window_start, b.limit_micros, b.granted,
                (SELECT count(*) FROM fleet_budget_lease l
                 WHERE l.scope = b.scope AND l.window_start = b.window_start
                   AND l.expires_at > now())
         FROM fleet_budget b
         JOIN unnest($1::TEXT[], $2::BIGINT[]) AS w(scope, window_start)
           ON b.scope = w.scope AND b.window_start = w.window_start
         ORDER BY b.scope, b.window_start
         FOR UPDATE OF b",
        &[&scopes, &starts],
    )?;
    Ok(rows
        .iter()
        .map(|r| {
            let live: i64 = r.get(4);
            let counter = Counter {
                limit: r.get(2),
                granted: r.get(3),
                leases: u32::try_from(live.max(1)).unwrap_or(u32::MAX),
            };
            ((r.get::<_, String>(0), r.get(1)), counter)
        })
        .collect())
}

/// Changes the limits of locked windows (their budgets' configs changed).
pub(super) fn set_limits(
    tx: &mut Transaction<'_>,
    limits: &[(&Window, Micros)],
) -> Result<(), postgres::Error> {
    if limits.is_empty() {
        return Ok(());
    }
    let (scopes, starts, limits) = columns(limits);
    tx.execute(
        "UPDATE fleet_budget b SET limit_micros = c.limit_micros
         FROM unnest($1::TEXT[], $2::BIGINT[], $3::BIGINT[]) AS c(scope, window_start, limit_micros)
         WHERE b.scope = c.scope AND b.window_start = c.window_start",
        &[&scopes, &starts, &limits],
    )?;
    Ok(())
}

/// Returns the unclaimed part of every lapsed lease of the (locked) windows to their
/// counters. Returns what went back, per window.
pub(super) fn reclaim(
    tx: &mut Transaction<'_>,
    windows: &[&Window],
) -> Result<HashMap<Window, Micros>, postgres::Error> {
    let mut back: HashMap<Window, Micros> = HashMap::new();
    if windows.is_empty() {
        return Ok(back);
    }
    let (scopes, starts) = window_columns(windows);
    let lapsed = tx.query(
        "SELECT l.scope, l.window_start, l.replica, l.granted - l.claimed
         FROM fleet_budget_lease l
         JOIN unnest($1::TEXT[], $2::BIGINT[]) AS w(scope, window_start)
           ON l.scope = w.scope AND l.window_start = w.window_start
         WHERE l.expires_at < now() AND l.granted > l.claimed
         FOR UPDATE OF l",
        &[&scopes, &starts],
    )?;
    if lapsed.is_empty() {
        return Ok(back);
    }
    let mut scopes: Vec<String> = Vec::with_capacity(lapsed.len());
    let mut starts: Vec<i64> = Vec::with_capacity(lapsed.len());
    let mut replicas: Vec<String> = Vec::with_capacity(lapsed.len());
    for row in &lapsed {
        let (scope, start): (String, i64) = (row.get(0), row.get(1));
        let amount: i64 = row.get(3);
        *back.entry((scope.clone(), start)).or_default() += amount;
        scopes.push(scope);
        starts.push(start);
        replicas.push(row.get(2));
    }
    tx.execute(
        "UPDATE fleet_budget_lease l SET granted = l.claimed
         FROM unnest($1::TEXT[], $2::BIGINT[], $3::TEXT[]) AS r(scope, window_start, replica)
         WHERE l.scope = r.scope AND l.window_start = r.window_start AND l.replica = r.replica",
        &[&scopes, &starts, &replicas],
    )?;
    let amounts: Vec<(&Window, Micros)> = back.iter().map(|(w, a)| (w, *a)).collect();
    give_back(tx, &amounts)?;
    Ok(back)
}

/// Returns amounts to their windows' counters (one amount per window).
fn give_back(
    tx: &mut Transaction<'_>,
    amounts: &[(&Window, Micros)],
) -> Result<(), postgres::Error> {
    let amounts: Vec<(&Window, Micros)> = amounts.iter().copied().filter(|(_, a)| *a > 0).collect();
    if amounts.is_empty() {
        return Ok(());
    }
    let (scopes, starts, amounts) = columns(&amounts);
    tx.execute(
        "UPDATE fleet_budget b SET granted = b.granted - g.amount
         FROM unnest($1::TEXT[], $2::BIGINT[], $3::BIGINT[]) AS g(scope, window_start, amount)
         WHERE b.scope = g.scope AND b.window_start = g.window_start",
        &[&scopes, &starts, &amounts],
    )?;
    Ok(())
}

/// Takes `amount` from each window's counter with one conditional update
/// (`granted + amount <= limit_micros`), and adds it to this replica's lease of the
/// window, in one statement. Returns what was granted per window (absent: nothing fit).
pub(super) fn take(
    tx: &mut Transaction<'_>,
    replica: &str,
    chunks: &[(&Window, Micros)],
    ttl: f64,
) -> Result<HashMap<Window, Micros>, postgres::Error> {
    if chunks.is_empty() {
        return Ok(HashMap::new());
    }
    let (scopes, starts, amounts) = columns(chunks);
    let rows = tx.query(
        "WITH got AS (
             UPDATE fleet_budget b SET granted = b.granted + w.amount
             FROM unnest($1::TEXT[], $2::BIGINT[], $3::BIGINT[]) AS w(scope, window_start, amount)
             WHERE b.scope = w.scope AND b.window_start = w.window_start AND w.amount > 0
               AND b.granted + w.amount <= b.limit_micros
             RETURNING b.scope, b.window_start, w.amount
         ), leased AS (
             INSERT INTO fleet_budget_lease (scope, window_start, replica, granted, expires_at)
             SELECT scope, window_start, $4, amount, now() + make_interval(secs => $5)
             FROM got
             ON CONFLICT (scope, window_start, replica) DO UPDATE
             SET granted = fleet_budget_lease.granted + EXCLUDED.granted,
                 expires_at = EXCLUDED.expires_at
         )
         SELECT scope, window_start, amount FROM got",
        &[&scopes, &starts, &amounts, &replica, &ttl],
    )?;
    Ok(rows
        .iter()
        .map(|r| ((r.get::<_, String>(0), r.get(1)), r.get(2)))
        .collect())
}

/// Commits each window's claim and reported use, renewing this replica's leases. Returns
/// each lease's `(granted, claimed)` as the database has it (absent: no lease).
pub(super) fn claim_leases(
    tx: &mut Transaction<'_>,
    replica: &str,
    claims: &[(&Window, (Micros, Micros))],
    ttl: f64,
) -> Result<HashMap<Window, (Micros, Micros)>, postgres::Error> {
    if claims.is_empty() {
        return Ok(HashMap::new());
    }
    let (scopes, starts, pairs) = columns(claims);
    let claimed: Vec<i64> = pairs.iter().map(|p| p.0).collect();
    let used: Vec<i64> = pairs.iter().map(|p| p.1).collect();
    let rows = tx.query(
        "UPDATE fleet_budget_lease l
         SET claimed = greatest(l.claimed, least(c.claim, l.granted)), used = c.used,
             expires_at = now() + make_interval(secs => $6)
         FROM unnest($1::TEXT[], $2::BIGINT[], $3::BIGINT[], $4::BIGINT[])
              AS c(scope, window_start, claim, used)
         WHERE l.scope = c.scope AND l.window_start = c.window_start AND l.replica = $5
         RETURNING l.scope, l.window_start, l.granted, l.claimed",
        &[&scopes, &starts, &claimed, &used, &replica, &ttl],
    )?;
    Ok(rows
        .iter()
        .map(|r| ((r.get::<_, String>(0), r.get(1)), (r.get(2), r.get(3))))
        .collect())
}

/// Returns all of each lease but its `used` to the window's counter and ends the lease.
/// The windows' counters must be locked first ([`lock_pools`]).
pub(super) fn release(
    tx: &mut Transaction<'_>,
    replica: &str,
    leases: &[(&Window, Micros)],
) -> Result<(), postgres::Error> {
    if leases.is_empty() {
        return Ok(());
    }
    let used: HashMap<&Window, Micros> = leases.iter().copied().collect();
    let (scopes, starts, _) = columns(leases);
    let rows = tx.query(
        "SELECT l.scope, l.window_start, l.granted FROM fleet_budget_lease l
         JOIN unnest($1::TEXT[], $2::BIGINT[]) AS w(scope, window_start)
           ON l.scope = w.scope AND l.window_start = w.window_start
         WHERE l.replica = $3
         FOR UPDATE OF l",
        &[&scopes, &starts, &replica],
    )?;
    let mut kept: Vec<(Window, Micros)> = Vec::with_capacity(rows.len());
    let mut back: Vec<(Window, Micros)> = Vec::with_capacity(rows.len());
    for r in &rows {
        let window: Window = (r.get(0), r.get(1));
        let granted: i64 = r.get(2);
        let keep = used.get(&window).copied().unwrap_or(0).clamp(0, granted);
        back.push((window.clone(), granted - keep));
        kept.push((window, keep));
    }
    let kept: Vec<(&Window, Micros)> = kept.iter().map(|(w, k)| (w, *k)).collect();
    let (scopes, starts, keeps) = columns(&kept);
    tx.execute(
        "UPDATE fleet_budget_lease l
         SET granted = k.keep, claimed = k.keep, used = k.keep, expires_at = now()
         FROM unnest($1::TEXT[], $2::BIGINT[], $3::BIGINT[]) AS k(scope, window_start, keep)
         WHERE l.scope = k.scope AND l.window_start = k.window_start AND l.replica = $4",
        &[&scopes, &starts, &keeps, &replica],
    )?;
    let back: Vec<(&Window, Micros)> = back.iter().map(|(w, a)| (w, *a)).collect();
    give_back(tx, &back)
}

/// Adds queued spend to the fleet's spend table in one statement, its rows upserted in key
/// order (every replica writes the same `(scope, day)` rows: one order, no deadlock).
pub(super) fn write_spend(
    tx: &mut Transaction<'_>,
    spend: &[((String, i64), i64)],
) -> Result<(), postgres::Error> {
    if spend.is_empty() {
        return Ok(());
    }
    let scopes: Vec<&str> = spend.iter().map(|((s, _), _)| s.as_str()).collect();
    let days: Vec<i64> = spend.iter().map(|((_, d), _)| *d).collect();
    let micros: Vec<i64> = spend.iter().map(|(_, m)| *m).collect();
    tx.execute(
        "INSERT INTO fleet_spend (scope, day, micros)
         SELECT * FROM unnest($1::TEXT[], $2::BIGINT[], $3::BIGINT[]) ORDER BY 1, 2
         ON CONFLICT (scope, day) DO UPDATE SET micros = fleet_spend.micros + EXCLUDED.micros",
        &[&scopes, &days, &micros],
    )?;
    Ok(())
}
