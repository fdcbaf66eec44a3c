//! Memoized Cedar decisions. Each key keeps a few 64-bit slots, one decision per recently
//! used model:
//!
//! ```text
//! bit 63     valid
//! bit 62     allowed
//! bits 54-61 reason index (denials; 255 = evaluate again to get the reason)
//! bits 32-53 model id (22 bits)
//! bits 0-31  tag = max(entry epoch, policy epoch)
//! ```
//!
//! Every publication gets a fresh epoch, and republishing an org re-resolves all its keys,
//! so the tag changes whenever the key, its org or the policy set changes: a stale decision
//! can never match. A slot is one atomic word, so readers never see half of one.

use std::sync::Arc;
use std::sync::atomic::Ordering;

use super::denial::Denial;
use crate::policy::GatewayContext;
use crate::snapshot::{KeyEntry, MEMO_SLOTS, NO_REASON, OrgView, Snapshot};

const VALID: u64 = 1 << 63;
const ALLOWED: u64 = 1 << 62;

#[inline]
fn pack(tag: u32, model: u32, allowed: bool, reason: u8) -> u64 {
    VALID
        | if allowed { ALLOWED } else { 0 }
        | (u64::from(reason) << 54)
        | (u64::from(model & 0x3f_ffff) << 32)
        | u64::from(tag)
}

/// The gateway decision for this key and model, memoized when the model has an id.
#[inline]
pub(super) fn decide(
    snap: &Snapshot,
    entry: &KeyEntry,
    org: &OrgView,
    model_id: Option<u32>,
    model: &str,
) -> Result<(), Denial> {
    let tag = entry.epoch.max(snap.policy_epoch);
    if let Some(mid) = model_id {
        let want = pack(tag, mid, false, 0) & !(ALLOWED | (0xff << 54));
        for slot in &entry.runtime.memo {
            let w = slot.load(Ordering::Relaxed);
            if w & !(ALLOWED | (0xff << 54)) == want {
                if w & ALLOWED != 0 {
                    return Ok(());
                }
                return Err(memo_denial(
                    snap,
                    ((w >> 54) & 0xff) as u8,
                    entry,
                    org,
                    model,
                ));
            }
        }
    }
    evaluate(snap, entry, org, model_id, model, tag)
}

#[cold]
fn memo_denial(
    snap: &Snapshot,
    reason: u8,
    entry: &KeyEntry,
    org: &OrgView,
    model: &str,
) -> Denial {
    if reason != NO_REASON
        && let Some(policies) = snap.policies.reason(reason)
    {
        return Denial::PolicyDenied { policies };
    }
    let d = snap
        .policies
        .policies
        .gateway_decide(&org.runtime.id, &entry.runtime.id, model, CTX);
    Denial::PolicyDenied {
        policies: d.policies.into(),
    }
}

/// The context the host computes: both native checks passed before Cedar is asked.
const CTX: GatewayContext = GatewayContext {
    ip_allowed: true,
    model_allowed: true,
};

#[cold]
fn evaluate(
    snap: &Snapshot,
    entry: &KeyEntry,
    org: &OrgView,
    model_id: Option<u32>,
    model: &str,
    tag: u32,
) -> Result<(), Denial> {
    let d = snap
        .policies
        .policies
        .gateway_decide(&org.runtime.id, &entry.runtime.id, model, CTX);
    let reason = if d.allowed {
        0
    } else {
        snap.policies.reason_index(&d.policies)
    };
    if let Some(mid) = model_id {
        let slots = &entry.runtime.memo;
        // Prefer an empty or outdated slot; otherwise replace one chosen by the model id.
        let ix = slots
            .iter()
            .position(|s| {
                let w = s.load(Ordering::Relaxed);
                w & VALID == 0 || (w as u32) != tag
            })
            .unwrap_or(mid as usize % MEMO_SLOTS);
        slots[ix].store(pack(tag, mid, d.allowed, reason), Ordering::Relaxed);
    }
    if d.allowed {
        Ok(())
    } else {
        let policies: Arc<[String]> = d.policies.into();
        Err(Denial::PolicyDenied { policies })
    }
}
