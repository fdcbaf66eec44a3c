//! The fleet's change log as a replicated store writes it ([`crate::store::replica::Log`]):
//! one PostgreSQL transaction per admin write that locks the head row, catches the replica
//! up, lets the store run the operation, and appends its journal.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use parking_lot::Mutex;

use super::engine::Engine;
use super::sync;
use super::tail::Tailer;
use crate::error::Error;
use crate::store::Inner;
use crate::store::journal::{self, Entry};
use crate::store::replica::Log;

/// How long the background reconnection waits between attempts.
const RETRY_AFTER: Duration = Duration::from_millis(200);

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
    conn: Arc<Mutex<Conn>>,
    /// The background tailer, stopped by [`Log::close`].
    pub(crate) tailer: Mutex<Option<Tailer>>,
    /// The fleet's budgets and rate limits (leases), shut down by [`Log::close`], which
    /// returns what this replica holds.
    pub(crate) limits: Mutex<Option<super::lease::LimitsHandle>>,
}

#[derive(Default)]
struct Conn {
    /// The connection and its prepared statements.
    client: Option<(postgres::Client, sync::Prepared)>,
    /// Set while a background thread tries to connect.
    connecting: bool,
}

impl PgLog {
    pub(crate) fn new(
        engine: Engine,
        fleet_id: u64,
        name: String,
        retention: u64,
        client: Option<(postgres::Client, sync::Prepared)>,
    ) -> Arc<Self> {
        Arc::new(Self {
            engine,
            fleet_id,
            name,
            retention,
            conn: Arc::new(Mutex::new(Conn {
                client,
                connecting: false,
            })),
            tailer: Mutex::new(None),
            limits: Mutex::new(None),
        })
    }

    fn append_on(
        &self,
        client: &mut postgres::Client,
        q: &sync::Prepared,
        inner: &Inner,
        stage: &mut dyn FnMut(u64) -> Result<Vec<Entry>, Error>,
    ) -> Result<Result<(), Error>, Error> {
        let engine = &self.engine;
        let un = |doing: &'static str| move |e| engine.unavailable(doing, e);
        let mut t = client.transaction().map_err(un("starting a write"))?;
        // Locks the head; the replica then equals it: the operation decides on what it
        // commits on.
        let head = match sync::catch_up(&mut t, q, true, engine, inner, self.fleet_id) {
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
        let s = StateRows::of(&entries);
        // The log row, the state, the head and the wake-up (delivered at commit; replicas
        // poll anyway) in one statement.
        t.query(
            &q.append,
            &[
                &p,
                &self.name,
                &journal::encode(&entries),
                &s.upsert_tables,
                &s.upsert_keys,
                &s.upsert_values,
                &s.delete_tables,
                &s.delete_keys,
            ],
        )
        .map_err(un("appending to the log"))?;
        if position.is_multiple_of(TRIM_EVERY) && position > self.retention {
            let keep_from = (position - self.retention) as i64;
            t.execute(
                "DELETE FROM orgstore_log WHERE position <= $1",
                &[&keep_from],
            )
            .map_err(un("trimming the log"))?;
            t.execute(
                "UPDATE orgstore_head SET trimmed_to = GREATEST(trimmed_to, $1) WHERE id = 1",
                &[&keep_from],
            )
            .map_err(un("trimming the log"))?;
        }
        t.commit().map_err(un("committing"))?;
        Ok(Ok(()))
    }
}

/// The rows of `orgstore_state` one entry changes, the last write of each record winning.
struct StateRows<'a> {
    upsert_tables: Vec<&'a str>,
    upsert_keys: Vec<&'a [u8]>,
    upsert_values: Vec<&'a [u8]>,
    delete_tables: Vec<&'a str>,
    delete_keys: Vec<&'a [u8]>,
}

impl<'a> StateRows<'a> {
    fn of(entries: &'a [Entry]) -> Self {
        let mut last: HashMap<(&str, &[u8]), Option<&[u8]>> = HashMap::with_capacity(entries.len());
        for e in entries {
            last.insert((e.table.as_str(), e.key.as_slice()), e.value.as_deref());
        }
        let mut s = Self {
            upsert_tables: Vec::new(),
            upsert_keys: Vec::new(),
            upsert_values: Vec::new(),
            delete_tables: Vec::new(),
            delete_keys: Vec::new(),
        };
        for ((table, key), value) in last {
            match value {
                Some(v) => {
                    s.upsert_tables.push(table);
                    s.upsert_keys.push(key);
                    s.upsert_values.push(v);
                }
                None => {
                    s.delete_tables.push(table);
                    s.delete_keys.push(key);
                }
            }
        }
        s
    }
}

impl PgLog {
    /// Whether the writer's connection is up.
    pub(crate) fn conn_ready(&self) -> bool {
        self.conn.lock().client.is_some()
    }

    /// Connects in the background (retrying until it works, or the store is closed);
    /// whether the thread started (if not, the next write tries again).
    fn reconnect(&self) -> bool {
        let (conn, engine) = (Arc::downgrade(&self.conn), self.engine.clone());
        let spawned = std::thread::Builder::new()
            .name("orgstore-fleet-connect".into())
            .spawn(move || {
                loop {
                    let connected = engine.connect().and_then(|mut c| {
                        let q = sync::Prepared::new(&mut c, &engine)?;
                        Ok((c, q))
                    });
                    let Some(conn) = conn.upgrade() else { return };
                    if let Ok(c) = connected {
                        let mut conn = conn.lock();
                        conn.client = Some(c);
                        conn.connecting = false;
                        return;
                    }
                    drop(conn);
                    std::thread::sleep(RETRY_AFTER);
                }
            });
        spawned.is_ok()
    }
}

impl Log for PgLog {
    fn append(
        &self,
        inner: &Inner,
        stage: &mut dyn FnMut(u64) -> Result<Vec<Entry>, Error>,
    ) -> Result<(), Error> {
        let mut conn = self.conn.lock();
        if conn.client.as_ref().is_none_or(|(c, _)| c.is_closed()) {
            // Writes fail at once while a background thread reconnects: a write never
            // holds the store's writer lock through a connection attempt.
            conn.client = None;
            if !conn.connecting {
                conn.connecting = self.reconnect();
            }
            return Err(self.engine.unavailable_now());
        }
        let Some((client, q)) = conn.client.as_mut() else {
            return Err(self.engine.unavailable_now());
        };
        match self.append_on(client, q, inner, stage) {
            Ok(out) => out,
            Err(engine_error) => {
                // The connection may be broken: the next write opens a new one.
                conn.client = None;
                Err(engine_error)
            }
        }
    }

    fn close(&self) {
        if let Some(t) = self.tailer.lock().take() {
            t.stop();
        }
        if let Some(l) = self.limits.lock().take() {
            // Unreturned chunks lapse and are reclaimed by the other replicas.
            let _ = l.shutdown();
        }
    }

    fn spent(&self, drained: &[(crate::snapshot::SpenderId, i64)]) {
        if let Some(l) = self.limits.lock().as_ref() {
            l.record_spend(drained.iter().map(|(s, m)| (s, *m)));
        }
    }

    fn fleet_spend(
        &self,
        spender: &crate::snapshot::SpenderId,
        now: i64,
    ) -> Option<Result<[i64; 4], Error>> {
        let limits = self.limits.lock();
        Some(limits.as_ref()?.fleet_spend(spender, now))
    }

    fn as_any(&self) -> &dyn std::any::Any {
        self
    }
}
