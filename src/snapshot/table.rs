//! One shard of keys: an open-addressing table of 64-byte entries in a single `Arc<[_]>`
//! allocation, so finding a key reads one cache line on one page (plus its neighbours when
//! probing), with no header or control bytes elsewhere. Shards are never edited in place:
//! a commit builds the touched shard anew at a load of at most two thirds.

use std::sync::Arc;

use super::entry::{KeyEntry, OCCUPIED};
use crate::keys::KeyDigest;

/// One shard.
pub(crate) type Shard = Arc<[KeyEntry]>;

/// The slot a digest probes first among `len` (multiply-shift of digest bytes 8..16; the
/// digest is uniformly random already).
#[inline]
fn home(d: &KeyDigest, len: usize) -> usize {
    let h = u64::from_le_bytes([d[8], d[9], d[10], d[11], d[12], d[13], d[14], d[15]]);
    ((u128::from(h) * len as u128) >> 64) as usize
}

/// The entry of a digest: linear probing from its home slot up to the first empty slot.
#[inline]
pub(crate) fn find<'a>(shard: &'a [KeyEntry], d: &KeyDigest) -> Option<&'a KeyEntry> {
    let len = shard.len();
    let mut i = home(d, len);
    // A shard always keeps an empty slot, so the loop ends well before `len` steps.
    for _ in 0..len {
        let e = shard.get(i)?;
        if !e.has(OCCUPIED) {
            return None;
        }
        if e.digest == *d {
            return Some(e);
        }
        i += 1;
        if i == len {
            i = 0;
        }
    }
    None
}

/// Builds a shard from the first `n` of `entries`, whose digests are distinct (a later
/// duplicate replaces an earlier one). The slots are allocated in their final `Arc` and
/// filled in place: no copy of the table.
pub(crate) fn build(n: usize, entries: impl IntoIterator<Item = KeyEntry>) -> Shard {
    if n == 0 {
        return Arc::from(Vec::new());
    }
    let len = n + n / 2 + 1;
    let mut shard: Shard = std::iter::repeat_with(KeyEntry::empty).take(len).collect();
    // Just made, so not shared; `get_mut` cannot fail.
    let Some(slots) = Arc::get_mut(&mut shard) else {
        return shard;
    };
    for mut e in entries.into_iter().take(n) {
        e.flags |= OCCUPIED;
        let mut i = home(&e.digest, len);
        loop {
            match slots.get_mut(i) {
                Some(s) if s.has(OCCUPIED) && s.digest != e.digest => {
                    i = if i + 1 == len { 0 } else { i + 1 };
                }
                Some(s) => {
                    *s = e;
                    break;
                }
                None => break,
            }
        }
    }
    shard
}

/// The live entries of a shard.
pub(crate) fn entries(shard: &[KeyEntry]) -> impl Iterator<Item = &KeyEntry> {
    shard.iter().filter(|e| e.has(OCCUPIED))
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

    #[test]
    fn finds_every_entry_and_nothing_else() {
        // Digests that share their home slot probe past each other.
        let digests: Vec<KeyDigest> = (0..200u8)
            .map(|i| {
                let mut d = [i; 32];
                d[8..16].copy_from_slice(&[(i % 3) * 80; 8]);
                d
            })
            .collect();
        let shard = build(
            digests.len(),
            digests.iter().enumerate().map(|(i, d)| entry(*d, i as u32)),
        );
        assert_eq!(shard.len(), 301);
        for (i, d) in digests.iter().enumerate() {
            assert_eq!(find(&shard, d).unwrap().rt, i as u32);
        }
        assert!(find(&shard, &[250; 32]).is_none());
        assert_eq!(entries(&shard).count(), 200);
        assert!(find(&build(0, std::iter::empty()), &[1; 32]).is_none());
        // Entries beyond `n` are ignored: the table never fills up.
        let few = build(2, (0..50u8).map(|i| entry([i; 32], 0)));
        assert_eq!((few.len(), entries(&few).count()), (4, 2));
    }

    #[test]
    fn a_later_duplicate_replaces_the_earlier() {
        let shard = build(2, [entry([7; 32], 1), entry([7; 32], 2)]);
        assert_eq!(find(&shard, &[7; 32]).unwrap().rt, 2);
        assert_eq!(entries(&shard).count(), 1);
    }

    #[test]
    fn an_entry_is_one_cache_line() {
        assert_eq!(std::mem::size_of::<KeyEntry>(), 64);
        assert_eq!(std::mem::align_of::<KeyEntry>(), 64);
    }
}
