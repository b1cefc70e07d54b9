//! The worker's cache of shipped sub-models: a byte-bounded LRU over the spilled files of
//! [`crate::spill::ModelStore`].
//!
//! Why bounded: a token holder (or any local user of a token-less worker) could otherwise
//! fill the worker's disk or memory by uploading distinct models (issue 19, item 5). Why
//! keep models at all: a coordinator that re-runs a plan skips the upload
//! (`ModelQuery`/`ModelHave`); an evicted model is simply reported missing and shipped
//! again. Models the live deployment uses are never evicted, nor is the model just
//! inserted (its `Deploy` follows), so the cache may exceed its cap by those.

use crate::spill::{ModelStore, Stored};
use std::collections::{HashMap, HashSet};

/// Default cap of the cache [MiB] (`dicesim worker --cache-mb`).
pub const DEFAULT_CACHE_MB: u64 = 4096;

/// A sub-model's hash.
pub type Hash = [u8; 32];

struct Entry {
    /// Size of the sub-model [bytes].
    bytes: u64,
    /// When it was last inserted or used (a counter, larger is more recent).
    last_use: u64,
}

/// Shipped sub-models, at most `cap` bytes of them beyond those in use.
pub struct ModelCache {
    store: ModelStore,
    cap: u64,
    used: u64,
    entries: HashMap<Hash, Entry>,
    clock: u64,
}

impl ModelCache {
    /// An empty cache holding at most `cap` bytes (beyond models in use).
    pub fn new(cap: u64) -> ModelCache {
        ModelCache {
            store: ModelStore::new(),
            cap,
            used: 0,
            entries: HashMap::new(),
            clock: 0,
        }
    }

    /// Sub-model `hash`, marked as just used; None if never shipped or evicted.
    pub fn get(&mut self, hash: &Hash) -> Option<Stored> {
        let stored = self.store.get(hash)?;
        self.clock += 1;
        if let Some(e) = self.entries.get_mut(hash) {
            e.last_use = self.clock;
        }
        Some(stored)
    }

    /// Stores sub-model `hash` (verified by the caller), then evicts the least recently
    /// used models outside `in_use` until the cache fits its cap again. Returns the
    /// evicted hashes.
    pub fn insert(&mut self, hash: Hash, bytes: Vec<u8>, in_use: &HashSet<Hash>) -> Vec<Hash> {
        let size = bytes.len() as u64;
        self.clock += 1;
        if let Some(e) = self.entries.get_mut(&hash) {
            e.last_use = self.clock;
        } else {
            self.store.insert(hash, bytes);
            self.used += size;
            let last_use = self.clock;
            self.entries.insert(
                hash,
                Entry {
                    bytes: size,
                    last_use,
                },
            );
        }
        self.evict(&hash, in_use)
    }

    fn evict(&mut self, newest: &Hash, in_use: &HashSet<Hash>) -> Vec<Hash> {
        let mut evicted = Vec::new();
        while self.used > self.cap {
            let victim = (self.entries.iter())
                .filter(|(h, _)| *h != newest && !in_use.contains(*h))
                .min_by_key(|(_, e)| e.last_use)
                .map(|(h, _)| *h);
            let Some(h) = victim else {
                break; // everything left is in use
            };
            let e = self.entries.remove(&h).expect("found above");
            self.used -= e.bytes;
            self.store.remove(&h);
            evicted.push(h);
        }
        evicted
    }

    /// Bytes of the cached sub-models.
    pub fn used_bytes(&self) -> u64 {
        self.used
    }

    /// Number of cached sub-models.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether the cache is empty.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// The private directory of the spilled files (None: kept in memory).
    pub fn dir(&self) -> Option<&std::path::Path> {
        self.store.dir()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn files(c: &ModelCache) -> usize {
        std::fs::read_dir(c.dir().unwrap()).unwrap().count()
    }

    #[test]
    fn least_recently_used_models_outside_the_deployment_go_first() {
        let mut c = ModelCache::new(30);
        let none = HashSet::new();
        assert!(c.insert([1; 32], vec![0; 10], &none).is_empty());
        assert!(c.insert([2; 32], vec![0; 10], &none).is_empty());
        assert!(c.insert([3; 32], vec![0; 10], &none).is_empty());
        assert!(c.get(&[1; 32]).is_some()); // 2 is now the least recently used
        assert_eq!(c.insert([4; 32], vec![0; 10], &none), vec![[2; 32]]);
        assert!(c.get(&[2; 32]).is_none());
        assert_eq!((c.len(), c.used_bytes(), files(&c)), (3, 30, 3));
        // 3 is in use: 1 goes instead
        let live: HashSet<Hash> = [[3; 32]].into();
        assert_eq!(c.insert([5; 32], vec![0; 10], &live), vec![[1; 32]]);
        // a model larger than the cap stays (its Deploy follows); all others not in use go
        assert_eq!(c.insert([6; 32], vec![0; 50], &live).len(), 2);
        assert!(c.get(&[3; 32]).is_some() && c.get(&[6; 32]).is_some());
        assert_eq!((c.len(), c.used_bytes(), files(&c)), (2, 60, 2));
    }
}
