//! The fleet (feature `fleet`): gateway replicas sharing one truth on PostgreSQL.
//!
//! Every replica keeps its redb file as a durable local replica of the fleet's records.
//! Admin writes from any replica are serialized fleet-wide through one ordered change log in
//! PostgreSQL ([`log`]); every replica follows the log into its file and snapshot
//! ([`tail`]), or copies the whole state when it is new or too far behind ([`sync`]). The
//! hot path never touches the network: a check reads the snapshot as in a single process.
//! See `docs/fleet.md` for the design and the failure modes.

// Budgets and rate limits held fleet-wide (leases on PostgreSQL; see docs/fleet-limits.md).
pub(crate) mod budget;
// The fleet's usage totals (`LimitsHandle::fleet_spent`) are read by the test hooks only.
#[cfg_attr(not(any(test, feature = "fuzzing")), allow(dead_code))]
pub(crate) mod lease;
pub(crate) mod lease_rate;
mod lease_sql;
pub(crate) mod rate;

mod copy;
mod engine;
mod log;
mod status;
mod sync;
mod tail;

pub use status::{BudgetLease, FleetStatus, RateShare, ReplicaStatus};

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use engine::{Engine, LOG_SCHEMA, SCHEMA_VERSION};
use tail::{Health, TailConfig, Tailer};

use crate::error::{Error, ErrorKind};
use crate::store::{Store, StoreBuilder};

/// How often a replica polls the log when no notification woke it.
pub const DEFAULT_POLL_INTERVAL: Duration = Duration::from_millis(100);

/// How many log entries the fleet keeps for replicas that fall behind; a replica further
/// behind (or a new one) copies the whole state instead.
pub const DEFAULT_RETENTION: u64 = 100_000;

/// Options for opening a store as one replica of a fleet: made by
/// [`StoreBuilder::fleet`], opened by [`FleetBuilder::open`].
///
/// ```no_run
/// use orgstore::StoreBuilder;
/// use std::time::Duration;
/// let fleet = StoreBuilder::new()
///     .fleet("postgres://orgstore:secret@db.internal/orgstore")
///     .poll_interval(Duration::from_millis(100))
///     .max_staleness(Duration::from_secs(30));
/// fleet.init()?; // once per fleet: creates the schema
/// let store = fleet.open("/var/lib/gateway/replica.redb")?;
/// println!("{:?}", store.fleet_status()?);
/// # Ok::<(), orgstore::Error>(())
/// ```
#[derive(Clone)]
pub struct FleetBuilder {
    store: StoreBuilder,
    url: String,
    poll: Duration,
    max_staleness: Option<Duration>,
    retention: u64,
    name: Option<String>,
}

/// Never shows the engine's password.
impl std::fmt::Debug for FleetBuilder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FleetBuilder")
            .field("engine", &engine::redact(&self.url))
            .field("poll", &self.poll)
            .field("max_staleness", &self.max_staleness)
            .field("retention", &self.retention)
            .field("name", &self.name)
            .finish()
    }
}

impl StoreBuilder {
    /// Makes the store one replica of the fleet whose truth is the PostgreSQL database at
    /// `url` (`postgres://USER:PASSWORD@HOST:PORT/DATABASE`, PostgreSQL 15 or newer). The
    /// file given to [`FleetBuilder::open`] becomes this process's local replica. Feature
    /// `fleet`.
    ///
    /// ```no_run
    /// let store = orgstore::StoreBuilder::new()
    ///     .fleet("postgres://orgstore@localhost/orgstore")
    ///     .open("replica.redb")?;
    /// # Ok::<(), orgstore::Error>(())
    /// ```
    pub fn fleet(self, url: impl Into<String>) -> FleetBuilder {
        FleetBuilder {
            store: self,
            url: url.into(),
            poll: DEFAULT_POLL_INTERVAL,
            max_staleness: None,
            retention: DEFAULT_RETENTION,
            name: None,
        }
    }
}

impl FleetBuilder {
    /// How often the replica reads the log's head when no notification woke it (default
    /// [`DEFAULT_POLL_INTERVAL`]). Notifications make propagation faster; polling alone
    /// is enough (engines without LISTEN/NOTIFY).
    ///
    /// ```
    /// let b = orgstore::StoreBuilder::new().fleet("postgres://localhost/orgstore")
    ///     .poll_interval(std::time::Duration::from_millis(250));
    /// # drop(b);
    /// ```
    pub fn poll_interval(mut self, every: Duration) -> Self {
        self.poll = every.max(Duration::from_millis(1));
        self
    }

    /// Fail closed after `limit` without news: once the replica has not confirmed the log's
    /// head for that long (the engine is unreachable or the replica partitioned), every
    /// check answers the denial `unavailable`, until the replica has caught up again. Off by
    /// default: a replica cut off keeps answering from its last state, so a key revoked
    /// meanwhile elsewhere keeps working here. With it, revocations are honoured within
    /// `limit` (plus a quarter of it, the watchdog's tick), at the price of refusing all
    /// traffic during an engine outage longer than `limit`.
    ///
    /// ```
    /// let b = orgstore::StoreBuilder::new().fleet("postgres://localhost/orgstore")
    ///     .max_staleness(std::time::Duration::from_secs(30));
    /// # drop(b);
    /// ```
    pub fn max_staleness(mut self, limit: Duration) -> Self {
        self.max_staleness = Some(limit);
        self
    }

    /// How many log entries the fleet keeps (default [`DEFAULT_RETENTION`]); a replica
    /// further behind copies the whole state when it comes back. Writers trim older ones.
    ///
    /// ```
    /// let b = orgstore::StoreBuilder::new().fleet("postgres://localhost/orgstore")
    ///     .retention(1_000_000);
    /// # drop(b);
    /// ```
    pub fn retention(mut self, entries: u64) -> Self {
        self.retention = entries.max(1);
        self
    }

    /// The name this replica reports in [`FleetStatus`] (default: host name and the
    /// file's path).
    ///
    /// ```
    /// let b = orgstore::StoreBuilder::new().fleet("postgres://localhost/orgstore")
    ///     .replica_name("gateway-eu-1");
    /// # drop(b);
    /// ```
    pub fn replica_name(mut self, name: impl Into<String>) -> Self {
        self.name = Some(name.into());
        self
    }

    /// Creates the fleet's schema in the engine, or brings an older one up to date; an
    /// existing fleet keeps its records. Returns the fleet's status.
    ///
    /// ```no_run
    /// orgstore::StoreBuilder::new().fleet("postgres://localhost/orgstore").init()?;
    /// # Ok::<(), orgstore::Error>(())
    /// ```
    pub fn init(&self) -> Result<FleetStatus, Error> {
        let engine = Engine::new(&self.url)?;
        let mut c = engine.connect()?;
        create_schema(&mut c, &engine)?;
        status::read(&mut c, &engine)
    }

    /// Creates the fleet (as [`FleetBuilder::init`]) from the single-node store file at
    /// `path`: every org, config version, member, key (same ids, same secrets: nothing is
    /// reissued), audit entry and policy version becomes the fleet's, and the file becomes
    /// the fleet's first replica (keep its key file `<path>.key`: every replica needs a
    /// copy). Refused when the fleet already holds records.
    ///
    /// ```no_run
    /// orgstore::StoreBuilder::new()
    ///     .fleet("postgres://localhost/orgstore")
    ///     .init_from("orgstore.redb")?;
    /// # Ok::<(), orgstore::Error>(())
    /// ```
    pub fn init_from(&self, path: impl AsRef<Path>) -> Result<FleetStatus, Error> {
        let engine = Engine::new(&self.url)?;
        let mut c = engine.connect()?;
        create_schema(&mut c, &engine)?;
        let fleet = read_fleet(&mut c, &engine)?;
        let store = self.store.clone().must_exist().open(path.as_ref())?;
        let inner = store.inner();
        if inner.applied()?.fleet.is_some() {
            return Err(Error::conflict(
                "from",
                format!(
                    "`{}` is already a fleet replica; a fleet is created from a single-node file",
                    path.as_ref().display()
                ),
            ));
        }
        let _writer = inner.lock_writer();
        status::seed(
            &mut c,
            &engine,
            &inner.replicated_rows()?,
            &inner.key_fingerprint(),
        )?;
        inner.mark_replica(fleet.id, 1)?;
        drop(_writer);
        drop(store);
        status::read(&mut c, &engine)
    }

    /// The fleet's status: its head and every replica's applied position and lag.
    ///
    /// ```no_run
    /// let s = orgstore::StoreBuilder::new().fleet("postgres://localhost/orgstore").status()?;
    /// for r in &s.replicas {
    ///     println!("{} at {} ({} behind)", r.name, r.applied, r.lag);
    /// }
    /// # Ok::<(), orgstore::Error>(())
    /// ```
    pub fn status(&self) -> Result<FleetStatus, Error> {
        let engine = Engine::new(&self.url)?;
        let mut c = engine.connect()?;
        status::read(&mut c, &engine)
    }

    /// Opens (creating if absent) the local replica at `path`: checks that its key file
    /// `<path>.key` is the fleet's (copy it from any replica for a new one), copies the
    /// fleet's state into a new or far-behind file, applies the entries it lacks, and
    /// starts following the log. From then on every admin operation on the returned store
    /// is committed fleet-wide first (with the engine unreachable it fails with
    /// `Unavailable`, changing nothing) and is visible to this store's gateway when it
    /// returns; changes made elsewhere arrive within milliseconds.
    ///
    /// ```no_run
    /// use orgstore::{Actor, Email, OrgId, StoreBuilder};
    /// let store = StoreBuilder::new().fleet("postgres://localhost/orgstore").open("r1.redb")?;
    /// let acme = OrgId::parse("acme")?;
    /// store.orgs().create(&Actor::Operator, &acme, "Acme", &Email::parse("o@acme.io")?)?;
    /// # Ok::<(), orgstore::Error>(())
    /// ```
    pub fn open(&self, path: impl AsRef<Path>) -> Result<Store, Error> {
        let path = path.as_ref();
        let engine = Engine::new(&self.url)?;
        let mut c = match engine.connect() {
            Ok(c) => c,
            // Static stability: a replica restarted while the engine is unreachable serves
            // from its file and catches up once the engine is back.
            Err(e) if e.kind() == ErrorKind::Unavailable => return self.open_offline(path, e),
            Err(e) => return Err(e),
        };
        let fleet = read_fleet(&mut c, &engine)?;
        let key_file = crate::store::secrets::key_path(path);
        let local_key = crate::store::secrets::key_file_fingerprint(&key_file)?;
        match (&fleet.key, &local_key) {
            (Some(f), Some(l)) if f != l => return Err(wrong_key(&key_file)),
            (Some(_), None) => return Err(missing_key(&key_file)),
            _ => {}
        }
        let (builder, watch_dir) = self.store.clone().take_watch_dir();
        let store = builder.open(path)?;
        let inner = store.inner();
        match inner.applied()?.fleet {
            Some(id) if id != fleet.id => {
                return Err(Error::conflict(
                    "db",
                    format!(
                        "`{}` is a replica of another fleet; give this fleet a fresh file",
                        path.display()
                    ),
                ));
            }
            None if !inner.has_no_orgs()? => {
                return Err(Error::conflict(
                    "db",
                    format!(
                        "`{}` holds a single-node store, not a replica of this fleet; create the \
                         fleet from it (`orgstore fleet init --from FILE`) or give a fresh file",
                        path.display()
                    ),
                ));
            }
            None => {
                // A fresh file: this fleet's replica from now on, at position 0.
                let _writer = inner.lock_writer();
                inner.mark_replica(fleet.id, 0)?;
            }
            Some(_) => {}
        }
        if fleet.key.is_none() {
            status::claim_key(&mut c, &engine, &inner.key_fingerprint())?;
            if read_fleet(&mut c, &engine)?.key.as_deref() != Some(&inner.key_fingerprint()) {
                return Err(wrong_key(&key_file));
            }
        }
        let health = Arc::new(Health::default());
        let prepared = sync::Prepared::new(&mut c, &engine)?;
        let applied = {
            let _writer = inner.lock_writer();
            let (head, applied) =
                sync::catch_up(&mut c, &prepared, false, &engine, inner, fleet.id)?;
            health
                .head
                .store(head as i64, std::sync::atomic::Ordering::Release);
            applied
        };
        health.confirmed_at.store(
            crate::model::Timestamp::now().as_micros(),
            std::sync::atomic::Ordering::Release,
        );
        let name = self.name.clone().unwrap_or_else(|| default_name(path));
        tail::heartbeat(&mut c, &name, applied)
            .map_err(|e| engine.unavailable("registering", e))?;
        self.start(store, engine, fleet.id, name, Some((c, prepared)), health)?
            .finish(watch_dir)
    }

    /// [`FleetBuilder::open`] with the engine unreachable: an existing replica file is opened
    /// as it is (its key was checked when it joined), its writes fail with `Unavailable`
    /// until the engine is back, and its tailer catches it up then. Anything else fails with
    /// `unreachable`.
    fn open_offline(&self, path: &Path, unreachable: Error) -> Result<Store, Error> {
        if !path.try_exists().unwrap_or(false) {
            return Err(unreachable);
        }
        let (builder, watch_dir) = self.store.clone().take_watch_dir();
        let store = builder.open(path)?;
        let Some(fleet_id) = store.inner().applied()?.fleet else {
            return Err(unreachable);
        };
        let engine = Engine::new(&self.url)?;
        let name = self.name.clone().unwrap_or_else(|| default_name(path));
        // Never confirmed: with `max_staleness`, checks fail closed until the engine is back.
        let health = Arc::new(Health::default());
        self.start(store, engine, fleet_id, name, None, health)?
            .finish(watch_dir)
    }

    /// Attaches the log to `store` and starts its tailer.
    fn start(
        &self,
        store: Store,
        engine: Engine,
        fleet_id: u64,
        name: String,
        client: Option<(postgres::Client, sync::Prepared)>,
        health: Arc<Health>,
    ) -> Result<Started, Error> {
        let log = log::PgLog::new(
            engine.clone(),
            fleet_id,
            name.clone(),
            self.retention,
            client,
        );
        store.attach_log(log.clone())?;
        let tailer = Tailer::start(
            store.replica(),
            TailConfig {
                engine,
                fleet_id,
                name,
                poll: self.poll,
                max_staleness: self.max_staleness,
            },
            health,
        )?;
        *log.tailer.lock() = Some(tailer);
        // Budgets and rate limits fleet-wide. Without the engine (a replica opened while it
        // is unreachable) they are not started: the replica then enforces them locally.
        if log.conn_ready() {
            let limits = lease::start_limits(
                &self.url,
                &log.name,
                store.snapshot_cell(),
                lease::LimitsOptions::default(),
            )?;
            *log.limits.lock() = Some(limits);
        }
        Ok(Started(store))
    }
}

/// A replica whose tailer runs, before its policy directories are applied.
struct Started(Store);

impl Started {
    /// Applies or watches the builder's policy directories through the fleet, as a single
    /// store does at open.
    fn finish(self, watch_dir: Option<PathBuf>) -> Result<Store, Error> {
        let store = self.0;
        if let Some(dir) = watch_dir {
            store.watch_policies(dir);
        }
        Ok(store)
    }
}

impl Store {
    /// The fleet's status as this replica's engine reports it; `Invalid` for a store that
    /// is not a fleet replica.
    ///
    /// ```no_run
    /// let store = orgstore::StoreBuilder::new().fleet("postgres://localhost/orgstore").open("r.redb")?;
    /// let status = store.fleet_status()?;
    /// assert!(status.replicas.iter().any(|r| r.lag == 0));
    /// # Ok::<(), orgstore::Error>(())
    /// ```
    pub fn fleet_status(&self) -> Result<FleetStatus, Error> {
        let log = self
            .log()
            .and_then(|l| l.as_any().downcast_ref::<log::PgLog>())
            .ok_or_else(|| Error::invalid("fleet", "this store is not a fleet replica"))?;
        let mut c = log.engine.connect()?;
        status::read(&mut c, &log.engine)
    }

    /// The log position this replica has applied (0 for a store that is not a replica).
    ///
    /// ```no_run
    /// let store = orgstore::StoreBuilder::new().fleet("postgres://localhost/orgstore").open("r.redb")?;
    /// println!("at {}", store.fleet_position()?);
    /// # Ok::<(), orgstore::Error>(())
    /// ```
    pub fn fleet_position(&self) -> Result<u64, Error> {
        Ok(self.inner().applied()?.position)
    }
}

/// The fleet's identity row.
struct FleetRow {
    id: u64,
    key: Option<String>,
}

fn read_fleet(c: &mut postgres::Client, engine: &Engine) -> Result<FleetRow, Error> {
    let no_schema = || {
        Error::not_found(
            "fleet",
            format!(
                "the database at {} holds no orgstore fleet; create it with `orgstore --fleet URL \
                 fleet init` (or FleetBuilder::init)",
                engine.shown
            ),
        )
    };
    let exists: bool = c
        .query_one("SELECT to_regclass('orgstore_fleet') IS NOT NULL", &[])
        .map_err(|e| engine.unavailable("reading the fleet", e))?
        .get(0);
    if !exists {
        return Err(no_schema());
    }
    let row = c
        .query_opt(
            "SELECT fleet_id, schema_version, key_fingerprint FROM orgstore_fleet WHERE id = 1",
            &[],
        )
        .map_err(|e| engine.unavailable("reading the fleet", e))?
        .ok_or_else(no_schema)?;
    let version: i32 = row.get(1);
    if version > SCHEMA_VERSION {
        return Err(Error::new(
            ErrorKind::TooNew,
            "fleet",
            format!(
                "the fleet at {} uses schema version {version}, newer than this orgstore's \
                 {SCHEMA_VERSION}; upgrade orgstore",
                engine.shown
            ),
        ));
    }
    Ok(FleetRow {
        id: row.get::<_, i64>(0) as u64,
        key: row.get(2),
    })
}

/// Creates (or completes) the schema, the fleet's identity and the head row.
fn create_schema(c: &mut postgres::Client, engine: &Engine) -> Result<(), Error> {
    let un = |e| engine.unavailable("creating the fleet's schema", e);
    c.batch_execute(LOG_SCHEMA).map_err(un)?;
    let id = (rand::random::<u64>() >> 1) as i64;
    c.execute(
        "INSERT INTO orgstore_fleet (id, fleet_id, schema_version) VALUES (1, $1, $2) \
         ON CONFLICT (id) DO NOTHING",
        &[&id, &SCHEMA_VERSION],
    )
    .map_err(un)?;
    c.execute(
        "INSERT INTO orgstore_head (id, position) VALUES (1, 0) ON CONFLICT (id) DO NOTHING",
        &[],
    )
    .map_err(un)?;
    read_fleet(c, engine).map(drop)
}

fn default_name(path: &Path) -> String {
    let host = std::fs::read_to_string("/etc/hostname")
        .ok()
        .map(|h| h.trim().to_owned())
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "localhost".to_owned());
    let full: PathBuf = std::fs::canonicalize(path).unwrap_or_else(|_| path.to_owned());
    format!("{host}:{}", full.display())
}

#[cold]
fn wrong_key(key_file: &Path) -> Error {
    Error::invalid(
        "key",
        format!(
            "`{}` is not the fleet's store key: every replica must hold the same key file (it \
             seals provider secrets); copy the `.key` file of any replica of this fleet there",
            key_file.display()
        ),
    )
}

#[cold]
fn missing_key(key_file: &Path) -> Error {
    Error::invalid(
        "key",
        format!(
            "there is no key file `{}`: every replica of the fleet must hold the fleet's store \
             key (it seals provider secrets); copy the `.key` file of any replica there (mode \
             0600), then open again",
            key_file.display()
        ),
    )
}
