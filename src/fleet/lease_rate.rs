//! Rate shares on PostgreSQL ([`super::rate`]): the limits thread samples every shared
//! limiter each pass and renews its rows about twice a second, rebalancing a scope when
//! it is due (under the scope row's lock). Shares are applied after the commit, with the
//! lease end measured on this process's clock from before the transaction began, so a
//! replica never uses a share past the end the database recorded.

use std::collections::HashMap;

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
        let mut tx = client.transaction()?;
        let now: i64 = tx
            .query_one("SELECT (extract(epoch FROM now()) * 1000000)::BIGINT", &[])?
            .get(0);
        let mut shares: Vec<(&RateLimiter, String, u64)> = Vec::with_capacity(rates.len());
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
            let share = renew_scope(&mut tx, &name, replica, limit, want, now, &self.policy)?;
            shares.push((l, name, share.clamp(MIN_SHARE, limit)));
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
        tx.execute(
            "UPDATE fleet_rate_share
             SET lease_until = (extract(epoch FROM now()) * 1000000)::BIGINT, want = 1
             WHERE replica = $1",
            &[&replica],
        )?;
        Ok(())
    }
}

/// Renews one row (and rebalances the scope when due); returns this replica's share.
fn renew_scope(
    tx: &mut Transaction<'_>,
    scope: &str,
    replica: &str,
    limit: u64,
    want: u64,
    now: i64,
    p: &SharePolicy,
) -> Result<u64, postgres::Error> {
    let big = |v: u64| i64::try_from(v).unwrap_or(i64::MAX);
    // The scope row is the rebalancing lock: replicas renewing the scope queue here.
    let rebalanced_at: i64 = tx
        .query_one(
            "INSERT INTO fleet_rate_scope (scope, limit_per_minute) VALUES ($1, $2)
             ON CONFLICT (scope) DO UPDATE SET limit_per_minute = EXCLUDED.limit_per_minute
             RETURNING rebalanced_at",
            &[&scope, &big(limit)],
        )?
        .get(0);
    tx.execute(
        "INSERT INTO fleet_rate_share (scope, replica, share, want, lease_until)
         VALUES ($1, $2, 1, $3, $4)
         ON CONFLICT (scope, replica) DO UPDATE
         SET want = EXCLUDED.want, lease_until = EXCLUDED.lease_until",
        &[&scope, &replica, &big(want), &(now + p.lease)],
    )?;
    if now - rebalanced_at >= p.rebalance_every {
        let found = tx.query(
            "SELECT replica, share, want, lease_until, hold_amounts, hold_untils
             FROM fleet_rate_share WHERE scope = $1 ORDER BY replica",
            &[&scope],
        )?;
        let mut names = Vec::with_capacity(found.len());
        let mut rows: Vec<ShareRow> = Vec::with_capacity(found.len());
        for r in &found {
            names.push(r.get::<_, String>(0));
            let amounts: Vec<i64> = r.get(4);
            let untils: Vec<i64> = r.get(5);
            rows.push(ShareRow {
                share: r.get::<_, i64>(1).max(1).unsigned_abs(),
                want: r.get::<_, i64>(2).max(1).unsigned_abs(),
                lease_until: r.get(3),
                holds: amounts
                    .iter()
                    .zip(&untils)
                    .map(|(&a, &until)| Hold {
                        amount: a.max(0).unsigned_abs(),
                        until,
                    })
                    .collect(),
            });
        }
        rebalance(&mut rows, limit, now, p);
        for (name, r) in names.iter().zip(&rows) {
            if is_gone(r, now) && name != replica {
                tx.execute(
                    "DELETE FROM fleet_rate_share WHERE scope = $1 AND replica = $2",
                    &[&scope, name],
                )?;
                continue;
            }
            let amounts: Vec<i64> = r.holds.iter().map(|h| big(h.amount)).collect();
            let untils: Vec<i64> = r.holds.iter().map(|h| h.until).collect();
            tx.execute(
                "UPDATE fleet_rate_share SET share = $3, hold_amounts = $4, hold_untils = $5
                 WHERE scope = $1 AND replica = $2",
                &[&scope, name, &big(r.share), &amounts, &untils],
            )?;
        }
        tx.execute(
            "UPDATE fleet_rate_scope SET rebalanced_at = $2 WHERE scope = $1",
            &[&scope, &now],
        )?;
    }
    let share: i64 = tx
        .query_one(
            "SELECT share FROM fleet_rate_share WHERE scope = $1 AND replica = $2",
            &[&scope, &replica],
        )?
        .get(0);
    Ok(share.max(1).unsigned_abs())
}
