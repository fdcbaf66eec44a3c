//! Same-process A/B of the gateway hot path: the build before the hardening round (base,
//! 598fec0) and this tree (main) linked into one binary, each with its own store of 1M keys
//! (the benches' synthetic store), checked in alternating batches of 1024 (4096 for keys
//! with limits) so that both see the same moments of this shared machine, paired as the
//! benches pair (`benches/support/warm.rs`): the order of the two sides swaps every
//! sample, and each couple of samples (one per order) gives one paired difference, so an
//! advantage of going first cancels. An A/A case (the same floor
//! lookup on both sides) shows the harness's zero.
//!
//! Printed per round and as the median over rounds: each side's median ns per check and
//! the median paired difference (main minus base; negative means main is faster).

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

#[path = "../../../src/cli/synthetic.rs"]
#[allow(dead_code)]
mod synthetic;
#[path = "../../../benches/support/warm.rs"]
#[allow(dead_code)]
mod warm;

use sha2::{Digest, Sha256};
use std::hint::black_box;
use std::net::IpAddr;
use std::time::{Duration, Instant};
use warm::time_ops;

/// The median (the upper one of an even count); sorts `v`.
fn median(v: &mut [f64]) -> f64 {
    v.sort_by(|a, b| a.partial_cmp(b).unwrap());
    v[v.len() / 2]
}

/// One case's figures in one round: median base ns/op, median main ns/op, median paired
/// main-base ns/op.
type Figures = (f64, f64, f64);

/// One round of a case: 20 batches of each side to warm up, then `samples` batches of
/// `chunk` operations each, paired by the benches' [`warm::paired`] (which returns its
/// first side first: main, then base).
fn ab(
    samples: usize,
    chunk: u64,
    mut base: impl FnMut(u64) -> Duration,
    mut main: impl FnMut(u64) -> Duration,
) -> Figures {
    for _ in 0..20 {
        base(chunk);
        main(chunk);
    }
    let (m, b, d) = warm::paired(samples, chunk as usize, || main(chunk), || base(chunk));
    (b, m, d)
}

/// [`ab`] of one operation per key, in batches of 1024: `base`'s keys and operation
/// against `main`'s.
fn batches(
    samples: usize,
    base: (&[String], impl Fn(&str)),
    main: (&[String], impl Fn(&str)),
) -> Figures {
    let (mut i, mut j) = (0usize, 0usize);
    ab(
        samples,
        1024,
        |c| time_ops(base.0, &mut i, c, &base.1),
        |c| time_ops(main.0, &mut j, c, &main.1),
    )
}

/// The first 16 keys with one character changed (the checksum then fails).
fn mistyped(keys: &[String]) -> Vec<String> {
    keys[..16]
        .iter()
        .map(|k| {
            let mut b = k.clone().into_bytes();
            b[20] = if b[20] == b'a' { b'b' } else { b'a' };
            String::from_utf8(b).unwrap()
        })
        .collect()
}

/// A count from the environment, or `default`.
fn env_or(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn main() {
    let n = env_or("KEYS", 1_000_000);
    let rounds = env_or("ROUNDS", 8);
    let samples = env_or("SAMPLES", 1500);
    eprintln!(
        "size of Result<Grant, Denial>: base {} main {}; Denial: base {} main {}",
        std::mem::size_of::<Result<orgstore_base::Grant<'static>, orgstore_base::Denial>>(),
        std::mem::size_of::<Result<orgstore::Grant<'static>, orgstore::Denial>>(),
        std::mem::size_of::<orgstore_base::Denial>(),
        std::mem::size_of::<orgstore::Denial>(),
    );
    let ip: IpAddr = "10.1.2.3".parse().unwrap();
    let model = "gpt-4o-mini";
    let t = Instant::now();
    // Which store is built first decides where each lands in memory; MAIN_FIRST=1 swaps.
    let main_first = std::env::var("MAIN_FIRST").is_ok_and(|v| v == "1");
    let (fb, fm) = if main_first {
        let fm = synthetic::build_store(n, false).unwrap();
        (
            orgstore_base::bench_support::build_store(n, false).unwrap(),
            fm,
        )
    } else {
        let fb = orgstore_base::bench_support::build_store(n, false).unwrap();
        (fb, synthetic::build_store(n, false).unwrap())
    };
    eprintln!("built both fixtures in {:?}", t.elapsed());
    let gb = fb.store.gateway();
    let gm = fm.store.gateway();
    for k in &fb.keys {
        gb.check(&orgstore_base::Request::new(k, model, ip))
            .unwrap();
    }
    for k in &fm.keys {
        gm.check(&orgstore::Request::new(k, model, ip)).unwrap();
    }
    let hot_b: Vec<String> = fb.keys.iter().take(1000).cloned().collect();
    let hot_m: Vec<String> = fm.keys.iter().take(1000).cloned().collect();
    let unk_b: Vec<String> = (0..16)
        .map(|_| orgstore_base::SecretKey::generate().expose().to_owned())
        .collect();
    let unk_m: Vec<String> = (0..16)
        .map(|_| orgstore::SecretKey::generate().expose().to_owned())
        .collect();
    let mis_b = mistyped(&hot_b);
    let mis_m = mistyped(&hot_m);
    // The denial cases must be denials on both sides.
    for k in unk_b.iter().chain(&mis_b) {
        assert!(
            gb.check(&orgstore_base::Request::new(k, model, ip))
                .is_err()
        );
    }
    for k in unk_m.iter().chain(&mis_m) {
        assert!(gm.check(&orgstore::Request::new(k, model, ip)).is_err());
    }
    let floor: hashbrown::HashMap<[u8; 32], u64> = fm
        .keys
        .iter()
        .enumerate()
        .map(|(i, k)| (<[u8; 32]>::from(Sha256::digest(k.as_bytes())), i as u64))
        .collect();
    let floor_lookup = |k: &str| {
        let d: [u8; 32] = Sha256::digest(k.as_bytes()).into();
        black_box(floor.get(&d));
    };
    let ck_b = |k: &str| {
        black_box(gb.check(&orgstore_base::Request::new(k, model, ip)).is_ok());
    };
    let ck_m = |k: &str| {
        black_box(gm.check(&orgstore::Request::new(k, model, ip)).is_ok());
    };
    let (mut gvb, mut gvm) = (Vec::with_capacity(4096), Vec::with_capacity(4096));
    let mut results: Vec<(&str, Vec<Figures>)> =
        ["floor_a_a", "warm", "unknown", "mistyped", "limited"]
            .iter()
            .map(|n| (*n, Vec::new()))
            .collect();
    for r in 0..rounds {
        results[0].1.push(batches(
            samples,
            (&hot_m, floor_lookup),
            (&hot_m, floor_lookup),
        ));
        results[1]
            .1
            .push(batches(samples, (&hot_b, ck_b), (&hot_m, ck_m)));
        results[2]
            .1
            .push(batches(samples, (&unk_b, ck_b), (&unk_m, ck_m)));
        results[3]
            .1
            .push(batches(samples, (&mis_b, ck_b), (&mis_m, ck_m)));
        let (mut i, mut j) = (0usize, 0usize);
        results[4].1.push(ab(
            samples / 4,
            4096,
            |c| {
                let t = time_ops(&fb.limited_keys, &mut i, c, |k| {
                    gvb.push(gb.check(&orgstore_base::Request::new(k, model, ip)));
                });
                assert!(gvb.iter().all(|g| g.is_ok()));
                gvb.clear();
                t
            },
            |c| {
                let t = time_ops(&fm.limited_keys, &mut j, c, |k| {
                    gvm.push(gm.check(&orgstore::Request::new(k, model, ip)));
                });
                assert!(gvm.iter().all(|g| g.is_ok()));
                gvm.clear();
                t
            },
        ));
        for (name, v) in &results {
            let (b, m, d) = v[r];
            println!("round {r} {name:10} base {b:7.2} main {m:7.2} paired main-base {d:+6.2} ns");
        }
    }
    println!("== median over {rounds} rounds of each round's medians");
    for (name, v) in &results {
        let mut b: Vec<f64> = v.iter().map(|x| x.0).collect();
        let mut m: Vec<f64> = v.iter().map(|x| x.1).collect();
        let mut d: Vec<f64> = v.iter().map(|x| x.2).collect();
        let (lo, hi) = {
            let mut s = d.clone();
            s.sort_by(|a, b| a.partial_cmp(b).unwrap());
            (s[0], s[s.len() - 1])
        };
        println!(
            "{name:10} base {:7.2} main {:7.2} paired main-base {:+6.2} ns (rounds {lo:+.2}..{hi:+.2})",
            median(&mut b),
            median(&mut m),
            median(&mut d)
        );
    }
}
