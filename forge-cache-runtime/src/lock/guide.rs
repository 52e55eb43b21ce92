//! Name-only lock calls, `acquire_lock(name, timeout) -> bool` and
//! `release_lock(name)`, on the safe mechanism: the owner token is kept in
//! the manager, so `release_lock` releases only a lock this manager holds.

use std::collections::HashMap;
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant};

use super::guard::Held;
use crate::block::Manager;
use crate::drive::{Async, Drive, block_now};
use crate::error::Result;
use crate::manager::{CacheManager, FeatureState};

/// Above this many entries, expired ones are dropped on each insert.
const PRUNE_ABOVE: usize = 64;

/// The locks a manager took with `acquire_lock`: name → token, and when its
/// TTL runs out.
/// The locks a manager took with `acquire_lock`, by name.
#[derive(Default)]
pub(crate) struct HeldLocks(Mutex<HashMap<String, (Held, Instant)>>);

impl FeatureState for HeldLocks {
    const SLOT: usize = 1;
}

/// `acquire_lock`, written once for both drivers.
async fn acquire_lock<D: Drive>(d: &D, lock_name: &str, timeout: Duration) -> Result<bool> {
    let Some(held) = super::try_acquire(d, lock_name, timeout).await? else {
        return Ok(false);
    };
    d.manager().state::<HeldLocks>().insert(held, timeout);
    Ok(true)
}

/// `release_lock`, written once for both drivers.
async fn release_lock<D: Drive>(d: &D, lock_name: &str) -> Result<bool> {
    let locks = d.manager().state::<HeldLocks>();
    let Some(entry) = locks.take(lock_name) else {
        return Ok(false);
    };
    super::release(d, &entry.0)
        .await
        .inspect_err(|_| locks.restore(entry))
}

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
        acquire_lock(&Async(self), lock_name, timeout).await
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
        release_lock(&Async(self), lock_name).await
    }
}

impl Manager<'_> {
    /// Blocking form of [`CacheManager::acquire_lock`].
    ///
    /// ```
    /// # let cache = forge_cache_runtime::CacheManager::new(forge_cache_runtime::RedisSettings::memory())?;
    /// assert!(cache.blocking().acquire_lock("job", std::time::Duration::from_secs(10))?);
    /// assert!(cache.blocking().release_lock("job")?);
    /// # Ok::<(), forge_cache_runtime::Error>(())
    /// ```
    pub fn acquire_lock(&self, lock_name: &str, timeout: Duration) -> Result<bool> {
        block_now(acquire_lock(&self.drive(), lock_name, timeout))
    }

    /// Blocking form of [`CacheManager::release_lock`].
    ///
    /// ```
    /// # let cache = forge_cache_runtime::CacheManager::new(forge_cache_runtime::RedisSettings::memory())?;
    /// assert!(!cache.blocking().release_lock("never-taken")?);
    /// # Ok::<(), forge_cache_runtime::Error>(())
    /// ```
    pub fn release_lock(&self, lock_name: &str) -> Result<bool> {
        block_now(release_lock(&self.drive(), lock_name))
    }
}
