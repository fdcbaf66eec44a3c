//! `orgstore check <KEY> --model <M> [--ip <IP>] [--estimate USD]`: one gateway decision,
//! printed as JSON whatever the output mode (exit 0 allowed, 3 denied).

use std::io::BufRead;
use std::net::{IpAddr, Ipv4Addr};

use clap::Args;
use orgstore::{Denial, Grant, Request, Usd};
use serde_json::Value;
use zeroize::Zeroizing;

use super::output::Out;
use super::{CliError, Ctx};

/// Exit code of a denied check.
const DENIED: u8 = 3;

#[derive(Args)]
pub(crate) struct CheckArgs {
    /// The full key, as a client would send it; `-` reads it from the first line of stdin
    /// (keeps it out of the shell history and the process list). It is never printed.
    key: String,
    /// The model the request asks for.
    #[arg(long, value_name = "M")]
    model: String,
    /// The client address as the gateway's listener would see it.
    #[arg(long, value_name = "IP", default_value_t = IpAddr::V4(Ipv4Addr::LOCALHOST))]
    ip: IpAddr,
    /// Expected cost in USD reserved against budgets (default: the gateway's, one cent).
    #[arg(long, value_name = "USD", allow_negative_numbers = true)]
    estimate: Option<String>,
}

pub(crate) fn run(ctx: &Ctx, args: CheckArgs, out: &mut Out) -> Result<(), CliError> {
    let estimate = match &args.estimate {
        Some(e) => Some(Usd::parse(e).map_err(|e| CliError::for_flag("--estimate", &e))?),
        None => None,
    };
    let key = if args.key == "-" {
        read_key_from_stdin()?
    } else {
        Zeroizing::new(args.key)
    };
    let shown = match ctx.remote() {
        Some(r) => r.check(&key, &args.model, args.ip, estimate)?,
        None => {
            let gateway = ctx.read_store()?.gateway();
            let mut req = Request::new(&key, &args.model, args.ip);
            if let Some(e) = estimate {
                req = req.estimate(e);
            }
            decision_json(&gateway.check(&req))
        }
    };
    out.json(&shown)?;
    if shown["allowed"] == Value::Bool(true) {
        Ok(())
    } else {
        Err(CliError::quiet(DENIED))
    }
}

fn read_key_from_stdin() -> Result<Zeroizing<String>, CliError> {
    let mut line = Zeroizing::new(String::new());
    std::io::stdin()
        .lock()
        .read_line(&mut line)
        .map_err(|e| CliError::invalid("KEY", format!("cannot read the key from stdin ({e})")))?;
    Ok(Zeroizing::new(line.trim().to_owned()))
}

/// A gateway decision as JSON: never the key itself, only its id when granted.
pub(crate) fn decision_json(decision: &Result<Grant, Denial>) -> Value {
    match decision {
        Ok(g) => g.to_json(),
        Err(d) => d.to_json(),
    }
}
