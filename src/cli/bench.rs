//! `orgstore bench [--keys N] [--seconds S]`: the gateway check measured on this machine.
//!
//! Builds a synthetic store file (N keys in 100 orgs plus 1,000 keys with limits), reopens
//! it, warms up, then calls `check` on random keys for S seconds on one thread and S seconds
//! on two threads. Each batch of [`BATCH`] calls is timed with one pair of `Instant`s, so the
//! timer's own cost (tens of nanoseconds) does not swamp a call of about a hundred: the
//! latencies reported are batch time / [`BATCH`], i.e. per-call averages over a batch.

use std::hint::black_box;
use std::net::{IpAddr, Ipv4Addr};
use std::time::{Duration, Instant};

use clap::Args;
use orgstore::{Gateway, Request};
use rand::Rng;
use serde_json::{Value, json};

use super::output::{Out, Table};
use super::synthetic::{Fixture, build_store};
use super::{CliError, Ctx};

/// Calls timed together.
const BATCH: usize = 64;
/// The model every synthetic org allows.
const MODEL: &str = "gpt-4o-mini";
const CLIENT: IpAddr = IpAddr::V4(Ipv4Addr::new(10, 0, 0, 1));
/// Largest store the command builds.
const MAX_KEYS: usize = 10_000_000;

#[derive(Args)]
pub(crate) struct BenchArgs {
    /// Keys in the synthetic store (plus 1,000 keys with limits).
    #[arg(long, value_name = "N", default_value_t = 100_000)]
    keys: usize,
    /// Seconds of measurement per thread count.
    #[arg(long, value_name = "S", default_value_t = 3.0)]
    seconds: f64,
}

/// One measured run.
struct Run {
    threads: usize,
    checks: u64,
    denied: u64,
    elapsed: Duration,
    /// Per-call nanoseconds of each batch, sorted.
    per_call_ns: Vec<f64>,
}

impl Run {
    fn throughput(&self) -> f64 {
        self.checks as f64 / self.elapsed.as_secs_f64().max(f64::MIN_POSITIVE)
    }

    fn percentile(&self, p: f64) -> f64 {
        if self.per_call_ns.is_empty() {
            return 0.0;
        }
        let last = self.per_call_ns.len() - 1;
        let ix = ((last as f64) * p).round() as usize;
        self.per_call_ns[ix.min(last)]
    }
}

pub(crate) fn run(ctx: &Ctx, args: BenchArgs, out: &mut Out) -> Result<(), CliError> {
    if !(1..=MAX_KEYS).contains(&args.keys) {
        return Err(CliError::invalid(
            "--keys",
            format!("give a number of keys from 1 to {MAX_KEYS}"),
        ));
    }
    if !(args.seconds.is_finite() && args.seconds > 0.0 && args.seconds <= 3600.0) {
        return Err(CliError::invalid(
            "--seconds",
            "give a duration in seconds above 0 and at most 3600, e.g. 3 or 0.5",
        ));
    }
    let duration = Duration::from_secs_f64(args.seconds);

    let started = Instant::now();
    let fixture = build_store(args.keys, false)?;
    let build_time = started.elapsed();
    let gateway = fixture.store.gateway();
    let first = fixture.keys.first().map(String::as_str).unwrap_or_default();
    if let Err(d) = gateway.check(&Request::new(first, MODEL, CLIENT)) {
        return Err(CliError::invalid(
            "bench",
            format!(
                "the synthetic store refused its own key ({}: {d})",
                d.code()
            ),
        ));
    }
    let order = random_order(fixture.keys.len());

    // Warm-up: every key once (fills the decision memo), then a short timed loop.
    for k in &fixture.keys {
        let _ = black_box(gateway.check(&Request::new(k, MODEL, CLIENT)));
    }
    measure(
        gateway,
        &fixture,
        &order,
        1,
        duration.min(Duration::from_millis(300)),
    );

    let one = measure(gateway, &fixture, &order, 1, duration);
    let two = measure(gateway, &fixture, &order, 2, duration);
    let runs = [one, two];
    let speedup = runs[1].throughput() / runs[0].throughput().max(f64::MIN_POSITIVE);

    if ctx.json {
        return out.json(&json!({
            "keys": fixture.keys.len(),
            "limited_keys": fixture.limited_keys.len(),
            "model": MODEL,
            "build_ms": millis(build_time),
            "reopen_ms": millis(fixture.reopen_time),
            "snapshot_bytes_per_key": fixture.bytes_per_key,
            "batch": BATCH,
            "seconds_per_run": args.seconds,
            "latency_note": format!("per-call figures are batch time / {BATCH}"),
            "runs": runs.iter().map(run_json).collect::<Vec<Value>>(),
            "two_thread_speedup": round2(speedup),
            "debug_build": cfg!(debug_assertions),
        }));
    }
    out.line(format!(
        "orgstore bench: {} keys in 100 orgs (+{} keys with limits), store file built in {:.2} s",
        fixture.keys.len(),
        fixture.limited_keys.len(),
        build_time.as_secs_f64()
    ));
    out.line(format!(
        "reopen until the snapshot is ready: {:.1} ms; snapshot memory: {} bytes/key",
        millis(fixture.reopen_time),
        fixture.bytes_per_key
    ));
    out.line(format!(
        "check(random key, {MODEL}) for {} s per row; latency per call = time of a batch of {BATCH} calls / {BATCH}",
        args.seconds
    ));
    out.line("");
    let mut t = Table::new(&["THREADS", "CHECKS", "CHECKS/S", "P50", "P99"]);
    for r in &runs {
        t.row(vec![
            r.threads.to_string(),
            r.checks.to_string(),
            format!("{:.0}", r.throughput()),
            format!("{:.0} ns", r.percentile(0.50)),
            format!("{:.0} ns", r.percentile(0.99)),
        ]);
    }
    out.table(&t);
    out.line("");
    out.line(format!("two threads / one thread: {speedup:.2}x"));
    let denied: u64 = runs.iter().map(|r| r.denied).sum();
    if denied > 0 {
        out.note(format!(
            "warning: {denied} checks were denied during the runs"
        ));
    }
    if cfg!(debug_assertions) {
        out.note(
            "note: this is a debug build; run `cargo run --release -- bench` for real figures",
        );
    }
    Ok(())
}

/// A random sequence of key indexes, walked cyclically (its length a power of two), so the
/// timed loop does no random-number generation.
fn random_order(n: usize) -> Vec<u32> {
    let len = n.clamp(1 << 16, 1 << 22).next_power_of_two();
    let top = u32::try_from(n.max(1)).unwrap_or(u32::MAX);
    let mut rng = rand::rng();
    (0..len).map(|_| rng.random_range(0..top)).collect()
}

fn measure(gw: &Gateway, fx: &Fixture, order: &[u32], threads: usize, dur: Duration) -> Run {
    let started = Instant::now();
    let parts: Vec<(u64, u64, Vec<f64>)> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..threads)
            .map(|t| {
                let gw = gw.clone();
                let offset = t * order.len() / threads.max(1);
                s.spawn(move || worker(&gw, &fx.keys, order, offset, dur))
            })
            .collect();
        handles.into_iter().filter_map(|h| h.join().ok()).collect()
    });
    let elapsed = started.elapsed();
    let mut run = Run {
        threads,
        checks: 0,
        denied: 0,
        elapsed,
        per_call_ns: Vec::new(),
    };
    for (checks, denied, samples) in parts {
        run.checks += checks;
        run.denied += denied;
        run.per_call_ns.extend(samples);
    }
    run.per_call_ns.sort_by(f64::total_cmp);
    run
}

/// Checks random keys in timed batches until `dur` has passed; returns (checks, denied,
/// per-call nanoseconds of each batch).
fn worker(
    gw: &Gateway,
    keys: &[String],
    order: &[u32],
    offset: usize,
    dur: Duration,
) -> (u64, u64, Vec<f64>) {
    let mask = order.len().saturating_sub(1);
    let mut i = offset;
    let mut checks = 0u64;
    let mut denied = 0u64;
    let mut samples = Vec::with_capacity(1 << 16);
    let mut start = Instant::now();
    let deadline = start + dur;
    while start < deadline {
        for _ in 0..BATCH {
            let ix = order.get(i & mask).map_or(0, |&x| x as usize);
            i = i.wrapping_add(1);
            let key = keys.get(ix).map(String::as_str).unwrap_or_default();
            if black_box(gw.check(&Request::new(key, MODEL, CLIENT))).is_err() {
                denied += 1;
            }
        }
        // One clock read per batch: the end of this batch starts the next.
        let end = Instant::now();
        samples.push((end - start).as_nanos() as f64 / BATCH as f64);
        start = end;
        checks += BATCH as u64;
    }
    (checks, denied, samples)
}

fn run_json(r: &Run) -> Value {
    json!({
        "threads": r.threads,
        "checks": r.checks,
        "denied": r.denied,
        "seconds": round2(r.elapsed.as_secs_f64()),
        "checks_per_sec": r.throughput().round() as u64,
        "p50_ns": r.percentile(0.50).round() as u64,
        "p99_ns": r.percentile(0.99).round() as u64,
    })
}

fn millis(d: Duration) -> f64 {
    round2(d.as_secs_f64() * 1000.0)
}

fn round2(x: f64) -> f64 {
    (x * 100.0).round() / 100.0
}
