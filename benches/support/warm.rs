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
