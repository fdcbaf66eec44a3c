//! How an LLM gateway links `orgstore`: take the key from the request headers, ask
//! `Gateway::check` whether it may call the model from the client's address, answer a denial
//! with its HTTP status and stable code, put the rate-limit headers on a granted response,
//! and record what the request really used once the upstream call is done.
//!
//! ```text
//! cargo run --example gateway
//! ```
//!
//! The store is temporary and the upstream call is faked; a real gateway opens its store
//! file once at start-up (`Store::open`) and clones `store.gateway()` into every worker.

use std::error::Error;
use std::net::IpAddr;
use std::time::Duration;

use orgstore::{
    Actor, Budget, Denial, Email, Gateway, HeaderError, KeySpec, OrgId, Period, Request, Store,
    Usage, Usd, display_prefix, key_from_headers,
};
use serde_json::json;

/// Status, JSON body and extra response headers.
type Response = (u16, String, Vec<(&'static str, String)>);

/// A request of `main`: label, headers, model and client address.
type Trial<'a> = (&'a str, &'a [(&'a str, &'a str)], &'a str, IpAddr);

/// What every request of this example costs upstream, also used as the check's estimate.
const COST: &str = "0.02";

/// One gateway request: authenticate, authorize, call upstream, account.
fn handle(
    gw: &Gateway,
    headers: &[(&str, &str)],
    model: &str,
    peer_ip: IpAddr,
) -> Result<Response, Box<dyn Error>> {
    let header = |name: &str| {
        headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| *v)
    };
    // 1. The key: `Authorization: Bearer <key>`, else `x-api-key`. Never log it.
    let key = match key_from_headers(header("authorization"), header("x-api-key")) {
        Ok(k) => k,
        Err(e) => {
            let code = match e {
                HeaderError::Missing => "missing_key",
                _ => "malformed_key",
            };
            return Ok((401, error_body(code, &e.to_string()), vec![]));
        }
    };
    // 2. The decision, from the in-memory snapshot (no I/O). The address is the peer's as
    //    the listener saw it, never a header the client controls.
    let estimate = Usd::parse(COST)?;
    let grant = match gw.check(&Request::new(key, model, peer_ip).estimate(estimate)) {
        Ok(grant) => grant,
        Err(denial) => {
            let mut extra = vec![];
            if let Denial::RateLimited { retry_after, .. } = &denial {
                extra.push(("retry-after", ceil_secs(*retry_after).to_string()));
            }
            let body = error_body(denial.code(), &denial.to_string());
            return Ok((denial.http_status(), body, extra));
        }
    };
    // 3. Rate-limit headers for the client.
    let mut extra = vec![];
    if let Some(h) = grant.rate_headers() {
        extra.push(("x-ratelimit-limit-requests", h.limit.to_string()));
        extra.push(("x-ratelimit-remaining-requests", h.remaining.to_string()));
        extra.push(("x-ratelimit-reset-requests", ceil_secs(h.reset).to_string()));
    }
    if grant.budget_warning() {
        extra.push(("x-budget-warning", "true".to_owned()));
    }
    // 4. The upstream call (faked), then the real usage: tokens feed the tpm limits, the
    //    cost settles the budget reservation made by `check`. Settle every grant, also
    //    when the upstream call fails (with `Usage::default()`).
    let (text, usage) = fake_upstream(model)?;
    gw.record_usage(&grant, usage);
    let body = json!({
        "org": grant.org_id().as_str(),
        "key_id": grant.key_id().to_string(),
        "model": model,
        "output": text,
    });
    Ok((200, body.to_string(), extra))
}

/// Whole seconds, rounded up (`retry-after` and `x-ratelimit-reset-requests` are in seconds).
fn ceil_secs(d: Duration) -> u128 {
    d.as_millis().div_ceil(1000)
}

fn error_body(code: &str, message: &str) -> String {
    json!({ "error": { "code": code, "message": message } }).to_string()
}

fn fake_upstream(model: &str) -> Result<(String, Usage), Box<dyn Error>> {
    Ok((
        format!("hello from {model}"),
        Usage::new(1200, 300, Usd::parse(COST)?),
    ))
}

fn main() -> Result<(), Box<dyn Error>> {
    // Set-up, done by an operator (or `orgstore` on the command line) in real life.
    let store = Store::open_temporary()?;
    let op = Actor::Operator;
    let acme = OrgId::parse("acme")?;
    store
        .orgs()
        .create(&op, &acme, "Acme", &Email::parse("owner@acme.example")?)?;
    let spec = KeySpec::new("backend")
        .models(["gpt-4o-mini"])
        .ips(["10.0.0.0/8"])
        .rpm(3)
        .budget(Budget::new(Usd::parse("0.05")?, Period::Daily));
    let created = store.keys().create(&op, &acme, spec)?;
    let key = created.key.expose();
    println!(
        "key {} ({}): gpt-4o-mini only, from 10.0.0.0/8, 3 rpm, $0.05/day; each request costs ${COST}",
        created.info.id,
        display_prefix(key)
    );

    // The gateway's side: each worker thread or task keeps its own clone of the handle.
    let gw = store.gateway().clone();
    let bearer = format!("Bearer {key}");
    let mut typo = key.to_owned();
    let last = if typo.ends_with('x') { "y" } else { "x" };
    typo.replace_range(typo.len() - 1.., last);
    let office: IpAddr = "10.1.2.3".parse()?;
    let elsewhere: IpAddr = "192.0.2.44".parse()?;
    let auth = [("Authorization", bearer.as_str())];
    let requests: [Trial; 9] = [
        ("bearer key", &auth, "gpt-4o-mini", office),
        (
            "x-api-key, other model",
            &[("x-api-key", key)],
            "gpt-4o",
            office,
        ),
        ("no key", &[], "gpt-4o-mini", office),
        (
            "basic auth",
            &[("Authorization", "Basic dXNlcjpwYXNz")],
            "gpt-4o-mini",
            office,
        ),
        (
            "mistyped key",
            &[("x-api-key", &typo)],
            "gpt-4o-mini",
            office,
        ),
        ("outside 10.0.0.0/8", &auth, "gpt-4o-mini", elsewhere),
        ("second request", &auth, "gpt-4o-mini", office),
        ("third: over budget", &auth, "gpt-4o-mini", office),
        ("fourth: over 3 rpm", &auth, "gpt-4o-mini", office),
    ];
    for (label, headers, model, ip) in &requests {
        let (status, body, extra) = handle(&gw, headers, model, *ip)?;
        let extra: Vec<String> = extra.iter().map(|(k, v)| format!("{k}: {v}")).collect();
        println!("{label:<24} {status} {body}");
        if !extra.is_empty() {
            println!("{:<24}     {}", "", extra.join(", "));
        }
    }
    let usage = store.keys().usage(&op, &created.info.id)?;
    println!(
        "spend today: ${}; budget left: {}",
        usage.today,
        usage
            .budget
            .map_or_else(|| "none".to_owned(), |b| format!("${}", b.remaining))
    );
    Ok(())
}
