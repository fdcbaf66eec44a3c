//! The gateway's `invoke` decision, evaluated fresh (the hot path memoizes it).

use cedar_policy::{Context, Entities, Request, RestrictedExpression};

use super::engine::CedarVerdict;
use super::entities::gateway_key;
use super::load::INVOKE;
use super::{GatewayContext, GatewayDecision, Policies};
use crate::model::{KeyId, OrgId};

impl Policies {
    /// May key `key` of org `org` invoke `model`, given the host-computed facts `ctx`? Any
    /// evaluation error denies. The answer depends only on (policies, org, key, model, ctx),
    /// so the caller may memoize it per [`Policies::generation`], key version, model and ctx.
    /// Each call is a fresh Cedar evaluation (the gateway's memo is not consulted), so a
    /// memoized answer can be checked against it.
    pub fn gateway_decide(
        &self,
        org: &OrgId,
        key: &KeyId,
        model: &str,
        ctx: GatewayContext,
    ) -> GatewayDecision {
        let out = self.gateway_outcome(org, key, model, ctx);
        let allowed = out.allowed;
        let (policies, errors) = if allowed {
            (out.reasons, Vec::new())
        } else {
            out.deciding()
        };
        GatewayDecision {
            allowed,
            policies,
            errors,
        }
    }

    /// Every model name the gateway policies name (`Model::"gpt-4o"` in a scope or a
    /// condition of a policy that can apply to `invoke`), sorted. A `Model` has no
    /// attributes or parents, so a policy can only tell models apart by naming them: all
    /// other names get the same decision for a given key.
    pub(crate) fn invoke_model_names(&self) -> Vec<String> {
        let c = &*self.inner;
        let mut out: Vec<String> = c
            .policies_for(INVOKE)
            .policies()
            .flat_map(|p| p.entity_literals())
            .filter(|u| c.types.is_model(u))
            .map(|u| u.id().unescaped().to_owned())
            .collect();
        out.sort_unstable();
        out.dedup();
        out
    }

    fn gateway_outcome(
        &self,
        org: &OrgId,
        key: &KeyId,
        model: &str,
        ctx: GatewayContext,
    ) -> CedarVerdict {
        let c = &*self.inner;
        let t = &c.types;
        let principal = match gateway_key(t, org, key) {
            Ok(p) => p,
            Err(e) => return CedarVerdict::from_error(e),
        };
        let context = match Context::from_pairs([
            (
                "ip_allowed".to_owned(),
                RestrictedExpression::new_bool(ctx.ip_allowed),
            ),
            (
                "model_allowed".to_owned(),
                RestrictedExpression::new_bool(ctx.model_allowed),
            ),
        ]) {
            Ok(c) => c,
            Err(e) => return CedarVerdict::from_error(format!("context: {e}")),
        };
        let request = match Request::new(
            t.key(key),
            t.action(INVOKE),
            t.model(model),
            context,
            Some(&c.schema),
        ) {
            Ok(r) => r,
            Err(e) => return CedarVerdict::from_error(format!("request: {e}")),
        };
        let Some(action) = c.action_entities.get(INVOKE) else {
            return CedarVerdict::from_error("action invoke is not in the schema".to_owned());
        };
        let entities = match Entities::from_entities([principal, action.clone()], None) {
            Ok(e) => e,
            Err(e) => return CedarVerdict::from_error(format!("entities: {e}")),
        };
        let response = c
            .authorizer
            .is_authorized(&request, c.policies_for(INVOKE), &entities);
        CedarVerdict::from_response(&response)
    }
}
