//! Cedar policies: admin authorization and gateway decisions.
//! (Interim engine until the Cedar module lands: denies every member request.)

mod request;

pub use request::{AdminAction, AdminRequest, Target};

use crate::error::{Denial, Error};

/// The active policy set.
#[derive(Clone, Debug)]
pub struct Policies {
    generation: u64,
}

impl Policies {
    /// The compiled-in default set.
    pub fn default_set() -> Result<Self, Error> {
        Ok(Self { generation: 1 })
    }

    /// Adds a directory of policies.
    pub fn with_dir(&self, _dir: &std::path::Path) -> Result<Self, Error> {
        Ok(self.clone())
    }

    /// Unique per load.
    pub fn generation(&self) -> u64 {
        self.generation
    }

    /// Decides an admin request.
    pub fn authorize(&self, req: &AdminRequest<'_>) -> Result<(), Denial> {
        Err(Denial::new(req.action.cedar_name(), req.actor_role, Vec::new(), vec!["policy engine not loaded".into()]))
    }
}

/// Host-computed facts for a gateway decision.
#[derive(Clone, Copy, Debug)]
pub struct GatewayContext {
    /// Address passed the IP rules.
    pub ip_allowed: bool,
    /// Model passed the allow-lists.
    pub model_allowed: bool,
}

/// A gateway decision.
#[derive(Clone, Debug)]
pub struct GatewayDecision {
    /// Allowed or not.
    pub allowed: bool,
    /// Deciding policy ids.
    pub policies: Vec<String>,
}

impl Policies {
    /// Decides a gateway request (interim: allow when the host checks pass).
    pub fn gateway_decide(&self, _org: &crate::model::OrgId, _key: &crate::model::KeyId, _model: &str, ctx: GatewayContext) -> GatewayDecision {
        GatewayDecision { allowed: ctx.ip_allowed && ctx.model_allowed, policies: Vec::new() }
    }
}
