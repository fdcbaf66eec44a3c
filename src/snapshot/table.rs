//! One shard of keys: an open-addressing table of 64-byte entries in a single `Arc<[_]>`
//! allocation, so finding a key reads one cache line on one page (plus its neighbours when
//! probing), with no header or control bytes elsewhere. Shards are never edited in place:
//! a commit builds the touched shard anew at a load of at most two thirds.
//!
//! Probing is linear and *ordered*: a table is always built whole, with its entries placed
//! in order of their home slot, so every run of occupied slots is sorted by home. A lookup
//! stops at the first entry whose home lies past its own, so an unknown key costs about as
//! many probes as a known one (two on average at this load) instead of the five of an
//! unordered miss. Probes never wrap around: entries pushed past the last home slot go to
//! slots appended after it.

use std::sync::Arc;

use super::entry::{KeyEntry, OCCUPIED};
use crate::keys::KeyDigest;

/// One shard: its slots, and how many of them are home slots.
#[derive(Clone)]
pub(crate) struct Shard {
    slots: Arc<[KeyEntry]>,
    cap: usize,
}

impl Default for Shard {
    fn default() -> Self {
        Self {
            slots: Arc::from(Vec::new()),
            cap: 0,
        }
    }
}

/// The slot a digest probes first among `cap` (multiply-shift of digest bytes 8..16; the
/// digest is uniformly random already).
#[inline]
fn home(d: &KeyDigest, cap: usize) -> usize {
    let h = u64::from_le_bytes([d[8], d[9], d[10], d[11], d[12], d[13], d[14], d[15]]);
    ((u128::from(h) * cap as u128) >> 64) as usize
}

impl Shard {
    /// The entry of a digest: probing from its home slot up to the first empty slot or the
    /// first entry whose home is past the digest's.
    #[inline]
    pub fn find(&self, d: &KeyDigest) -> Option<&KeyEntry> {
        let h = home(d, self.cap);
        for e in self.slots.get(h..)? {
            if !e.has(OCCUPIED) {
                return None;
            }
            if e.digest == *d {
                return Some(e);
            }
            if home(&e.digest, self.cap) > h {
                return None;
            }
        }
        None
    }

    /// The live entries.
    pub fn entries(&self) -> impl Iterator<Item = &KeyEntry> {
        self.slots.iter().filter(|e| e.has(OCCUPIED))
    }

    /// Heap bytes of the slots (plus the `Arc` header).
    pub fn heap_bytes(&self) -> usize {
        std::mem::size_of_val(&*self.slots) + 16
    }

    /// Builds a shard from the first `n` of `entries` (a later entry replaces an earlier
    /// one with the same digest). The slots are allocated in their final `Arc` and filled
    /// in place.
    pub fn build(n: usize, entries: impl IntoIterator<Item = KeyEntry>) -> Shard {
        let items: Vec<KeyEntry> = entries.into_iter().take(n).collect();
        if items.is_empty() {
            return Shard::default();
        }
        let cap = items.len() + items.len() / 2 + 1;
        // Home order; equal digests sort together, the later one last.
        let mut order: Vec<(usize, &KeyDigest, usize)> = items
            .iter()
            .enumerate()
            .map(|(i, e)| (home(&e.digest, cap), &e.digest, i))
            .collect();
        order.sort_unstable();
        let mut placed: Vec<(usize, usize)> = Vec::with_capacity(order.len());
        let mut next = 0;
        for (k, &(h, d, i)) in order.iter().enumerate() {
            if order.get(k + 1).is_some_and(|o| o.1 == d) {
                continue;
            }
            let at = h.max(next);
            placed.push((at, i));
            next = at + 1;
        }
        let mut slots: Arc<[KeyEntry]> = std::iter::repeat_with(KeyEntry::empty)
            .take(cap.max(next))
            .collect();
        // Just made, so not shared: `get_mut` succeeds.
        if let Some(s) = Arc::get_mut(&mut slots) {
            for (at, i) in placed {
                if let (Some(slot), Some(e)) = (s.get_mut(at), items.get(i)) {
                    *slot = e.clone();
                    slot.flags |= OCCUPIED;
                }
            }
        }
        Shard { slots, cap }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn entry(d: KeyDigest, rt: u32) -> KeyEntry {
        KeyEntry {
            digest: d,
            rt,
            ..KeyEntry::empty()
        }
    }

    fn random_digests(n: usize, seed: u64) -> Vec<KeyDigest> {
        use rand::{Rng, SeedableRng};
        let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
        (0..n).map(|_| rng.random()).collect()
    }

    #[test]
    fn finds_every_entry_and_nothing_else() {
        for n in [1, 2, 3, 10, 200, 1024, 5000] {
            let all = random_digests(2 * n, n as u64 + 1);
            let (present, absent) = all.split_at(n);
            let shard = Shard::build(
                n,
                present.iter().enumerate().map(|(i, d)| entry(*d, i as u32)),
            );
            for (i, d) in present.iter().enumerate() {
                assert_eq!(shard.find(d).unwrap().rt, i as u32, "n {n}");
            }
            assert!(absent.iter().all(|d| shard.find(d).is_none()), "n {n}");
            assert_eq!(shard.entries().count(), n);
        }
        assert!(Shard::build(0, std::iter::empty()).find(&[1; 32]).is_none());
        // Entries beyond `n` are ignored.
        let few = Shard::build(2, (0..50u8).map(|i| entry([i; 32], 0)));
        assert_eq!(few.entries().count(), 2);
    }

    #[test]
    fn digests_that_share_a_home_probe_past_each_other() {
        // Chosen (imported) digests can share their home bytes: one long run, pushed past
        // the last home slot, and every one of them still found.
        let digests: Vec<KeyDigest> = (0..200u8)
            .map(|i| {
                let mut d = [i; 32];
                d[8..16].copy_from_slice(&[if i % 2 == 0 { 0xff } else { 0x10 }; 8]);
                d
            })
            .collect();
        let shard = Shard::build(
            digests.len(),
            digests.iter().enumerate().map(|(i, d)| entry(*d, i as u32)),
        );
        for (i, d) in digests.iter().enumerate() {
            assert_eq!(shard.find(d).unwrap().rt, i as u32);
        }
        let mut other = [250; 32];
        other[8..16].copy_from_slice(&[0xff; 8]);
        assert!(shard.find(&other).is_none());
        assert!(shard.find(&[3; 32]).is_none());
    }

    #[test]
    fn runs_are_sorted_by_home_so_a_miss_stops_early() {
        let digests = random_digests(1000, 7);
        let shard = Shard::build(1000, digests.iter().map(|d| entry(*d, 0)));
        let homes: Vec<Option<usize>> = shard
            .slots
            .iter()
            .map(|e| e.has(OCCUPIED).then(|| home(&e.digest, shard.cap)))
            .collect();
        for (i, h) in homes.iter().enumerate() {
            if let Some(h) = *h {
                assert!(h <= i, "slot {i} holds an entry homed at {h}");
                if let Some(Some(next)) = homes.get(i + 1) {
                    assert!(h <= *next, "run not sorted at slot {i}");
                }
            }
        }
        // What that buys: misses stop after about as many probes as hits take.
        let probes: usize = random_digests(1000, 99)
            .iter()
            .map(|d| {
                let h = home(d, shard.cap);
                let run = homes[h..].iter().take_while(|x| x.is_some_and(|x| x <= h));
                run.count() + 1
            })
            .sum();
        assert!(probes < 1000 * 3, "{probes} probes for 1000 misses");
    }

    #[test]
    fn a_later_duplicate_replaces_the_earlier() {
        let shard = Shard::build(2, [entry([7; 32], 1), entry([7; 32], 2)]);
        assert_eq!(shard.find(&[7; 32]).unwrap().rt, 2);
        assert_eq!(shard.entries().count(), 1);
    }

    #[test]
    fn an_entry_is_one_cache_line() {
        assert_eq!(std::mem::size_of::<KeyEntry>(), 64);
        assert_eq!(std::mem::align_of::<KeyEntry>(), 64);
        // The shard array's size the snapshot's docs give (1M keys: 976 shards, 23 KB).
        assert_eq!(std::mem::size_of::<Shard>(), 24);
    }
}
