//! Impact analysis: the store's own requests decided under the active and a proposed policy
//! set, and the decisions that differ. Reads one snapshot of the file; never touches the
//! gateway's memo or hot path.

use std::collections::BTreeSet;

use super::Store;
use super::tables::ORGS;
use super::tx::ReadRecords;
use crate::error::Error;
use crate::model::{Actor, KeyStatus, Member, Org, OrgStatus, Role};
use crate::policy::{AdminAction, AdminRequest, GatewayContext, Policies, Target};
use redb::ReadableTable;

/// Models every key is also asked about, beside those its configs name.
pub const SAMPLE_MODELS: [&str; 4] = ["gpt-4o", "gpt-4o-mini", "claude-3-5-sonnet", "llama-3-70b"];

/// One decision that a proposed policy set changes.
#[derive(Clone, Debug, PartialEq, Eq)]
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
#[non_exhaustive]
pub struct ImpactReport {
    /// How many requests were decided under each set.
    pub evaluated: u64,
    /// Every decision that changes (allowed or not, or the deciding policies), in a stable
    /// order: orgs by id, then members by email, then keys by id.
    pub changes: Vec<DecisionChange>,
}

fn uid(ty: &str, id: &str) -> String {
    format!("{ty}::{}", serde_json::Value::String(id.to_owned()))
}

struct Compare<'a> {
    active: &'a Policies,
    proposed: &'a Policies,
    report: ImpactReport,
}

impl Compare<'_> {
    fn admin(&mut self, req: &AdminRequest<'_>, resource: String, context: String) {
        let a = self.active.explain(req);
        let b = self.proposed.explain(req);
        self.report.evaluated += 1;
        if a.allowed != b.allowed || a.reasons != b.reasons {
            self.report.changes.push(DecisionChange {
                principal: req
                    .actor
                    .email()
                    .map_or_else(String::new, |e| uid("User", e.as_str())),
                action: req.action.cedar_name().to_owned(),
                resource,
                context,
                before: a.allowed,
                after: b.allowed,
                before_policies: a.reasons,
                after_policies: b.reasons,
            });
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
    /// memo are untouched. Operator requests are not Cedar decisions and are not listed.
    pub fn policy_impact(&self, proposed: &Policies) -> Result<ImpactReport, Error> {
        let active = self.policies();
        let mut cmp = Compare {
            active: &active,
            proposed,
            report: ImpactReport {
                evaluated: 0,
                changes: Vec::new(),
            },
        };
        self.read(|r| {
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
            for org in &orgs {
                let mut members = r.members_of(&org.id)?;
                members.sort_by(|a, b| a.email.as_str().cmp(b.email.as_str()));
                let mut keys = r.keys_of(&org.id)?;
                keys.retain(|k| k.info.status == KeyStatus::Active);
                keys.sort_by_key(|k| k.info.id.to_string());
                let (_, config) = r.active_config(org)?;
                admin_requests(&mut cmp, org, &members, &keys);
                gateway_requests(&mut cmp, org, &config, &keys);
            }
            Ok(())
        })?;
        Ok(cmp.report)
    }
}

fn admin_requests(
    cmp: &mut Compare<'_>,
    org: &Org,
    members: &[Member],
    keys: &[super::records::KeyRecord],
) {
    let fresh = crate::model::Email::parse("new-member@impact.invalid").ok();
    let one_per_role: Vec<&Member> = Role::ALL
        .iter()
        .filter_map(|role| members.iter().find(|m| m.role == *role))
        .collect();
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
                    (Target::Config, uid("Config", org.id.as_str()))
                }
                AdminAction::CreateKey => {
                    for has_expiry in [false, true] {
                        cmp.admin(
                            &req(action, Target::NewKey { has_expiry }),
                            uid("Org", org.id.as_str()),
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
                _ => (Target::Org, uid("Org", org.id.as_str())),
            };
            cmp.admin(&req(action, target), resource, String::new());
        }
        let membership = |e: &crate::model::Email| uid("Membership", &format!("{}/{}", org.id, e));
        cmp.admin(
            &req(
                AdminAction::LeaveOrg,
                Target::Membership {
                    email: &m.email,
                    role: Some(m.role),
                    new_role: None,
                },
            ),
            membership(&m.email),
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
                    membership(f),
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
                    membership(&other.email),
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
                membership(&other.email),
                String::new(),
            );
        }
        // Their own keys, and one key of each other kind of creator.
        let mut other_kinds = BTreeSet::new();
        for k in keys {
            let creator = k.info.created_by.as_str();
            let own = creator == m.email.as_str();
            if !own {
                let kind = members
                    .iter()
                    .find(|x| x.email.as_str() == creator)
                    .map_or("operator", |x| x.role.as_str());
                if !other_kinds.insert(kind) {
                    continue;
                }
            }
            cmp.admin(
                &req(
                    AdminAction::ManageKey,
                    Target::Key {
                        id: k.info.id,
                        created_by: creator,
                    },
                ),
                uid("Key", &k.info.id.to_string()),
                String::new(),
            );
        }
    }
}

fn gateway_requests(
    cmp: &mut Compare<'_>,
    org: &Org,
    config: &crate::config::OrgConfig,
    keys: &[super::records::KeyRecord],
) {
    let org_list = config.allowed_models();
    for k in keys {
        let own = &k.info.spec.allowed_models;
        let mut models: BTreeSet<&str> = SAMPLE_MODELS.into_iter().collect();
        models.extend(org_list.unwrap_or(&[]).iter().map(String::as_str));
        models.extend(own.iter().map(String::as_str));
        for model in models {
            let in_org = org_list.is_none_or(|l| l.iter().any(|m| m == model));
            let in_key = own.is_empty() || own.iter().any(|m| m == model);
            let ctx = GatewayContext {
                ip_allowed: true,
                model_allowed: in_org && in_key,
            };
            let a = cmp.active.gateway_decide(&org.id, &k.info.id, model, ctx);
            let b = cmp.proposed.gateway_decide(&org.id, &k.info.id, model, ctx);
            cmp.report.evaluated += 1;
            if a.allowed != b.allowed || a.policies != b.policies {
                cmp.report.changes.push(DecisionChange {
                    principal: uid("Key", &k.info.id.to_string()),
                    action: "invoke".to_owned(),
                    resource: uid("Model", model),
                    context: format!("ip_allowed: true, model_allowed: {}", ctx.model_allowed),
                    before: a.allowed,
                    after: b.allowed,
                    before_policies: a.policies,
                    after_policies: b.policies,
                });
            }
        }
    }
}
