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

/// Runs `op` on the next `n` keys (cycling, from the one after `*j`) and returns the time
/// taken. Out of line: two sides of a pair that time the same `op` then run the same
/// machine code, wherever they are called from (inlined at each call site, an A/A pair
/// measured 0.4 ns apart from the loops' placement alone).
#[inline(never)]
pub fn time_ops(keys: &[String], j: &mut usize, n: u64, mut op: impl FnMut(&str)) -> Duration {
    let start = Instant::now();
    for _ in 0..n {
        *j = (*j + 1) % keys.len();
        op(black_box(&keys[*j]));
    }
    start.elapsed()
}

/// Median per-check ns of `a` and of `b` (each times one batch of `batch` checks) over
/// `rounds` rounds of one batch each, and the median paired difference `a - b`: the
/// paired figure, robust to the load of the machine drifting over the run. The order
/// alternates, and each couple of rounds (one per order) gives one difference, their mean:
/// when going first or second costs something, the per-round differences fall in two
/// clusters and their median jumps between them, while the couple's mean cancels it.
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
        if round % 2 == 1 {
            let n = ta.len();
            diff.push((ta[n - 1] - tb[n - 1] + ta[n - 2] - tb[n - 2]) / 2.0);
        }
    }
    if diff.is_empty() {
        diff.push(ta[0] - tb[0]);
    }
    let median = |v: &mut Vec<f64>| {
        v.sort_by(f64::total_cmp);
        v[v.len() / 2]
    };
    (median(&mut ta), median(&mut tb), median(&mut diff))
}
