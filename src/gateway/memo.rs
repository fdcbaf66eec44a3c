//! Memoized Cedar decisions. Each key's entry holds its latest decision inline (so a check
//! reads no other line of the key) and its runtime a few more, one per recently used
//! model:
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
//!
//! A model name without an id (no allow-list and no policy mentions it) is memoized under
//! `UNMENTIONED`: policies cannot tell such names apart, so one word answers for all.

use std::sync::Arc;
use std::sync::atomic::Ordering;

use super::denial::Denial;
use crate::policy::GatewayContext;
use crate::snapshot::{
    KeyEntry, KeyRuntime, MEMO_SLOTS, NO_REASON, OrgView, Snapshot, SnapshotCell, UNMENTIONED,
};

const VALID: u64 = 1 << 63;
const ALLOWED: u64 = 1 << 62;
/// The bits that say which question a word answers (all but the verdict and reason).
const QUESTION: u64 = !(ALLOWED | (0xff << 54));

#[inline]
fn pack(tag: u32, model: u32, allowed: bool, reason: u8) -> u64 {
    VALID
        | if allowed { ALLOWED } else { 0 }
        | (u64::from(reason) << 54)
        | (u64::from(model & 0x3f_ffff) << 32)
        | u64::from(tag)
}

/// The gateway decision for this key and model, memoized by the model's id, or for a name
/// without one under `UNMENTIONED` (unless the policies' names could not all be interned).
#[inline]
pub(super) fn decide(
    cell: &SnapshotCell,
    snap: &Snapshot,
    entry: &KeyEntry,
    org: &OrgView,
    model_id: Option<u32>,
    model: &str,
) -> Result<(), Denial> {
    let tag = entry.epoch.max(snap.policy_epoch);
    // The runtime is read only when the inline word does not answer allowed.
    let runtime = || cell.key_rt(entry.rt).ok_or(Denial::Unavailable);
    let model_id = model_id.or_else(|| snap.policies.memo_unmentioned.then_some(UNMENTIONED));
    if let Some(mid) = model_id {
        let want = pack(tag, mid, false, 0) & QUESTION;
        let w = entry.memo.load(Ordering::Relaxed);
        if w & QUESTION == want && w & ALLOWED != 0 {
            return Ok(());
        }
        let rt = runtime()?;
        if w & QUESTION == want {
            return verdict(snap, w, rt, org, model);
        }
        for slot in &rt.memo {
            let w = slot.load(Ordering::Relaxed);
            if w & QUESTION == want {
                return verdict(snap, w, rt, org, model);
            }
        }
        return evaluate(snap, entry, rt, org, Some(mid), model, tag);
    }
    evaluate(snap, entry, runtime()?, org, None, model, tag)
}

#[inline]
fn verdict(
    snap: &Snapshot,
    w: u64,
    rt: &KeyRuntime,
    org: &OrgView,
    model: &str,
) -> Result<(), Denial> {
    if w & ALLOWED != 0 {
        return Ok(());
    }
    Err(memo_denial(snap, ((w >> 54) & 0xff) as u8, rt, org, model))
}

#[cold]
fn memo_denial(snap: &Snapshot, reason: u8, rt: &KeyRuntime, org: &OrgView, model: &str) -> Denial {
    if reason != NO_REASON
        && let Some(policies) = snap.policies.reason(reason)
    {
        return Denial::PolicyDenied { policies };
    }
    let d = snap
        .policies
        .policies
        .gateway_decide(&org.runtime.id, &rt.id, model, CTX);
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
#[allow(clippy::too_many_arguments)]
fn evaluate(
    snap: &Snapshot,
    entry: &KeyEntry,
    rt: &KeyRuntime,
    org: &OrgView,
    model_id: Option<u32>,
    model: &str,
    tag: u32,
) -> Result<(), Denial> {
    let d = snap
        .policies
        .policies
        .gateway_decide(&org.runtime.id, &rt.id, model, CTX);
    let reason = if d.allowed {
        0
    } else {
        snap.policies.reason_index(&d.policies)
    };
    if let Some(mid) = model_id {
        // The new decision goes inline; the one it displaces, if still current, moves to
        // the runtime: to an empty or outdated slot, else one chosen by its model id.
        let displaced = entry
            .memo
            .swap(pack(tag, mid, d.allowed, reason), Ordering::Relaxed);
        if displaced & VALID != 0 && displaced as u32 == tag {
            let slots = &rt.memo;
            let ix = slots
                .iter()
                .position(|s| {
                    let w = s.load(Ordering::Relaxed);
                    w & VALID == 0 || (w as u32) != tag
                })
                .unwrap_or(((displaced >> 32) & 0x3f_ffff) as usize % MEMO_SLOTS);
            if let Some(slot) = slots.get(ix) {
                slot.store(displaced, Ordering::Relaxed);
            }
        }
    }
    if d.allowed {
        Ok(())
    } else {
        let policies: Arc<[String]> = d.policies.into();
        Err(Denial::PolicyDenied { policies })
    }
}
