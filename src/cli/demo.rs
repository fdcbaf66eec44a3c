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
//! Customer B also accepts traffic only from its own network (`ip_acl`), so that the
//! address trials have something to show.

use std::net::{IpAddr, Ipv4Addr};

use orgstore::{
    Actor, CreatedKey, Denial, Email, Error, ErrorKind, KeySpec, OrgConfig, OrgId, Period, Request,
    Role, Store, StoreBuilder, Timestamp, Usage, Usd,
};
use serde_json::{Value, json};

use super::check::denial_json;
use super::output::{Out, Table, json_value, per, usd_json};
use super::{CliError, Ctx};

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
pub(crate) fn build(builder: &StoreBuilder) -> Result<Demo, Error> {
    let store = builder.open_temporary()?;
    let op = Actor::Operator;
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

/// What one key may do: the org's settings and the key's own, combined (a key can only
/// narrow its org).
pub(crate) struct Capability {
    org: String,
    pattern: &'static str,
    key: String,
    prefix: String,
    /// Effective model allow-list; `None` means all models.
    models: Option<Vec<String>>,
    rpm: String,
    budget: String,
    ips: String,
}

/// One [`Capability`] per demo key, from the store's records.
pub(crate) fn capabilities(demo: &Demo) -> Result<Vec<Capability>, Error> {
    let op = Actor::Operator;
    let mut out = Vec::with_capacity(demo.keys.len());
    for k in &demo.keys {
        let info = &k.created.info;
        let config = demo.store.org_configs().retrieve(&op, &info.org)?.config;
        out.push(Capability {
            org: info.org.to_string(),
            pattern: k.pattern,
            key: info.spec.name.clone(),
            prefix: info.prefix.clone(),
            models: effective_models(config.allowed_models(), &info.spec.allowed_models),
            rpm: rpm_text(&config, info.spec.rate_limit_rpm),
            budget: budget_text(&config, info.spec.budget.as_ref()),
            ips: ips_text(&config, &info.spec.allowed_ips),
        });
    }
    Ok(out)
}

/// Org allow-list intersected with the key's (absent or empty = no restriction there).
fn effective_models(org: Option<&[String]>, key: &[String]) -> Option<Vec<String>> {
    match (org, key.is_empty()) {
        (None, true) => None,
        (None, false) => Some(key.to_vec()),
        (Some(o), true) => Some(o.to_vec()),
        (Some(o), false) => Some(o.iter().filter(|m| key.contains(m)).cloned().collect()),
    }
}

fn rpm_text(config: &OrgConfig, key_rpm: Option<u32>) -> String {
    let rl = config.rate_limiting();
    let key = key_rpm
        .map(u64::from)
        .or(if rl.enabled { rl.per_key_rpm } else { None });
    let org = if rl.enabled { rl.rpm } else { None };
    match (key, org) {
        (None, None) => "unlimited".into(),
        (Some(k), None) => k.to_string(),
        (None, Some(o)) => format!("{o} (org)"),
        (Some(k), Some(o)) => format!("{k} (org {o})"),
    }
}

fn budget_text(config: &OrgConfig, key: Option<&orgstore::Budget>) -> String {
    let mut parts = Vec::new();
    if let Some(b) = config.budgets()
        && b.enabled
        && let Some(limit) = b.limit
    {
        parts.push(format!("${limit}{} (org)", per(b.period)));
    }
    if let Some(b) = key {
        parts.push(format!("${}{} (key)", b.limit, per(b.period)));
    }
    if parts.is_empty() {
        "unlimited".into()
    } else {
        parts.join(" + ")
    }
}

/// The org's IP rules and the key's allow-list, `any` when neither restricts.
fn ips_text(config: &OrgConfig, key: &[String]) -> String {
    let mut parts = Vec::new();
    if config.ip_acl().is_active() {
        let masked = json_value(&config.to_masked_json()).unwrap_or_default();
        let acl = &masked["ip_acl"];
        let list = |field: &str| -> Vec<String> {
            acl[field]
                .as_array()
                .map(|a| {
                    a.iter()
                        .filter_map(|v| v.as_str().map(str::to_owned))
                        .collect()
                })
                .unwrap_or_default()
        };
        let (allow, deny) = (list("allow"), list("deny"));
        if !allow.is_empty() {
            parts.push(format!("{} (org)", allow.join(",")));
        }
        if !deny.is_empty() {
            parts.push(format!("not {} (org)", deny.join(",")));
        }
    }
    if !key.is_empty() {
        parts.push(format!("{} (key)", key.join(",")));
    }
    if parts.is_empty() {
        "any".into()
    } else {
        parts.join(" + ")
    }
}

/// One admin action tried as each role.
pub(crate) struct MatrixRow {
    action: &'static str,
    /// In [`MATRIX_MEMBERS`] order: `Ok(true)` allowed, `Ok(false)` denied, `Err` another error.
    results: Vec<Result<bool, String>>,
    /// The role matrix's answer, in [`MATRIX_MEMBERS`] order.
    expected: [bool; 4],
}

impl MatrixRow {
    /// Whether every role got the role matrix's answer.
    fn matches(&self) -> bool {
        self.results
            .iter()
            .zip(self.expected)
            .all(|(got, want)| got.as_ref().is_ok_and(|g| *g == want))
    }
}

type Trial = fn(&Store, &Actor, &OrgId, Role) -> Result<(), Error>;

/// Owner, Admin, Member, Viewer: the answers of the role matrix (README, "Roles").
const EVERY_ROLE: [bool; 4] = [true, true, true, true];
const ADMINS_UP: [bool; 4] = [true, true, false, false];
const MEMBERS_UP: [bool; 4] = [true, true, true, false];
const OWNERS_ONLY: [bool; 4] = [true, false, false, false];

/// Each admin action the demo tries, with the role matrix's answer for each role.
const TRIALS: &[(&str, [bool; 4], Trial)] = &[
    ("read config", EVERY_ROLE, |s, a, o, _| {
        s.org_configs().retrieve(a, o).map(drop)
    }),
    ("update config", ADMINS_UP, |s, a, o, _| {
        s.org_configs()
            .update(a, o, r#"{"cache":{"enabled":true}}"#)
            .map(drop)
    }),
    ("reveal secrets", ADMINS_UP, |s, a, o, _| {
        s.org_configs().reveal(a, o, None).map(drop)
    }),
    ("list members", EVERY_ROLE, |s, a, o, _| {
        s.members().list(a, o).map(drop)
    }),
    ("add a viewer", ADMINS_UP, |s, a, o, r| {
        let email = Email::parse(&format!("new-{}@internal.example", r.as_str()))?;
        s.members().add(a, o, &email, Role::Viewer).map(drop)
    }),
    ("create a key", MEMBERS_UP, |s, a, o, r| {
        let month = Timestamp::from_micros(Timestamp::now().as_micros() + 30 * 86_400 * 1_000_000);
        let spec = KeySpec::new(format!("trial-{}", r.as_str())).expires_at(month);
        s.keys().create(a, o, spec).map(drop)
    }),
    ("list keys", EVERY_ROLE, |s, a, o, _| {
        s.keys().list(a, o).map(drop)
    }),
    ("revoke another's key", ADMINS_UP, |s, a, o, r| {
        let other = s.keys().create(
            &Actor::Operator,
            o,
            KeySpec::new(format!("victim-{}", r.as_str())),
        )?;
        s.keys().revoke(a, &other.info.id).map(drop)
    }),
    ("read audit log", ADMINS_UP, |s, a, o, _| {
        s.audit().list(a, o, 10).map(drop)
    }),
    ("delete org", OWNERS_ONLY, |s, a, _, r| {
        // A sandbox org per role, so that a permitted deletion leaves the demo intact.
        let sandbox = OrgId::parse(&format!("sandbox-{}", r.as_str()))?;
        let owner = Email::parse(MATRIX_MEMBERS[0].1)?;
        s.orgs()
            .create(&Actor::Operator, &sandbox, "Sandbox", &owner)?;
        if let Actor::Member(me) = a
            && r != Role::Owner
        {
            s.members().add(&Actor::Operator, &sandbox, me, r)?;
        }
        s.orgs().delete(a, &sandbox).map(drop)
    }),
];

/// Tries each admin action through the store API as the member of [`MATRIX_ORG`] holding
/// each role. The answers come from the active Cedar policies (the operator may do all).
pub(crate) fn role_matrix(demo: &Demo) -> Result<Vec<MatrixRow>, Error> {
    let org = OrgId::parse(MATRIX_ORG)?;
    let mut rows = Vec::with_capacity(TRIALS.len());
    for (action, expected, trial) in TRIALS {
        let mut results = Vec::with_capacity(MATRIX_MEMBERS.len());
        for (role, email) in MATRIX_MEMBERS {
            let actor = Actor::Member(Email::parse(email)?);
            results.push(match trial(&demo.store, &actor, &org, role) {
                Ok(()) => Ok(true),
                Err(e) if e.kind() == ErrorKind::Denied => Ok(false),
                Err(e) => Err(e.to_string()),
            });
        }
        rows.push(MatrixRow {
            action,
            results,
            expected: *expected,
        });
    }
    Ok(rows)
}

/// Models every demo key is tried with.
const TRIAL_MODELS: [&str; 3] = ["gpt-4o", "gpt-4o-mini", "claude-sonnet-4-6"];
/// Client addresses every demo key is tried from: inside and outside Customer B's network.
const TRIAL_ADDRESSES: [IpAddr; 2] = [
    IpAddr::V4(Ipv4Addr::new(203, 0, 113, 7)),
    IpAddr::V4(Ipv4Addr::new(198, 51, 100, 20)),
];
/// The key whose requests-per-minute limit the demo reaches.
const RPM_KEY: (&str, &str) = ("internal", "Marketing");
/// The org whose budget the demo spends, and the cost of each of its requests.
const BUDGET_ORG: &str = "customer-a";
const BUDGET_STEP: &str = "25";

/// One demo key called from one address with each of [`TRIAL_MODELS`].
pub(crate) struct GatewayRow {
    org: String,
    key: String,
    address: IpAddr,
    /// In [`TRIAL_MODELS`] order.
    results: Vec<Result<(), Denial>>,
}

/// The demo key of `org` named `name`.
fn demo_key<'d>(demo: &'d Demo, org: &str, name: &str) -> Result<&'d DemoKey, CliError> {
    demo.keys
        .iter()
        .find(|k| k.created.info.org.as_str() == org && k.created.info.spec.name == name)
        .ok_or_else(|| CliError::invalid("demo", format!("no key {org}/{name} in the plan")))
}

/// Every demo key against every model from every address. A granted request is settled at
/// once with zero usage, as a gateway would after an empty response, so that its cost
/// estimate no longer counts against the budgets.
pub(crate) fn gateway_trials(demo: &Demo) -> Vec<GatewayRow> {
    let gw = demo.store.gateway();
    let mut rows = Vec::new();
    for k in &demo.keys {
        for address in TRIAL_ADDRESSES {
            let results = TRIAL_MODELS
                .iter()
                .map(|model| {
                    let req = Request::new(k.created.key.expose(), model, address);
                    gw.check(&req)
                        .map(|grant| gw.record_usage(&grant, Usage::default()))
                })
                .collect();
            rows.push(GatewayRow {
                org: k.created.info.org.to_string(),
                key: k.created.info.spec.name.clone(),
                address,
                results,
            });
        }
    }
    rows
}

/// A burst of requests on [`RPM_KEY`] until its requests-per-minute limit refuses one.
pub(crate) struct Burst {
    key: &'static str,
    limit: u64,
    /// Requests of this minute made before the burst (by the trials).
    before: u64,
    allowed: u64,
    /// `x-ratelimit-remaining-requests` after the first and the last granted request of the burst.
    remaining: Option<(u64, u64)>,
    denial: Option<Denial>,
}

pub(crate) fn rate_burst(demo: &Demo) -> Result<Burst, CliError> {
    let k = demo_key(demo, RPM_KEY.0, RPM_KEY.1)?;
    let gw = demo.store.gateway();
    let mut burst = Burst {
        key: RPM_KEY.1,
        limit: u64::from(k.created.info.spec.rate_limit_rpm.unwrap_or(0)),
        before: 0,
        allowed: 0,
        remaining: None,
        denial: None,
    };
    // Far more than any demo limit; stops at the first refusal.
    for _ in 0..10_000 {
        let req = Request::new(k.created.key.expose(), "gpt-4o-mini", TRIAL_ADDRESSES[0]);
        match gw.check(&req) {
            Ok(grant) => {
                if let Some(h) = grant.rate_headers() {
                    burst.limit = h.limit;
                    burst.remaining = Some(match burst.remaining {
                        None => {
                            burst.before = h.limit.saturating_sub(h.remaining + 1);
                            (h.remaining, h.remaining)
                        }
                        Some((first, _)) => (first, h.remaining),
                    });
                }
                burst.allowed += 1;
                gw.record_usage(&grant, Usage::new(120, 80, Usd::ZERO));
            }
            Err(d) => {
                burst.denial = Some(d);
                break;
            }
        }
    }
    Ok(burst)
}

/// One request of [`budget_run`].
pub(crate) struct BudgetStep {
    /// What is left of the budget after the request was recorded, when granted.
    result: Result<(Usd, bool), Denial>,
}

/// Requests on [`BUDGET_ORG`]'s key, each reserving [`BUDGET_STEP`] dollars and then
/// recording that cost, until the org's budget refuses one.
pub(crate) struct BudgetRun {
    org: &'static str,
    limit: Option<Usd>,
    step: Usd,
    steps: Vec<BudgetStep>,
}

pub(crate) fn budget_run(demo: &Demo) -> Result<BudgetRun, CliError> {
    let op = Actor::Operator;
    let org = OrgId::parse(BUDGET_ORG)?;
    let k = demo
        .keys
        .iter()
        .find(|k| k.created.info.org == org)
        .ok_or_else(|| CliError::invalid("demo", format!("no key in {BUDGET_ORG}")))?;
    let step = Usd::parse(BUDGET_STEP)?;
    let gw = demo.store.gateway();
    let limit = demo.store.orgs().usage(&op, &org)?.budget.map(|b| b.limit);
    let mut steps = Vec::new();
    for _ in 0..100 {
        let req =
            Request::new(k.created.key.expose(), "gpt-4o-mini", TRIAL_ADDRESSES[0]).estimate(step);
        match gw.check(&req) {
            Ok(grant) => {
                let warning = grant.budget_warning();
                gw.record_usage(&grant, Usage::new(900_000, 300_000, step));
                let left = demo.store.orgs().usage(&op, &org)?.budget;
                steps.push(BudgetStep {
                    result: Ok((left.map_or(Usd::ZERO, |b| b.remaining), warning)),
                });
            }
            Err(d) => {
                steps.push(BudgetStep { result: Err(d) });
                break;
            }
        }
    }
    Ok(BudgetRun {
        org: BUDGET_ORG,
        limit,
        step,
        steps,
    })
}

pub(crate) fn run(ctx: &Ctx, out: &mut Out) -> Result<(), CliError> {
    let demo = build(&ctx.builder())?;
    let caps = capabilities(&demo)?;
    let matrix = role_matrix(&demo)?;
    let trials = gateway_trials(&demo);
    let burst = rate_burst(&demo)?;
    let spend = budget_run(&demo)?;
    if ctx.json {
        return out.json(&json!({
            "keys": caps_json(&caps),
            "roles": matrix_json(&matrix),
            "gateway": trials_json(&trials),
            "rate_limit": burst_json(&burst),
            "budget": budget_json(&spend),
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
    Ok(())
}

fn print_trials(out: &mut Out, rows: &[GatewayRow]) {
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

fn print_burst(out: &mut Out, b: &Burst) {
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

fn print_budget(out: &mut Out, run: &BudgetRun) {
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

fn trials_json(rows: &[GatewayRow]) -> Value {
    let mut all = Vec::new();
    for r in rows {
        for (model, res) in TRIAL_MODELS.iter().zip(&r.results) {
            let mut v = match res {
                Ok(()) => json!({ "allowed": true }),
                Err(d) => denial_json(d),
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

fn burst_json(b: &Burst) -> Value {
    json!({
        "key": b.key,
        "rpm": b.limit,
        "made_before": b.before,
        "allowed": b.allowed,
        "denied": b.denial.as_ref().map(denial_json),
    })
}

fn budget_json(run: &BudgetRun) -> Value {
    let steps: Vec<Value> = run
        .steps
        .iter()
        .map(|s| match &s.result {
            Ok((left, warning)) => json!({
                "allowed": true,
                "remaining": usd_json(*left),
                "budget_warning": warning,
            }),
            Err(d) => denial_json(d),
        })
        .collect();
    json!({
        "org": run.org,
        "limit": run.limit.map(usd_json),
        "cost_per_request": usd_json(run.step),
        "requests": steps,
    })
}

fn caps_json(caps: &[Capability]) -> Value {
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

fn matrix_json(rows: &[MatrixRow]) -> Value {
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
