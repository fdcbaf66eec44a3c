//! The classes of the impact analysis against the request-by-request analysis, on small
//! random stores and random pairs of policy sets, with rules that name users, keys, orgs,
//! memberships and models, read emails, and relate the actor to a key's creator.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use proptest::prelude::*;

use crate::model::{Actor, Email, OrgId, Role};
use crate::{KeySpec, Policies, Store};

const EMAILS: [&str; 5] = ["a@x.io", "b@x.io", "c@y.io", "d@y.io", "e@x.io"];
const ORGS: [&str; 2] = ["acme", "beta"];

/// The rules a set is drawn from; `{key}` is replaced by the id of a key of the store.
const RULES: [&str; 10] = [
    include_str!("../../policies/examples/require-key-expiry.cedar"),
    "@id(\"r1\")\nforbid (principal == User::\"a@x.io\", action == Action::\"ReadOrg\", resource);\n",
    "@id(\"r2\")\nforbid (principal, action == Action::\"ManageKey\", resource)\nwhen { resource has creator && resource.creator == principal };\n",
    "@id(\"r3\")\npermit (principal, action == Action::\"DeleteOrg\", resource)\nwhen { principal.email like \"*@x.io\" };\n",
    "@id(\"r4\")\nforbid (principal, action == Action::\"invoke\", resource)\nwhen { principal == Key::\"{key}\" };\n",
    "@id(\"r5\")\nforbid (principal, action == Action::\"invoke\", resource == Model::\"gpt-4o\");\n",
    "@id(\"r6\")\nforbid (principal, action == Action::\"RemoveMember\", resource == Membership::\"acme/c@y.io\");\n",
    "@id(\"r7\")\nforbid (principal, action == Action::\"ListKeys\", resource)\nwhen { resource == Org::\"beta\" };\n",
    "@id(\"r8\")\nforbid (principal, action == Action::\"ChangeRole\", resource)\nwhen { context.new_role == \"owner\" && resource.member != principal };\n",
    "@id(\"r9\")\nforbid (principal, action == Action::\"ManageKey\", resource == Key::\"{key}\");\n",
];

fn set(mask: u16, key: &str) -> Vec<(String, String)> {
    RULES
        .iter()
        .enumerate()
        .filter(|(i, _)| mask & (1 << i) != 0)
        .map(|(i, r)| (format!("r{i}.cedar"), r.replace("{key}", key)))
        .collect()
}

#[derive(Debug, Clone)]
struct Plan {
    /// (org, email, role) memberships to add.
    members: Vec<(usize, usize, u8)>,
    /// (org, creator: None = the operator, models) keys to create.
    keys: Vec<(usize, Option<usize>, u8)>,
    active: u16,
    proposed: u16,
}

fn plan() -> impl Strategy<Value = Plan> {
    (
        proptest::collection::vec((0..2usize, 0..5usize, 0..4u8), 0..8),
        proptest::collection::vec((0..2usize, proptest::option::of(0..5usize), 0..4u8), 1..8),
        0..1024u16,
        0..1024u16,
    )
        .prop_map(|(members, keys, active, proposed)| Plan {
            members,
            keys,
            active,
            proposed,
        })
}

fn build(p: &Plan) -> (Store, String) {
    let store = Store::open_temporary().unwrap();
    let op = Actor::Operator;
    for (i, o) in ORGS.iter().enumerate() {
        let org = OrgId::parse(o).unwrap();
        store
            .orgs()
            .create(&op, &org, o, &Email::parse(EMAILS[i]).unwrap())
            .unwrap();
    }
    for (o, e, r) in &p.members {
        let org = OrgId::parse(ORGS[*o]).unwrap();
        // Already a member (the owner, or drawn twice): skip.
        let _ = store.members().add(
            &op,
            &org,
            &Email::parse(EMAILS[*e]).unwrap(),
            Role::ALL[usize::from(*r)],
        );
    }
    let mut first = String::from("key_00000000000000000000000000000000");
    for (n, (o, by, models)) in p.keys.iter().enumerate() {
        let org = OrgId::parse(ORGS[*o]).unwrap();
        let spec = match models {
            0 => KeySpec::new("k"),
            1 => KeySpec::new("k").models(["gpt-4o"]),
            2 => KeySpec::new("k").models(["house-model", "gpt-4o-mini"]),
            _ => KeySpec::new("k").models(["llama-3-70b"]),
        };
        let actor = by.map_or(Actor::Operator, |e| {
            Actor::member(Email::parse(EMAILS[e]).unwrap())
        });
        // A person who may not create keys there: the operator creates it.
        let created = store
            .keys()
            .create(&actor, &org, spec.clone())
            .or_else(|_| store.keys().create(&op, &org, spec))
            .unwrap();
        if n == 0 {
            first = created.info.id.to_string();
        }
    }
    (store, first)
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 24, ..ProptestConfig::default() })]

    #[test]
    fn classes_give_exactly_the_request_by_request_report(p in plan()) {
        let (store, key) = build(&p);
        store.policy_set().apply(&Actor::Operator, &set(p.active, &key)).unwrap();
        let proposed = Policies::from_files(&set(p.proposed, &key)).unwrap();
        let fast = store.policy_impact(&proposed).unwrap();
        let naive = store.policy_impact_unmemoized(&proposed).unwrap();
        prop_assert_eq!(&fast.changes, &naive.changes);
        prop_assert_eq!(fast.evaluated, naive.evaluated);
        prop_assert_eq!(naive.distinct, naive.evaluated);
        prop_assert!(fast.distinct <= fast.evaluated);
    }
}
