//! What a holder has: the lock's key and the random token that proves
//! ownership, and the guards that release it.

use std::fmt;
use std::sync::mpsc;
use std::time::Duration;

use super::script::{EXTEND, RELEASE};
use crate::backend::{Arg, Backend, Op, reply};
use crate::error::Result;
use crate::manager::CacheManager;

/// A held lock: its name, key, owner token and fencing token. Holds no
/// manager, so the name-only API can keep it in the manager itself.
#[derive(Default)]
pub(crate) struct Held {
    pub(super) name: String,
    pub(super) key: String,
    pub(super) token: String,
    pub(super) fence: u64,
}

impl Held {
    pub(super) async fn release(&self, m: &CacheManager) -> Result<bool> {
        let keys = [self.key.as_str()];
        let args = [Arg::Bytes(self.token.as_bytes())];
        Ok(reply::<i64>(m.exec(Op::Script(&RELEASE, &keys, &args)).await?)? == 1)
    }

    pub(super) fn release_sync(&self, m: &CacheManager) -> Result<bool> {
        let keys = [self.key.as_str()];
        let args = [Arg::Bytes(self.token.as_bytes())];
        Ok(reply::<i64>(m.exec_sync(Op::Script(&RELEASE, &keys, &args))?)? == 1)
    }

    pub(super) async fn extend(&self, m: &CacheManager, ttl: Duration) -> Result<bool> {
        let keys = [self.key.as_str()];
        let args = [
            Arg::Bytes(self.token.as_bytes()),
            Arg::Int(super::millis(ttl)),
        ];
        Ok(reply::<i64>(m.exec(Op::Script(&EXTEND, &keys, &args)).await?)? == 1)
    }

    pub(super) fn extend_sync(&self, m: &CacheManager, ttl: Duration) -> Result<bool> {
        let keys = [self.key.as_str()];
        let args = [
            Arg::Bytes(self.token.as_bytes()),
            Arg::Int(super::millis(ttl)),
        ];
        Ok(reply::<i64>(m.exec_sync(Op::Script(&EXTEND, &keys, &args))?)? == 1)
    }

    fn debug(&self, kind: &str, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // The owner token is left out: it is the capability to release.
        f.debug_struct(kind)
            .field("name", &self.name)
            .field("fencing_token", &self.fence)
            .finish_non_exhaustive()
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
pub struct LockGuard {
    manager: CacheManager,
    held: Held,
    armed: bool,
}

impl LockGuard {
    pub(super) fn new(manager: CacheManager, held: Held) -> Self {
        LockGuard {
            manager,
            held,
            armed: true,
        }
    }

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
        &self.held.name
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
        self.held.fence
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
        let released = self.held.release(&self.manager).await;
        // Whatever the outcome, do not try again on drop: an error here is
        // an outage, and the TTL frees the lock.
        self.armed = false;
        released
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
        self.held.extend(&self.manager, ttl).await
    }

    /// Keeps extending the lock to `ttl` every `ttl / 3` until it is lost;
    /// never completes while the lock is held.
    pub(super) async fn keep_extended(&self, ttl: Duration) {
        let period = (ttl / 3).max(Duration::from_millis(1));
        loop {
            tokio::time::sleep(period).await;
            if !watchdog_tick(&self.manager, &self.held, self.extend(ttl).await) {
                return;
            }
        }
    }
}

/// Handles one watchdog extension; `false` when the lock is lost for good.
fn watchdog_tick(manager: &CacheManager, held: &Held, extended: Result<bool>) -> bool {
    match extended {
        Ok(true) => true,
        Ok(false) => {
            tracing::warn!(
                target: "forge_cache",
                lock = %held.name,
                fencing_token = held.fence,
                "lock lost while its work was running (its TTL ran out); \
                 another holder may be running too: rely on the fencing token"
            );
            false
        }
        Err(e) => {
            // Try again next period: two more chances before the TTL ends.
            manager.warn_failure("could not extend a lock; retrying", &e);
            true
        }
    }
}

impl fmt::Debug for LockGuard {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.held.debug("LockGuard", f)
    }
}

impl Drop for LockGuard {
    fn drop(&mut self) {
        if !self.armed {
            return;
        }
        let held = std::mem::take(&mut self.held);
        let manager = self.manager.clone();
        // In memory, releasing is a map operation: do it now.
        if matches!(manager.inner.backend, Backend::Memory(_)) {
            release_or_log(&manager, held.release_sync(&manager));
            return;
        }
        match tokio::runtime::Handle::try_current() {
            Ok(runtime) => {
                runtime.spawn(async move {
                    let released = held.release(&manager).await;
                    release_or_log(&manager, released);
                });
            }
            Err(_) => release_or_log(&manager, held.release_sync(&manager)),
        }
    }
}

fn release_or_log(manager: &CacheManager, released: Result<bool>) {
    if let Err(e) = released {
        manager.warn_failure(
            "could not release a dropped lock guard; its TTL will free it",
            &e,
        );
    }
}

/// A held lock for sync code, from [`CacheManager::try_lock_sync`] or
/// [`CacheManager::lock_sync`]. Dropped without
/// [`release`](Self::release), it releases the lock synchronously (the TTL
/// is the backstop if the backend cannot be reached).
///
/// ```
/// use std::time::Duration;
/// use forge_cache_runtime::{CacheManager, RedisSettings};
///
/// let cache = CacheManager::new(RedisSettings::memory())?;
/// let guard = cache.lock_sync("nightly-report", Duration::from_secs(60), Duration::from_secs(1))?;
/// assert!(cache.try_lock_sync("nightly-report", Duration::from_secs(60))?.is_none());
/// assert!(guard.release()?);
/// # Ok::<(), forge_cache_runtime::Error>(())
/// ```
#[must_use = "dropping the guard releases the lock right away"]
pub struct SyncLockGuard {
    manager: CacheManager,
    held: Held,
    armed: bool,
}

impl SyncLockGuard {
    pub(super) fn new(manager: CacheManager, held: Held) -> Self {
        SyncLockGuard {
            manager,
            held,
            armed: true,
        }
    }

    /// The lock's name, as given when acquiring it.
    ///
    /// ```
    /// # let cache = forge_cache_runtime::CacheManager::new(forge_cache_runtime::RedisSettings::memory())?;
    /// let guard = cache.try_lock_sync("report", std::time::Duration::from_secs(5))?.unwrap();
    /// assert_eq!(guard.name(), "report");
    /// # Ok::<(), forge_cache_runtime::Error>(())
    /// ```
    pub fn name(&self) -> &str {
        &self.held.name
    }

    /// The fencing token; see [`LockGuard::fencing_token`].
    ///
    /// ```
    /// # let cache = forge_cache_runtime::CacheManager::new(forge_cache_runtime::RedisSettings::memory())?;
    /// let guard = cache.try_lock_sync("job", std::time::Duration::from_secs(5))?.unwrap();
    /// assert!(guard.fencing_token() > 0);
    /// # Ok::<(), forge_cache_runtime::Error>(())
    /// ```
    pub fn fencing_token(&self) -> u64 {
        self.held.fence
    }

    /// Releases the lock; see [`LockGuard::release`].
    ///
    /// ```
    /// # let cache = forge_cache_runtime::CacheManager::new(forge_cache_runtime::RedisSettings::memory())?;
    /// let guard = cache.try_lock_sync("job", std::time::Duration::from_secs(5))?.unwrap();
    /// assert!(guard.release()?);
    /// # Ok::<(), forge_cache_runtime::Error>(())
    /// ```
    pub fn release(mut self) -> Result<bool> {
        self.armed = false;
        self.held.release_sync(&self.manager)
    }

    /// Sets the lock's remaining TTL to `ttl` if it is still ours; see
    /// [`LockGuard::extend`].
    ///
    /// ```
    /// # let cache = forge_cache_runtime::CacheManager::new(forge_cache_runtime::RedisSettings::memory())?;
    /// let guard = cache.try_lock_sync("job", std::time::Duration::from_secs(5))?.unwrap();
    /// assert!(guard.extend(std::time::Duration::from_secs(30))?);
    /// # Ok::<(), forge_cache_runtime::Error>(())
    /// ```
    pub fn extend(&self, ttl: Duration) -> Result<bool> {
        self.held.extend_sync(&self.manager, ttl)
    }

    /// Keeps extending the lock to `ttl` every `ttl / 3` until it is lost
    /// or `stop` is signalled (a message, or its sender dropped).
    pub(super) fn keep_extended(&self, ttl: Duration, stop: &mpsc::Receiver<()>) {
        let period = (ttl / 3).max(Duration::from_millis(1));
        while let Err(mpsc::RecvTimeoutError::Timeout) = stop.recv_timeout(period) {
            if !watchdog_tick(&self.manager, &self.held, self.extend(ttl)) {
                return;
            }
        }
    }
}

impl fmt::Debug for SyncLockGuard {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.held.debug("SyncLockGuard", f)
    }
}

impl Drop for SyncLockGuard {
    fn drop(&mut self) {
        if self.armed {
            release_or_log(&self.manager, self.held.release_sync(&self.manager));
        }
    }
}
