//! The demo's results as text and as JSON.

use super::*;

pub(super) fn print_trials(out: &mut Out, rows: &[GatewayRow]) {
    out.line("");
    out.line("Gateway checks: each key calling each model from two client addresses:");
    let mut header = vec!["ORG", "KEY", "FROM"];
    header.extend(TRIAL_MODELS);
    let mut t = Table::new(&header);
    let mut reasons: Vec<(&'static str, String)> = Vec::new();
    for r in rows {
        let mut cells = vec![r.org.clone(), r.key.clone(), r.address.to_string()];
        for res in &r.results {
            cells.push(match res {
                Ok(()) => "allowed".to_owned(),
                Err(d) => {
                    if !reasons.iter().any(|(c, _)| *c == d.code()) {
                        reasons.push((d.code(), d.to_string()));
                    }
                    d.code().to_owned()
                }
            });
        }
        t.row(cells);
    }
    out.table(&t);
    if !reasons.is_empty() {
        out.line("Reasons:");
        let w = reasons.iter().map(|(c, _)| c.len()).max().unwrap_or(0);
        for (code, message) in &reasons {
            out.line(format!("  {code:<w$}  {message}"));
        }
    }
}

pub(super) fn print_burst(out: &mut Out, b: &Burst) {
    out.line("");
    out.line(format!(
        "Rate limit: {} ({} requests per minute; {} made above), a burst of requests:",
        b.key, b.limit, b.before
    ));
    let remaining = b.remaining.map_or_else(String::new, |(first, last)| {
        format!(" (x-ratelimit-remaining-requests {first} -> {last})")
    });
    out.line(format!("  {} allowed{remaining}", b.allowed));
    match &b.denial {
        Some(d) => out.line(format!(
            "  request {} of the minute: {}: {d}",
            b.before + b.allowed + 1,
            d.code()
        )),
        None => out.line("  no request was refused"),
    }
}

pub(super) fn print_budget(out: &mut Out, run: &BudgetRun) {
    out.line("");
    let limit = run
        .limit
        .map_or_else(|| "no".to_owned(), |l| format!("a ${l}/month"));
    out.line(format!(
        "Budget: {} has {limit} org budget; each request reserves ${} at check and records ${}:",
        run.org, run.step, run.step
    ));
    for (i, s) in run.steps.iter().enumerate() {
        match &s.result {
            Ok((left, warning)) => {
                let flag = if *warning { " (budget warning)" } else { "" };
                out.line(format!("  request {}: allowed, ${left} left{flag}", i + 1));
            }
            Err(d) => out.line(format!("  request {}: {}: {d}", i + 1, d.code())),
        }
    }
}

pub(super) fn trials_json(rows: &[GatewayRow]) -> Value {
    let mut all = Vec::new();
    for r in rows {
        for (model, res) in TRIAL_MODELS.iter().zip(&r.results) {
            let mut v = match res {
                Ok(()) => json!({ "allowed": true }),
                Err(d) => d.to_json(),
            };
            v["org"] = json!(r.org);
            v["key"] = json!(r.key);
            v["address"] = json!(r.address.to_string());
            v["model"] = json!(model);
            all.push(v);
        }
    }
    Value::Array(all)
}

pub(super) fn burst_json(b: &Burst) -> Value {
    json!({
        "key": b.key,
        "rpm": b.limit,
        "made_before": b.before,
        "allowed": b.allowed,
        "denied": b.denial.as_ref().map(Denial::to_json),
    })
}

pub(super) fn budget_json(run: &BudgetRun) -> Value {
    let steps: Vec<Value> = run
        .steps
        .iter()
        .map(|s| match &s.result {
            Ok((left, warning)) => json!({
                "allowed": true,
                "remaining": usd_json(*left),
                "budget_warning": warning,
            }),
            Err(d) => d.to_json(),
        })
        .collect();
    json!({
        "org": run.org,
        "limit": run.limit.map(usd_json),
        "cost_per_request": usd_json(run.step),
        "requests": steps,
    })
}

pub(super) fn caps_json(caps: &[Capability]) -> Value {
    caps.iter()
        .map(|c| {
            json!({
                "org": c.org,
                "pattern": c.pattern,
                "key": c.key,
                "prefix": c.prefix,
                "models": c.models,
                "rpm": c.rpm,
                "budget": c.budget,
                "ips": c.ips,
            })
        })
        .collect()
}

pub(super) fn matrix_json(rows: &[MatrixRow]) -> Value {
    rows.iter()
        .map(|r| {
            let mut obj = serde_json::Map::new();
            obj.insert("action".into(), r.action.into());
            obj.insert("matches_matrix".into(), r.matches().into());
            for ((role, _), res) in MATRIX_MEMBERS.iter().zip(&r.results) {
                let v = match res {
                    Ok(b) => Value::Bool(*b),
                    Err(e) => json!({ "error": e }),
                };
                obj.insert(role.as_str().into(), v);
            }
            Value::Object(obj)
        })
        .collect()
}
