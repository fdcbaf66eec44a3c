//! `orgstore usage <ORG> [--key KEY_ID]`: spend per period, budget left, rate use.

use clap::Args;
use orgstore::{KeyId, OrgId, RateUse, UsageReport};
use serde_json::{Value, json};

use super::output::{Out, fields, opt, per, usd_json};
use super::{CliError, Ctx};

#[derive(Args)]
pub(crate) struct UsageArgs {
    /// The org id.
    org: String,
    /// One key of the org instead of the whole org (its id, key_ and 32 hex digits).
    #[arg(long = "key", value_name = "KEY_ID")]
    key: Option<String>,
}

pub(crate) fn run(ctx: &Ctx, args: UsageArgs, out: &mut Out) -> Result<(), CliError> {
    let org = OrgId::parse(&args.org)?;
    let key = match &args.key {
        Some(k) => Some(KeyId::parse(k).map_err(|e| CliError::for_flag("--key", &e))?),
        None => None,
    };
    let a = &ctx.actor;
    let remote = ctx.remote();
    let report = match &key {
        Some(id) => {
            let (report, info) = match remote {
                Some(r) => (r.key_usage(id)?, r.key_show(id)?),
                None => {
                    let store = ctx.read_store()?;
                    (store.keys().usage(a, id)?, store.keys().show(a, id)?)
                }
            };
            if info.org != org {
                return Err(CliError::not_found(
                    "--key",
                    format!("key {id} is not a key of `{org}`; see `key list {org}`"),
                ));
            }
            report
        }
        None => match remote {
            Some(r) => r.org_usage(&org)?,
            None => ctx.read_store()?.orgs().usage(a, &org)?,
        },
    };
    if ctx.json {
        return out.json(&report_json(&org, key.as_ref(), &report));
    }
    let what = match &key {
        Some(id) => format!("key {id} of `{org}`"),
        None => format!("org `{org}` (all its keys)"),
    };
    out.line(format!("usage of {what}, in USD, periods in UTC:"));
    let budget = report.budget.as_ref().map_or_else(
        || "none".to_owned(),
        |b| {
            let resets = b
                .resets_at
                .map_or_else(String::new, |t| format!(", resets {t}"));
            format!(
                "${}{}: spent {}, reserved {}, remaining {}{resets}",
                b.limit,
                per(b.period),
                b.spent,
                b.reserved,
                b.remaining
            )
        },
    );
    fields(
        out,
        &[
            ("today", report.today.to_string()),
            ("this week", report.this_week.to_string()),
            ("this month", report.this_month.to_string()),
            ("total", report.total.to_string()),
            ("budget", budget),
            ("rpm", rate_text(report.rpm)),
            ("tpm", rate_text(report.tpm)),
        ],
    );
    if remote.is_none() && (report.rpm.is_some() || report.tpm.is_some()) {
        out.note(
            "note: rpm/tpm use is counted in the memory of the process that runs the gateway; \
             this process has served no requests",
        );
    }
    Ok(())
}

fn rate_text(r: Option<RateUse>) -> String {
    opt(r.map(|r| format!("{} used of {} in the last minute", r.used, r.limit)))
}

fn report_json(org: &OrgId, key: Option<&KeyId>, r: &UsageReport) -> Value {
    let rate = |r: Option<RateUse>| r.map(|r| json!({ "limit": r.limit, "used": r.used }));
    json!({
        "org": org.as_str(),
        "key_id": key.map(ToString::to_string),
        "today": usd_json(r.today),
        "this_week": usd_json(r.this_week),
        "this_month": usd_json(r.this_month),
        "total": usd_json(r.total),
        "budget": r.budget.as_ref().map(|b| json!({
            "limit": usd_json(b.limit),
            "period": b.period.as_str(),
            "spent": usd_json(b.spent),
            "reserved": usd_json(b.reserved),
            "remaining": usd_json(b.remaining),
            "resets_at": b.resets_at.map(|t| t.to_string()),
        })),
        "rpm": rate(r.rpm),
        "tpm": rate(r.tpm),
    })
}
