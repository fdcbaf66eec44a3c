//! Requests through the gateway: model and address trials, a rate burst, a budget run.

use super::*;

/// Models every demo key is tried with.
pub(super) const TRIAL_MODELS: [&str; 3] = ["gpt-4o", "gpt-4o-mini", "claude-sonnet-4-6"];
/// Client addresses every demo key is tried from: inside and outside Customer B's network.
pub(super) const TRIAL_ADDRESSES: [IpAddr; 2] = [
    IpAddr::V4(Ipv4Addr::new(203, 0, 113, 7)),
    IpAddr::V4(Ipv4Addr::new(198, 51, 100, 20)),
];
/// The key whose requests-per-minute limit the demo reaches.
pub(super) const RPM_KEY: (&str, &str) = ("internal", "Marketing");
/// The org whose budget the demo spends, and the cost of each of its requests.
pub(super) const BUDGET_ORG: &str = "customer-a";
pub(super) const BUDGET_STEP: &str = "25";

/// One demo key called from one address with each of [`TRIAL_MODELS`].
pub(crate) struct GatewayRow {
    pub(super) org: String,
    pub(super) key: String,
    pub(super) address: IpAddr,
    /// In [`TRIAL_MODELS`] order.
    pub(super) results: Vec<Result<(), Denial>>,
}

/// The demo key of `org` named `name`.
pub(super) fn demo_key<'d>(demo: &'d Demo, org: &str, name: &str) -> Result<&'d DemoKey, CliError> {
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
    pub(super) key: &'static str,
    pub(super) limit: u64,
    /// Requests of this minute made before the burst (by the trials).
    pub(super) before: u64,
    pub(super) allowed: u64,
    /// `x-ratelimit-remaining-requests` after the first and the last granted request of the burst.
    pub(super) remaining: Option<(u64, u64)>,
    pub(super) denial: Option<Denial>,
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
    pub(super) result: Result<(Usd, bool), Denial>,
}

/// Requests on [`BUDGET_ORG`]'s key, each reserving [`BUDGET_STEP`] dollars and then
/// recording that cost, until the org's budget refuses one.
pub(crate) struct BudgetRun {
    pub(super) org: &'static str,
    pub(super) limit: Option<Usd>,
    pub(super) step: Usd,
    pub(super) steps: Vec<BudgetStep>,
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
