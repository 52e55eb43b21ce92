//! A health report for readiness probes and incident dashboards.

use std::time::Duration;

use crate::block::Manager;
use crate::manager::CacheManager;
use crate::settings::BackendKind;

/// What [`CacheManager::health`] reports.
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct Health {
    /// Which backend the manager talks to.
    pub backend: BackendKind,
    /// Whether one `PING` succeeded just now.
    pub reachable: bool,
    /// Round trip of that `PING`, when it succeeded.
    pub latency: Option<Duration>,
    /// Whether the circuit breaker is open (cached calls skip the backend).
    pub breaker_open: bool,
    /// The error of the `PING`, when it failed (never contains a password).
    pub error: Option<String>,
}

impl CacheManager {
    /// Pings the backend once (bypassing the circuit breaker) and reports
    /// its kind, reachability, latency and the breaker's state.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")] async fn main() -> forge_cache_runtime::Result<()> {
    /// let cache = forge_cache_runtime::CacheManager::new(Default::default())?;
    /// let health = cache.health().await;
    /// assert!(health.reachable && !health.breaker_open);
    /// # Ok(()) }
    /// ```
    pub async fn health(&self) -> Health {
        report(self, self.ping().await)
    }
}

impl Manager<'_> {
    /// Blocking form of [`CacheManager::health`].
    ///
    /// ```
    /// let cache = forge_cache_runtime::CacheManager::new(Default::default())?;
    /// assert!(cache.blocking().health().reachable);
    /// # Ok::<(), forge_cache_runtime::Error>(())
    /// ```
    pub fn health(&self) -> Health {
        report(self.manager(), self.ping())
    }
}

fn report(manager: &CacheManager, ping: crate::error::Result<Duration>) -> Health {
    Health {
        backend: manager.backend_kind(),
        reachable: ping.is_ok(),
        latency: ping.as_ref().ok().copied(),
        breaker_open: manager.breaker_open(),
        error: ping.err().map(|e| crate::error::Chain(&e).to_string()),
    }
}
