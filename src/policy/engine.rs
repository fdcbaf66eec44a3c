//! Admin authorization: one Cedar evaluation per request; any error is a denial.

use cedar_policy::{Decision, Entities, Request, Response};

use super::entities::admin_facts;
use super::request::{AdminAction, AdminRequest, Target};
use super::{Explanation, Policies};
use crate::error::PermissionDenied;
use crate::model::{KeyInfo, Member, Org, Role};

/// A Cedar response in our own terms.
pub(super) struct CedarVerdict {
    /// Cedar's decision and no evaluation error.
    pub(super) allowed: bool,
    /// Cedar's deciding policies.
    pub(super) reasons: Vec<String>,
    /// Evaluation errors, as messages.
    pub(super) errors: Vec<String>,
    /// The ids of the policies that errored.
    pub(super) erroring: Vec<String>,
    /// A guard rail decided the denial (its id is in `reasons`).
    pub(super) railed: bool,
}

impl CedarVerdict {
    pub(super) fn from_error(msg: String) -> Self {
        Self {
            allowed: false,
            reasons: Vec::new(),
            errors: vec![msg],
            erroring: Vec::new(),
            railed: false,
        }
    }

    pub(super) fn from_response(r: &Response) -> Self {
        let d = r.diagnostics();
        // Cedar reports a set: sort so equal decisions compare equal (the hot path memoizes).
        let mut reasons: Vec<String> = d.reason().map(ToString::to_string).collect();
        reasons.sort_unstable();
        let mut errors = Vec::new();
        let mut erroring = Vec::new();
        for e in d.errors() {
            errors.push(e.to_string());
            let cedar_policy::AuthorizationError::PolicyEvaluationError(pe) = e;
            erroring.push(pe.policy_id().to_string());
        }
        errors.sort_unstable();
        erroring.sort_unstable();
        erroring.dedup();
        Self {
            allowed: r.decision() == Decision::Allow && errors.is_empty(),
            reasons,
            errors,
            erroring,
            railed: false,
        }
    }

    /// The ids to report for a denial: the deciding forbids, or the policies that errored.
    pub(super) fn deciding(self) -> (Vec<String>, Vec<String>) {
        if self.errors.is_empty() || self.railed {
            (self.reasons, self.errors)
        } else {
            (self.erroring, self.errors)
        }
    }
}

/// The guard rail ids (also the ids of the built-in forbids that state them in Cedar).
pub(crate) const TENANCY: &str = "tenancy-members-only";
/// The last Owner can be neither removed nor leave.
pub(crate) const LAST_OWNER_STAYS: &str = "last-owner-stays";
/// The last Owner cannot be demoted.
pub(crate) const LAST_OWNER_NOT_DEMOTED: &str = "last-owner-not-demoted";

/// The guard rails, checked in Rust before Cedar's answer counts, so that no operator
/// `permit` can widen past them: a person who is not a member of the org can do nothing in
/// it (except ask to create an org, which has no members yet), and the last Owner can be
/// neither removed, nor leave, nor be demoted. Returns the ids of the rails `req` breaks.
pub(super) fn guard_rails(req: &AdminRequest<'_>) -> Vec<String> {
    let mut out = Vec::new();
    if req.actor_role.is_none() && !req.action.open_to_non_members() {
        out.push(TENANCY.to_owned());
    }
    if let Target::Membership {
        role: Some(Role::Owner),
        new_role,
        ..
    } = &req.target
        && req.owner_count <= 1
    {
        match req.action {
            AdminAction::RemoveMember | AdminAction::LeaveOrg => {
                out.push(LAST_OWNER_STAYS.to_owned())
            }
            AdminAction::ChangeRole if *new_role != Some(Role::Owner) => {
                out.push(LAST_OWNER_NOT_DEMOTED.to_owned())
            }
            _ => {}
        }
    }
    out
}

/// Who may do what was denied, for the denial message: the rule that decided it, or the
/// built-in role matrix for the action.
fn hint(action: AdminAction, policies: &[String]) -> String {
    let has = |id: &str| policies.iter().any(|p| p == id);
    if has(TENANCY) {
        "only members of the org may act in it".to_owned()
    } else if has("only-owners-manage-owners") {
        "only an owner of the org may change the role of an owner or remove one".to_owned()
    } else if has("only-owners-grant-owner") {
        "only an owner of the org may grant the owner role".to_owned()
    } else if has(LAST_OWNER_STAYS) || has(LAST_OWNER_NOT_DEMOTED) {
        "the last owner of an org can be neither removed nor demoted; make another member owner first".to_owned()
    } else {
        action.who_may().to_owned()
    }
}

impl Policies {
    /// Cedar's outcome with the guard rails applied on top: a broken rail denies whatever
    /// Cedar permitted, and is named among the deciding policies.
    pub(super) fn evaluate(&self, req: &AdminRequest<'_>) -> CedarVerdict {
        let mut out = self.evaluate_cedar(req);
        let rails = guard_rails(req);
        if !rails.is_empty() {
            if out.allowed || !out.errors.is_empty() {
                // Cedar's permits (or its errors) are not why it is denied.
                out.reasons.clear();
            }
            out.allowed = false;
            out.railed = true;
            out.reasons.extend(rails);
            out.reasons.sort_unstable();
            out.reasons.dedup();
        }
        out
    }

    fn evaluate_cedar(&self, req: &AdminRequest<'_>) -> CedarVerdict {
        let c = &*self.inner;
        let mut facts = match admin_facts(&c.types, req) {
            Ok(f) => f,
            Err(e) => return CedarVerdict::from_error(e),
        };
        match c.action_entities.get(req.action.cedar_name()) {
            Some(a) => facts.entities.push(a.clone()),
            None => {
                return CedarVerdict::from_error(format!(
                    "action {} is not in the schema",
                    req.action.cedar_name()
                ));
            }
        }
        let action = c.types.action(req.action.cedar_name());
        let request = match Request::new(
            facts.principal,
            action,
            facts.resource,
            facts.context,
            Some(&c.schema),
        ) {
            Ok(r) => r,
            Err(e) => return CedarVerdict::from_error(format!("request: {e}")),
        };
        // The schema's action entity gives the action groups; our own entities are checked
        // against the schema by tests (`every_request_shape_conforms_to_the_schema`), and any
        // mismatch would be an evaluation error, hence a denial.
        let entities = match Entities::from_entities(facts.entities, None) {
            Ok(e) => e,
            Err(e) => return CedarVerdict::from_error(format!("entities: {e}")),
        };
        let response = c.authorizer.is_authorized(
            &request,
            c.policies_for(req.action.cedar_name()),
            &entities,
        );
        CedarVerdict::from_response(&response)
    }

    /// Decides one admin request. The operator is not evaluated here (the store allows it
    /// itself): an `Actor::Operator` request is denied with an error. Any evaluation error is
    /// a denial; the denial names the deciding forbid policies (or the policies that failed
    /// to evaluate), or none when no policy permits the request.
    #[allow(clippy::result_large_err)] // a denial is the cold path; the store boxes it into Error
    pub fn authorize(&self, req: &AdminRequest<'_>) -> Result<(), PermissionDenied> {
        let out = self.evaluate(req);
        if out.allowed {
            return Ok(());
        }
        let (policies, errors) = out.deciding();
        let mut d =
            PermissionDenied::new(req.action.cedar_name(), req.actor_role, policies, errors);
        d.who_may = hint(req.action, &d.policies);
        Err(d)
    }

    /// The decision for one admin request with its reasons and errors, for
    /// `orgstore policy explain`. `reasons` are Cedar's deciding policies (the permits when
    /// allowed, the forbids when denied); an evaluation error makes `allowed` false.
    pub fn explain(&self, req: &AdminRequest<'_>) -> Explanation {
        let out = self.evaluate(req);
        Explanation {
            allowed: out.allowed,
            reasons: out.reasons,
            errors: out.errors,
        }
    }

    /// The Cedar entities JSON text of one org (org, role groups, config, members and their
    /// memberships, keys), so the public `cedar` CLI can be used with our schema and
    /// policies. Members and keys of other orgs are ignored.
    /// [`Store::policy_entities`](crate::Store::policy_entities) gives it for an org of a
    /// store (with its example).
    pub fn org_entities_json(
        &self,
        org: &Org,
        members: &[Member],
        keys: &[KeyInfo],
    ) -> Result<String, crate::error::Error> {
        super::entities::org_entities_json(
            &self.inner.types,
            &self.inner.schema,
            org,
            members,
            keys,
        )
    }
}
