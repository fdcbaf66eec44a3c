//! `orgstore audit ...`

use clap::Args;
use orgstore::{AuditEntry, AuditOutcome, OrgId};
use serde_json::{Value, json};

use super::output::{Out, Table};
use super::{CliError, Ctx};

#[derive(Args)]
pub(crate) struct AuditArgs {
    /// The org id.
    org: String,
    /// How many entries to show, newest first.
    #[arg(long, value_name = "N", default_value_t = 50)]
    limit: usize,
}

pub(crate) fn run(ctx: &Ctx, args: AuditArgs, out: &mut Out) -> Result<(), CliError> {
    let org = OrgId::parse(&args.org)?;
    let entries = match ctx.remote() {
        Some(r) => r.audit(&org, args.limit)?,
        None => ctx
            .read_store()?
            .audit()
            .list(&ctx.actor, &org, args.limit)?,
    };
    if ctx.json {
        return out.json(&Value::Array(entries.iter().map(entry_json).collect()));
    }
    let mut t = Table::new(&[
        "SEQ", "AT", "ACTOR", "ACTION", "TARGET", "OUTCOME", "SUMMARY",
    ]);
    for e in &entries {
        t.row(vec![
            e.seq.to_string(),
            e.at.to_string(),
            e.actor.clone(),
            e.action.clone(),
            e.target.clone(),
            outcome(e.outcome).into(),
            e.summary.clone(),
        ]);
    }
    out.table(&t);
    Ok(())
}

fn outcome(o: AuditOutcome) -> &'static str {
    match o {
        AuditOutcome::Applied => "applied",
        AuditOutcome::Denied => "denied",
    }
}

fn entry_json(e: &AuditEntry) -> Value {
    json!({
        "seq": e.seq,
        "at": e.at.to_string(),
        "actor": e.actor,
        "org": e.org.as_str(),
        "action": e.action,
        "target": e.target,
        "outcome": outcome(e.outcome),
        "summary": e.summary,
    })
}
