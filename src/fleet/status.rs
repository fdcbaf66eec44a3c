//! The fleet's status (head, replicas, lag) and the one-time writes of its creation: the
//! state a single-node file seeds it with, and the store key's fingerprint.

use std::io::Write;
use std::time::Duration;

use super::engine::Engine;
use crate::error::Error;
use crate::model::{Timestamp, Usd};
use crate::store::journal::Entry;

/// The fleet as its engine reports it: [`crate::FleetBuilder::status`],
/// [`crate::Store::fleet_status`].
///
/// ```no_run
/// let s = orgstore::StoreBuilder::new().fleet("postgres://localhost/orgstore").status()?;
/// println!("head {} with {} replicas", s.head, s.replicas.len());
/// # Ok::<(), orgstore::Error>(())
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct FleetStatus {
    /// The position of the log's last entry: every admin write of the fleet has one.
    pub head: u64,
    /// Entries up to this position were trimmed; a replica behind it copies the state.
    pub trimmed_to: u64,
    /// The replicas that ever registered, by name.
    pub replicas: Vec<ReplicaStatus>,
    /// Every replica's budget leases, by scope, window and holder (empty until a replica
    /// enforced a hard budget).
    pub budget_leases: Vec<BudgetLease>,
    /// Every replica's shares of the rate limits, by scope and holder.
    pub rate_shares: Vec<RateShare>,
}

/// One replica's lease on one hard budget's window in [`FleetStatus`]: the part of the
/// budget it took from the fleet's counter, and what of it it may admit and did admit.
///
/// ```no_run
/// let s = orgstore::StoreBuilder::new().fleet("postgres://localhost/orgstore").status()?;
/// for l in s.budget_leases.iter().filter(|l| l.expires_in.is_some()) {
///     println!("{} holds {} of {}", l.holder, l.granted, l.scope);
/// }
/// # Ok::<(), orgstore::Error>(())
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct BudgetLease {
    /// The budget's owner: a key id (`key_...`) or an org id.
    pub scope: String,
    /// The start of the budget's window (`None` for a total budget).
    pub window_start: Option<Timestamp>,
    /// The lease holder: the replica's name and a suffix unique to its process.
    pub holder: String,
    /// Taken from the fleet's counter.
    pub granted: Usd,
    /// What the holder may admit (at most `granted`).
    pub claimed: Usd,
    /// What the holder reported admitting.
    pub used: Usd,
    /// How long until the lease lapses unless renewed; `None` once it has lapsed (its
    /// unclaimed part then goes back to the counter).
    pub expires_in: Option<Duration>,
}

/// One replica's share of one rate limit in [`FleetStatus`].
///
/// ```no_run
/// let s = orgstore::StoreBuilder::new().fleet("postgres://localhost/orgstore").status()?;
/// let held: u64 = s.rate_shares.iter().filter(|r| r.scope == "acme").map(|r| r.share).sum();
/// # Ok::<(), orgstore::Error>(())
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct RateShare {
    /// The limit's owner: a key id (`key_...`) or an org id.
    pub scope: String,
    /// `rpm` or `tpm`.
    pub unit: String,
    /// The share holder: the replica's name and a suffix unique to its process.
    pub holder: String,
    /// Requests (or tokens) per minute this holder may admit.
    pub share: u64,
    /// The demand it last reported, per minute.
    pub want: u64,
    /// How long until the share lapses unless renewed; `None` once it has lapsed.
    pub expires_in: Option<Duration>,
}

/// One replica in [`FleetStatus`].
///
/// ```no_run
/// let s = orgstore::StoreBuilder::new().fleet("postgres://localhost/orgstore").status()?;
/// let behind: Vec<_> = s.replicas.iter().filter(|r| r.lag > 0).map(|r| &r.name).collect();
/// # Ok::<(), orgstore::Error>(())
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct ReplicaStatus {
    /// Its name ([`crate::FleetBuilder::replica_name`]).
    pub name: String,
    /// The last position it reported applied.
    pub applied: u64,
    /// How many entries it was behind the head then.
    pub lag: u64,
    /// How long ago it last reported (about every second while it runs).
    pub last_seen: Duration,
}

pub(crate) fn read(c: &mut postgres::Client, engine: &Engine) -> Result<FleetStatus, Error> {
    let un = |e| engine.unavailable("reading the fleet's status", e);
    let (head, trimmed_to) = super::sync::head(c, engine)?;
    let rows = c
        .query(
            "SELECT name, applied, GREATEST(0, EXTRACT(EPOCH FROM now() - seen_at))::float8 \
             FROM orgstore_replicas ORDER BY name",
            &[],
        )
        .map_err(un)?;
    let replicas = rows
        .iter()
        .map(|r| {
            let applied = r.get::<_, i64>(1) as u64;
            ReplicaStatus {
                name: r.get(0),
                applied,
                lag: head.saturating_sub(applied),
                last_seen: Duration::from_secs_f64(r.get::<_, f64>(2).max(0.0)),
            }
        })
        .collect();
    Ok(FleetStatus {
        head,
        trimmed_to,
        replicas,
        budget_leases: budget_leases(c).map_err(un)?,
        rate_shares: rate_shares(c).map_err(un)?,
    })
}

/// A scope as the limits' tables name it (`k:key_..`, `o:ORG`), as users name it.
fn shown_scope(scope: &str) -> String {
    scope
        .strip_prefix("k:")
        .or_else(|| scope.strip_prefix("o:"))
        .unwrap_or(scope)
        .to_owned()
}

/// Seconds left (from the engine's clock) as a duration, `None` when lapsed.
fn left(secs: f64) -> Option<Duration> {
    (secs > 0.0).then(|| Duration::from_secs_f64(secs))
}

fn usd(micros: i64) -> Usd {
    Usd::from_micros(micros.max(0)).unwrap_or(Usd::ZERO)
}

/// Whether the limits' table `name` exists (it is created by the first replica that
/// starts its limits; status reads create nothing).
fn has_table(c: &mut postgres::Client, name: &str) -> Result<bool, postgres::Error> {
    Ok(c.query_one("SELECT to_regclass($1) IS NOT NULL", &[&name])?
        .get(0))
}

fn budget_leases(c: &mut postgres::Client) -> Result<Vec<BudgetLease>, postgres::Error> {
    if !has_table(c, "fleet_budget_lease")? {
        return Ok(Vec::new());
    }
    let rows = c.query(
        "SELECT scope, window_start, replica, granted, claimed, used,
                EXTRACT(EPOCH FROM expires_at - now())::float8
         FROM fleet_budget_lease ORDER BY scope, window_start, replica",
        &[],
    )?;
    Ok(rows
        .iter()
        .map(|r| {
            let start: i64 = r.get(1);
            BudgetLease {
                scope: shown_scope(r.get(0)),
                window_start: (start != i64::MIN).then(|| Timestamp::from_micros(start)),
                holder: r.get(2),
                granted: usd(r.get(3)),
                claimed: usd(r.get(4)),
                used: usd(r.get(5)),
                expires_in: left(r.get(6)),
            }
        })
        .collect())
}

fn rate_shares(c: &mut postgres::Client) -> Result<Vec<RateShare>, postgres::Error> {
    if !has_table(c, "fleet_rate_share")? {
        return Ok(Vec::new());
    }
    let rows = c.query(
        "SELECT scope, replica, share, want,
                (lease_until - (extract(epoch FROM now()) * 1000000)::BIGINT)::float8 / 1e6
         FROM fleet_rate_share ORDER BY scope, replica",
        &[],
    )?;
    Ok(rows
        .iter()
        .map(|r| {
            let scope: &str = r.get(0);
            let (owner, unit) = scope.rsplit_once('/').unwrap_or((scope, ""));
            RateShare {
                scope: shown_scope(owner),
                unit: unit.to_owned(),
                holder: r.get(1),
                share: u64::try_from(r.get::<_, i64>(2)).unwrap_or(0),
                want: u64::try_from(r.get::<_, i64>(3)).unwrap_or(0),
                expires_in: left(r.get(4)),
            }
        })
        .collect())
}

/// Records `fingerprint` as the fleet's store key unless one is recorded already.
pub(crate) fn claim_key(
    c: &mut postgres::Client,
    engine: &Engine,
    fingerprint: &str,
) -> Result<(), Error> {
    c.execute(
        "UPDATE orgstore_fleet SET key_fingerprint = $1 WHERE id = 1 AND key_fingerprint IS NULL",
        &[&fingerprint],
    )
    .map_err(|e| engine.unavailable("recording the fleet's key", e))
    .map(drop)
}

/// Seeds an empty fleet with `rows` (a single-node file's records) as position 1, with
/// `fingerprint` as its key: one transaction holding the head row; a fleet that holds
/// records already is refused.
pub(crate) fn seed(
    c: &mut postgres::Client,
    engine: &Engine,
    rows: &[Entry],
    fingerprint: &str,
) -> Result<(), Error> {
    let un = |doing: &'static str| move |e| engine.unavailable(doing, e);
    let mut t = c.transaction().map_err(un("starting the migration"))?;
    let head: i64 = t
        .query_one(
            "SELECT position FROM orgstore_head WHERE id = 1 FOR UPDATE",
            &[],
        )
        .map_err(un("locking the log's head"))?
        .get(0);
    let key: Option<String> = t
        .query_one(
            "SELECT key_fingerprint FROM orgstore_fleet WHERE id = 1",
            &[],
        )
        .map_err(un("reading the fleet"))?
        .get(0);
    if head != 0 || key.as_deref().is_some_and(|k| k != fingerprint) {
        return Err(Error::conflict(
            "from",
            "the fleet already holds records (or another store key); a file can only seed a new, \
             empty fleet: give an empty database",
        ));
    }
    {
        let mut w = t
            .copy_in("COPY orgstore_state (tbl, k, v) FROM STDIN (FORMAT binary)")
            .map_err(un("copying the file's records"))?;
        let io = |e| Error::storage("copying the file's records", e);
        let mut buf = Vec::with_capacity(1 << 20);
        buf.extend_from_slice(b"PGCOPY\n\xff\r\n\0");
        buf.extend_from_slice(&0u32.to_be_bytes());
        buf.extend_from_slice(&0u32.to_be_bytes());
        for e in rows {
            let Some(v) = &e.value else { continue };
            buf.extend_from_slice(&3i16.to_be_bytes());
            for field in [e.table.as_bytes(), &e.key, v] {
                buf.extend_from_slice(&(field.len() as i32).to_be_bytes());
                buf.extend_from_slice(field);
            }
            if buf.len() >= 1 << 20 {
                w.write_all(&buf).map_err(io)?;
                buf.clear();
            }
        }
        buf.extend_from_slice(&(-1i16).to_be_bytes());
        w.write_all(&buf).map_err(io)?;
        w.finish().map_err(un("copying the file's records"))?;
    }
    t.execute(
        "UPDATE orgstore_head SET position = 1, trimmed_to = 1 WHERE id = 1",
        &[],
    )
    .map_err(un("moving the log's head"))?;
    t.execute(
        "UPDATE orgstore_fleet SET key_fingerprint = $1 WHERE id = 1",
        &[&fingerprint],
    )
    .map_err(un("recording the fleet's key"))?;
    t.commit().map_err(un("committing the migration"))
}
