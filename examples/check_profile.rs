//! One gateway check case in a loop, for profilers that count instructions
//! (`valgrind --tool=callgrind`): the counts are the same on a busy machine and a quiet one,
//! so two builds can be compared while other work runs.
//!
//! ```text
//! cargo build --release --example check_profile
//! valgrind --tool=callgrind --toggle-collect='*check_profile::run*' \
//!     target/release/examples/check_profile warm 100000
//! ```
//!
//! The total count divided by the number of checks is the cost of one check: only `run` is
//! counted, and the memo's warm-up (one Cedar evaluation per key, whose count moves with
//! the hash seeds of each run) happens before it, in `warm_up`. Cases: `warm` (a
//! key of an org with an allow-list), `limited` (key and org rpm/tpm limits and budgets),
//! `unknown` (a well-formed key of another store), `mistyped` (one character changed: the
//! checksum tells), `malformed` (not a key). Without valgrind it prints the mean time per
//! check.

use std::hint::black_box;
use std::net::IpAddr;

use orgstore::{Actor, Email, Gateway, KeySpec, OrgId, Request, Store};

fn keys(store: &Store, org: &OrgId, n: usize, name: &str) -> Result<Vec<String>, orgstore::Error> {
    (0..n)
        .map(|i| {
            let spec = KeySpec::new(format!("{name}{i}"));
            Ok(store
                .keys()
                .create(&Actor::Operator, org, spec)?
                .key
                .expose()
                .to_owned())
        })
        .collect()
}

fn org(store: &Store, id: &str, config: &str) -> Result<OrgId, orgstore::Error> {
    let id = OrgId::parse(id)?;
    let owner = Email::parse("owner@example.com")?;
    store.orgs().create(&Actor::Operator, &id, "Org", &owner)?;
    store.org_configs().update(&Actor::Operator, &id, config)?;
    Ok(id)
}

/// The measured loop, kept out of line so a profile counts it on its own.
#[inline(never)]
fn run(gw: &Gateway, keys: &[String], n: usize, model: &str, ip: IpAddr) -> usize {
    checks(gw, keys, n, model, ip)
}

/// The same loop once over every key, outside `run`: the first check of each key evaluates
/// Cedar and memoizes the decision.
#[inline(never)]
fn warm_up(gw: &Gateway, keys: &[String], model: &str, ip: IpAddr) -> usize {
    checks(gw, keys, keys.len(), model, ip)
}

/// `n` checks cycling over `keys`; how many were granted.
#[inline(always)]
fn checks(gw: &Gateway, keys: &[String], n: usize, model: &str, ip: IpAddr) -> usize {
    let mut granted = 0;
    for i in 0..n {
        let key = black_box(&keys[i % keys.len()]);
        granted += usize::from(gw.check(&Request::new(key, model, ip)).is_ok());
    }
    granted
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let case = args.next().unwrap_or_else(|| "warm".into());
    let n: usize = args
        .next()
        .map(|s| s.parse())
        .transpose()?
        .unwrap_or(100_000);
    let store = Store::open_temporary()?;
    let plain = org(
        &store,
        "plain",
        r#"{"allowed_models":["gpt-4o","gpt-4o-mini"]}"#,
    )?;
    let limited = org(
        &store,
        "limited",
        r#"{"rate_limiting":{"rpm":100000000,"tpm":1000000000000},"budgets":{"limit":1000000000,"period":"monthly"}}"#,
    )?;
    let other = Store::open_temporary()?;
    let elsewhere = org(&other, "plain", "{}")?;
    let warm = keys(&store, &plain, 1000, "k")?;
    let set = match case.as_str() {
        "warm" => warm.clone(),
        "limited" => keys(&store, &limited, 100, "l")?,
        "unknown" => keys(&other, &elsewhere, 1000, "u")?,
        "mistyped" => warm
            .iter()
            .map(|k| {
                let mut b = k.clone().into_bytes();
                b[20] = if b[20] == b'a' { b'b' } else { b'a' };
                String::from_utf8(b)
            })
            .collect::<Result<_, _>>()?,
        "malformed" => vec!["sk-not-a-key".to_owned()],
        other => {
            return Err(format!(
                "unknown case `{other}`; give warm, limited, unknown, mistyped or malformed"
            )
            .into());
        }
    };
    let gw = store.gateway();
    let ip: IpAddr = "10.1.2.3".parse()?;
    let model = "gpt-4o-mini";
    warm_up(gw, &set, model, ip);
    let t = std::time::Instant::now();
    let granted = run(gw, &set, n, model, ip);
    let ns = t.elapsed().as_nanos() as f64 / n.max(1) as f64;
    println!("{case}: {n} checks, {granted} granted, {ns:.1} ns per check");
    Ok(())
}
