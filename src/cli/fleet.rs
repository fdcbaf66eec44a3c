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
    /// The fleet's head and every replica's applied position, lag and last report.
    Status,
    /// Run --db as a replica until stdin closes: it follows the fleet and answers one line
    /// per request on stdin: `check KEY MODEL [IP]` prints the decision as one JSON line,
    /// `position` the applied log position, `wait N` waits until position N is applied.
    Replica,
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
        FleetCmd::Replica => replica(ctx),
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
        return out.json(&json!({
            "head": s.head,
            "trimmed_to": s.trimmed_to,
            "replicas": replicas,
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
    Ok(())
}

/// The replica loop: answers stdin line by line, straight to stdout (not buffered to the
/// end like other commands' output).
fn replica(ctx: &Ctx) -> Result<(), CliError> {
    let store = ctx.store()?;
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
