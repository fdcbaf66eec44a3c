//! The replica's tailer: a background thread that follows the fleet's log into the local
//! file and snapshot. It wakes on the engine's notification and polls anyway (engines that
//! speak PostgreSQL without LISTEN/NOTIFY work by polling alone), reconnects with backoff,
//! heartbeats the replica's row, and, with `max_staleness`, has a watchdog make checks
//! answer `unavailable` once the head has not been confirmed for that long.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicI64, Ordering};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use super::engine::{CHANNEL, Engine};
use super::sync;
use crate::error::Error;
use crate::model::Timestamp;
use crate::store::replica::Replica;

/// How long the backoff between reconnection attempts grows to.
const MAX_BACKOFF: Duration = Duration::from_secs(2);

/// How often the replica's row in `orgstore_replicas` is refreshed.
const HEARTBEAT: Duration = Duration::from_secs(1);

/// What the tailer knows of the log, shared with the watchdog and `fleet_status`.
#[derive(Default)]
pub(crate) struct Health {
    /// When the log's head was last read (unix micros).
    pub(crate) confirmed_at: AtomicI64,
    /// The head seen then.
    pub(crate) head: AtomicI64,
    /// Set while the watchdog has made checks answer `unavailable`.
    pub(crate) unavailable: AtomicBool,
}

/// The settings of a tailer.
pub(crate) struct TailConfig {
    pub(crate) engine: Engine,
    pub(crate) fleet_id: u64,
    pub(crate) name: String,
    pub(crate) poll: Duration,
    pub(crate) max_staleness: Option<Duration>,
}

/// A running tailer (and watchdog).
pub(crate) struct Tailer {
    stop: Arc<AtomicBool>,
    done: mpsc::Receiver<()>,
    thread: std::thread::ThreadId,
}

impl Tailer {
    /// Starts the threads for `replica`.
    pub(crate) fn start(
        replica: Replica,
        cfg: TailConfig,
        health: Arc<Health>,
    ) -> Result<Self, Error> {
        let stop = Arc::new(AtomicBool::new(false));
        let (tx, done) = mpsc::channel();
        if let Some(limit) = cfg.max_staleness {
            let (stop, health, replica) = (stop.clone(), health.clone(), replica.clone());
            std::thread::Builder::new()
                .name("orgstore-fleet-watchdog".into())
                .spawn(move || watchdog(&replica, &health, &stop, limit))
                .map_err(|e| Error::storage("starting the fleet watchdog", e))?;
        }
        let flag = stop.clone();
        let handle = std::thread::Builder::new()
            .name("orgstore-fleet-tail".into())
            .spawn(move || {
                run(&replica, &cfg, &health, &flag);
                let _ = tx.send(());
            })
            .map_err(|e| Error::storage("starting the fleet tailer", e))?;
        Ok(Self {
            stop,
            done,
            thread: handle.thread().id(),
        })
    }

    /// Stops the threads and waits a little for the tailer to let go of the store (so the
    /// file can be opened again at once), unless called from the tailer itself.
    pub(crate) fn stop(self) {
        self.stop.store(true, Ordering::Release);
        if std::thread::current().id() != self.thread {
            let _ = self.done.recv_timeout(Duration::from_secs(3));
        }
    }
}

fn now_micros() -> i64 {
    Timestamp::now().as_micros()
}

fn run(replica: &Replica, cfg: &TailConfig, health: &Health, stop: &AtomicBool) {
    let mut client: Option<(postgres::Client, sync::Prepared)> = None;
    let mut backoff = Duration::from_millis(50);
    let mut beat = Instant::now() - HEARTBEAT;
    while !stop.load(Ordering::Acquire) {
        if client.as_ref().is_none_or(|(c, _)| c.is_closed()) {
            client = cfg.engine.connect().ok().and_then(|mut c| {
                c.batch_execute(&format!("LISTEN {CHANNEL}")).ok()?;
                let q = sync::Prepared::new(&mut c, &cfg.engine).ok()?;
                Some((c, q))
            });
        }
        let Some((c, q)) = client.as_mut() else {
            sleep_unless(stop, backoff);
            backoff = (backoff * 2).min(MAX_BACKOFF);
            continue;
        };
        let Some(inner) = replica.upgrade() else {
            break;
        };
        let step = (|| -> Result<u64, Error> {
            let (head, applied) = {
                let _writer = inner.lock_writer();
                let (head, applied) =
                    sync::catch_up(c, q, false, &cfg.engine, &inner, cfg.fleet_id)?;
                if health.unavailable.load(Ordering::Acquire) && applied >= head {
                    inner.refresh_snapshot()?;
                    health.unavailable.store(false, Ordering::Release);
                }
                (head, applied)
            };
            health.head.store(head as i64, Ordering::Release);
            health.confirmed_at.store(now_micros(), Ordering::Release);
            Ok(applied)
        })();
        drop(inner);
        match step {
            Ok(applied) => {
                backoff = Duration::from_millis(50);
                if beat.elapsed() >= HEARTBEAT {
                    beat = Instant::now();
                    let _ = heartbeat(c, &cfg.name, applied);
                }
                // Woken by a notification, or after the poll interval.
                let _ = fallible_iterator::FallibleIterator::next(
                    &mut c.notifications().timeout_iter(cfg.poll),
                );
            }
            Err(_) => {
                client = None;
                sleep_unless(stop, backoff);
                backoff = (backoff * 2).min(MAX_BACKOFF);
            }
        }
    }
}

/// Records this replica's applied position in `orgstore_replicas`.
pub(crate) fn heartbeat(
    c: &mut impl postgres::GenericClient,
    name: &str,
    applied: u64,
) -> Result<(), postgres::Error> {
    c.execute(
        "INSERT INTO orgstore_replicas (name, applied) VALUES ($1, $2) \
         ON CONFLICT (name) DO UPDATE SET applied = EXCLUDED.applied, seen_at = now()",
        &[&name, &(applied as i64)],
    )
    .map(drop)
}

fn sleep_unless(stop: &AtomicBool, d: Duration) {
    let until = Instant::now() + d;
    while !stop.load(Ordering::Acquire) {
        let left = until.saturating_duration_since(Instant::now());
        if left.is_zero() {
            break;
        }
        std::thread::sleep(left.min(Duration::from_millis(50)));
    }
}

/// Makes checks answer `unavailable` once the head has not been confirmed for `limit`.
fn watchdog(replica: &Replica, health: &Health, stop: &AtomicBool, limit: Duration) {
    let tick = (limit / 4).clamp(Duration::from_millis(10), Duration::from_millis(250));
    let limit_micros = limit.as_micros() as i64;
    while !stop.load(Ordering::Acquire) {
        std::thread::sleep(tick);
        let since = now_micros() - health.confirmed_at.load(Ordering::Acquire);
        if since > limit_micros && !health.unavailable.load(Ordering::Acquire) {
            let Some(inner) = replica.upgrade() else {
                break;
            };
            // Marked first, flagged second: the tailer clears the mark only once it sees
            // the flag, so a mark is never left behind.
            inner.mark_unavailable();
            health.unavailable.store(true, Ordering::Release);
        }
    }
}
