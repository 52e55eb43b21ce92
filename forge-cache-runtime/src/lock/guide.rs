//! Name-only lock calls, `acquire_lock(name, timeout) -> bool` and
//! `release_lock(name)`, on the safe mechanism: the owner token is kept in
//! the manager, so `release_lock` releases only a lock this manager holds.

use std::collections::HashMap;
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant};

use super::guard::Held;
use crate::error::Result;
use crate::manager::CacheManager;

/// Above this many entries, expired ones are dropped on each insert.
const PRUNE_ABOVE: usize = 64;

/// The locks a manager took with `acquire_lock`: name → token, and when its
/// TTL runs out.
#[derive(Default)]
pub(crate) struct HeldLocks(Mutex<HashMap<String, (Held, Instant)>>);

impl HeldLocks {
    fn map(&self) -> MutexGuard<'_, HashMap<String, (Held, Instant)>> {
        // Every change is a single map operation: a poisoned lock is whole.
        self.0.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn insert(&self, held: Held, ttl: Duration) {
        let now = Instant::now();
        let until = now.checked_add(ttl).unwrap_or(now);
        let mut map = self.map();
        if map.len() >= PRUNE_ABOVE {
            map.retain(|_, (_, until)| *until > now);
        }
        map.insert(held.name.clone(), (held, until));
    }

    fn take(&self, name: &str) -> Option<(Held, Instant)> {
        self.map().remove(name)
    }

    /// Puts back an entry whose release failed, unless a newer one exists.
    fn restore(&self, entry: (Held, Instant)) {
        self.map().entry(entry.0.name.clone()).or_insert(entry);
    }
}

impl CacheManager {
    fn held_locks(&self) -> &HeldLocks {
        &self.inner.held_locks
    }

    /// Takes the lock `lock_name` for `timeout` (its TTL; 10 s is a usual
    /// choice) without waiting and
    /// returns whether it was taken. The owner token is remembered in this
    /// manager for [`release_lock`](Self::release_lock).
    ///
    /// The lock can only be released by its owner: a release that deleted
    /// the key whoever held it would let a slow holder whose lock expired
    /// delete the next holder's lock. The owner
    /// here is the manager (the process), not the task; use
    /// [`try_lock`](Self::try_lock) for a guard owned by one task, and the
    /// fencing token.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")] async fn main() -> forge_cache_runtime::Result<()> {
    /// use std::time::Duration;
    /// use forge_cache_runtime::{CacheManager, RedisSettings};
    ///
    /// let cache = CacheManager::new(RedisSettings::memory())?;
    /// let lock_name = format!("payment:{}", 42);
    /// if !cache.acquire_lock(&lock_name, Duration::from_secs(10)).await? {
    ///     panic!("Payment already being processed");
    /// }
    /// // process the payment...
    /// assert!(cache.release_lock(&lock_name).await?);
    /// # Ok(()) }
    /// ```
    pub async fn acquire_lock(&self, lock_name: &str, timeout: Duration) -> Result<bool> {
        let Some(held) = self.acquire(lock_name, timeout).await? else {
            return Ok(false);
        };
        self.held_locks().insert(held, timeout);
        Ok(true)
    }

    /// Sync form of [`acquire_lock`](Self::acquire_lock).
    ///
    /// ```
    /// # let cache = forge_cache_runtime::CacheManager::new(forge_cache_runtime::RedisSettings::memory())?;
    /// assert!(cache.acquire_lock_sync("job", std::time::Duration::from_secs(10))?);
    /// assert!(cache.release_lock_sync("job")?);
    /// # Ok::<(), forge_cache_runtime::Error>(())
    /// ```
    pub fn acquire_lock_sync(&self, lock_name: &str, timeout: Duration) -> Result<bool> {
        let Some(held) = self.acquire_sync(lock_name, timeout)? else {
            return Ok(false);
        };
        self.held_locks().insert(held, timeout);
        Ok(true)
    }

    /// Releases the lock `lock_name`, safely: only
    /// if this manager took it with [`acquire_lock`](Self::acquire_lock) and
    /// it has not expired since (a holder whose TTL ran out cannot delete the
    /// next holder's lock). Returns whether a lock was released.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")] async fn main() -> forge_cache_runtime::Result<()> {
    /// # use std::time::Duration;
    /// # let cache = forge_cache_runtime::CacheManager::new(forge_cache_runtime::RedisSettings::memory())?;
    /// // Not taken by this manager: nothing is deleted.
    /// assert!(!cache.release_lock("payment:42").await?);
    /// # Ok(()) }
    /// ```
    pub async fn release_lock(&self, lock_name: &str) -> Result<bool> {
        let Some(entry) = self.held_locks().take(lock_name) else {
            return Ok(false);
        };
        entry
            .0
            .release(self)
            .await
            .inspect_err(|_| self.held_locks().restore(entry))
    }

    /// Sync form of [`release_lock`](Self::release_lock).
    ///
    /// ```
    /// # let cache = forge_cache_runtime::CacheManager::new(forge_cache_runtime::RedisSettings::memory())?;
    /// assert!(!cache.release_lock_sync("never-taken")?);
    /// # Ok::<(), forge_cache_runtime::Error>(())
    /// ```
    pub fn release_lock_sync(&self, lock_name: &str) -> Result<bool> {
        let Some(entry) = self.held_locks().take(lock_name) else {
            return Ok(false);
        };
        entry
            .0
            .release_sync(self)
            .inspect_err(|_| self.held_locks().restore(entry))
    }
}
