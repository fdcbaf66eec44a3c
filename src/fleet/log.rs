//! The fleet's change log as a replicated store writes it ([`crate::store::replica::Log`]):
//! one PostgreSQL transaction per admin write that locks the head row, catches the replica
//! up, lets the store run the operation, and appends its journal.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use parking_lot::Mutex;

use super::engine::{CHANNEL, Engine};
use super::sync;
use super::tail::Tailer;
use crate::error::Error;
use crate::store::Inner;
use crate::store::journal::{self, Entry};
use crate::store::replica::Log;

/// After a failed connection, writes fail at once for this long before one tries again.
const RETRY_AFTER: Duration = Duration::from_millis(500);

/// How often (in positions) a writer trims entries older than the retention window.
const TRIM_EVERY: u64 = 256;

/// The writer's side of a replica's connection to the fleet.
pub(crate) struct PgLog {
    pub(crate) engine: Engine,
    pub(crate) fleet_id: u64,
    /// This replica's name in `orgstore_replicas` and in the log's `replica` column.
    pub(crate) name: String,
    /// Log entries kept for replicas that fall behind; older ones make them bootstrap.
    pub(crate) retention: u64,
    conn: Mutex<Conn>,
    /// The background tailer, stopped by [`Log::close`].
    pub(crate) tailer: Mutex<Option<Tailer>>,
}

#[derive(Default)]
struct Conn {
    client: Option<postgres::Client>,
    failed_at: Option<Instant>,
}

impl PgLog {
    pub(crate) fn new(
        engine: Engine,
        fleet_id: u64,
        name: String,
        retention: u64,
        client: Option<postgres::Client>,
    ) -> Arc<Self> {
        Arc::new(Self {
            engine,
            fleet_id,
            name,
            retention,
            conn: Mutex::new(Conn {
                client,
                failed_at: None,
            }),
            tailer: Mutex::new(None),
        })
    }

    fn append_on(
        &self,
        client: &mut postgres::Client,
        inner: &Inner,
        stage: &mut dyn FnMut(u64) -> Result<Vec<Entry>, Error>,
    ) -> Result<Result<(), Error>, Error> {
        let engine = &self.engine;
        let un = |doing: &'static str| move |e| engine.unavailable(doing, e);
        let mut t = client.transaction().map_err(un("starting a write"))?;
        t.query_one("SELECT position FROM orgstore_head WHERE id = 1 FOR UPDATE", &[])
            .map_err(un("locking the log's head"))?;
        // The replica now equals the head: the operation decides on what it commits on.
        let head = match sync::catch_up(&mut t, engine, inner, self.fleet_id) {
            Ok((head, _)) => head,
            Err(e) => return Ok(Err(e)),
        };
        let position = head + 1;
        let entries = match stage(position) {
            Ok(e) => e,
            // Rolled back when `t` is dropped.
            Err(e) => return Ok(Err(e)),
        };
        if entries.is_empty() {
            return Ok(Ok(()));
        }
        let p = position as i64;
        t.execute(
            "INSERT INTO orgstore_log (position, replica, entry) VALUES ($1, $2, $3)",
            &[&p, &self.name, &journal::encode(&entries)],
        )
        .map_err(un("appending to the log"))?;
        write_state(&mut t, &entries).map_err(un("writing the fleet's state"))?;
        t.execute("UPDATE orgstore_head SET position = $1 WHERE id = 1", &[&p])
            .map_err(un("moving the log's head"))?;
        if position.is_multiple_of(TRIM_EVERY) && position > self.retention {
            let keep_from = (position - self.retention) as i64;
            t.execute("DELETE FROM orgstore_log WHERE position <= $1", &[&keep_from])
                .map_err(un("trimming the log"))?;
            t.execute(
                "UPDATE orgstore_head SET trimmed_to = GREATEST(trimmed_to, $1) WHERE id = 1",
                &[&keep_from],
            )
            .map_err(un("trimming the log"))?;
        }
        // A wake-up only, delivered at commit; replicas poll anyway.
        t.execute("SELECT pg_notify($1, $2)", &[&CHANNEL, &position.to_string()])
            .map_err(un("notifying the replicas"))?;
        t.commit().map_err(un("committing"))?;
        Ok(Ok(()))
    }
}

/// Upserts and deletes the rows of `entries` in `orgstore_state`, the last write of each
/// record winning, in two statements.
fn write_state(
    t: &mut postgres::Transaction<'_>,
    entries: &[Entry],
) -> Result<(), postgres::Error> {
    let mut last: HashMap<(&str, &[u8]), Option<&[u8]>> = HashMap::with_capacity(entries.len());
    for e in entries {
        last.insert((e.table.as_str(), e.key.as_slice()), e.value.as_deref());
    }
    let (mut ut, mut uk, mut uv) = (Vec::new(), Vec::new(), Vec::new());
    let (mut dt, mut dk) = (Vec::new(), Vec::new());
    for ((table, key), value) in last {
        match value {
            Some(v) => {
                ut.push(table);
                uk.push(key);
                uv.push(v);
            }
            None => {
                dt.push(table);
                dk.push(key);
            }
        }
    }
    if !ut.is_empty() {
        t.execute(
            "INSERT INTO orgstore_state (tbl, k, v) \
             SELECT * FROM unnest($1::text[], $2::bytea[], $3::bytea[]) \
             ON CONFLICT (tbl, k) DO UPDATE SET v = EXCLUDED.v",
            &[&ut, &uk, &uv],
        )?;
    }
    if !dt.is_empty() {
        t.execute(
            "DELETE FROM orgstore_state s USING unnest($1::text[], $2::bytea[]) AS d(tbl, k) \
             WHERE s.tbl = d.tbl AND s.k = d.k",
            &[&dt, &dk],
        )?;
    }
    Ok(())
}

impl Log for PgLog {
    fn append(
        &self,
        inner: &Inner,
        stage: &mut dyn FnMut(u64) -> Result<Vec<Entry>, Error>,
    ) -> Result<(), Error> {
        let mut conn = self.conn.lock();
        if conn.client.as_ref().is_none_or(postgres::Client::is_closed) {
            conn.client = None;
            if conn.failed_at.is_some_and(|t| t.elapsed() < RETRY_AFTER) {
                return Err(self.engine.unavailable_now());
            }
            match self.engine.connect() {
                Ok(c) => conn.client = Some(c),
                Err(e) => {
                    conn.failed_at = Some(Instant::now());
                    return Err(e);
                }
            }
        }
        let Some(client) = conn.client.as_mut() else {
            return Err(self.engine.unavailable_now());
        };
        match self.append_on(client, inner, stage) {
            Ok(out) => out,
            Err(engine_error) => {
                // The connection may be broken: the next write opens a new one.
                conn.client = None;
                conn.failed_at = Some(Instant::now());
                Err(engine_error)
            }
        }
    }

    fn close(&self) {
        if let Some(t) = self.tailer.lock().take() {
            t.stop();
        }
    }

    fn as_any(&self) -> &dyn std::any::Any {
        self
    }
}
