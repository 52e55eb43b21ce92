//! The embedded in-memory backend: Redis semantics for what forge-cache
//! uses, in one process.
//!
//! Keys are spread over shards by their Redis Cluster hash tag (the part in
//! `{...}`, or the whole key), so keys that share a tag can be changed together
//! atomically under one shard lock, exactly like a Lua script on Redis. Every
//! entry carries a deadline; each shard keeps an index ordered by deadline, so
//! expired entries are reclaimed a few at a time on writes (never by a full
//! scan) and, when a shard is full, the soonest-expiring entry is evicted
//! (Redis's `volatile-ttl` policy).

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use crate::glob::glob_match;

const SHARDS: usize = 16;
/// The field of [`MemoryStore::info_memory`] that counts live entries.
pub(crate) const MEMORY_ENTRIES_FIELD: &str = "forge_cache_entries";
/// Expired entries reclaimed per write, at most.
const RECLAIM_PER_WRITE: usize = 8;

/// A stored value.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Value {
    Bytes(Arc<[u8]>),
    Int(i64),
}

impl Value {
    /// The value as Redis `GET` would return it.
    pub(crate) fn to_bytes(&self) -> Arc<[u8]> {
        match self {
            Value::Bytes(b) => b.clone(),
            Value::Int(i) => Arc::from(i.to_string().into_bytes()),
        }
    }

    /// The value as an integer, as Redis `INCR` would read it.
    pub(crate) fn as_int(&self) -> Option<i64> {
        match self {
            Value::Int(i) => Some(*i),
            Value::Bytes(b) => std::str::from_utf8(b).ok()?.parse().ok(),
        }
    }
}

struct Entry {
    value: Value,
    deadline: Instant,
    seq: u64,
}

#[derive(Default)]
struct Shard {
    map: HashMap<Arc<str>, Entry>,
    by_deadline: BTreeMap<(Instant, u64), Arc<str>>,
    seq: u64,
}

/// The in-memory store. Cheap to share behind an `Arc`.
pub(crate) struct MemoryStore {
    shards: Box<[Mutex<Shard>]>,
    per_shard_capacity: usize,
    /// The most bytes seen in use by [`info_memory`](Self::info_memory).
    peak_bytes: AtomicUsize,
}

impl MemoryStore {
    pub(crate) fn new(max_entries: usize) -> Self {
        MemoryStore {
            shards: (0..SHARDS).map(|_| Mutex::new(Shard::default())).collect(),
            per_shard_capacity: max_entries.div_ceil(SHARDS).max(1),
            peak_bytes: AtomicUsize::new(0),
        }
    }

    fn shard(&self, key: &str) -> MutexGuard<'_, Shard> {
        let idx = fnv1a(hash_tag(key.as_bytes())) as usize % SHARDS;
        // A panic while holding a shard lock cannot leave an entry half
        // written (every mutation is a single map operation), so a poisoned
        // lock is safe to keep using.
        self.shards[idx].lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Runs `f` atomically over the keys that share `key`'s hash tag.
    pub(crate) fn txn<R>(&self, key: &str, f: impl FnOnce(&mut Txn<'_>) -> R) -> R {
        let mut shard = self.shard(key);
        let now = Instant::now();
        let mut txn = Txn {
            shard: &mut shard,
            now,
            capacity: self.per_shard_capacity,
            wrote: false,
        };
        let out = f(&mut txn);
        if txn.wrote {
            txn.reclaim();
        }
        out
    }

    pub(crate) fn get(&self, key: &str) -> Option<Arc<[u8]>> {
        self.txn(key, |t| t.get(key).map(Value::to_bytes))
    }

    pub(crate) fn set(&self, key: &str, value: Value, ttl: Duration) {
        self.txn(key, |t| t.set(key, value, ttl));
    }

    pub(crate) fn set_nx(&self, key: &str, value: Value, ttl: Duration) -> bool {
        self.txn(key, |t| {
            if t.get(key).is_some() {
                false
            } else {
                t.set(key, value, ttl);
                true
            }
        })
    }

    pub(crate) fn del(&self, key: &str) -> bool {
        self.txn(key, |t| t.del(key))
    }

    pub(crate) fn pttl(&self, key: &str) -> Option<Duration> {
        self.txn(key, |t| t.pttl(key))
    }

    pub(crate) fn expire(&self, key: &str, ttl: Duration) -> bool {
        self.txn(key, |t| t.expire(key, ttl))
    }

    /// Every live key matching the Redis glob `pattern` (the in-memory
    /// `SCAN`, in one step).
    pub(crate) fn keys_matching(&self, pattern: &str) -> Vec<Arc<str>> {
        let mut keys = Vec::new();
        for shard in self.shards.iter() {
            let shard = shard.lock().unwrap_or_else(|e| e.into_inner());
            let now = Instant::now();
            keys.extend(
                shard
                    .map
                    .iter()
                    .filter(|(k, e)| {
                        e.deadline > now && glob_match(pattern.as_bytes(), k.as_bytes())
                    })
                    .map(|(k, _)| k.clone()),
            );
        }
        keys
    }

    /// The in-memory `INFO memory`: the bytes keys and values hold, the
    /// peak of that figure, and (a field of our own) the live entries.
    pub(crate) fn info_memory(&self) -> String {
        let (entries, bytes) = self.usage();
        let peak = self
            .peak_bytes
            .fetch_max(bytes, Ordering::Relaxed)
            .max(bytes);
        format!(
            "used_memory:{bytes}\r\nused_memory_peak:{peak}\r\nmem_fragmentation_ratio:1.00\r\n{MEMORY_ENTRIES_FIELD}:{entries}\r\n"
        )
    }

    /// Number of live entries and the bytes their keys and values hold.
    fn usage(&self) -> (usize, usize) {
        let (mut entries, mut bytes) = (0, 0);
        for shard in self.shards.iter() {
            let shard = shard.lock().unwrap_or_else(|e| e.into_inner());
            let now = Instant::now();
            for (k, e) in shard.map.iter().filter(|(_, e)| e.deadline > now) {
                entries += 1;
                bytes += k.len()
                    + match &e.value {
                        Value::Bytes(b) => b.len(),
                        Value::Int(_) => 8,
                    };
            }
        }
        (entries, bytes)
    }
}

impl Shard {
    fn remove(&mut self, key: &str) -> bool {
        match self.map.remove(key) {
            Some(e) => {
                self.by_deadline.remove(&(e.deadline, e.seq));
                true
            }
            None => false,
        }
    }
}

/// Atomic access to one shard, handed to [`MemoryStore::txn`] closures.
/// Every write takes a TTL: nothing is stored without one.
pub(crate) struct Txn<'a> {
    shard: &'a mut Shard,
    now: Instant,
    capacity: usize,
    wrote: bool,
}

impl Txn<'_> {
    /// The time this transaction runs at (one clock reading per transaction,
    /// like a Redis script's `TIME`).
    pub(crate) fn now(&self) -> Instant {
        self.now
    }

    pub(crate) fn get(&mut self, key: &str) -> Option<&Value> {
        let live = match self.shard.map.get(key) {
            Some(e) => e.deadline > self.now,
            None => return None,
        };
        if !live {
            self.shard.remove(key);
            return None;
        }
        self.shard.map.get(key).map(|e| &e.value)
    }

    pub(crate) fn set(&mut self, key: &str, value: Value, ttl: Duration) {
        let ttl = ttl.max(Duration::from_millis(1));
        // A TTL too long for the clock (`Duration::MAX`) is a century.
        let deadline = self
            .now
            .checked_add(ttl)
            .unwrap_or(self.now + Duration::from_secs(100 * 365 * 86_400));
        self.wrote = true;
        let shard = &mut *self.shard;
        shard.seq += 1;
        let seq = shard.seq;
        let existing = shard.map.get_key_value(key).map(|(k, _)| k.clone());
        if let Some(k) = existing {
            if let Some(e) = shard.map.get_mut(key) {
                shard.by_deadline.remove(&(e.deadline, e.seq));
                *e = Entry {
                    value,
                    deadline,
                    seq,
                };
                shard.by_deadline.insert((deadline, seq), k);
            }
            return;
        }
        while shard.map.len() >= self.capacity {
            let Some((_, victim)) = shard.by_deadline.pop_first() else {
                break;
            };
            shard.map.remove(&victim);
        }
        let k: Arc<str> = Arc::from(key);
        shard.by_deadline.insert((deadline, seq), k.clone());
        shard.map.insert(
            k,
            Entry {
                value,
                deadline,
                seq,
            },
        );
    }

    pub(crate) fn del(&mut self, key: &str) -> bool {
        let live = self.get(key).is_some();
        if live {
            self.shard.remove(key);
        }
        live
    }

    /// Remaining time to live, `None` when the key does not exist.
    pub(crate) fn pttl(&mut self, key: &str) -> Option<Duration> {
        self.get(key)?;
        self.shard.map.get(key).map(|e| e.deadline - self.now)
    }

    pub(crate) fn expire(&mut self, key: &str, ttl: Duration) -> bool {
        match self.get(key) {
            Some(v) => {
                let v = v.clone();
                self.set(key, v, ttl);
                true
            }
            None => false,
        }
    }

    fn reclaim(&mut self) {
        for _ in 0..RECLAIM_PER_WRITE {
            match self.shard.by_deadline.first_key_value() {
                Some((&(deadline, _), _)) if deadline <= self.now => {
                    if let Some((_, key)) = self.shard.by_deadline.pop_first() {
                        self.shard.map.remove(&key);
                    }
                }
                _ => break,
            }
        }
    }
}

/// The part of a key Redis Cluster hashes: the first non-empty `{...}`, or
/// the whole key.
pub(crate) fn hash_tag(key: &[u8]) -> &[u8] {
    if let Some(open) = key.iter().position(|&b| b == b'{') {
        if let Some(len) = key[open + 1..].iter().position(|&b| b == b'}') {
            if len > 0 {
                return &key[open + 1..open + 1 + len];
            }
        }
    }
    key
}

fn fnv1a(bytes: &[u8]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for &b in bytes {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    h
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bytes(s: &str) -> Value {
        Value::Bytes(Arc::from(s.as_bytes()))
    }

    #[test]
    fn capacity_evicts_soonest_expiring_first() {
        let store = MemoryStore::new(SHARDS); // one entry per shard
        store.set("{t}a", bytes("a"), Duration::from_secs(10));
        store.set("{t}b", bytes("b"), Duration::from_secs(100));
        assert!(store.get("{t}a").is_none());
        assert!(store.get("{t}b").is_some());
    }

    #[test]
    fn expired_entries_are_reclaimed_by_later_writes() {
        let store = MemoryStore::new(1000);
        for i in 0..8 {
            store.set(
                &format!("{{t}}old{i}"),
                bytes("x"),
                Duration::from_millis(1),
            );
        }
        std::thread::sleep(Duration::from_millis(5));
        store.set("{t}new", bytes("y"), Duration::from_secs(10));
        let shard = store.shard("{t}");
        assert_eq!(shard.map.len(), 1);
        assert_eq!(shard.by_deadline.len(), 1);
    }

    #[test]
    fn hash_tag_follows_redis_cluster_rules() {
        assert_eq!(hash_tag(b"a{b}c"), b"b");
        assert_eq!(hash_tag(b"a{}c"), b"a{}c");
        assert_eq!(hash_tag(b"abc"), b"abc");
        assert_eq!(hash_tag(b"{x}{y}"), b"x");
    }
}
