//! `orgstore demo`: the two multi-tenancy patterns orgstore serves, on a temporary store.
//!
//! 1. One org per customer: Customer A ($100/month, gpt-4o-mini only), Customer B
//!    ($500/month, gpt-4o and claude-sonnet-4-6), Customer C (unlimited, all models).
//! 2. One org with per-key isolation: Marketing (50 rpm, $200/month), Engineering (500 rpm,
//!    $1000/month), Data science (200 rpm, all models, no budget cap).
//!
//! The demo is built in steps so later features add to it without rewriting it:
//! [`build`] creates the store and returns every key it created (with the secret, which is
//! never printed, so gateway checks can be tried with it); [`capabilities`] turns each key
//! into one row of the table (add columns to [`Capability`]); [`role_matrix`] tries admin
//! actions as each role through the Cedar-enforcing store and compares each answer with the
//! role matrix; [`gateway_trials`], [`rate_burst`] and [`budget_run`] send
//! requests through the gateway.
//!
//! [`live`] administers live stores: an invitation handed to the host's hook and accepted,
//! and (with the `server` feature) a key revoked through the admin API's socket while a
//! gateway thread keeps checking it.
//!
//! Customer B also accepts traffic only from its own network (`ip_acl`), so that the
//! address trials have something to show.

use std::net::{IpAddr, Ipv4Addr};

use orgstore::{
    Actor, CreatedKey, Denial, Email, Error, ErrorKind, KeySpec, OrgConfig, OrgId, Period, Request,
    Role, Store, StoreBuilder, Timestamp, Usage, Usd,
};
use serde_json::{Value, json};

use super::output::{Out, Table, json_value, per, usd_json};
use super::{CliError, Ctx};

mod capabilities;
mod live;
mod print;
mod roles;
mod traffic;

use capabilities::*;
use print::*;
use roles::*;
use traffic::*;

/// A key the demo creates.
struct KeyPlan {
    name: &'static str,
    rpm: Option<u32>,
    budget: Option<(&'static str, Period)>,
}

/// An org the demo creates: its config patch (JSON merge patch) and its keys.
struct OrgPlan {
    id: &'static str,
    name: &'static str,
    pattern: &'static str,
    owner: &'static str,
    config: &'static str,
    keys: &'static [KeyPlan],
}

const fn key(name: &'static str) -> KeyPlan {
    KeyPlan {
        name,
        rpm: None,
        budget: None,
    }
}

const PLAN: &[OrgPlan] = &[
    OrgPlan {
        id: "customer-a",
        name: "Customer A",
        pattern: "one org per customer",
        owner: "owner@customer-a.example",
        config: r#"{"budgets":{"limit":100,"period":"monthly"},"allowed_models":["gpt-4o-mini"]}"#,
        keys: &[key("production")],
    },
    OrgPlan {
        id: "customer-b",
        name: "Customer B",
        pattern: "one org per customer",
        owner: "owner@customer-b.example",
        config: r#"{"budgets":{"limit":500,"period":"monthly"},"allowed_models":["gpt-4o","claude-sonnet-4-6"],"ip_acl":{"allow":["203.0.113.0/24"]}}"#,
        keys: &[key("production")],
    },
    OrgPlan {
        id: "customer-c",
        name: "Customer C",
        pattern: "one org per customer",
        owner: "owner@customer-c.example",
        config: "{}",
        keys: &[key("production")],
    },
    OrgPlan {
        id: "internal",
        name: "Internal teams",
        pattern: "one org, per-key isolation",
        owner: "platform@internal.example",
        config: "{}",
        keys: &[
            KeyPlan {
                name: "Marketing",
                rpm: Some(50),
                budget: Some(("200", Period::Monthly)),
            },
            KeyPlan {
                name: "Engineering",
                rpm: Some(500),
                budget: Some(("1000", Period::Monthly)),
            },
            KeyPlan {
                name: "Data science",
                rpm: Some(200),
                budget: None,
            },
        ],
    },
];

/// The org whose members the role matrix acts as, and their emails by role.
const MATRIX_ORG: &str = "internal";
const MATRIX_MEMBERS: [(Role, &str); 4] = [
    (Role::Owner, "platform@internal.example"),
    (Role::Admin, "admin@internal.example"),
    (Role::Member, "dev@internal.example"),
    (Role::Viewer, "analyst@internal.example"),
];

/// A key the demo created. The full secret is kept for gateway checks and never printed.
pub(crate) struct DemoKey {
    /// Which multi-tenancy pattern it illustrates.
    pub(crate) pattern: &'static str,
    /// The key as created (info and secret).
    pub(crate) created: CreatedKey,
}

/// The demo store and what was created in it.
pub(crate) struct Demo {
    /// The temporary store.
    pub(crate) store: Store,
    /// Every key created, in plan order.
    pub(crate) keys: Vec<DemoKey>,
}

/// Builds the temporary store: the orgs with their configs and owners, their keys, and the
/// members of [`MATRIX_ORG`] with one role each.
/// The demo store, held in memory for this run only; `policies` (the global `--policies`
/// directory) is applied to it as a version of its policy set, since nothing of it
/// outlives the run.
pub(crate) fn build(policies: Option<&std::path::Path>) -> Result<Demo, Error> {
    let store = StoreBuilder::new().open_temporary()?;
    let op = Actor::Operator;
    if let Some(dir) = policies {
        store.policy_set().apply_dir(&op, dir)?;
    }
    let mut keys = Vec::new();
    for plan in PLAN {
        let id = OrgId::parse(plan.id)?;
        store
            .orgs()
            .create(&op, &id, plan.name, &Email::parse(plan.owner)?)?;
        if plan.config != "{}" {
            store.org_configs().update(&op, &id, plan.config)?;
        }
        for k in plan.keys {
            let mut spec = KeySpec::new(k.name);
            spec.rate_limit_rpm = k.rpm;
            if let Some((usd, period)) = k.budget {
                spec.budget = Some(orgstore::Budget::new(Usd::parse(usd)?, period));
            }
            let created = store.keys().create(&op, &id, spec)?;
            keys.push(DemoKey {
                pattern: plan.pattern,
                created,
            });
        }
    }
    let matrix_org = OrgId::parse(MATRIX_ORG)?;
    for (role, email) in MATRIX_MEMBERS {
        if role != Role::Owner {
            store
                .members()
                .add(&op, &matrix_org, &Email::parse(email)?, role)?;
        }
    }
    Ok(Demo { store, keys })
}

pub(crate) fn run(ctx: &Ctx, out: &mut Out) -> Result<(), CliError> {
    let demo = build(ctx.policies.as_deref())?;
    let caps = capabilities(&demo)?;
    let matrix = role_matrix(&demo)?;
    let trials = gateway_trials(&demo);
    let burst = rate_burst(&demo)?;
    let spend = budget_run(&demo)?;
    let invited = live::invitation(&orgstore::StoreBuilder::new())?;
    let revoked = live::live_revoke(ctx)?;
    if ctx.json {
        return out.json(&json!({
            "keys": caps_json(&caps),
            "roles": matrix_json(&matrix),
            "gateway": trials_json(&trials),
            "rate_limit": burst_json(&burst),
            "budget": budget_json(&spend),
            "invitation": live::invitation_json(&invited),
            "live_revoke": live::live_json(revoked.as_ref()),
        }));
    }
    out.line("orgstore demo: a temporary store with the two multi-tenancy patterns.");
    out.line("");
    out.line("What each key may do (the org's settings and the key's own both apply):");
    out.line("  customer-a/b/c: one org per customer; internal: one org, per-key isolation");
    out.line("");
    let mut t = Table::new(&["ORG", "KEY", "PREFIX", "MODELS", "RPM", "BUDGET", "IPS"]);
    for c in &caps {
        t.row(vec![
            c.org.clone(),
            c.key.clone(),
            c.prefix.clone(),
            c.models
                .as_ref()
                .map_or_else(|| "all".to_owned(), |m| m.join(",")),
            c.rpm.clone(),
            c.budget.clone(),
            c.ips.clone(),
        ]);
    }
    out.table(&t);
    out.line("");
    out.line(format!(
        "Role matrix: each action tried as a member of `{MATRIX_ORG}` with that role (decided by the Cedar policies; the operator may do everything):"
    ));
    let mut header = vec!["ACTION"];
    header.extend(MATRIX_MEMBERS.iter().map(|(r, _)| r.as_str()));
    let mut t = Table::new(&header);
    let yes_no = |b: bool| if b { "yes" } else { "no" };
    for row in &matrix {
        let mut cells = vec![row.action.to_owned()];
        cells.extend(
            row.results
                .iter()
                .zip(row.expected)
                .map(|(r, want)| match r {
                    Ok(got) if *got == want => yes_no(*got).to_owned(),
                    Ok(got) => format!("{} (matrix: {})", yes_no(*got), yes_no(want)),
                    Err(e) => format!("error: {e}"),
                }),
        );
        t.row(cells);
    }
    out.table(&t);
    let differ = matrix.iter().filter(|r| !r.matches()).count();
    if differ == 0 {
        out.line("Every answer matches the role matrix (Owner / Admin / Member / Viewer).");
    } else {
        out.line(format!(
            "{differ} of {} actions differ from the built-in role matrix (marked above; operator policies from --policies can change answers).",
            matrix.len()
        ));
    }
    print_trials(out, &trials);
    print_burst(out, &burst);
    print_budget(out, &spend);
    live::print_invitation(out, &invited);
    live::print_live(out, revoked.as_ref());
    Ok(())
}
