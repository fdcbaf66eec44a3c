//! Proof that the gateway's memoized decisions equal a fresh evaluation: for random orgs,
//! keys, models, addresses, operator policies and updates, `Gateway::check` gives exactly
//! what the native checks plus a fresh Cedar `is_authorized` (built here from the policy
//! files, independently of the library's policy module) give.

use cedar_policy::{
    Authorizer, Context, Decision, Entities, Entity, EntityUid, PolicySet, Request as CedarRequest,
    RestrictedExpression,
};
use ipnet::IpNet;
use orgstore::*;
use proptest::prelude::*;
use std::collections::{HashMap, HashSet};
use std::net::IpAddr;
use std::str::FromStr;

const MODELS: [&str; 4] = ["gpt-4o", "gpt-4o-mini", "claude-sonnet-4-6", "o1"];
const NETS: [&str; 3] = ["10.0.0.0/8", "10.1.0.0/16", "192.168.1.7"];
const ADDRS: [&str; 4] = ["10.1.2.3", "10.9.9.9", "192.168.1.7", "2001:db8::1"];

#[derive(Clone, Debug)]
struct OrgPlan {
    models: Option<Vec<usize>>,
    allow: Vec<usize>,
    deny: Vec<usize>,
    suspended: bool,
    keys: Vec<KeyPlan>,
}

#[derive(Clone, Debug)]
struct KeyPlan {
    models: Vec<usize>,
    ips: Vec<usize>,
    revoked: bool,
}

#[derive(Clone, Debug)]
enum Update {
    OrgModels(usize, Option<Vec<usize>>),
    Revoke(usize, usize),
    KeyModels(usize, usize, Vec<usize>),
    Suspend(usize, bool),
    Policy(usize),
}

fn subset(n: usize) -> impl Strategy<Value = Vec<usize>> {
    proptest::collection::vec(0..n, 0..=n).prop_map(|mut v| {
        v.sort_unstable();
        v.dedup();
        v
    })
}

fn key_plan() -> impl Strategy<Value = KeyPlan> {
    (
        subset(MODELS.len()),
        subset(NETS.len()),
        proptest::bool::weighted(0.2),
    )
        .prop_map(|(models, ips, revoked)| KeyPlan {
            models,
            ips,
            revoked,
        })
}

fn org_plan() -> impl Strategy<Value = OrgPlan> {
    (
        proptest::option::of(subset(MODELS.len())),
        subset(NETS.len()),
        subset(NETS.len()),
        proptest::bool::weighted(0.2),
        proptest::collection::vec(key_plan(), 1..4),
    )
        .prop_map(|(models, allow, deny, suspended, keys)| OrgPlan {
            models,
            allow,
            deny,
            suspended,
            keys,
        })
}

fn update() -> impl Strategy<Value = Update> {
    prop_oneof![
        (0..3usize, proptest::option::of(subset(MODELS.len())))
            .prop_map(|(o, m)| Update::OrgModels(o, m)),
        (0..3usize, 0..3usize).prop_map(|(o, k)| Update::Revoke(o, k)),
        (0..3usize, 0..3usize, subset(MODELS.len()))
            .prop_map(|(o, k, m)| Update::KeyModels(o, k, m)),
        (0..3usize, any::<bool>()).prop_map(|(o, s)| Update::Suspend(o, s)),
        (0..4usize).prop_map(Update::Policy),
    ]
}

/// Operator policy variants: none, an org-wide forbid, a one-key forbid, a model forbid.
fn policy_text(variant: usize, keys: &[Vec<KeyId>]) -> String {
    match variant {
        1 => r#"@id("org0-no-gpt-4o")
forbid (principal in Org::"org-0", action == Action::"invoke", resource == Model::"gpt-4o");"#
            .to_owned(),
        2 => format!(
            "@id(\"one-key-no-o1\")\nforbid (principal == Key::\"{}\", action == Action::\"invoke\", resource == Model::\"o1\");",
            keys[0][0]
        ),
        3 => r#"@id("no-claude")
forbid (principal, action == Action::"invoke", resource == Model::"claude-sonnet-4-6");"#
            .to_owned(),
        _ => String::new(),
    }
}

struct World {
    store: Store,
    orgs: Vec<OrgPlan>,
    org_ids: Vec<OrgId>,
    keys: Vec<Vec<(KeyId, String)>>,
    policy: usize,
    dir: tempfile::TempDir,
}

impl World {
    fn build(orgs: Vec<OrgPlan>) -> World {
        let store = Store::open_temporary().unwrap();
        let op = Actor::Operator;
        let mut org_ids = Vec::new();
        let mut keys = Vec::new();
        for (i, plan) in orgs.iter().enumerate() {
            let id = OrgId::parse(&format!("org-{i}")).unwrap();
            store
                .orgs()
                .create(&op, &id, "Org", &Email::parse("o@x.io").unwrap())
                .unwrap();
            store
                .org_configs()
                .update(&op, &id, &org_config(plan))
                .unwrap();
            if plan.suspended {
                store.orgs().suspend(&op, &id).unwrap();
            }
            let mut ks = Vec::new();
            for k in &plan.keys {
                let spec = KeySpec::new("k")
                    .models(k.models.iter().map(|&m| MODELS[m]))
                    .ips(k.ips.iter().map(|&n| NETS[n]));
                let c = store.keys().create(&op, &id, spec).unwrap();
                if k.revoked {
                    store.keys().revoke(&op, &c.info.id).unwrap();
                }
                ks.push((c.info.id, c.key.expose().to_owned()));
            }
            org_ids.push(id);
            keys.push(ks);
        }
        World {
            store,
            orgs,
            org_ids,
            keys,
            policy: 0,
            dir: tempfile::tempdir().unwrap(),
        }
    }

    fn key_ids(&self) -> Vec<Vec<KeyId>> {
        self.keys
            .iter()
            .map(|ks| ks.iter().map(|k| k.0).collect())
            .collect()
    }

    fn apply(&mut self, u: &Update) {
        let op = Actor::Operator;
        let n = self.orgs.len();
        match u {
            Update::OrgModels(o, m) => {
                let o = o % n;
                self.orgs[o].models = m.clone();
                let patch = match m {
                    Some(m) => format!(r#"{{"allowed_models":{}}}"#, names(m)),
                    None => r#"{"allowed_models":null}"#.to_owned(),
                };
                self.store
                    .org_configs()
                    .update(&op, &self.org_ids[o], &patch)
                    .unwrap();
            }
            Update::Revoke(o, k) => {
                let o = o % n;
                let k = k % self.keys[o].len();
                if !self.orgs[o].keys[k].revoked {
                    self.orgs[o].keys[k].revoked = true;
                    self.store.keys().revoke(&op, &self.keys[o][k].0).unwrap();
                }
            }
            Update::KeyModels(o, k, m) => {
                let o = o % n;
                let k = k % self.keys[o].len();
                if self.orgs[o].keys[k].revoked {
                    return;
                }
                self.orgs[o].keys[k].models = m.clone();
                let plan = &self.orgs[o].keys[k];
                let spec = KeySpec::new("k")
                    .models(plan.models.iter().map(|&m| MODELS[m]))
                    .ips(plan.ips.iter().map(|&n| NETS[n]));
                self.store
                    .keys()
                    .update(&op, &self.keys[o][k].0, spec)
                    .unwrap();
            }
            Update::Suspend(o, s) => {
                let o = o % n;
                if self.orgs[o].suspended != *s {
                    self.orgs[o].suspended = *s;
                    let id = &self.org_ids[o];
                    if *s {
                        self.store.orgs().suspend(&op, id).unwrap();
                    } else {
                        self.store.orgs().resume(&op, id).unwrap();
                    }
                }
            }
            Update::Policy(v) => {
                self.policy = *v;
                let text = policy_text(*v, &self.key_ids());
                std::fs::write(self.dir.path().join("operator.cedar"), text).unwrap();
                self.store
                    .policy_set()
                    .apply_dir(&orgstore::Actor::Operator, self.dir.path())
                    .unwrap();
            }
        }
    }

    /// What the native checks plus a fresh Cedar evaluation say.
    fn expected(&self, o: usize, k: usize, model: usize, addr: &str) -> Result<(), &'static str> {
        let org = &self.orgs[o];
        let key = &org.keys[k];
        if key.revoked {
            return Err("revoked");
        }
        if org.suspended {
            return Err("org_suspended");
        }
        let ip: IpAddr = addr.parse().unwrap();
        let nets = |ix: &[usize]| ix.iter().map(|&i| net(NETS[i])).collect::<Vec<_>>();
        let org_ok = !nets(&org.deny).iter().any(|n| n.contains(&ip))
            && (org.allow.is_empty() || nets(&org.allow).iter().any(|n| n.contains(&ip)));
        let key_ok = key.ips.is_empty() || nets(&key.ips).iter().any(|n| n.contains(&ip));
        if !(org_ok && key_ok) {
            return Err("ip_not_allowed");
        }
        let in_org = org.models.as_ref().is_none_or(|m| m.contains(&model));
        let in_key = key.models.is_empty() || key.models.contains(&model);
        if !(in_org && in_key) {
            return Err("model_not_allowed");
        }
        if fresh_cedar(
            &self.org_ids[o],
            &self.keys[o][k].0,
            MODELS[model],
            &policy_text(self.policy, &self.key_ids()),
        ) {
            Ok(())
        } else {
            Err("policy_denied")
        }
    }

    fn actual(&self, o: usize, k: usize, model: usize, addr: &str) -> Result<(), &'static str> {
        let req = Request::new(&self.keys[o][k].1, MODELS[model], addr.parse().unwrap())
            .estimate(Usd::ZERO);
        self.store
            .gateway()
            .check(&req)
            .map(drop)
            .map_err(|d| d.code())
    }

    fn compare_all(&self) -> Result<(), TestCaseError> {
        for o in 0..self.orgs.len() {
            for k in 0..self.keys[o].len() {
                for (m, model) in MODELS.iter().enumerate() {
                    for a in ADDRS {
                        // Twice: the first may evaluate, the second is served by the memo.
                        for _ in 0..2 {
                            prop_assert_eq!(
                                self.actual(o, k, m, a),
                                self.expected(o, k, m, a),
                                "org {} key {} model {} addr {}",
                                o,
                                k,
                                model,
                                a
                            );
                        }
                    }
                }
            }
        }
        Ok(())
    }
}

fn names(ix: &[usize]) -> String {
    serde_json::to_string(&ix.iter().map(|&i| MODELS[i]).collect::<Vec<_>>()).unwrap()
}

fn org_config(p: &OrgPlan) -> String {
    let nets = |ix: &[usize]| {
        serde_json::to_string(&ix.iter().map(|&i| NETS[i]).collect::<Vec<_>>()).unwrap()
    };
    let mut c = format!(
        r#"{{"ip_acl":{{"allow":{},"deny":{}}}"#,
        nets(&p.allow),
        nets(&p.deny)
    );
    if let Some(m) = &p.models {
        c.push_str(&format!(r#","allowed_models":{}"#, names(m)));
    }
    c.push('}');
    c
}

fn net(s: &str) -> IpNet {
    s.parse::<IpNet>()
        .unwrap_or_else(|_| IpNet::from(s.parse::<IpAddr>().unwrap()))
}

/// A fresh Cedar evaluation built only from the policy files and the store's relations.
fn fresh_cedar(org: &OrgId, key: &KeyId, model: &str, operator: &str) -> bool {
    let text = format!(
        "{}\n{}\n{}",
        include_str!("../../policies/roles.cedar"),
        include_str!("../../policies/gateway.cedar"),
        operator
    );
    let policies = PolicySet::from_str(&text).unwrap();
    let uid = |t: &str, id: &str| {
        EntityUid::from_type_name_and_id(t.parse().unwrap(), cedar_policy::EntityId::new(id))
    };
    let org_uid = uid("Org", org.as_str());
    let key_uid = uid("Key", &key.to_string());
    let attrs = HashMap::from([(
        "org".to_owned(),
        RestrictedExpression::new_entity_uid(org_uid.clone()),
    )]);
    let key_entity = Entity::new(key_uid.clone(), attrs, HashSet::from([org_uid])).unwrap();
    let entities = Entities::from_entities([key_entity], None).unwrap();
    let context = Context::from_pairs([
        (
            "ip_allowed".to_owned(),
            RestrictedExpression::new_bool(true),
        ),
        (
            "model_allowed".to_owned(),
            RestrictedExpression::new_bool(true),
        ),
    ])
    .unwrap();
    let request = CedarRequest::new(
        key_uid,
        uid("Action", "invoke"),
        uid("Model", model),
        context,
        None,
    )
    .unwrap();
    let response = Authorizer::new().is_authorized(&request, &policies, &entities);
    response.decision() == Decision::Allow && response.diagnostics().errors().next().is_none()
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 24, ..ProptestConfig::default() })]

    #[test]
    fn check_equals_native_checks_plus_fresh_cedar(
        orgs in proptest::collection::vec(org_plan(), 1..4),
        policy in 0..4usize,
        updates in proptest::collection::vec(update(), 0..6),
    ) {
        let mut w = World::build(orgs);
        w.apply(&Update::Policy(policy));
        w.compare_all()?;
        for u in &updates {
            w.apply(u);
            w.compare_all()?;
        }
    }
}
