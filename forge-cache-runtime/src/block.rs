//! The blocking view of a manager, [`CacheManager::blocking`]: the same
//! operations for sync code, each one the same core logic as its async
//! form, driven on the calling thread (see [`crate::drive`]).
//!
//! Every feature adds its blocking methods to [`Manager`] in its own
//! module, next to its async ones.

use std::fmt;

use crate::drive::Blocking;
use crate::manager::CacheManager;

/// A manager seen from sync code: every operation of [`CacheManager`],
/// blocking the calling thread until it completes. It borrows the manager
/// and is `Copy`, so take it wherever it is needed:
/// `cache.blocking().get(..)`.
///
/// It uses the manager's pool of blocking connections, never a Tokio
/// runtime, so it works on plain threads, inside `spawn_blocking`, and in
/// programs with no runtime at all. Do not call it on an async task: it
/// would block that task's worker thread.
///
/// ```
/// use std::time::Duration;
/// use forge_cache_runtime::{CacheManager, RedisSettings};
///
/// let cache = CacheManager::new(RedisSettings::memory())?;
/// let sync = cache.blocking();
/// sync.set("greeting", &"hello", Duration::from_secs(60))?;
/// assert_eq!(sync.get::<String>("greeting")?, Some("hello".into()));
/// assert!(sync.delete("greeting")?);
/// # Ok::<(), forge_cache_runtime::Error>(())
/// ```
#[derive(Clone, Copy)]
pub struct Manager<'a> {
    manager: &'a CacheManager,
}

impl fmt::Debug for Manager<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("blocking::Manager")
            .field(self.manager)
            .finish()
    }
}

impl CacheManager {
    /// The blocking view of this manager, for sync code (the reqwest and
    /// moka convention): `cache.blocking().get(..)`.
    ///
    /// ```
    /// let cache = forge_cache_runtime::CacheManager::new(Default::default())?;
    /// assert!(cache.blocking().test_connection());
    /// # Ok::<(), forge_cache_runtime::Error>(())
    /// ```
    #[inline]
    pub fn blocking(&self) -> Manager<'_> {
        Manager { manager: self }
    }
}

impl<'a> Manager<'a> {
    /// The manager this view drives.
    ///
    /// ```
    /// let cache = forge_cache_runtime::CacheManager::new(Default::default())?;
    /// assert_eq!(cache.blocking().manager().backend_kind(), cache.backend_kind());
    /// # Ok::<(), forge_cache_runtime::Error>(())
    /// ```
    #[inline]
    pub fn manager(&self) -> &'a CacheManager {
        self.manager
    }

    /// The blocking driver over this manager.
    #[inline]
    pub(crate) fn drive(&self) -> Blocking<'a> {
        Blocking(self.manager)
    }
}
