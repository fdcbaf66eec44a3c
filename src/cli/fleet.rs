//! `orgstore fleet ...`: create a fleet (or grow one from a single-node file), show its
//! replicas, and run a replica that follows the fleet and answers checks on stdin.

use std::io::{BufRead, Write};
use std::net::IpAddr;
use std::path::PathBuf;

use clap::Subcommand;
use orgstore::{FleetStatus, Request, StoreBuilder};
use serde_json::json;

use super::check::decision_json;
use super::output::{Out, Table};
use super::{CliError, Ctx};

#[derive(Subcommand)]
pub(crate) enum FleetCmd {
    /// Create the fleet's schema in the --fleet database, or bring it up to date. With
    /// --from FILE, the fleet is created from that single-node store file (same orgs, keys
    /// and secrets: nothing is reissued), which becomes its first replica; copy FILE.key
    /// next to every other replica's --db.
    Init {
        /// A single-node store file to create the fleet from (the fleet must be empty).
        #[arg(long, value_name = "FILE")]
        from: Option<PathBuf>,
    },
    /// The fleet's head, every replica's applied position, lag and last report, and the
    /// budget leases and rate-limit shares each holds.
    Status,
    /// Run --db as a replica until stdin closes: it follows the fleet and answers one line
    /// per request on stdin: `check KEY MODEL [IP]` prints the decision as one JSON line,
    /// `position` the applied log position, `wait N` waits until position N is applied.
    Replica {
        /// Fail closed: once the fleet's log has not been confirmed for this many
        /// milliseconds (the engine unreachable), checks answer `unavailable` until the
        /// replica caught up again. Default: keep answering from the last state.
        #[arg(long, value_name = "MS")]
        max_staleness: Option<u64>,
    },
}

pub(crate) fn run(ctx: &Ctx, cmd: FleetCmd, out: &mut Out) -> Result<(), CliError> {
    let Some(url) = ctx.fleet.as_deref() else {
        return Err(CliError::invalid(
            "--fleet",
            "fleet commands need the fleet's database: pass --fleet URL (or ORGSTORE_FLEET)",
        ));
    };
    let builder = StoreBuilder::new().fleet(url);
    match cmd {
        FleetCmd::Init { from } => {
            let status = match from {
                Some(file) => builder.init_from(&file)?,
                None => builder.init()?,
            };
            print_status(ctx, &status, out)
        }
        FleetCmd::Status => {
            let status = builder.status()?;
            print_status(ctx, &status, out)
        }
        FleetCmd::Replica { max_staleness } => {
            let mut b = StoreBuilder::new().fleet(url);
            if let Some(ms) = max_staleness {
                b = b.max_staleness(std::time::Duration::from_millis(ms));
            }
            replica(&b.open(&ctx.db)?)
        }
    }
}

fn print_status(ctx: &Ctx, s: &FleetStatus, out: &mut Out) -> Result<(), CliError> {
    if ctx.json {
        let replicas: Vec<_> = s
            .replicas
            .iter()
            .map(|r| {
                json!({
                    "name": r.name,
                    "applied": r.applied,
                    "lag": r.lag,
                    "last_seen_ms": r.last_seen.as_millis() as u64,
                })
            })
            .collect();
        let expires_ms = |d: Option<std::time::Duration>| d.map(|d| d.as_millis() as u64);
        let leases: Vec<_> = s
            .budget_leases
            .iter()
            .map(|l| {
                json!({
                    "scope": l.scope,
                    "window_start": l.window_start.map(|t| t.to_string()),
                    "holder": l.holder,
                    "granted": l.granted.to_string(),
                    "claimed": l.claimed.to_string(),
                    "used": l.used.to_string(),
                    "expires_in_ms": expires_ms(l.expires_in),
                })
            })
            .collect();
        let shares: Vec<_> = s
            .rate_shares
            .iter()
            .map(|r| {
                json!({
                    "scope": r.scope,
                    "unit": r.unit,
                    "holder": r.holder,
                    "share": r.share,
                    "want": r.want,
                    "expires_in_ms": expires_ms(r.expires_in),
                })
            })
            .collect();
        return out.json(&json!({
            "head": s.head,
            "trimmed_to": s.trimmed_to,
            "replicas": replicas,
            "budget_leases": leases,
            "rate_shares": shares,
        }));
    }
    out.line(format!("head: {}", s.head));
    let mut t = Table::new(&["REPLICA", "APPLIED", "LAG", "LAST SEEN"]);
    for r in &s.replicas {
        t.row(vec![
            r.name.clone(),
            r.applied.to_string(),
            r.lag.to_string(),
            format!("{:.1}s ago", r.last_seen.as_secs_f64()),
        ]);
    }
    out.table(&t);
    let expires = |d: Option<std::time::Duration>| match d {
        Some(d) => format!("in {:.1}s", d.as_secs_f64()),
        None => "lapsed".to_owned(),
    };
    if !s.budget_leases.is_empty() {
        out.line("budget leases:".to_owned());
        let mut t = Table::new(&[
            "SCOPE", "WINDOW", "HOLDER", "GRANTED", "CLAIMED", "USED", "EXPIRES",
        ]);
        for l in &s.budget_leases {
            t.row(vec![
                l.scope.clone(),
                l.window_start.map_or("total".to_owned(), |w| w.to_string()),
                l.holder.clone(),
                l.granted.to_string(),
                l.claimed.to_string(),
                l.used.to_string(),
                expires(l.expires_in),
            ]);
        }
        out.table(&t);
    }
    if !s.rate_shares.is_empty() {
        out.line("rate shares (per minute):".to_owned());
        let mut t = Table::new(&["SCOPE", "UNIT", "HOLDER", "SHARE", "WANT", "EXPIRES"]);
        for r in &s.rate_shares {
            t.row(vec![
                r.scope.clone(),
                r.unit.clone(),
                r.holder.clone(),
                r.share.to_string(),
                r.want.to_string(),
                expires(r.expires_in),
            ]);
        }
        out.table(&t);
    }
    Ok(())
}

/// The replica loop: answers stdin line by line, straight to stdout (not buffered to the
/// end like other commands' output).
fn replica(store: &orgstore::Store) -> Result<(), CliError> {
    let stdout = std::io::stdout();
    let say = |line: String| -> Result<(), CliError> {
        let mut o = stdout.lock();
        writeln!(o, "{line}")
            .and_then(|()| o.flush())
            .map_err(|e| CliError::invalid("stdout", format!("cannot write ({e})")))
    };
    say(format!("ready {}", store.fleet_position()?))?;
    for line in std::io::stdin().lock().lines() {
        let line = line.map_err(|e| CliError::invalid("stdin", format!("cannot read ({e})")))?;
        let words: Vec<&str> = line.split_whitespace().collect();
        match words.as_slice() {
            [] => {}
            ["check", key, model, rest @ ..] => {
                let ip: IpAddr = match rest.first() {
                    Some(ip) => ip.parse().map_err(|_| {
                        CliError::invalid("ip", format!("`{ip}` is not an IP address"))
                    })?,
                    None => IpAddr::from([127, 0, 0, 1]),
                };
                let d = store.gateway().check(&Request::new(key, model, ip));
                say(decision_json(&d).to_string())?;
            }
            ["position"] => say(store.fleet_position()?.to_string())?,
            ["wait", n] => {
                let n: u64 = n
                    .parse()
                    .map_err(|_| CliError::invalid("wait", "give a log position"))?;
                while store.fleet_position()? < n {
                    std::thread::sleep(std::time::Duration::from_millis(2));
                }
                say(n.to_string())?;
            }
            other => {
                say(
                    json!({"error": format!("unknown request `{}`; use check, position or wait", other.join(" "))})
                        .to_string(),
                )?;
            }
        }
    }
    Ok(())
}

/// `orgstore --fleet URL demo`: three replicas in a temporary directory share the fleet; a
/// key created on the first works on all three, then revoked on the second it is refused on
/// all three; each replica's answer is timed from the admin call's return.
pub(crate) fn demo(ctx: &Ctx, out: &mut Out) -> Result<(), CliError> {
    use orgstore::{Actor, Email, KeySpec, OrgId};
    use std::time::{Duration, Instant};

    let Some(url) = ctx.fleet.as_deref() else {
        return Err(CliError::invalid(
            "--fleet",
            "the fleet demo needs --fleet URL",
        ));
    };
    let fleet = StoreBuilder::new().fleet(url);
    let status = fleet.init()?;
    if status.head != 0 {
        return Err(CliError::invalid(
            "--fleet",
            "the fleet demo creates its own fleet: give an empty database",
        ));
    }
    let dir = tempfile_dir()?;
    let path = |i: usize| dir.join(format!("replica-{i}.redb"));
    let mut replicas = Vec::new();
    for i in 1..=3 {
        if i > 1 {
            // Every replica holds the fleet's store key (it seals provider secrets).
            std::fs::copy(key_path(&path(1)), key_path(&path(i))).map_err(|e| {
                CliError::invalid("demo", format!("cannot copy the key file ({e})"))
            })?;
        }
        let store = StoreBuilder::new()
            .non_durable()
            .fleet(url)
            .poll_interval(Duration::from_millis(50))
            .replica_name(format!("replica-{i}"))
            .open(path(i))?;
        replicas.push(store);
    }
    let op = Actor::Operator;
    let acme = OrgId::parse("customer-a")?;
    replicas[0]
        .orgs()
        .create(&op, &acme, "Customer A", &Email::parse("owner@a.example")?)?;
    let created = replicas[0]
        .keys()
        .create(&op, &acme, KeySpec::new("backend"))?;
    let ip = IpAddr::from([203, 0, 113, 7]);
    let answer = |s: &orgstore::Store| match s.gateway().check(&Request::new(
        created.key.expose(),
        "gpt-4o-mini",
        ip,
    )) {
        Ok(_) => "allowed".to_owned(),
        Err(d) => d.code().to_owned(),
    };
    // Times how long after `since` each replica answers `want`.
    let timed = |since: Instant, want: &str| -> Vec<(String, Duration)> {
        replicas
            .iter()
            .map(|s| {
                let deadline = since + Duration::from_secs(10);
                loop {
                    let a = answer(s);
                    if a == want || Instant::now() > deadline {
                        return (a, since.elapsed());
                    }
                    std::thread::sleep(Duration::from_micros(200));
                }
            })
            .collect()
    };
    let t0 = Instant::now();
    let created_seen = timed(t0, "allowed");
    let t1 = Instant::now();
    replicas[1].keys().revoke(&op, &created.info.id)?;
    let revoked_seen = timed(t1, "revoked");
    if ctx.json {
        let rows = |v: &[(String, Duration)]| {
            v.iter()
                .enumerate()
                .map(|(i, (a, d))| {
                    json!({"replica": format!("replica-{}", i + 1), "answer": a,
                           "after_ms": d.as_secs_f64() * 1000.0})
                })
                .collect::<Vec<_>>()
        };
        return out.json(&json!({
            "created_on": "replica-1",
            "created": rows(&created_seen),
            "revoked_on": "replica-2",
            "revoked": rows(&revoked_seen),
        }));
    }
    out.line(
        "Three gateway replicas share one fleet on PostgreSQL; checks never leave the process.",
    );
    for (title, rows) in [
        (
            "Key created on replica-1, then checked on every replica:",
            &created_seen,
        ),
        (
            "Key revoked on replica-2, then checked on every replica:",
            &revoked_seen,
        ),
    ] {
        out.line("");
        out.line(title);
        let mut t = Table::new(&["REPLICA", "ANSWER", "AFTER"]);
        for (i, (a, d)) in rows.iter().enumerate() {
            t.row(vec![
                format!("replica-{}", i + 1),
                a.clone(),
                format!("{:.2} ms", d.as_secs_f64() * 1000.0),
            ]);
        }
        out.table(&t);
    }
    drop(replicas);
    let _ = std::fs::remove_dir_all(&dir);
    Ok(())
}

fn key_path(db: &std::path::Path) -> PathBuf {
    let mut s = db.as_os_str().to_owned();
    s.push(".key");
    PathBuf::from(s)
}

/// A fresh private directory under the system's temporary directory.
fn tempfile_dir() -> Result<PathBuf, CliError> {
    let dir = std::env::temp_dir().join(format!(
        "orgstore-fleet-demo-{}-{}",
        std::process::id(),
        rand_suffix()
    ));
    std::fs::create_dir(&dir)
        .map_err(|e| CliError::invalid("demo", format!("cannot create {} ({e})", dir.display())))?;
    Ok(dir)
}

fn rand_suffix() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.subsec_nanos() as u64)
}
