//! The process-wide manager that attribute macros reach without being
//! handed one, and scoped overrides for tests and multi-tenant programs.

use std::cell::RefCell;
use std::future::Future;
use std::sync::OnceLock;

use crate::block::Manager;
use crate::drive::{Async, Blocking, Drive, block_now};
use crate::error::{Chain, Error, Result};
use crate::manager::CacheManager;
use crate::ops;
use crate::settings::RedisSettings;

static GLOBAL: OnceLock<CacheManager> = OnceLock::new();

tokio::task_local! {
    static SCOPED: CacheManager;
}

thread_local! {
    static SCOPED_SYNC: RefCell<Option<CacheManager>> = const { RefCell::new(None) };
}

/// Configures the process-wide manager. Call it once at startup, before the
/// first cached or rate-limited call.
///
/// A second call (or a call after the first use lazily configured the
/// manager from the environment) returns [`Error::AlreadyInitialized`] and
/// changes nothing. An unreachable Redis is not an error here: it is logged,
/// and calls fail open until it answers.
///
/// ```
/// # #[tokio::main(flavor = "current_thread")] async fn main() -> forge_cache_runtime::Result<()> {
/// use forge_cache_runtime::{init, RedisSettings};
/// let manager = init(RedisSettings::memory()).await?;
/// assert!(init(RedisSettings::memory()).await.is_err());
/// # Ok(()) }
/// ```
pub async fn init(settings: RedisSettings) -> Result<&'static CacheManager> {
    init_with(&Async(&install(settings)?)).await
}

/// Blocking form of [`init`], for programs without an async runtime:
/// `forge_cache::blocking::init`.
///
/// ```
/// use forge_cache_runtime::{RedisSettings, blocking};
/// let manager = blocking::init(RedisSettings::memory())?;
/// assert!(manager.blocking().test_connection());
/// # Ok::<(), forge_cache_runtime::Error>(())
/// ```
pub fn init_blocking(settings: RedisSettings) -> Result<&'static CacheManager> {
    block_now(init_with(&Blocking(&install(settings)?)))
}

/// After the manager is installed: one `PING`, whose failure is only
/// logged. Written once for both drivers.
async fn init_with<D: Drive>(d: &D) -> Result<&'static CacheManager> {
    if let Err(e) = ops::ping(d).await {
        let manager = d.manager();
        tracing::warn!(target: "forge_cache", url = %manager.settings().redacted_url(), error = %Chain(&e),
            "backend not reachable at startup; cached calls run uncached until it answers");
    }
    Ok(global())
}

/// Makes the manager of `settings` the process-wide one; returns it.
fn install(settings: RedisSettings) -> Result<CacheManager> {
    let manager = CacheManager::new(settings)?;
    install_manager(manager.clone())?;
    Ok(manager)
}

fn install_manager(manager: CacheManager) -> Result<()> {
    let mut installed = false;
    GLOBAL.get_or_init(|| {
        installed = true;
        manager
    });
    if installed {
        Ok(())
    } else {
        Err(Error::AlreadyInitialized)
    }
}

/// The process-wide manager.
///
/// Before [`init`], the first use configures it from the environment
/// ([`RedisSettings::from_env`]): with no `REDIS_*` variables that is the
/// in-memory backend. If the environment holds an invalid setting, the
/// manager is *disabled*: cached functions run uncached and rate limits
/// follow their `on_error` policy, as during a Redis outage. It never
/// panics. So that a misconfiguration is noticed without a `tracing`
/// subscriber, it is reported three ways:
///
/// - one line on standard error, naming the setting, its value and what is
///   accepted (once per process);
/// - an `error` event on the `forge_cache` target with the same text;
/// - every operation's error ([`Error::Disabled`], also in
///   [`CacheManager::health`]) and [`CacheManager::disabled_reason`].
///
/// Call [`init`] with [`RedisSettings::from_env`] at startup to get the
/// error as a value instead, and refuse to start.
///
/// ```
/// let manager = forge_cache_runtime::global();
/// ```
pub fn global() -> &'static CacheManager {
    GLOBAL.get_or_init(|| match RedisSettings::from_env().and_then(CacheManager::new) {
        Ok(m) => m,
        Err(e) => {
            let reason = Chain(&e).to_string();
            eprintln!(
                "forge-cache: caching and rate limiting are OFF (calls run uncached, rate limits follow on_error): {reason}"
            );
            tracing::error!(target: "forge_cache", error = %Chain(&e),
                "forge-cache is not configured correctly; caching and rate limiting are disabled (fail-open)");
            CacheManager::disabled(reason)
        }
    })
}

/// The manager macro expansions use: the innermost [`CacheManager::scope`]
/// or [`blocking::Manager::scope`](crate::blocking::Manager::scope) around
/// the caller, else [`global`].
pub fn current() -> CacheManager {
    if let Ok(m) = SCOPED.try_with(CacheManager::clone) {
        return m;
    }
    if let Some(m) = SCOPED_SYNC.with(|s| s.borrow().clone()) {
        return m;
    }
    global().clone()
}

impl CacheManager {
    /// Runs `fut` with this manager as the one attribute macros use, instead
    /// of the global one. Tasks spawned inside do not inherit it.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")] async fn main() {
    /// use forge_cache_runtime::{CacheManager, RedisSettings, current};
    /// let m = CacheManager::new(RedisSettings::memory()).unwrap();
    /// m.scope(async { assert!(current().ping().await.is_ok()) }).await;
    /// # }
    /// ```
    pub async fn scope<F: Future>(&self, fut: F) -> F::Output {
        SCOPED.scope(self.clone(), fut).await
    }
}

impl Manager<'_> {
    /// Runs `f` with this manager as the one the expansions of sync
    /// functions on this thread use, instead of the global one.
    ///
    /// ```
    /// use forge_cache_runtime::{CacheManager, RedisSettings, current};
    /// let m = CacheManager::new(RedisSettings::memory()).unwrap();
    /// m.blocking().scope(|| assert!(current().blocking().ping().is_ok()));
    /// ```
    pub fn scope<R>(&self, f: impl FnOnce() -> R) -> R {
        struct Restore(Option<CacheManager>);
        impl Drop for Restore {
            fn drop(&mut self) {
                let prev = self.0.take();
                SCOPED_SYNC.with(|s| *s.borrow_mut() = prev);
            }
        }
        let prev = SCOPED_SYNC.with(|s| s.borrow_mut().replace(self.manager().clone()));
        let _restore = Restore(prev);
        f()
    }
}
