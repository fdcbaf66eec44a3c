//! The budget leases' statements (see [`super::lease`] for when each runs). Every
//! amount moves under a row lock, and `fleet_budget.granted` only grows through the
//! conditional update in [`take`].

use postgres::Transaction;

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

/// Creates a window's central counter or changes its limit (the budget's config changed).
pub(super) fn set_pool_limit(
    tx: &mut Transaction<'_>,
    scope: &str,
    start: i64,
    limit: i64,
) -> Result<(), postgres::Error> {
    tx.execute(
        "INSERT INTO fleet_budget (scope, window_start, limit_micros) VALUES ($1, $2, $3)
         ON CONFLICT (scope, window_start) DO NOTHING",
        &[&scope, &start, &limit],
    )?;
    tx.execute(
        "UPDATE fleet_budget SET limit_micros = $3
         WHERE scope = $1 AND window_start = $2 AND limit_micros <> $3",
        &[&scope, &start, &limit],
    )?;
    Ok(())
}

/// What the window's counter has left and how many replicas hold a live lease on it.
pub(super) fn pool_state(
    tx: &mut Transaction<'_>,
    scope: &str,
    start: i64,
) -> Result<(Micros, u32), postgres::Error> {
    let row = tx.query_one(
        "SELECT greatest(limit_micros - granted, 0),
                (SELECT count(*) FROM fleet_budget_lease l
                 WHERE l.scope = $1 AND l.window_start = $2 AND l.expires_at > now())
         FROM fleet_budget WHERE scope = $1 AND window_start = $2",
        &[&scope, &start],
    )?;
    let live: i64 = row.get(1);
    Ok((row.get(0), u32::try_from(live.max(1)).unwrap_or(u32::MAX)))
}

/// Returns the unclaimed part of every lease of the window that lapsed.
pub(super) fn reclaim(
    tx: &mut Transaction<'_>,
    scope: &str,
    start: i64,
) -> Result<(), postgres::Error> {
    let lapsed = tx.query(
        "SELECT replica, granted - claimed FROM fleet_budget_lease
         WHERE scope = $1 AND window_start = $2 AND expires_at < now() AND granted > claimed
         FOR UPDATE",
        &[&scope, &start],
    )?;
    let mut back = 0i64;
    for row in &lapsed {
        let replica: &str = row.get(0);
        let amount: i64 = row.get(1);
        tx.execute(
            "UPDATE fleet_budget_lease SET granted = claimed
             WHERE scope = $1 AND window_start = $2 AND replica = $3",
            &[&scope, &start, &replica],
        )?;
        back += amount;
    }
    give_back(tx, scope, start, back)
}

/// Returns `amount` to the window's counter.
fn give_back(
    tx: &mut Transaction<'_>,
    scope: &str,
    start: i64,
    amount: Micros,
) -> Result<(), postgres::Error> {
    if amount > 0 {
        tx.execute(
            "UPDATE fleet_budget SET granted = granted - $3 WHERE scope = $1 AND window_start = $2",
            &[&scope, &start, &amount],
        )?;
    }
    Ok(())
}

/// Takes up to `chunk` from the window's counter with one conditional update, and adds
/// it to this replica's lease. Returns what was granted (0 when nothing fits now).
pub(super) fn take(
    tx: &mut Transaction<'_>,
    scope: &str,
    start: i64,
    replica: &str,
    chunk: Micros,
    ttl: f64,
) -> Result<Micros, postgres::Error> {
    let rows = tx.query(
        "UPDATE fleet_budget b SET granted = b.granted + g.amount
         FROM (SELECT least($3::BIGINT, limit_micros - granted) AS amount FROM fleet_budget
               WHERE scope = $1 AND window_start = $2) g
         WHERE b.scope = $1 AND b.window_start = $2 AND g.amount > 0
           AND b.granted + g.amount <= b.limit_micros
         RETURNING g.amount",
        &[&scope, &start, &chunk],
    )?;
    let Some(row) = rows.first() else {
        return Ok(0);
    };
    let amount: i64 = row.get(0);
    tx.execute(
        "INSERT INTO fleet_budget_lease (scope, window_start, replica, granted, expires_at)
         VALUES ($1, $2, $3, $4, now() + make_interval(secs => $5))
         ON CONFLICT (scope, window_start, replica) DO UPDATE
         SET granted = fleet_budget_lease.granted + EXCLUDED.granted,
             expires_at = EXCLUDED.expires_at",
        &[&scope, &start, &replica, &amount, &ttl],
    )?;
    Ok(amount)
}

/// Commits a claim and the reported use, renewing the lease. Returns the lease's
/// `(granted, claimed)` as the database has it.
pub(super) fn claim_lease(
    tx: &mut Transaction<'_>,
    scope: &str,
    start: i64,
    replica: &str,
    claim: Micros,
    used: Micros,
    ttl: f64,
) -> Result<(Micros, Micros), postgres::Error> {
    let rows = tx.query(
        "UPDATE fleet_budget_lease
         SET claimed = greatest(claimed, least($4, granted)), used = $5,
             expires_at = now() + make_interval(secs => $6)
         WHERE scope = $1 AND window_start = $2 AND replica = $3
         RETURNING granted, claimed",
        &[&scope, &start, &replica, &claim, &used, &ttl],
    )?;
    Ok(rows.first().map_or((0, 0), |r| (r.get(0), r.get(1))))
}

/// Returns all of a lease but `used` to the window's counter and ends the lease.
pub(super) fn release(
    tx: &mut Transaction<'_>,
    scope: &str,
    start: i64,
    replica: &str,
    used: Micros,
) -> Result<(), postgres::Error> {
    let rows = tx.query(
        "SELECT granted FROM fleet_budget_lease
         WHERE scope = $1 AND window_start = $2 AND replica = $3 FOR UPDATE",
        &[&scope, &start, &replica],
    )?;
    let Some(row) = rows.first() else {
        return Ok(());
    };
    let granted: i64 = row.get(0);
    let keep = used.clamp(0, granted);
    tx.execute(
        "UPDATE fleet_budget_lease SET granted = $4, claimed = $4, used = $4, expires_at = now()
         WHERE scope = $1 AND window_start = $2 AND replica = $3",
        &[&scope, &start, &replica, &keep],
    )?;
    give_back(tx, scope, start, granted - keep)
}

/// Adds queued spend to the fleet's spend table in one statement.
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
         SELECT * FROM unnest($1::TEXT[], $2::BIGINT[], $3::BIGINT[])
         ON CONFLICT (scope, day) DO UPDATE SET micros = fleet_spend.micros + EXCLUDED.micros",
        &[&scopes, &days, &micros],
    )?;
    Ok(())
}
