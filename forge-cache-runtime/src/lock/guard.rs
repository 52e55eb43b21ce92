//! What a holder has: the lock's key and the random token that proves
//! ownership, and one guard that releases it, behind the async
//! [`LockGuard`] and the blocking [`BlockingLockGuard`].

use std::fmt;
use std::time::Duration;

use crate::drive::{Async, Blocking, block_now};
use crate::error::Result;
use crate::manager::CacheManager;

/// A held lock: its name, key, owner token and fencing token. Holds no
/// manager, so the name-only API can keep it in the manager's state.
#[derive(Default)]
pub(crate) struct Held {
    pub(super) name: String,
    pub(super) key: String,
    pub(super) token: String,
    pub(super) fence: u64,
}

/// The one guard: a held lock, released on drop unless released already.
pub(crate) struct Guard {
    manager: CacheManager,
    held: Held,
    armed: bool,
    /// Taken through the blocking view: dropped, it releases on this thread.
    blocking: bool,
}

impl Guard {
    pub(super) fn new(manager: CacheManager, held: Held, blocking: bool) -> Self {
        Guard {
            manager,
            held,
            armed: true,
            blocking,
        }
    }

    pub(super) fn held(&self) -> &Held {
        &self.held
    }

    /// Marks the lock released, whatever the outcome of the release: an
    /// error is an outage, and the TTL frees the lock.
    pub(super) fn disarm(&mut self) -> &Held {
        self.armed = false;
        &self.held
    }

    fn debug(&self, kind: &str, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // The owner token is left out: it is the capability to release.
        f.debug_struct(kind)
            .field("name", &self.held.name)
            .field("fencing_token", &self.held.fence)
            .finish_non_exhaustive()
    }
}

impl Drop for Guard {
    fn drop(&mut self) {
        if !self.armed {
            return;
        }
        let held = std::mem::take(&mut self.held);
        let manager = self.manager.clone();
        // Release now, on this thread, when that costs no I/O (in memory),
        // when the guard is a blocking one, or when there is no runtime to
        // release on; else in a task, so a drop never blocks a worker.
        let here = self.blocking || manager.backend().is_local();
        match tokio::runtime::Handle::try_current() {
            Ok(runtime) if !here => {
                runtime.spawn(async move {
                    let released = super::release(&Async(&manager), &held).await;
                    super::release_or_log(&manager, released);
                });
            }
            _ => {
                let released = block_now(super::release(&Blocking(&manager), &held));
                super::release_or_log(&manager, released);
            }
        }
    }
}

/// A held lock, from [`CacheManager::try_lock`] or [`CacheManager::lock`].
///
/// Release it with [`release`](Self::release). A guard dropped without
/// `release` (an early return, a `?`, a panic, a cancelled task) releases
/// the lock in the background: on a Tokio runtime in a spawned task,
/// without one synchronously, best effort. If that release cannot reach the
/// backend (or the process dies), the lock's TTL is the backstop: it frees
/// itself when the TTL runs out.
///
/// # What a Redis lock can promise
///
/// Only one holder at a time *while the TTL has not run out*. A holder that
/// pauses (GC, swapping, a slow network) past its TTL may still act after
/// the next holder took the lock, and a Redis failover can lose a lock that
/// was not yet replicated. That is fine when the lock only saves duplicate
/// work (an efficiency lock). When two holders would corrupt data, also
/// pass [`fencing_token`](Self::fencing_token) to the protected resource
/// and have it reject older tokens (Martin Kleppmann, "How to do
/// distributed locking", 2016).
///
/// ```
/// # #[tokio::main(flavor = "current_thread")] async fn main() -> forge_cache_runtime::Result<()> {
/// use std::time::Duration;
/// use forge_cache_runtime::{CacheManager, RedisSettings};
///
/// let cache = CacheManager::new(RedisSettings::memory())?;
/// let guard = cache.lock("payment:42", Duration::from_secs(10), Duration::from_secs(2)).await?;
/// assert_eq!(guard.name(), "payment:42");
/// assert!(guard.extend(Duration::from_secs(10)).await?);
/// assert!(guard.release().await?);
/// # Ok(()) }
/// ```
#[must_use = "dropping the guard releases the lock right away"]
pub struct LockGuard(pub(super) Guard);

impl LockGuard {
    /// The lock's name, as given when acquiring it.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")] async fn main() -> forge_cache_runtime::Result<()> {
    /// # use std::time::Duration;
    /// # let cache = forge_cache_runtime::CacheManager::new(forge_cache_runtime::RedisSettings::memory())?;
    /// let guard = cache.try_lock("report", Duration::from_secs(5)).await?.unwrap();
    /// assert_eq!(guard.name(), "report");
    /// # Ok(()) }
    /// ```
    pub fn name(&self) -> &str {
        &self.0.held.name
    }

    /// The fencing token: larger than the token of every earlier holder of
    /// this lock name. Pass it to the resource the lock protects, and have
    /// the resource reject writes carrying a token lower than the highest it
    /// has seen, so a holder whose lock expired while it was paused cannot
    /// overwrite the work of the next holder. Tokens stay below 2^53 (safe in
    /// JSON and JavaScript).
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")] async fn main() -> forge_cache_runtime::Result<()> {
    /// # use std::time::Duration;
    /// # let cache = forge_cache_runtime::CacheManager::new(forge_cache_runtime::RedisSettings::memory())?;
    /// let first = cache.try_lock("job", Duration::from_secs(5)).await?.unwrap();
    /// let t1 = first.fencing_token();
    /// first.release().await?;
    /// let second = cache.try_lock("job", Duration::from_secs(5)).await?.unwrap();
    /// assert!(second.fencing_token() > t1);
    /// # Ok(()) }
    /// ```
    pub fn fencing_token(&self) -> u64 {
        self.0.held.fence
    }

    /// Releases the lock. `Ok(true)` when it was released, `Ok(false)` when
    /// it was no longer ours (its TTL ran out, and perhaps someone else holds
    /// it now, whose lock is left alone).
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")] async fn main() -> forge_cache_runtime::Result<()> {
    /// # use std::time::Duration;
    /// # let cache = forge_cache_runtime::CacheManager::new(forge_cache_runtime::RedisSettings::memory())?;
    /// let guard = cache.try_lock("job", Duration::from_secs(5)).await?.unwrap();
    /// assert!(guard.release().await?);
    /// assert!(cache.try_lock("job", Duration::from_secs(5)).await?.is_some());
    /// # Ok(()) }
    /// ```
    pub async fn release(mut self) -> Result<bool> {
        let manager = self.0.manager.clone();
        super::release(&Async(&manager), self.0.disarm()).await
    }

    /// Sets the lock's remaining time to live to `ttl` (from now), if it is
    /// still ours. `Ok(false)` when it is not (its TTL ran out).
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")] async fn main() -> forge_cache_runtime::Result<()> {
    /// # use std::time::Duration;
    /// # let cache = forge_cache_runtime::CacheManager::new(forge_cache_runtime::RedisSettings::memory())?;
    /// let guard = cache.try_lock("job", Duration::from_secs(5)).await?.unwrap();
    /// assert!(guard.extend(Duration::from_secs(30)).await?);
    /// # Ok(()) }
    /// ```
    pub async fn extend(&self, ttl: Duration) -> Result<bool> {
        super::extend(&Async(&self.0.manager), &self.0.held, ttl).await
    }
}

impl fmt::Debug for LockGuard {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.debug("LockGuard", f)
    }
}

/// A held lock for sync code, from
/// [`cache.blocking().try_lock(..)`](crate::blocking::Manager::try_lock) or
/// [`cache.blocking().lock(..)`](crate::blocking::Manager::lock). The same
/// guard as [`LockGuard`], with blocking methods. Dropped without
/// [`release`](Self::release), it releases the lock on the dropping thread
/// (the TTL is the backstop if the backend cannot be reached).
///
/// ```
/// use std::time::Duration;
/// use forge_cache_runtime::{CacheManager, RedisSettings};
///
/// let cache = CacheManager::new(RedisSettings::memory())?;
/// let guard = cache.blocking().lock("nightly-report", Duration::from_secs(60), Duration::from_secs(1))?;
/// assert!(cache.blocking().try_lock("nightly-report", Duration::from_secs(60))?.is_none());
/// assert!(guard.release()?);
/// # Ok::<(), forge_cache_runtime::Error>(())
/// ```
#[must_use = "dropping the guard releases the lock right away"]
pub struct BlockingLockGuard(pub(super) Guard);

impl BlockingLockGuard {
    /// The lock's name, as given when acquiring it.
    ///
    /// ```
    /// # let cache = forge_cache_runtime::CacheManager::new(forge_cache_runtime::RedisSettings::memory())?;
    /// let guard = cache.blocking().try_lock("report", std::time::Duration::from_secs(5))?.unwrap();
    /// assert_eq!(guard.name(), "report");
    /// # Ok::<(), forge_cache_runtime::Error>(())
    /// ```
    pub fn name(&self) -> &str {
        &self.0.held.name
    }

    /// The fencing token; see [`LockGuard::fencing_token`].
    ///
    /// ```
    /// # let cache = forge_cache_runtime::CacheManager::new(forge_cache_runtime::RedisSettings::memory())?;
    /// let guard = cache.blocking().try_lock("job", std::time::Duration::from_secs(5))?.unwrap();
    /// assert!(guard.fencing_token() > 0);
    /// # Ok::<(), forge_cache_runtime::Error>(())
    /// ```
    pub fn fencing_token(&self) -> u64 {
        self.0.held.fence
    }

    /// Releases the lock; see [`LockGuard::release`].
    ///
    /// ```
    /// # let cache = forge_cache_runtime::CacheManager::new(forge_cache_runtime::RedisSettings::memory())?;
    /// let guard = cache.blocking().try_lock("job", std::time::Duration::from_secs(5))?.unwrap();
    /// assert!(guard.release()?);
    /// # Ok::<(), forge_cache_runtime::Error>(())
    /// ```
    pub fn release(mut self) -> Result<bool> {
        let manager = self.0.manager.clone();
        block_now(super::release(&Blocking(&manager), self.0.disarm()))
    }

    /// Sets the lock's remaining TTL to `ttl` if it is still ours; see
    /// [`LockGuard::extend`].
    ///
    /// ```
    /// # let cache = forge_cache_runtime::CacheManager::new(forge_cache_runtime::RedisSettings::memory())?;
    /// let guard = cache.blocking().try_lock("job", std::time::Duration::from_secs(5))?.unwrap();
    /// assert!(guard.extend(std::time::Duration::from_secs(30))?);
    /// # Ok::<(), forge_cache_runtime::Error>(())
    /// ```
    pub fn extend(&self, ttl: Duration) -> Result<bool> {
        block_now(super::extend(&Blocking(&self.0.manager), &self.0.held, ttl))
    }
}

impl fmt::Debug for BlockingLockGuard {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.debug("blocking::LockGuard", f)
    }
}
