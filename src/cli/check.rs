//! `orgstore check <KEY> --model <M> [--ip <IP>] [--estimate USD]`: one gateway decision,
//! printed as JSON whatever the output mode (exit 0 allowed, 3 denied).

use std::io::BufRead;
use std::net::{IpAddr, Ipv4Addr};

use clap::Args;
use orgstore::{Denial, Grant, Limits, Request, Usd};
use serde_json::{Value, json};
use zeroize::Zeroizing;

use super::output::{Out, usd_json};
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
    let gateway = ctx.read_store()?.gateway();
    let mut req = Request::new(&key, &args.model, args.ip);
    if let Some(e) = estimate {
        req = req.estimate(e);
    }
    let decision = gateway.check(&req);
    out.json(&decision_json(&decision))?;
    match decision {
        Ok(_) => Ok(()),
        Err(_) => Err(CliError::quiet(DENIED)),
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
        Ok(g) => grant_json(g),
        Err(d) => denial_json(d),
    }
}

fn grant_json(g: &Grant) -> Value {
    let (key_left, org_left) = g.budget_remaining();
    json!({
        "allowed": true,
        "org": g.org_id().as_str(),
        "key_id": g.key_id().to_string(),
        "limits": limits_json(&g.limits()),
        "rate": g.rate_headers().map(|r| json!({
            "limit": r.limit,
            "remaining": r.remaining,
            "reset_ms": u64::try_from(r.reset.as_millis()).unwrap_or(u64::MAX),
        })),
        "budget_warning": g.budget_warning(),
        "over_soft_budget": g.over_soft_budget(),
        "budget_remaining": {
            "key": key_left.map(usd_json),
            "org": org_left.map(usd_json),
        },
    })
}

fn limits_json(l: &Limits) -> Value {
    json!({
        "key_rpm": l.key_rpm,
        "org_rpm": l.org_rpm,
        "key_tpm": l.key_tpm,
        "org_tpm": l.org_tpm,
        "key_budget": l.key_budget.map(usd_json),
        "org_budget": l.org_budget.map(usd_json),
    })
}

/// A denial as JSON: `allowed: false`, its stable code, the message, and the details of
/// policy, rate-limit and budget denials.
pub(crate) fn denial_json(d: &Denial) -> Value {
    let mut v = json!({
        "allowed": false,
        "code": d.code(),
        "reason": d.to_string(),
    });
    match d {
        Denial::PolicyDenied { policies } => {
            v["policies"] = json!(policies.as_ref());
        }
        Denial::RateLimited {
            scope,
            tokens,
            retry_after,
        } => {
            v["scope"] = json!(scope.as_str());
            v["limit"] = json!(if *tokens { "tpm" } else { "rpm" });
            v["retry_after_ms"] = json!(u64::try_from(retry_after.as_millis()).unwrap_or(u64::MAX));
        }
        Denial::BudgetExceeded {
            scope,
            resets_at,
            remaining,
            requested,
        } => {
            v["scope"] = json!(scope.as_str());
            v["resets_at"] = json!(resets_at.map(|t| t.to_string()));
            v["remaining_usd"] = json!(remaining.to_string());
            v["requested_usd"] = json!(requested.to_string());
        }
        _ => {}
    }
    v
}
