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
