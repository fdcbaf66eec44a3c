//! The gateway hot path: `check` answers "may this key call this model from this address
//! now?" from the in-memory snapshot, without redb reads, and without locks or Cedar calls
//! when the decision is memoized (per key, model and state version). The only locks it can
//! take are cold: a budget's when its window ends (once per window) and the denial-reason
//! table's when a Cedar evaluation finds a list of policies not seen before.

mod denial;
mod grant;
mod json;
mod memo;

pub use denial::{Denial, Scope};
pub(crate) use grant::OwnedGrant;
pub use grant::{Grant, Limits, RateHeaders, Usage};

use std::net::IpAddr;
use std::sync::Arc;

use crate::keys::{check_key_shape, digest, verify_checksum};
use crate::limits::clock::{self, Clock, LazyNow};
use crate::model::{KeyId, OrgId, OrgStatus, Timestamp, Usd};
use crate::snapshot::{HAS_RULES, KeyEntry, OrgView, REVOKED, Snapshot, SnapshotCell};

/// Where a gateway's recorded spend is made durable: implemented by the store that hands
/// out the gateway (the gateway never reaches into the store). The snapshot queues spend
/// in memory as it is recorded; the sink moves it to the file.
pub(crate) trait SpendSink: Send + Sync {
    /// Writes the queued spend now (lossless mode calls it after each `record_usage`). A
    /// failed write leaves the spend queued for the next flush; nothing is reported.
    fn flush_now(&self);
}

/// Default cost reserved against budgets per request when the caller gives no estimate:
/// one cent. `record_usage` settles the real cost.
pub const DEFAULT_ESTIMATE: Usd = Usd::CENT;

/// One gateway request.
///
/// ```
/// use orgstore::Request;
/// let r = Request::new("sk-agentcc-...", "gpt-4o", "203.0.113.7".parse().unwrap());
/// assert_eq!(r.model, "gpt-4o");
/// ```
#[derive(Clone, Copy, Debug)]
#[non_exhaustive]
pub struct Request<'a> {
    /// The key as sent (see [`crate::key_from_headers`]).
    pub key: &'a str,
    /// The model asked for.
    pub model: &'a str,
    /// The client address as the gateway's own listener saw it (never a forwarded header
    /// the client controls).
    pub client_ip: IpAddr,
    /// Expected cost, reserved against budgets until [`Gateway::record_usage`] settles it.
    pub estimated_cost: Option<Usd>,
}

impl<'a> Request<'a> {
    /// A request with the default cost estimate.
    pub fn new(key: &'a str, model: &'a str, client_ip: IpAddr) -> Self {
        Self {
            key,
            model,
            client_ip,
            estimated_cost: None,
        }
    }

    /// Sets the expected cost reserved against budgets.
    pub fn estimate(mut self, cost: Usd) -> Self {
        self.estimated_cost = Some(cost);
        self
    }
}

/// A resolved, usable key (from [`Gateway::lookup`]).
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct ResolvedKey {
    /// The key's id.
    pub key_id: KeyId,
    /// Its org, from the store's relation.
    pub org_id: OrgId,
    /// Effective limits after inheritance.
    pub limits: Limits,
    /// When it expires, if ever.
    pub expires_at: Option<Timestamp>,
}

/// The gateway handle: cheap to clone, `Send + Sync`. Get one with
/// [`crate::Store::gateway`].
///
/// A handle may outlive its [`crate::Store`]: once the last `Store` handle is dropped,
/// every check answers [`Denial::Unavailable`] (the file may change under a store opened
/// later), while [`Gateway::record_usage`] still accounts the grants in flight. The store
/// file stays open until the last handle of either kind is dropped, and the spend is
/// written to it then (and by the background flush meanwhile), so none is lost; opening
/// the file again before that fails with `Busy`.
///
/// ```
/// use orgstore::{Actor, Email, KeySpec, OrgId, Request, Store};
/// let store = Store::open_temporary()?;
/// let op = Actor::Operator;
/// let acme = OrgId::parse("acme")?;
/// store.orgs().create(&op, &acme, "Acme", &Email::parse("o@acme.io")?)?;
/// let key = store.keys().create(&op, &acme, KeySpec::new("svc").models(["gpt-4o-mini"]))?.key;
/// let gw = store.gateway();
/// let ip = "10.1.2.3".parse().unwrap();
/// let grant = gw.check(&Request::new(key.expose(), "gpt-4o-mini", ip)).unwrap();
/// assert_eq!(grant.org_id().as_str(), "acme");
/// assert_eq!(gw.check(&Request::new(key.expose(), "gpt-4o", ip)).unwrap_err().code(), "model_not_allowed");
/// # Ok::<(), orgstore::Error>(())
/// ```
#[derive(Clone)]
pub struct Gateway {
    cell: Arc<SnapshotCell>,
    clock: Clock,
    default_estimate: Usd,
    /// Where recorded spend goes, given by the store: holding it keeps the store file
    /// open while a handle lives, so spend recorded after the `Store` is dropped still
    /// reaches the file.
    sink: Arc<dyn SpendSink>,
    /// Lossless spend mode: flush after each usage.
    lossless: bool,
}

impl std::fmt::Debug for Gateway {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Gateway")
            .field("default_estimate", &self.default_estimate)
            .finish()
    }
}

impl Gateway {
    /// A handle reading `cell`, with `sink` told about spend in lossless mode.
    pub(crate) fn new(cell: Arc<SnapshotCell>, sink: Arc<dyn SpendSink>, lossless: bool) -> Self {
        Self {
            cell,
            clock: Clock::new(),
            default_estimate: DEFAULT_ESTIMATE,
            sink,
            lossless,
        }
    }

    /// The same handle with another default cost estimate for requests that give none.
    pub fn with_default_estimate(mut self, cost: Usd) -> Self {
        self.default_estimate = cost;
        self
    }

    /// The cost estimate reserved for requests that give none.
    pub fn default_estimate(&self) -> Usd {
        self.default_estimate
    }

    /// Decides a request. On success the grant carries the org, the key, the effective
    /// limits and what rate-limit headers need; pass it to [`Gateway::record_usage`] when
    /// the response is done.
    #[inline]
    pub fn check(&self, req: &Request<'_>) -> Result<Grant<'_>, Denial> {
        self.check_now(req, &LazyNow::new(&self.clock))
    }

    /// [`Gateway::check`] at a given time (for tests and replays of budget periods and
    /// expiry).
    pub fn check_at(&self, req: &Request<'_>, at: Timestamp) -> Result<Grant<'_>, Denial> {
        self.check_now(req, &LazyNow::fixed(&self.clock, self.clock.at(at)))
    }

    /// Resolves a key without checking a model, an address, policies or limits: revoked,
    /// expired and suspended keys are still refused.
    pub fn lookup(&self, key: &str) -> Result<ResolvedKey, Denial> {
        let now = LazyNow::new(&self.clock);
        let snap = self.cell.current.load();
        let (entry, org) = self.resolve(&snap, key, &now)?;
        let rt = self.cell.key_rt(entry.rt).ok_or(Denial::Unavailable)?;
        Ok(ResolvedKey {
            key_id: rt.id,
            org_id: org.runtime.id.clone(),
            limits: Limits::of(&self.cell, rt, entry, org),
            expires_at: (entry.expires_at != i64::MAX)
                .then(|| Timestamp::from_micros(entry.expires_at)),
        })
    }

    /// Records what a granted request really used: tokens feed the tokens-per-minute
    /// limits, the cost settles the budget reservations made by `check`.
    ///
    /// Spend reaches the store file in the background flush (or at once in lossless mode,
    /// see [`crate::StoreBuilder::lossless_spend`]), also after the [`crate::Store`] was
    /// dropped: this handle keeps the file open, and the last handle flushes when dropped.
    pub fn record_usage(&self, grant: &Grant<'_>, usage: Usage) {
        self.record_usage_now(grant, usage, self.clock.now());
    }

    /// [`Gateway::record_usage`] at a given time (for tests and replays, with
    /// [`Gateway::check_at`]): tokens are charged to the tokens-per-minute limits at `at`.
    pub fn record_usage_at(&self, grant: &Grant<'_>, usage: Usage, at: Timestamp) {
        self.record_usage_now(grant, usage, self.clock.at(at));
    }

    fn record_usage_now(&self, grant: &Grant<'_>, usage: Usage, now: clock::Now) {
        grant.settle(usage, now);
        self.usage_recorded();
    }

    fn usage_recorded(&self) {
        if self.lossless {
            self.sink.flush_now();
        }
    }

    /// [`Gateway::check`] answering with a grant that holds its runtimes instead of
    /// borrowing this handle: for holders that outlive the borrow (the HTTP layer keeps the
    /// grant while a response streams).
    #[cfg_attr(not(feature = "tower"), allow(dead_code))]
    pub(crate) fn check_owned(&self, req: &Request<'_>) -> Result<OwnedGrant, Denial> {
        self.check(req)?
            .into_owned(Arc::clone(&self.cell))
            .ok_or(Denial::Unavailable)
    }

    /// [`Gateway::record_usage`] for an [`OwnedGrant`].
    #[cfg_attr(not(feature = "tower"), allow(dead_code))]
    pub(crate) fn record_owned_usage(&self, grant: &OwnedGrant, usage: Usage) {
        grant.settle(usage, self.clock.now());
        self.usage_recorded();
    }

    /// Number of keys in the published snapshot.
    pub fn key_count(&self) -> usize {
        self.cell.current.load().key_count()
    }

    #[inline]
    fn resolve<'s>(
        &self,
        snap: &'s Snapshot,
        key: &str,
        now: &LazyNow<'_>,
    ) -> Result<(&'s KeyEntry, &'s OrgView), Denial> {
        // Shape first (prefix, length, alphabet): a few nanoseconds, and it bounds what gets
        // hashed. The checksum only tells a mistyped key from an unknown one, so it waits
        // for a miss: a key found in the snapshot hashed to a stored digest, so it is a
        // stored key, and the common case skips the CRC.
        let checksummed = check_key_shape(key).map_err(Denial::MalformedKey)?;
        if self.cell.is_stale() {
            return Err(Denial::Unavailable);
        }
        let Some(entry) = snap.find(&digest(key)) else {
            return Err(unknown(key, checksummed));
        };
        if entry.has(REVOKED) {
            return Err(Denial::Revoked);
        }
        if entry.expires_at != i64::MAX && entry.expires_at <= now.get().micros {
            return Err(Denial::Expired);
        }
        let org = snap
            .orgs
            .get(entry.org_ix as usize)
            .ok_or(Denial::Unavailable)?;
        match org.status {
            OrgStatus::Active => Ok((entry, org)),
            OrgStatus::Suspended => Err(Denial::OrgSuspended),
            OrgStatus::Deleted => Err(Denial::OrgDeleted),
        }
    }

    #[inline]
    fn check_now(&self, req: &Request<'_>, now: &LazyNow<'_>) -> Result<Grant<'_>, Denial> {
        let snap = self.cell.current.load();
        let (entry, org) = self.resolve(&snap, req.key, now)?;
        let rules_guard = if entry.has(HAS_RULES) {
            let rt = self.cell.key_rt(entry.rt).ok_or(Denial::Unavailable)?;
            Some(rt.rules.load())
        } else {
            None
        };
        let rules = rules_guard.as_ref().and_then(|g| g.as_deref());
        let ip_ok = org.ips.as_ref().is_none_or(|r| r.allows(req.client_ip))
            && rules
                .and_then(|r| r.ips.as_ref())
                .is_none_or(|r| r.allows(req.client_ip));
        if !ip_ok {
            return Err(Denial::IpNotAllowed);
        }
        if !crate::model::model_name_fits(req.model) {
            return Err(Denial::InvalidModel);
        }
        // A name no allow-list or policy mentions has no id: it is in no list, and the memo
        // decides it under one shared word. Nothing is interned or published here.
        let model_id = snap.models.get(req.model).copied();
        let in_list = |list: Option<&[u32]>| {
            list.is_none_or(|l| model_id.is_some_and(|id| l.binary_search(&id).is_ok()))
        };
        if !in_list(org.models.as_deref()) || !in_list(rules.and_then(|r| r.models.as_deref())) {
            return Err(Denial::ModelNotAllowed);
        }
        memo::decide(&self.cell, &snap, entry, org, model_id, req.model)?;
        let estimate = req.estimated_cost.unwrap_or(self.default_estimate);
        Grant::admit(&self.cell, entry, org, estimate.micros(), now)
    }
}

/// Why a well-shaped key was not found: a failed checksum (a typo) or simply unknown.
/// Upstream hex keys carry no checksum, so they are only ever unknown.
#[cold]
fn unknown(key: &str, checksummed: bool) -> Denial {
    match checksummed.then(|| verify_checksum(key)) {
        Some(Err(e)) => Denial::MalformedKey(e),
        _ => Denial::UnknownKey,
    }
}
