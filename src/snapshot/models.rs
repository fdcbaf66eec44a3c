//! Model names interned to small ids, store-wide and append-only, so allow-lists are id
//! sets and the decision memo can key on an integer.
//!
//! Only names that something the store holds mentions are interned: org allow-lists, key
//! allow-lists and the gateway policies' `Model::"..."` literals. A name seen only in
//! requests is never interned: the gateway looks it up in the snapshot's read-only map,
//! misses, and decides it as a model no allow-list holds (see [`UNMENTIONED`]), so
//! requests cost nothing permanent, take no lock and never republish the snapshot.

use std::sync::Arc;

use foldhash::fast::RandomState;

/// The largest number of distinct model names interned (ids fit the memo's 22 bits, and
/// one value is kept for [`UNMENTIONED`]).
pub(crate) const MAX_MODELS: u32 = (1 << 22) - 1;

/// The memo's model id for every name that is not interned. No gateway policy names such
/// a model (policy literals are interned), and a Cedar policy can tell models apart only by
/// naming them (a `Model` has no attributes or parents), so the decision is the same for all
/// of them and one memo word answers for all.
pub(crate) const UNMENTIONED: u32 = MAX_MODELS;

/// A read-only copy of the interner, carried by each snapshot so the hot path looks model
/// names up in a plain hash table.
pub(crate) type ModelMap = hashbrown::HashMap<Arc<str>, u32, RandomState>;

/// Model name -> id. Used by writers only (publication and policy reloads).
pub(crate) struct ModelInterner {
    inner: parking_lot::Mutex<Names>,
}

#[derive(Default)]
struct Names {
    ids: ModelMap,
    /// Names by id.
    by_id: Vec<Arc<str>>,
}

impl ModelInterner {
    pub fn new() -> Self {
        Self {
            inner: parking_lot::Mutex::new(Names::default()),
        }
    }

    /// How many names are interned.
    pub fn len(&self) -> usize {
        self.inner.lock().by_id.len()
    }

    /// The map for a snapshot that follows one carrying `old`: `old` itself unless names
    /// were interned since, else a copy with the new names added (names are shared, not
    /// copied).
    pub fn map_after(&self, old: &Arc<ModelMap>) -> Arc<ModelMap> {
        let names = self.inner.lock();
        if old.len() >= names.by_id.len() {
            return old.clone();
        }
        let mut m = (**old).clone();
        m.reserve(names.by_id.len() - old.len());
        for (id, name) in names.by_id.iter().enumerate().skip(old.len()) {
            m.insert(name.clone(), id as u32);
        }
        Arc::new(m)
    }

    /// The id of a model name, interning it if there is room.
    pub fn intern(&self, name: &str) -> Option<u32> {
        let mut names = self.inner.lock();
        if let Some(&id) = names.ids.get(name) {
            return Some(id);
        }
        let id = u32::try_from(names.by_id.len())
            .ok()
            .filter(|&id| id < MAX_MODELS)?;
        let name: Arc<str> = name.into();
        names.by_id.push(name.clone());
        names.ids.insert(name, id);
        Some(id)
    }

    /// Interns every name of an allow-list; the result is sorted. `None` only when more
    /// than four million distinct names exist.
    pub fn intern_all<S: AsRef<str>>(&self, names: &[S]) -> Option<Box<[u32]>> {
        let mut ids = Vec::with_capacity(names.len());
        for n in names {
            ids.push(self.intern(n.as_ref())?);
        }
        ids.sort_unstable();
        ids.dedup();
        Some(ids.into_boxed_slice())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn maps_follow_the_interner_and_share_old_maps() {
        let ids = ModelInterner::new();
        let empty = Arc::new(ModelMap::default());
        assert!(Arc::ptr_eq(&ids.map_after(&empty), &empty));
        assert_eq!(ids.intern_all(&["b", "a", "b"]).unwrap().len(), 2);
        let m1 = ids.map_after(&empty);
        assert_eq!((m1.get("b"), m1.get("a")), (Some(&0), Some(&1)));
        assert!(Arc::ptr_eq(&ids.map_after(&m1), &m1));
        assert_eq!(ids.intern("c"), Some(2));
        let m2 = ids.map_after(&m1);
        assert_eq!((m2.len(), m2.get("c")), (3, Some(&2)));
        assert_eq!(ids.len(), 3);
    }
}
