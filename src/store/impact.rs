//! Impact analysis: the store's own requests decided under the active and a proposed policy
//! set, and the decisions that differ. Reads one snapshot of the file; never touches the
//! gateway's memo or hot path.
//!
//! Exact and fast: Cedar cannot turn an entity id into a string, so two requests that
//! differ only by a consistent renaming of ids that no policy of either set names get the
//! same decision under each set. Each request is reduced to its class: the org (always
//! kept), the action, the actor's role, the context, which ids are the same person (the
//! actor, the member a membership is about, a key's creator), and the id itself of every
//! user or key that a policy literal mentions (or of the actor when some policy may read
//! the `email` attribute, the one attribute that holds an id). A class is decided once per
//! set; every request of it is reported with its own principal and resource.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::atomic::{AtomicUsize, Ordering};

use super::Store;
use super::records::KeyRecord;
use super::tables::{KEYS, ORGS};
use super::tx::ReadRecords;
use crate::error::Error;
use crate::model::{Actor, Email, KeyStatus, Member, Org, OrgStatus, Role};
use crate::policy::{AdminAction, AdminRequest, GatewayContext, Policies, Target, key_creator};
use redb::ReadableTable;

/// Models every key is also asked about, beside those its configs name.
pub const SAMPLE_MODELS: [&str; 4] = ["gpt-4o", "gpt-4o-mini", "claude-3-5-sonnet", "llama-3-70b"];

/// One decision that a proposed policy set changes.
#[derive(Clone, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
#[non_exhaustive]
pub struct DecisionChange {
    /// The principal, as a Cedar UID (`User::"a@b.io"`, `Key::"key_..."`).
    pub principal: String,
    /// The Cedar action, e.g. `CreateKey`.
    pub action: String,
    /// The resource, as a Cedar UID.
    pub resource: String,
    /// The context, e.g. `has_expiry: false` (empty when none).
    pub context: String,
    /// Allowed under the active set.
    pub before: bool,
    /// Allowed under the proposed set.
    pub after: bool,
    /// The deciding policy ids under the active set.
    pub before_policies: Vec<String>,
    /// The deciding policy ids under the proposed set.
    pub after_policies: Vec<String>,
}

/// What a proposed policy set would change. See [`Store::policy_impact`].
#[derive(Clone, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
#[non_exhaustive]
pub struct ImpactReport {
    /// How many requests were decided under each set.
    pub evaluated: u64,
    /// How many distinct classes of them Cedar evaluated (under each set); every request
    /// of a class has the same decisions.
    pub distinct: u64,
    /// Every decision that changes (allowed or not, or the deciding policies), in a stable
    /// order: orgs by id, then members by email, then keys by id.
    pub changes: Vec<DecisionChange>,
}

fn uid(ty: &str, id: &str) -> String {
    format!("{ty}::{}", serde_json::Value::String(id.to_owned()))
}

/// What the two sets can tell apart.
struct Naming {
    /// The ids of every entity literal of either set.
    ids: Vec<String>,
    /// Some policy may read the `email` attribute (of the actor, the one `User` entity of
    /// an admin request).
    emails_read: bool,
    /// Some literal could name a key (holds `key_`, which every key id starts with).
    keys_named: bool,
}

impl Naming {
    fn new(a: &Policies, b: &Policies) -> Self {
        let mut ids = a.named_entity_ids();
        ids.extend(b.named_entity_ids());
        ids.sort_unstable();
        ids.dedup();
        Self {
            keys_named: ids.iter().any(|n| n.contains("key_")),
            ids,
            emails_read: a.may_read_attribute("email") || b.may_read_attribute("email"),
        }
    }

    /// [`Naming::class`] of a key, without writing its id out when no literal could name
    /// any key.
    fn key_class(&self, id: &crate::model::KeyId) -> Option<String> {
        if self.keys_named {
            self.class(&id.to_string())
        } else {
            None
        }
    }

    /// `id` when a literal could name it (conservatively: any literal id containing it, as
    /// a `Membership` id holds an email), `None` when it is interchangeable.
    fn class(&self, id: &str) -> Option<String> {
        self.ids
            .iter()
            .any(|n| n.contains(id))
            .then(|| id.to_owned())
    }
}

/// A person of an admin request, relative to the actor.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
enum Person {
    Actor,
    Other(Option<String>),
    NoOne,
}

#[derive(Clone, Debug, PartialEq, Eq, Hash)]
enum TargetClass {
    Org,
    Config,
    NewKey(bool),
    Membership(Person, Option<Role>, Option<Role>),
    Key(Option<String>, Person),
}

/// An admin request up to renaming, within one org (its id and owner count are fixed).
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
struct AdminClass {
    action: AdminAction,
    role: Option<Role>,
    actor: Option<String>,
    target: TargetClass,
}

/// A gateway request up to renaming, within one org: the key when named and the context
/// (then the model, in an inner map looked up by `&str`).
type GatewayClass = (Option<String>, GatewayContext);

/// The two decisions of a class that changes.
#[derive(Clone, Debug)]
struct Verdicts {
    before: bool,
    after: bool,
    before_policies: Vec<String>,
    after_policies: Vec<String>,
}

impl Verdicts {
    /// `Some` when the decisions `(allowed, deciding ids)` before and after differ.
    fn between(before: (bool, Vec<String>), after: (bool, Vec<String>)) -> Option<Self> {
        (before != after).then_some(Self {
            before: before.0,
            after: after.0,
            before_policies: before.1,
            after_policies: after.1,
        })
    }

    fn change(
        self,
        principal: String,
        action: &str,
        resource: String,
        context: String,
    ) -> DecisionChange {
        DecisionChange {
            principal,
            action: action.to_owned(),
            resource,
            context,
            before: self.before,
            after: self.after,
            before_policies: self.before_policies,
            after_policies: self.after_policies,
        }
    }
}

struct Compare<'a> {
    active: &'a Policies,
    proposed: &'a Policies,
    naming: &'a Naming,
    /// Memoize per class (off only to check the classes against a request-by-request run).
    memoize: bool,
    admin_memo: HashMap<AdminClass, Option<Verdicts>>,
    gateway_memo: HashMap<GatewayClass, HashMap<String, Option<Verdicts>>>,
    report: ImpactReport,
}

impl Compare<'_> {
    fn admin_class(&self, req: &AdminRequest<'_>) -> AdminClass {
        let me = req.actor.email().map(Email::as_str);
        let actor = match me {
            Some(e) if self.naming.emails_read => Some(e.to_owned()),
            Some(e) => self.naming.class(e),
            None => None,
        };
        let person = |email: Option<&str>| match email {
            None => Person::NoOne,
            Some(e) if Some(e) == me => Person::Actor,
            Some(e) => Person::Other(self.naming.class(e)),
        };
        let target = match &req.target {
            Target::Org => TargetClass::Org,
            Target::Config => TargetClass::Config,
            Target::NewKey { has_expiry } => TargetClass::NewKey(*has_expiry),
            Target::Membership {
                email,
                role,
                new_role,
            } => TargetClass::Membership(person(Some(email.as_str())), *role, *new_role),
            Target::Key { id, created_by } => {
                let creator = key_creator(created_by);
                TargetClass::Key(
                    self.naming.key_class(id),
                    person(creator.as_ref().map(Email::as_str)),
                )
            }
        };
        AdminClass {
            action: req.action,
            role: req.actor_role,
            actor,
            target,
        }
    }

    fn admin(
        &mut self,
        req: &AdminRequest<'_>,
        resource: impl FnOnce() -> String,
        context: String,
    ) {
        self.report.evaluated += 1;
        let decide = |cmp: &mut Self| {
            cmp.report.distinct += 1;
            let a = cmp.active.explain(req);
            let b = cmp.proposed.explain(req);
            Verdicts::between((a.allowed, a.reasons), (b.allowed, b.reasons))
        };
        let verdicts = if self.memoize {
            let class = self.admin_class(req);
            match self.admin_memo.get(&class) {
                Some(v) => v.clone(),
                None => {
                    let v = decide(self);
                    self.admin_memo.insert(class, v.clone());
                    v
                }
            }
        } else {
            decide(self)
        };
        if let Some(v) = verdicts {
            let principal = req
                .actor
                .email()
                .map_or_else(String::new, |e| uid("User", e.as_str()));
            self.report.changes.push(v.change(
                principal,
                req.action.cedar_name(),
                resource(),
                context,
            ));
        }
    }

    fn gateway(
        &mut self,
        org: &Org,
        key: &KeyRecord,
        key_class: &Option<String>,
        model: &str,
        ctx: GatewayContext,
    ) {
        self.report.evaluated += 1;
        let decide = |cmp: &mut Self| {
            cmp.report.distinct += 1;
            let a = cmp.active.gateway_decide(&org.id, &key.info.id, model, ctx);
            let b = cmp
                .proposed
                .gateway_decide(&org.id, &key.info.id, model, ctx);
            Verdicts::between((a.allowed, a.policies), (b.allowed, b.policies))
        };
        let verdicts = if self.memoize {
            let class = (key_class.clone(), ctx);
            match self.gateway_memo.get(&class).and_then(|m| m.get(model)) {
                Some(v) => v.clone(),
                None => {
                    let v = decide(self);
                    self.gateway_memo
                        .entry(class)
                        .or_default()
                        .insert(model.to_owned(), v.clone());
                    v
                }
            }
        } else {
            decide(self)
        };
        if let Some(v) = verdicts {
            self.report.changes.push(v.change(
                uid("Key", &key.info.id.to_string()),
                "invoke",
                uid("Model", model),
                format!(
                    "ip_allowed: {}, model_allowed: {}",
                    ctx.ip_allowed, ctx.model_allowed
                ),
            ));
        }
    }
}

impl Store {
    /// Decides the store's own admin and gateway requests under the active policy set and
    /// under `proposed`, and reports every decision that differs (allowed or not, or the
    /// deciding policy ids). What is asked, for every live org:
    ///
    /// * every member, for every action on the org, its config and a new key (with and
    ///   without an expiry); on their own membership (leave); on a new membership and on one
    ///   member of each role (add, change role to each role, remove); on every key they
    ///   created and on one key of each other creator (the operator, each other member role);
    /// * every live key, for each model its org's and its own allow-lists name plus
    ///   [`SAMPLE_MODELS`], with the client address allowed and `model_allowed` as the
    ///   allow-lists say.
    ///
    /// It reads the file once and evaluates Cedar outside the gateway: the hot path and its
    /// memo are untouched. Requests that no policy of either set can tell apart are decided
    /// once (see [`ImpactReport::distinct`]), yet every request whose decision changes is
    /// listed. Operator requests are not Cedar decisions and are not listed.
    ///
    /// ```
    /// use orgstore::{Actor, Email, OrgId, Policies, Role, Store};
    /// let store = Store::open_temporary()?;
    /// let acme = OrgId::parse("acme")?;
    /// store.orgs().create(&Actor::Operator, &acme, "Acme", &Email::parse("o@acme.io")?)?;
    /// store.members().add(&Actor::Operator, &acme, &Email::parse("m@acme.io")?, Role::Member)?;
    /// let rule = "@id(\"no-new-keys\")\nforbid (principal, action == Action::\"CreateKey\", resource);\n";
    /// let proposed = Policies::from_files(&[("k.cedar".into(), rule.into())])?;
    /// let report = store.policy_impact(&proposed)?;
    /// // The owner and the member, each with and without an expiry.
    /// assert_eq!(report.changes.len(), 4);
    /// assert!(report.changes.iter().all(|c| c.action == "CreateKey" && c.before && !c.after));
    /// # Ok::<(), orgstore::Error>(())
    /// ```
    pub fn policy_impact(&self, proposed: &Policies) -> Result<ImpactReport, Error> {
        self.impact(proposed, true)
    }

    /// The analysis request by request, without classes: what the tests compare against.
    #[cfg(test)]
    pub(crate) fn policy_impact_unmemoized(
        &self,
        proposed: &Policies,
    ) -> Result<ImpactReport, Error> {
        self.impact(proposed, false)
    }

    fn impact(&self, proposed: &Policies, memoize: bool) -> Result<ImpactReport, Error> {
        let active = self.policies();
        let naming = Naming::new(&active, proposed);
        let work = self.read(read_orgs)?;
        // The orgs are independent (classes hold no org): shared out over the cores, each
        // worker taking the next org, and the reports put back in org order.
        let next = AtomicUsize::new(0);
        let run = || {
            let mut cmp = Compare {
                active: &active,
                proposed,
                naming: &naming,
                memoize,
                admin_memo: HashMap::new(),
                gateway_memo: HashMap::new(),
                report: ImpactReport {
                    evaluated: 0,
                    distinct: 0,
                    changes: Vec::new(),
                },
            };
            let mut done = Vec::new();
            loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                let Some(w) = work.get(i) else { break };
                cmp.admin_memo.clear();
                cmp.gateway_memo.clear();
                let before = (cmp.report.evaluated, cmp.report.distinct);
                let first = cmp.report.changes.len();
                admin_requests(&mut cmp, &w.org, &w.members, &w.keys);
                gateway_requests(&mut cmp, &w.org, &w.config, &w.keys);
                done.push((
                    i,
                    cmp.report.evaluated - before.0,
                    cmp.report.distinct - before.1,
                    cmp.report.changes.split_off(first),
                ));
            }
            done
        };
        let helpers = std::thread::available_parallelism()
            .map_or(1, |n| n.get())
            .min(work.len())
            .saturating_sub(1);
        let mut parts = std::thread::scope(|s| {
            // A helper that cannot be started leaves its share to the others.
            let handles: Vec<_> = (0..helpers)
                .filter_map(|_| {
                    std::thread::Builder::new()
                        .name("orgstore-impact".into())
                        .spawn_scoped(s, run)
                        .ok()
                })
                .collect();
            let mut parts = run();
            for h in handles {
                match h.join() {
                    Ok(p) => parts.extend(p),
                    Err(_) => {
                        return Err(Error::invalid(
                            "policies",
                            "the impact analysis failed; run it again",
                        ));
                    }
                }
            }
            Ok(parts)
        })?;
        parts.sort_unstable_by_key(|p| p.0);
        let mut report = ImpactReport {
            evaluated: 0,
            distinct: 0,
            changes: Vec::new(),
        };
        for (_, evaluated, distinct, changes) in parts {
            report.evaluated += evaluated;
            report.distinct += distinct;
            report.changes.extend(changes);
        }
        Ok(report)
    }
}

/// One live org and what is asked about it, read in one transaction.
struct OrgWork {
    org: Org,
    /// By email.
    members: Vec<Member>,
    /// Its live keys, by id.
    keys: Vec<KeyRecord>,
    config: crate::config::OrgConfig,
}

fn read_orgs(r: &redb::ReadTransaction) -> Result<Vec<OrgWork>, Error> {
    let mut orgs = Vec::new();
    let t = r.table(ORGS)?;
    for item in t.iter().map_err(|e| Error::storage("listing orgs", e))? {
        let (_, v) = item.map_err(|e| Error::storage("listing orgs", e))?;
        let org: Org = super::codec::decode("org", v.value())?;
        if org.status != OrgStatus::Deleted {
            orgs.push(org);
        }
    }
    drop(t);
    // One pass over every key (far cheaper than a lookup per key), grouped by org.
    let mut keys: HashMap<crate::model::OrgId, Vec<KeyRecord>> = HashMap::new();
    let t = r.table(KEYS)?;
    for item in t.iter().map_err(|e| Error::storage("listing keys", e))? {
        let (_, v) = item.map_err(|e| Error::storage("listing keys", e))?;
        let k: KeyRecord = super::codec::decode("key", v.value())?;
        if k.info.status == KeyStatus::Active {
            match keys.get_mut(&k.info.org) {
                Some(list) => list.push(k),
                None => {
                    keys.insert(k.info.org.clone(), vec![k]);
                }
            }
        }
    }
    drop(t);
    orgs.into_iter()
        .map(|org| {
            let mut members = r.members_of(&org.id)?;
            members.sort_by(|a, b| a.email.as_str().cmp(b.email.as_str()));
            let mut keys = keys.remove(&org.id).unwrap_or_default();
            // Id order is the order of their text (`key_` and fixed-width hex).
            keys.sort_unstable_by_key(|k| k.info.id);
            let (_, config) = r.active_config(&org)?;
            Ok(OrgWork {
                org,
                members,
                keys,
                config,
            })
        })
        .collect()
}

/// Which keys each member is asked about: every key they created, and the first key (in id
/// order) of each other kind of creator (the operator, or a member role; a creator who is
/// no longer a member counts as the operator).
struct KeysAsked<'k> {
    keys: &'k [KeyRecord],
    /// creator -> indices of their keys, ascending.
    own: HashMap<&'k str, Vec<usize>>,
    /// kind -> the first key of that kind, and the first whose creator differs from it.
    firsts: BTreeMap<&'static str, (usize, Option<usize>)>,
}

impl<'k> KeysAsked<'k> {
    fn new(members: &[Member], keys: &'k [KeyRecord]) -> Self {
        let roles: HashMap<&str, Role> =
            members.iter().map(|m| (m.email.as_str(), m.role)).collect();
        let mut own: HashMap<&str, Vec<usize>> = HashMap::new();
        let mut firsts: BTreeMap<&'static str, (usize, Option<usize>)> = BTreeMap::new();
        for (i, k) in keys.iter().enumerate() {
            let creator = k.info.created_by.as_str();
            own.entry(creator).or_default().push(i);
            let kind = roles.get(creator).map_or("operator", |r| r.as_str());
            match firsts.get_mut(kind) {
                None => {
                    firsts.insert(kind, (i, None));
                }
                Some((first, second @ None)) if keys[*first].info.created_by != creator => {
                    *second = Some(i);
                }
                Some(_) => {}
            }
        }
        Self { keys, own, firsts }
    }

    fn for_member(&self, m: &Member) -> Vec<usize> {
        let me = m.email.as_str();
        let mut out = self.own.get(me).cloned().unwrap_or_default();
        for (first, second) in self.firsts.values() {
            let pick = if self.keys[*first].info.created_by == me {
                *second
            } else {
                Some(*first)
            };
            out.extend(pick);
        }
        out.sort_unstable();
        out
    }
}

fn admin_requests(cmp: &mut Compare<'_>, org: &Org, members: &[Member], keys: &[KeyRecord]) {
    let fresh = crate::model::Email::parse("new-member@impact.invalid").ok();
    let one_per_role: Vec<&Member> = Role::ALL
        .iter()
        .filter_map(|role| members.iter().find(|m| m.role == *role))
        .collect();
    let asked = KeysAsked::new(members, keys);
    let org_uid = uid("Org", org.id.as_str());
    let config_uid = uid("Config", org.id.as_str());
    for m in members {
        let actor = Actor::Member(m.email.clone());
        let req = |action, target| AdminRequest {
            actor: &actor,
            actor_role: Some(m.role),
            action,
            org: &org.id,
            owner_count: org.owner_count,
            target,
        };
        for action in AdminAction::ALL {
            let (target, resource) = match action {
                AdminAction::UpdateConfig | AdminAction::RevealSecrets => {
                    (Target::Config, &config_uid)
                }
                AdminAction::CreateKey => {
                    for has_expiry in [false, true] {
                        cmp.admin(
                            &req(action, Target::NewKey { has_expiry }),
                            || org_uid.clone(),
                            format!("has_expiry: {has_expiry}"),
                        );
                    }
                    continue;
                }
                AdminAction::AddMember
                | AdminAction::ChangeRole
                | AdminAction::RemoveMember
                | AdminAction::LeaveOrg
                | AdminAction::ManageKey
                | AdminAction::CreateOrg
                | AdminAction::InviteMember
                | AdminAction::RevokeInvite
                | AdminAction::AcceptInvite => continue,
                _ => (Target::Org, &org_uid),
            };
            cmp.admin(&req(action, target), || resource.clone(), String::new());
        }
        let membership = |e: &Email| uid("Membership", &format!("{}/{}", org.id, e));
        cmp.admin(
            &req(
                AdminAction::LeaveOrg,
                Target::Membership {
                    email: &m.email,
                    role: Some(m.role),
                    new_role: None,
                },
            ),
            || membership(&m.email),
            String::new(),
        );
        if let Some(f) = &fresh {
            for role in Role::ALL {
                cmp.admin(
                    &req(
                        AdminAction::AddMember,
                        Target::Membership {
                            email: f,
                            role: None,
                            new_role: Some(role),
                        },
                    ),
                    || membership(f),
                    format!("new_role: {}", role.as_str()),
                );
            }
        }
        for other in &one_per_role {
            for role in Role::ALL {
                cmp.admin(
                    &req(
                        AdminAction::ChangeRole,
                        Target::Membership {
                            email: &other.email,
                            role: Some(other.role),
                            new_role: Some(role),
                        },
                    ),
                    || membership(&other.email),
                    format!("new_role: {}", role.as_str()),
                );
            }
            cmp.admin(
                &req(
                    AdminAction::RemoveMember,
                    Target::Membership {
                        email: &other.email,
                        role: Some(other.role),
                        new_role: None,
                    },
                ),
                || membership(&other.email),
                String::new(),
            );
        }
        for i in asked.for_member(m) {
            let k = &keys[i];
            cmp.admin(
                &req(
                    AdminAction::ManageKey,
                    Target::Key {
                        id: k.info.id,
                        created_by: &k.info.created_by,
                    },
                ),
                || uid("Key", &k.info.id.to_string()),
                String::new(),
            );
        }
    }
}

fn gateway_requests(
    cmp: &mut Compare<'_>,
    org: &Org,
    config: &crate::config::OrgConfig,
    keys: &[KeyRecord],
) {
    let org_list = config.allowed_models();
    let mut org_models: BTreeSet<&str> = SAMPLE_MODELS.into_iter().collect();
    org_models.extend(org_list.unwrap_or(&[]).iter().map(String::as_str));
    let mut merged;
    for k in keys {
        let own = &k.info.spec.allowed_models;
        let models = if own.is_empty() {
            &org_models
        } else {
            merged = org_models.clone();
            merged.extend(own.iter().map(String::as_str));
            &merged
        };
        let key_class = cmp.naming.key_class(&k.info.id);
        for &model in models {
            let in_org = org_list.is_none_or(|l| l.iter().any(|m| m == model));
            let in_key = own.is_empty() || own.iter().any(|m| m == model);
            let ctx = GatewayContext {
                ip_allowed: true,
                model_allowed: in_org && in_key,
            };
            cmp.gateway(org, k, &key_class, model, ctx);
        }
    }
}

#[cfg(test)]
#[path = "impact_tests.rs"]
mod tests;
