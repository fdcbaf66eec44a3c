//! The grant of a request in flight, shared by its [`super::GrantHandle`] (in the request's
//! extensions) and its response body, which both may settle it. The allocation that holds it
//! is recycled: each thread keeps the slots of finished requests for the next ones, so a
//! request costs no allocation of the layer's own once a thread has served a few.

use std::cell::RefCell;
use std::sync::Arc;

use bytes::Bytes;

use super::Config;
use crate::gateway::OwnedGrant;
use crate::{OrgId, Usage, Usd};

/// Slots of finished requests a thread keeps for the next ones. More requests than this in
/// flight on one thread allocate the excess, freed when they end.
const KEPT_PER_THREAD: usize = 256;

thread_local! {
    static FREE: RefCell<Vec<Arc<Slot>>> = const { RefCell::new(Vec::new()) };
}

/// What a request in flight shares: empty (`grant` `None`, no model) while the slot waits in a
/// thread's free list, so a kept slot holds no snapshot, org or request body alive.
#[derive(Default)]
struct Slot {
    grant: Option<OwnedGrant>,
    /// The model name as UTF-8 (a slice of the request body where possible).
    model: Bytes,
    estimate: Usd,
}

/// A handle on a request's grant. Clones share it; the last one dropped releases the grant
/// (when nothing settled it) and gives the slot back to the thread it is dropped on.
#[derive(Clone)]
pub(crate) struct Shared {
    /// The layer's configuration, with the gateway that settles the grant.
    config: Arc<Config>,
    slot: Arc<Slot>,
}

/// What [`Shared::org_id`] answers for a slot without a grant, which no live handle has.
static NO_ORG: OrgId = OrgId::EMPTY;

impl Shared {
    /// Shares `grant`, in a kept slot when the thread has one.
    pub(crate) fn new(config: Arc<Config>, grant: OwnedGrant, model: Bytes, estimate: Usd) -> Self {
        let filled = Slot {
            grant: Some(grant),
            model,
            estimate,
        };
        let kept = FREE.with(|free| free.borrow_mut().pop());
        let slot = match kept {
            Some(mut slot) => match Arc::get_mut(&mut slot) {
                Some(s) => {
                    *s = filled;
                    slot
                }
                // Only unshared slots are kept; should one not be, it is dropped here and
                // the request gets a new one.
                None => Arc::new(filled),
            },
            None => Arc::new(filled),
        };
        Self { config, slot }
    }

    pub(crate) fn grant(&self) -> Option<&OwnedGrant> {
        self.slot.grant.as_ref()
    }

    pub(crate) fn org_id(&self) -> &OrgId {
        self.grant().map_or(&NO_ORG, OwnedGrant::org_id)
    }

    pub(crate) fn model(&self) -> &str {
        std::str::from_utf8(&self.slot.model).unwrap_or_default()
    }

    pub(crate) fn estimate(&self) -> Usd {
        self.slot.estimate
    }

    /// The cost of a response's usage.
    pub(crate) fn cost(&self, input: u64, output: u64, reported: Option<Usd>) -> Usd {
        match &self.config.price {
            Some(price) => price(self.model(), input, output),
            None => reported.unwrap_or(self.slot.estimate),
        }
    }

    /// Settles the grant (the first settlement counts, later ones are no-ops).
    pub(crate) fn settle(&self, usage: Usage) {
        if let Some(grant) = self.grant() {
            self.config.gateway.record_owned_usage(grant, usage);
        }
    }
}

impl Drop for Shared {
    /// The last handle empties the slot (releasing an unsettled grant) and keeps it for
    /// the thread's next request. Two last handles dropped at once on two threads may both
    /// see the other: then neither keeps the slot and it is freed as usual.
    fn drop(&mut self) {
        let Some(slot) = Arc::get_mut(&mut self.slot) else {
            return;
        };
        *slot = Slot::default();
        let slot = Arc::clone(&self.slot);
        // A thread being torn down has no free list any more: the slot is freed.
        let _ = FREE.try_with(|free| {
            let mut free = free.borrow_mut();
            if free.len() < KEPT_PER_THREAD {
                free.push(slot);
            }
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_slot_is_kept_only_once_unshared_and_comes_back_empty() {
        let slot = Arc::new(Slot {
            grant: None,
            model: Bytes::from_static(b"gpt-4o"),
            estimate: Usd::CENT,
        });
        let before = FREE.with(|f| f.borrow().len());
        let store = crate::Store::open_temporary().unwrap();
        let config = super::super::GatewayLayer::new(store.gateway().clone()).config;
        let a = Shared {
            config: Arc::clone(&config),
            slot: Arc::clone(&slot),
        };
        let b = a.clone();
        drop(slot);
        drop(a);
        // `b` still shares the slot: it is not kept yet.
        assert_eq!(FREE.with(|f| f.borrow().len()), before);
        assert_eq!(b.model(), "gpt-4o");
        drop(b);
        let kept = FREE.with(|f| f.borrow_mut().pop());
        let kept = kept.map(|s| (Arc::strong_count(&s), s.model.is_empty(), s.grant.is_none()));
        assert_eq!(kept, Some((1, true, true)));
    }
}
