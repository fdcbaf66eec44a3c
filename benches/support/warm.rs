//! The warm gateway check timed in batches: what the paired cases compare.

use std::hint::black_box;
use std::net::{IpAddr, Ipv4Addr};
use std::time::{Duration, Instant};

use orgstore::{Request, Store};

/// Times `batch` warm checks on `store` (model `gpt-4o-mini` from 10.0.0.1), cycling
/// through `keys` from the one after `*j`.
pub fn checks(store: &Store, keys: &[String], j: &mut usize, batch: usize) -> Duration {
    let gw = store.gateway();
    let ip = IpAddr::V4(Ipv4Addr::new(10, 0, 0, 1));
    let t = Instant::now();
    for _ in 0..batch {
        *j = (*j + 1) % keys.len();
        black_box(
            gw.check(&Request::new(black_box(&keys[*j]), "gpt-4o-mini", ip))
                .is_ok(),
        );
    }
    t.elapsed()
}

/// Median per-check ns of `a` and of `b` (each times one batch of `batch` checks) over
/// `rounds` rounds of one batch each, the order alternating so neither side always runs
/// first, and the median of the per-round differences `a - b`: the paired figure, robust
/// to the load of the machine drifting over the run.
pub fn paired(
    rounds: usize,
    batch: usize,
    mut a: impl FnMut() -> Duration,
    mut b: impl FnMut() -> Duration,
) -> (f64, f64, f64) {
    let (mut ta, mut tb, mut diff) = (Vec::new(), Vec::new(), Vec::new());
    for round in 0..rounds {
        let (da, db) = if round % 2 == 0 {
            let da = a();
            (da, b())
        } else {
            let db = b();
            (a(), db)
        };
        let per = |d: Duration| d.as_nanos() as f64 / batch as f64;
        ta.push(per(da));
        tb.push(per(db));
        diff.push(per(da) - per(db));
    }
    let median = |v: &mut Vec<f64>| {
        v.sort_by(f64::total_cmp);
        v[v.len() / 2]
    };
    (median(&mut ta), median(&mut tb), median(&mut diff))
}
