//! Cedar policies: the Owner / Admin / Member / Viewer matrix on every admin operation, and
//! the gateway's `invoke` decision.
//!
//! The default set (`policies/schema.cedarschema`, `policies/roles.cedar`,
//! `policies/gateway.cedar`) is compiled into the library; an operator can add a directory of
//! `.cedar` files with [`Policies::with_dir`] (forbid rules narrow, permit rules widen). Every
//! load validates the whole set strictly against the schema; warnings count as failures.
//!
//! Guard rails hold whatever an operator adds: a person who is not a member of the org is
//! refused everything in it, and the last Owner can be neither removed, nor leave, nor be
//! demoted. They are checked in Rust on every decision, before Cedar's permits count (and
//! stated as the built-in forbids `tenancy-members-only`, `last-owner-stays` and
//! `last-owner-not-demoted`, whose ids an operator file cannot reuse).
//!
//! Cedar is an implementation detail: every public type here is our own.

mod authoring;
mod engine;
mod entities;
mod gateway;
mod load;
mod request;

use std::path::Path;
use std::sync::Arc;

pub use request::{AdminAction, AdminRequest, Target};

pub(crate) use authoring::MANAGE_POLICIES;
pub use authoring::MAX_POLICY_FILE_BYTES;
pub(crate) use engine::TENANCY;

use crate::error::Error;

/// A compiled, validated policy set. Cheap to clone (one `Arc`); immutable once built, so a
/// reload builds a new `Policies` and swaps it in (for example with `arc_swap`).
#[derive(Clone)]
pub struct Policies {
    inner: Arc<load::Compiled>,
}

impl std::fmt::Debug for Policies {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Policies")
            .field("generation", &self.inner.generation)
            .field("policies", &self.inner.ids)
            .finish()
    }
}

/// Why an admin request was allowed or denied, for `orgstore policy explain`.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct Explanation {
    /// The decision (any evaluation error makes it `false`).
    pub allowed: bool,
    /// The deciding policy ids: the permits that allowed it, or the forbids that denied it
    /// (empty when denied because no policy permits it).
    pub reasons: Vec<String>,
    /// Evaluation errors, each naming its policy.
    pub errors: Vec<String>,
}

impl Explanation {
    /// The operator's explanation: allowed, with no deciding policy (the operator is not
    /// a Cedar principal).
    pub(crate) fn operator() -> Self {
        Self {
            allowed: true,
            reasons: Vec::new(),
            errors: Vec::new(),
        }
    }
}

/// Host-computed facts for one gateway request. Only facts that are stable for a given key
/// version, model and these bits may go here: the hot path memoizes on them.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Default)]
pub struct GatewayContext {
    /// The client address is allowed by the org's and the key's IP lists.
    pub ip_allowed: bool,
    /// The model is allowed by the org's and the key's model lists.
    pub model_allowed: bool,
}

/// The gateway's decision for (key, model, context).
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct GatewayDecision {
    /// Whether the key may invoke the model.
    pub allowed: bool,
    /// The deciding policy ids (permits if allowed; forbids, or the erroring policies, if
    /// denied; empty when no policy permits).
    pub policies: Vec<String>,
    /// Evaluation errors (any error denies).
    pub errors: Vec<String>,
}

impl Policies {
    /// The compiled-in default set: schema, `roles.cedar` and `gateway.cedar`.
    pub fn default_set() -> Result<Policies, Error> {
        load::Compiled::build(load::default_sources()).map(Self::from_compiled)
    }

    /// A new set: this one plus every `*.cedar` file in `dir` (the extension in any case,
    /// not recursive, in file-name order). Policies are named by their `@id("...")`
    /// annotation, which every policy must have. A file that does not parse, a policy
    /// without an `@id` (or with a blank one), an id used twice, or any strict-validation
    /// error or warning fails with kind `Invalid`, naming the file, line and Cedar's
    /// message; `self` is untouched, so the caller keeps the previous set. To reload a
    /// directory, start again from [`Policies::default_set`].
    pub fn with_dir(&self, dir: &Path) -> Result<Policies, Error> {
        let added = load::read_dir(dir)?;
        self.with_added(added)
    }

    /// Like [`Policies::with_dir`], for policy texts held in memory: `(name, text)` pairs, the
    /// name being used in ids and error messages like a file name.
    pub fn with_sources(&self, sources: &[(&str, &str)]) -> Result<Policies, Error> {
        let added = sources
            .iter()
            .map(|(name, text)| load::Source::new(name, text))
            .collect();
        self.with_added(added)
    }

    fn with_added(&self, added: Vec<load::Source>) -> Result<Policies, Error> {
        let mut sources = self.inner.sources.clone();
        sources.extend(added);
        load::Compiled::build(sources).map(Self::from_compiled)
    }

    /// Checks that the default set plus the `*.cedar` files of `dir` load; returns the
    /// policy ids of the combined set.
    pub fn validate_dir(dir: &Path) -> Result<Vec<String>, Error> {
        Ok(Self::default_set()?.with_dir(dir)?.policy_ids())
    }

    /// The ids of every policy in the set, in load order.
    pub fn policy_ids(&self) -> Vec<String> {
        self.inner.ids.clone()
    }

    /// A number unique to this load in this process (a new one for every successful
    /// `default_set`, `with_dir` or `with_sources`), for cache invalidation.
    pub fn generation(&self) -> u64 {
        self.inner.generation
    }

    /// The schema text compiled into the library (`policies/schema.cedarschema`).
    pub fn schema_text() -> &'static str {
        load::SCHEMA_SRC
    }

    fn from_compiled(c: load::Compiled) -> Self {
        Self { inner: Arc::new(c) }
    }
}

#[cfg(test)]
mod tests;
