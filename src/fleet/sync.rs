//! Bringing a replica up to the log's head: the entries it lacks, in order, or, when it is
//! older than the log's retention (or new), a consistent copy of the whole state.

use postgres::{GenericClient, Statement};

use super::copy;
use super::engine::Engine;
use crate::error::Error;
use crate::store::Inner;
use crate::store::bootstrap::Chunk;

/// How many log entries one replica transaction applies at most.
const BATCH: i64 = 512;

/// The log's head and the position up to which its entries were trimmed.
pub(crate) fn head(c: &mut impl GenericClient, engine: &Engine) -> Result<(u64, u64), Error> {
    let row = c
        .query_one(
            "SELECT position, trimmed_to FROM orgstore_head WHERE id = 1",
            &[],
        )
        .map_err(|e| engine.unavailable("reading the log's head", e))?;
    Ok((row.get::<_, i64>(0) as u64, row.get::<_, i64>(1) as u64))
}

/// The SQL form of `replica::entry_hash` of the entry at position `$1` (NULL when absent).
const HASH_AT: &str =
    "(SELECT substring(sha256(entry) from 1 for 8) FROM orgstore_log WHERE position = $1)";

/// The statements a replica runs on every write or poll, prepared once per connection (a
/// statement given as text costs a round trip more each time).
pub(crate) struct Prepared {
    /// `$1`: the replica's position, `$2`: at most this many entries -> one row per entry
    /// after `$1` up to the head (at least one row, its entry columns NULL when there is
    /// none): head, trimmed position, hash of the entry at `$1`, position, entry. The
    /// common catch-up in one round trip.
    head: Statement,
    /// The same, locking the head row (a writer). The entries may then stop short of the
    /// head the lock returns (a writer that committed while this one waited): the rest
    /// are fetched after.
    head_locked: Statement,
    /// `$1`: after this position, `$2`: at most this many -> (position, entry).
    fetch: Statement,
    /// Appends one entry: the log row, the state's upserts and deletions, the head, the
    /// wake-up, in one statement.
    pub(crate) append: Statement,
}

impl Prepared {
    /// Prepares the statements on `c`.
    pub(crate) fn new(c: &mut postgres::Client, engine: &Engine) -> Result<Self, Error> {
        let un = |e| engine.unavailable("preparing the fleet's statements", e);
        let head = format!(
            "SELECT h.position, h.trimmed_to, {HASH_AT}, l.position, l.entry \
             FROM orgstore_head h LEFT JOIN LATERAL \
                  (SELECT position, entry FROM orgstore_log \
                   WHERE position > $1 AND position <= h.position \
                   ORDER BY position LIMIT $2) l ON true \
             WHERE h.id = 1"
        );
        Ok(Self {
            head: c.prepare(&head).map_err(un)?,
            head_locked: c.prepare(&format!("{head} FOR UPDATE OF h")).map_err(un)?,
            fetch: c
                .prepare(
                    "SELECT position, entry FROM orgstore_log WHERE position > $1 \
                     ORDER BY position LIMIT $2",
                )
                .map_err(un)?,
            append: c
                .prepare(&format!(
                    "WITH l AS (INSERT INTO orgstore_log (position, replica, entry) \
                                VALUES ($1, $2, $3)), \
                          u AS (INSERT INTO orgstore_state (tbl, k, v) \
                                SELECT * FROM unnest($4::text[], $5::bytea[], $6::bytea[]) \
                                ON CONFLICT (tbl, k) DO UPDATE SET v = EXCLUDED.v), \
                          d AS (DELETE FROM orgstore_state s \
                                USING unnest($7::text[], $8::bytea[]) AS x(tbl, k) \
                                WHERE s.tbl = x.tbl AND s.k = x.k), \
                          h AS (UPDATE orgstore_head SET position = $1 WHERE id = 1) \
                     SELECT pg_notify('{}', $1::text)",
                    super::engine::CHANNEL
                ))
                .map_err(un)?,
        })
    }
}

fn hash_of(b: Option<Vec<u8>>) -> Option<u64> {
    let b = b?;
    let a: [u8; 8] = b.as_slice().try_into().ok()?;
    Some(u64::from_be_bytes(a))
}

/// Brings `inner` up to the log's head through `c`, whose view must hold the log up to its
/// head (the tailer's plain reads, or a writer's transaction that holds the head row).
/// Copies the whole state instead when the replica is new, older than the log's retention,
/// or no longer matches the log (it is ahead of the head, or the entry at its position is
/// not the one it applied: an engine that lost acknowledged commits). Called with the
/// writer lock held. Returns the head and the applied position.
/// A writer (`lock`) also locks the head row: no other writer of the fleet can append until
/// its transaction ends.
pub(crate) fn catch_up(
    c: &mut impl GenericClient,
    q: &Prepared,
    lock: bool,
    engine: &Engine,
    inner: &Inner,
    fleet_id: u64,
) -> Result<(u64, u64), Error> {
    let at = inner.applied()?;
    let head_query = if lock { &q.head_locked } else { &q.head };
    let rows = c
        .query(head_query, &[&(at.position as i64), &BATCH])
        .map_err(|e| engine.unavailable("reading the log's head", e))?;
    let row = rows.first().ok_or_else(|| {
        Error::corrupt(
            "fleet log",
            "the log's head row is missing; run `orgstore fleet init`",
        )
    })?;
    let head = row.get::<_, i64>(0) as u64;
    let trimmed_to = row.get::<_, i64>(1) as u64;
    let logged = hash_of(row.get(2));
    let diverged =
        at.position > head || (at.position > trimmed_to && at.hash.is_some() && logged != at.hash);
    if at.position < trimmed_to || diverged {
        let at = copy_state(c, engine, inner, fleet_id, head, lock)?;
        return Ok((at.max(head), at));
    }
    let first: Vec<(u64, Vec<u8>)> = rows
        .iter()
        .filter_map(|r| Some((r.get::<_, Option<i64>>(3)? as u64, r.get::<_, Vec<u8>>(4))))
        .collect();
    let mut applied = if first.is_empty() {
        at.position
    } else {
        inner.apply_log(&first)?
    };
    while applied < head {
        let rows = c
            .query(&q.fetch, &[&(applied as i64), &BATCH])
            .map_err(|e| engine.unavailable("reading the log", e))?;
        if rows.is_empty() {
            // Trimmed meanwhile: the next round copies the state.
            break;
        }
        let batch: Vec<(u64, Vec<u8>)> = rows
            .iter()
            .map(|r| (r.get::<_, i64>(0) as u64, r.get::<_, Vec<u8>>(1)))
            .collect();
        applied = inner.apply_log(&batch)?;
    }
    Ok((head, applied))
}

/// Replaces the replica's records with the fleet's state, read table by table by one
/// binary `COPY` each ([`super::copy`]) on a thread of its own while this one writes what
/// arrived, inside one transaction that sees one state: a writer's (`locked`: it holds the
/// head row, so nothing changes) or a REPEATABLE READ one that reads the head itself.
/// Returns the position the copy is at.
pub(crate) fn copy_state(
    c: &mut impl GenericClient,
    engine: &Engine,
    inner: &Inner,
    fleet_id: u64,
    head: u64,
    locked: bool,
) -> Result<u64, Error> {
    let un = |e| engine.unavailable("copying the fleet's state", e);
    let mut t = c.transaction().map_err(un)?;
    let head = if locked {
        head
    } else {
        t.batch_execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY")
            .map_err(un)?;
        let row = t
            .query_one("SELECT position FROM orgstore_head WHERE id = 1", &[])
            .map_err(un)?;
        row.get::<_, i64>(0) as u64
    };
    let hash: Option<Vec<u8>> = t
        .query_one(&format!("SELECT {HASH_AT}"), &[&(head as i64)])
        .map_err(un)?
        .get(0);
    // Compiling the scans' expressions costs more than it saves.
    t.batch_execute("SET LOCAL jit = off").map_err(un)?;
    let tables = crate::store::bootstrap::shipped_tables();
    let (send, recv) = std::sync::mpsc::sync_channel::<Result<Chunk, Error>>(4);
    let complete = std::sync::atomic::AtomicBool::new(false);
    let (t, written) = std::thread::scope(|s| {
        let fetch = s.spawn(|| {
            for table in &tables {
                match copy::copy_table(&mut t, table, engine, &mut |c| send.send(Ok(c)).is_ok()) {
                    Ok(true) => {}
                    Ok(false) => return t,
                    Err(e) => {
                        let _ = send.send(Err(e));
                        return t;
                    }
                }
            }
            complete.store(true, std::sync::atomic::Ordering::Release);
            drop(send);
            t
        });
        // Ends with an error, not silently, when the copy stopped before its end.
        let mut chunks = recv.iter().chain(std::iter::from_fn(|| {
            (!complete.swap(true, std::sync::atomic::Ordering::AcqRel)).then(|| {
                Err(Error::corrupt(
                    "fleet state",
                    "the copy of the state stopped early",
                ))
            })
        }));
        let written = inner.bootstrap(fleet_id, head, hash_of(hash), &mut chunks);
        drop(chunks);
        drop(recv);
        (fetch.join(), written)
    });
    let t = t.map_err(|_| Error::corrupt("fleet state", "the copy of the state stopped early"))?;
    written?;
    t.commit().map_err(un)?;
    Ok(head)
}
