//! Rate shares on PostgreSQL ([`super::rate`]): the limits thread samples every shared
//! limiter each pass and renews its rows about twice a second, rebalancing a scope when
//! it is due (under the scope row's lock). Shares are applied after the commit, with the
//! lease end measured on this process's clock from before the transaction began, so a
//! replica never uses a share past the end the database recorded.

use std::collections::{BTreeMap, HashMap};

use postgres::{Client, Transaction};

use super::rate::{Hold, MIN_SHARE, Pressure, SharePolicy, ShareRow, is_gone, rebalance};
use crate::limits::RateLimiter;
use crate::limits::clock::Clock;
use crate::snapshot::{SnapshotCell, SpenderId};
use crate::store::records::{key_ledger_name, org_ledger_name};

/// The tables of the rate shares; idempotent.
pub(crate) const RATE_SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS fleet_rate_scope (
    scope TEXT PRIMARY KEY,
    limit_per_minute BIGINT NOT NULL,
    rebalanced_at BIGINT NOT NULL DEFAULT 0
);
CREATE TABLE IF NOT EXISTS fleet_rate_share (
    scope TEXT NOT NULL,
    replica TEXT NOT NULL,
    share BIGINT NOT NULL,
    want BIGINT NOT NULL,
    lease_until BIGINT NOT NULL,
    hold_amounts BIGINT[] NOT NULL DEFAULT '{}',
    hold_untils BIGINT[] NOT NULL DEFAULT '{}',
    PRIMARY KEY (scope, replica)
);
";

/// What this replica knows of one shared limiter.
#[derive(Default)]
struct Local {
    pressure: Pressure,
    /// Monotonic nanoseconds at which its share lapses unless renewed (0: never renewed).
    deadline: u64,
}

/// The rate side of the limits thread.
#[derive(Default)]
pub(crate) struct Rates {
    scopes: HashMap<String, Local>,
    passes: u64,
    policy: SharePolicy,
}

/// A shared limiter's scope name: the ledger's name of its spender and the unit.
fn scope_name(s: &SpenderId, tokens: bool) -> String {
    let unit = if tokens { "tpm" } else { "rpm" };
    match s {
        SpenderId::Key(k) => format!("{}/{unit}", key_ledger_name(k)),
        SpenderId::Org(o) => format!("{}/{unit}", org_ledger_name(o)),
    }
}

impl Rates {
    /// One pass: samples every shared limiter (falling back to the least share where a
    /// lease lapsed) and tells whether the rows are due for renewal.
    pub fn sample(&mut self, cell: &SnapshotCell) -> bool {
        let now = Clock::new().now().nanos;
        for (spender, tokens, l) in cell.shared_rates() {
            let local = self.scopes.entry(scope_name(&spender, tokens)).or_default();
            local.pressure.sample(l.state(now).remaining());
            if now >= local.deadline && l.limit() != MIN_SHARE {
                l.set_share(MIN_SHARE, now);
            }
        }
        self.passes += 1;
        self.passes % 5 == 1
    }

    /// Renews this replica's rows, rebalancing the scopes that are due, then applies the
    /// shares.
    pub fn renew(
        &mut self,
        client: &mut Client,
        cell: &SnapshotCell,
        replica: &str,
    ) -> Result<(), postgres::Error> {
        let sent = Clock::new().now().nanos;
        let rates = cell.shared_rates();
        if rates.is_empty() {
            return Ok(());
        }
        // By scope name, sorted: every replica locks the scope rows in the same order.
        let mut wanted: BTreeMap<String, (&RateLimiter, u64, u64)> = BTreeMap::new();
        for (spender, tokens, l) in &rates {
            let Some(limit) = cell.configured_rate(l) else {
                continue;
            };
            let name = scope_name(spender, *tokens);
            let local = self.scopes.entry(name.clone()).or_default();
            // A replica new to a scope asks for all of it: the free part is split evenly.
            let want = if local.deadline == 0 {
                limit
            } else {
                local.pressure.want(l.limit())
            };
            wanted.insert(name, (l, limit, want));
        }
        let mut tx = client.transaction()?;
        let got = renew_scopes(&mut tx, &wanted, replica, &self.policy)?;
        let mut shares: Vec<(&RateLimiter, String, u64)> = Vec::with_capacity(wanted.len());
        for (name, (l, limit, _)) in wanted {
            if let Some(share) = got.get(&name) {
                shares.push((l, name, (*share).clamp(MIN_SHARE, limit)));
            }
        }
        tx.commit()?;
        let deadline = sent.saturating_add(self.policy.lease.unsigned_abs() * 1_000);
        let at = Clock::new().now().nanos;
        for (l, name, share) in shares {
            l.set_share(share, at);
            if let Some(local) = self.scopes.get_mut(&name) {
                local.deadline = deadline;
            }
        }
        Ok(())
    }

    /// Clean shutdown: this replica's shares fall to the least and its rows lapse now, so
    /// the others can grow into them once the holds end.
    pub fn release(
        &mut self,
        tx: &mut Transaction<'_>,
        cell: &SnapshotCell,
        replica: &str,
    ) -> Result<(), postgres::Error> {
        let now = Clock::new().now().nanos;
        for (_, _, l) in cell.shared_rates() {
            l.set_share(MIN_SHARE, now);
        }
        self.scopes.clear();
        // The scope rows first, in order, as a renewal locks them: no deadlock with a
        // replica rebalancing the same scopes.
        tx.query(
            "SELECT 1 FROM fleet_rate_scope
             WHERE scope IN (SELECT scope FROM fleet_rate_share WHERE replica = $1)
             ORDER BY scope FOR UPDATE",
            &[&replica],
        )?;
        tx.execute(
            "UPDATE fleet_rate_share
             SET lease_until = (extract(epoch FROM now()) * 1000000)::BIGINT, want = 1
             WHERE replica = $1",
            &[&replica],
        )?;
        Ok(())
    }
}

/// Renews this replica's row of every scope (and rebalances the scopes that are due),
/// in a handful of set-wide statements; returns this replica's share of each scope.
/// `wanted` holds, by scope: the limiter, its limit and the share this replica wants.
fn renew_scopes(
    tx: &mut Transaction<'_>,
    wanted: &BTreeMap<String, (&RateLimiter, u64, u64)>,
    replica: &str,
    p: &SharePolicy,
) -> Result<HashMap<String, u64>, postgres::Error> {
    if wanted.is_empty() {
        return Ok(HashMap::new());
    }
    let now: i64 = tx
        .query_one("SELECT (extract(epoch FROM now()) * 1000000)::BIGINT", &[])?
        .get(0);
    let scopes: Vec<&str> = wanted.keys().map(String::as_str).collect();
    let limits: Vec<i64> = wanted.values().map(|w| big(w.1)).collect();
    let wants: Vec<i64> = wanted.values().map(|w| big(w.2)).collect();
    // The scope rows are the rebalancing locks: replicas renewing a scope queue there.
    let scope_rows = tx.query(
        "INSERT INTO fleet_rate_scope (scope, limit_per_minute)
         SELECT * FROM unnest($1::TEXT[], $2::BIGINT[]) ORDER BY 1
         ON CONFLICT (scope) DO UPDATE SET limit_per_minute = EXCLUDED.limit_per_minute
         RETURNING scope, rebalanced_at",
        &[&scopes, &limits],
    )?;
    tx.execute(
        "INSERT INTO fleet_rate_share (scope, replica, share, want, lease_until)
         SELECT s, $2, 1, w, $4 FROM unnest($1::TEXT[], $3::BIGINT[]) AS u(s, w)
         ON CONFLICT (scope, replica) DO UPDATE
         SET want = EXCLUDED.want, lease_until = EXCLUDED.lease_until",
        &[&scopes, &replica, &wants, &(now + p.lease)],
    )?;
    let due: Vec<String> = scope_rows
        .iter()
        .filter(|r| now - r.get::<_, i64>(1) >= p.rebalance_every)
        .map(|r| r.get(0))
        .collect();
    if !due.is_empty() {
        rebalance_scopes(tx, &due, wanted, replica, now, p)?;
    }
    let rows = tx.query(
        "SELECT scope, share FROM fleet_rate_share WHERE replica = $1 AND scope = ANY($2)",
        &[&replica, &scopes],
    )?;
    Ok(rows
        .iter()
        .map(|r| (r.get(0), r.get::<_, i64>(1).max(1).unsigned_abs()))
        .collect())
}

fn big(v: u64) -> i64 {
    i64::try_from(v).unwrap_or(i64::MAX)
}

/// Rebalances the `due` scopes (their rows locked by the caller): reads every replica's
/// row, splits each limit, drops the rows of replicas gone, writes the shares and holds.
fn rebalance_scopes(
    tx: &mut Transaction<'_>,
    due: &[String],
    wanted: &BTreeMap<String, (&RateLimiter, u64, u64)>,
    replica: &str,
    now: i64,
    p: &SharePolicy,
) -> Result<(), postgres::Error> {
    let found = tx.query(
        "SELECT scope, replica, share, want, lease_until, hold_amounts, hold_untils
         FROM fleet_rate_share WHERE scope = ANY($1) ORDER BY scope, replica",
        &[&due],
    )?;
    let mut by_scope: BTreeMap<String, (Vec<String>, Vec<ShareRow>)> = BTreeMap::new();
    for r in &found {
        let amounts: Vec<i64> = r.get(5);
        let untils: Vec<i64> = r.get(6);
        let row = ShareRow {
            share: r.get::<_, i64>(2).max(1).unsigned_abs(),
            want: r.get::<_, i64>(3).max(1).unsigned_abs(),
            lease_until: r.get(4),
            holds: amounts
                .iter()
                .zip(&untils)
                .map(|(&a, &until)| Hold {
                    amount: a.max(0).unsigned_abs(),
                    until,
                })
                .collect(),
        };
        let e = by_scope.entry(r.get(0)).or_default();
        e.0.push(r.get(1));
        e.1.push(row);
    }
    // Gone rows, and every other row's share and holds (holds flattened, row by row).
    let (mut gone_scope, mut gone_replica) = (Vec::new(), Vec::new());
    let (mut set_scope, mut set_replica, mut set_share) = (Vec::new(), Vec::new(), Vec::new());
    let (mut hold_row, mut hold_amount, mut hold_until) = (Vec::new(), Vec::new(), Vec::new());
    for (scope, (names, mut rows)) in by_scope {
        let Some((_, limit, _)) = wanted.get(&scope) else {
            continue;
        };
        rebalance(&mut rows, *limit, now, p);
        for (name, r) in names.into_iter().zip(&rows) {
            if is_gone(r, now) && name != replica {
                gone_scope.push(scope.clone());
                gone_replica.push(name);
                continue;
            }
            for h in &r.holds {
                hold_row.push(i64::try_from(set_scope.len()).unwrap_or(i64::MAX));
                hold_amount.push(big(h.amount));
                hold_until.push(h.until);
            }
            set_scope.push(scope.clone());
            set_replica.push(name);
            set_share.push(big(r.share));
        }
    }
    if !gone_scope.is_empty() {
        tx.execute(
            "DELETE FROM fleet_rate_share s
             USING unnest($1::TEXT[], $2::TEXT[]) AS g(scope, replica)
             WHERE s.scope = g.scope AND s.replica = g.replica",
            &[&gone_scope, &gone_replica],
        )?;
    }
    // Row numbers start at 0 here and at 1 in WITH ORDINALITY.
    tx.execute(
        "UPDATE fleet_rate_share s
         SET share = u.share,
             hold_amounts = coalesce(h.amounts, '{}'), hold_untils = coalesce(h.untils, '{}')
         FROM unnest($1::TEXT[], $2::TEXT[], $3::BIGINT[]) WITH ORDINALITY
              AS u(scope, replica, share, n)
         LEFT JOIN (
             SELECT row_ix, array_agg(amount ORDER BY ord) AS amounts,
                    array_agg(until ORDER BY ord) AS untils
             FROM unnest($4::BIGINT[], $5::BIGINT[], $6::BIGINT[]) WITH ORDINALITY
                  AS x(row_ix, amount, until, ord)
             GROUP BY row_ix
         ) h ON h.row_ix = u.n - 1
         WHERE s.scope = u.scope AND s.replica = u.replica",
        &[
            &set_scope,
            &set_replica,
            &set_share,
            &hold_row,
            &hold_amount,
            &hold_until,
        ],
    )?;
    tx.execute(
        "UPDATE fleet_rate_scope SET rebalanced_at = $2 WHERE scope = ANY($1)",
        &[&due, &now],
    )?;
    Ok(())
}
