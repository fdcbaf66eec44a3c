//! Model names interned to small ids, store-wide and append-only, so allow-lists are id
//! sets and the decision memo can key on an integer.

use foldhash::fast::RandomState;

/// The largest number of distinct model names interned (ids fit the memo's 22 bits).
pub(crate) const MAX_MODELS: u32 = (1 << 22) - 1;
/// Names seen only in requests are interned while fewer than this many names exist, so a
/// client sending random model names cannot crowd out the names of allow-lists. Past it,
/// such requests are still decided correctly, only without a memoized decision.
pub(crate) const MAX_REQUEST_MODELS: u32 = 1 << 20;

/// Model name -> id.
pub(crate) struct ModelIds {
    map: papaya::HashMap<Box<str>, u32, RandomState>,
    next: parking_lot::Mutex<u32>,
}

/// A read-only copy of the interner, carried by each snapshot so the hot path looks model
/// names up in a plain hash table.
pub(crate) type ModelMap = hashbrown::HashMap<Box<str>, u32, RandomState>;

impl ModelIds {
    /// How many names are interned.
    pub fn len(&self) -> usize {
        self.map.len()
    }

    /// A copy of every interned name.
    pub fn to_map(&self) -> ModelMap {
        let pinned = self.map.pin();
        let mut m = ModelMap::with_capacity_and_hasher(pinned.len(), RandomState::default());
        for (k, v) in pinned.iter() {
            m.insert(k.clone(), *v);
        }
        m
    }

    pub fn new() -> Self {
        Self {
            map: papaya::HashMap::with_hasher(RandomState::default()),
            next: parking_lot::Mutex::new(0),
        }
    }

    /// The id of a model name if it was ever interned. Lock-free.
    #[inline]
    pub fn get(&self, name: &str) -> Option<u32> {
        self.map.pin().get(name).copied()
    }

    /// The id of a model name, interning it if there is room below `cap`.
    pub fn intern(&self, name: &str, cap: u32) -> Option<u32> {
        if let Some(id) = self.get(name) {
            return Some(id);
        }
        let mut next = self.next.lock();
        if let Some(id) = self.get(name) {
            return Some(id);
        }
        if *next >= cap.min(MAX_MODELS) {
            return None;
        }
        let id = *next;
        *next += 1;
        self.map.pin().insert(name.into(), id);
        Some(id)
    }

    /// Interns every name of an allow-list; the result is sorted. `None` only when more
    /// than four million distinct names exist.
    pub fn intern_all<S: AsRef<str>>(&self, names: &[S]) -> Option<Box<[u32]>> {
        let mut ids = Vec::with_capacity(names.len());
        for n in names {
            ids.push(self.intern(n.as_ref(), MAX_MODELS)?);
        }
        ids.sort_unstable();
        ids.dedup();
        Some(ids.into_boxed_slice())
    }
}
