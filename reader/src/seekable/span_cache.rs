//! Decoded spans of compressed streams, kept for the next read: one cache for
//! the whole process, shared by every [`CompressedSource`](super::CompressedSource)
//! and reader, held to a byte budget with least-recently-used eviction.
//!
//! One budget rather than one per stream: a Clonezilla disk serves dozens of
//! compressed images, and what matters is the daemon's memory, not a stream's.
//! A stream without dense restart points (single-threaded zstd, one-block xz)
//! decodes from far back to reach a read; every segment it passes on the way
//! is kept, so the reads that follow near it (a file system checker, a
//! loop-mounted `tar`) mostly find their bytes here.

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock};

/// The default budget: 256 MiB.
pub const DEFAULT_BUDGET: usize = 256 << 20;

/// (stream, segment number).
type Key = (u64, u64);

#[derive(Debug, Default)]
struct Lru {
    entries: HashMap<Key, (Arc<[u8]>, u64)>,
    /// Use tick → key, oldest first.
    order: BTreeMap<u64, Key>,
    bytes: usize,
    budget: usize,
    tick: u64,
}

impl Lru {
    fn evict_to(&mut self, budget: usize) {
        while self.bytes > budget {
            let Some((_, key)) = self.order.pop_first() else {
                break;
            };
            if let Some((bytes, _)) = self.entries.remove(&key) {
                self.bytes -= bytes.len();
            }
        }
    }
}

/// A byte-budgeted LRU of decoded segments; cheap to clone (shared).
#[derive(Debug, Clone)]
pub struct SpanCache {
    inner: Arc<Mutex<Lru>>,
}

impl SpanCache {
    /// An empty cache holding at most `budget` bytes of decoded data.
    pub fn new(budget: usize) -> Self {
        SpanCache {
            inner: Arc::new(Mutex::new(Lru {
                budget,
                ..Lru::default()
            })),
        }
    }

    /// The process-wide cache every [`CompressedSource`](super::CompressedSource)
    /// uses unless given another; [`DEFAULT_BUDGET`] until
    /// [`set_budget`](Self::set_budget) changes it.
    pub fn global() -> &'static SpanCache {
        static GLOBAL: OnceLock<SpanCache> = OnceLock::new();
        GLOBAL.get_or_init(|| SpanCache::new(DEFAULT_BUDGET))
    }

    fn lock(&self) -> MutexGuard<'_, Lru> {
        // A panicking reader leaves only cached bytes behind: keep serving.
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Holds at most `budget` bytes from now on (0 keeps nothing).
    pub fn set_budget(&self, budget: usize) {
        let mut lru = self.lock();
        lru.budget = budget;
        lru.evict_to(budget);
    }

    /// Bytes held now.
    pub fn bytes(&self) -> usize {
        self.lock().bytes
    }

    /// A new stream's number, for its keys.
    pub(crate) fn new_stream() -> u64 {
        static NEXT: AtomicU64 = AtomicU64::new(0);
        NEXT.fetch_add(1, Ordering::Relaxed)
    }

    /// Segment `segment` of `stream`, if cached (it becomes the most recent).
    pub(crate) fn get(&self, stream: u64, segment: u64) -> Option<Arc<[u8]>> {
        let mut lru = self.lock();
        lru.tick += 1;
        let tick = lru.tick;
        let (bytes, used) = lru.entries.get_mut(&(stream, segment))?;
        let (bytes, old) = (Arc::clone(bytes), std::mem::replace(used, tick));
        lru.order.remove(&old);
        lru.order.insert(tick, (stream, segment));
        Some(bytes)
    }

    /// Keeps `bytes` as segment `segment` of `stream`, evicting the least
    /// recently used segments beyond the budget.
    pub(crate) fn insert(&self, stream: u64, segment: u64, bytes: Arc<[u8]>) {
        let mut lru = self.lock();
        let key = (stream, segment);
        if lru.entries.contains_key(&key) || bytes.len() > lru.budget {
            return;
        }
        lru.tick += 1;
        let tick = lru.tick;
        lru.bytes += bytes.len();
        lru.entries.insert(key, (bytes, tick));
        lru.order.insert(tick, key);
        let budget = lru.budget;
        lru.evict_to(budget);
    }

    /// Drops every segment of `stream` (it is gone).
    pub(crate) fn forget(&self, stream: u64) {
        let mut lru = self.lock();
        let Lru {
            entries,
            order,
            bytes,
            ..
        } = &mut *lru;
        entries.retain(|&(s, _), (b, tick)| {
            if s == stream {
                *bytes -= b.len();
                order.remove(tick);
                false
            } else {
                true
            }
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn span(n: usize, fill: u8) -> Arc<[u8]> {
        vec![fill; n].into()
    }

    #[test]
    fn least_recently_used_goes_first_and_the_budget_holds() {
        let cache = SpanCache::new(300);
        cache.insert(1, 0, span(100, 0));
        cache.insert(1, 1, span(100, 1));
        cache.insert(2, 0, span(100, 2));
        assert!(cache.get(1, 0).is_some()); // now the most recent
        cache.insert(2, 1, span(100, 3)); // evicts (1, 1)
        assert_eq!(cache.bytes(), 300);
        assert!(cache.get(1, 1).is_none());
        assert_eq!(cache.get(1, 0).unwrap()[0], 0);
        assert_eq!(cache.get(2, 1).unwrap()[0], 3);
        cache.forget(2);
        assert_eq!(cache.bytes(), 100);
        assert!(cache.get(2, 0).is_none());
        cache.set_budget(0);
        assert_eq!(cache.bytes(), 0);
        cache.insert(3, 0, span(1, 9));
        assert_eq!(cache.bytes(), 0);
    }
}
