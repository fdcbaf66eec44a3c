//! Bringing a replica up to the log's head: the entries it lacks, in order, or, when it is
//! older than the log's retention (or new), a consistent copy of the whole state.

use std::io::Read;

use postgres::{GenericClient, Statement};

use super::engine::Engine;
use crate::error::Error;
use crate::store::Inner;
use crate::store::journal::Entry;

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
    /// `$1`: the replica's position -> head, trimmed position, hash of the entry at `$1`.
    head: Statement,
    /// The same, locking the head row (a writer).
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
        let head =
            format!("SELECT position, trimmed_to, {HASH_AT} FROM orgstore_head WHERE id = 1");
        Ok(Self {
            head: c.prepare(&head).map_err(un)?,
            head_locked: c.prepare(&format!("{head} FOR UPDATE")).map_err(un)?,
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
    let row = c
        .query_one(head_query, &[&(at.position as i64)])
        .map_err(|e| engine.unavailable("reading the log's head", e))?;
    let head = row.get::<_, i64>(0) as u64;
    let trimmed_to = row.get::<_, i64>(1) as u64;
    let logged = hash_of(row.get(2));
    let diverged =
        at.position > head || (at.position > trimmed_to && at.hash.is_some() && logged != at.hash);
    if at.position < trimmed_to || diverged {
        copy_state(c, engine, inner, fleet_id, head)?;
        return Ok((head, head));
    }
    let mut applied = at.position;
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

/// Replaces the replica's records with the fleet's state at `head` (the rows of
/// `orgstore_state`, read through `c` by one binary COPY). `c` must see exactly the state at
/// `head`: a REPEATABLE READ transaction that read `head`, or one that holds the head row.
pub(crate) fn copy_state(
    c: &mut impl GenericClient,
    engine: &Engine,
    inner: &Inner,
    fleet_id: u64,
    head: u64,
) -> Result<(), Error> {
    let hash: Option<Vec<u8>> = c
        .query_one(&format!("SELECT {HASH_AT}"), &[&(head as i64)])
        .map_err(|e| engine.unavailable("copying the fleet's state", e))?
        .get(0);
    let reader = c
        .copy_out(
            "COPY (SELECT tbl, k, v FROM orgstore_state ORDER BY tbl, k) TO STDOUT (FORMAT binary)",
        )
        .map_err(|e| engine.unavailable("copying the fleet's state", e))?;
    let mut rows = CopyRows::new(std::io::BufReader::with_capacity(1 << 20, reader));
    inner.bootstrap(fleet_id, head, hash_of(hash), &mut rows)?;
    match rows.failed.take() {
        Some(e) => Err(e),
        None => Ok(()),
    }
}

/// The rows of a binary COPY of `(tbl text, k bytea, v bytea)`.
struct CopyRows<R> {
    r: R,
    started: bool,
    done: bool,
    failed: Option<Error>,
}

impl<R: Read> CopyRows<R> {
    fn new(r: R) -> Self {
        Self {
            r,
            started: false,
            done: false,
            failed: None,
        }
    }

    fn bytes(&mut self, n: usize) -> Result<Vec<u8>, Error> {
        let mut b = vec![0; n];
        self.r
            .read_exact(&mut b)
            .map_err(|e| Error::storage("copying the fleet's state", e))?;
        Ok(b)
    }

    fn field(&mut self) -> Result<Vec<u8>, Error> {
        let len = self.bytes(4)?;
        let len = i32::from_be_bytes([len[0], len[1], len[2], len[3]]);
        if len < 0 {
            return Err(Error::corrupt("fleet state", "a row holds a null"));
        }
        self.bytes(len as usize)
    }

    fn row(&mut self) -> Result<Option<Entry>, Error> {
        if !self.started {
            // Signature (11 bytes), flags (4), header extension length (4) and extension.
            let head = self.bytes(19)?;
            if &head[..11] != b"PGCOPY\n\xff\r\n\0" {
                return Err(Error::corrupt("fleet state", "not a binary COPY"));
            }
            let ext = u32::from_be_bytes([head[15], head[16], head[17], head[18]]);
            self.bytes(ext as usize)?;
            self.started = true;
        }
        let n = self.bytes(2)?;
        match i16::from_be_bytes([n[0], n[1]]) {
            -1 => Ok(None),
            3 => {
                let table = String::from_utf8(self.field()?)
                    .map_err(|e| Error::corrupt("fleet state", e))?;
                let key = self.field()?;
                let value = self.field()?;
                Ok(Some(Entry {
                    table,
                    key,
                    value: Some(value),
                }))
            }
            _ => Err(Error::corrupt("fleet state", "a row has the wrong shape")),
        }
    }
}

impl<R: Read> Iterator for CopyRows<R> {
    type Item = Result<Entry, Error>;
    fn next(&mut self) -> Option<Self::Item> {
        if self.done {
            return None;
        }
        match self.row() {
            Ok(Some(e)) => Some(Ok(e)),
            Ok(None) => {
                self.done = true;
                None
            }
            Err(e) => {
                self.done = true;
                Some(Err(e))
            }
        }
    }
}
