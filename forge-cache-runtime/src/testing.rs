//! Helpers for testing code that uses forge-cache: a fresh in-memory
//! manager per test, a scope with caching and rate limits off, and a
//! recording of the hits and misses of each cached function.
//!
//! ```
//! use forge_cache_runtime::testing;
//! # async fn profile(id: u64) -> u64 { id }
//! # async fn run() {
//! // Each test gets its own in-memory cache: no Redis, no shared state.
//! testing::isolated(async {
//!     let (_, calls) = testing::record(async {
//!         profile(7).await;
//!         profile(7).await;
//!     })
//!     .await;
//!     // With `#[cache_result]` on `profile`: one miss, then one hit.
//!     let c = calls.function("profile");
//!     # let _ = c;
//! })
//! .await;
//! # }
//! ```

use std::collections::BTreeMap;
use std::future::Future;
use std::sync::Arc;

use crate::cache::CacheCounters;
use crate::manager::CacheManager;
use crate::scope::{
    CACHE_OFF, RATE_LIMIT_OFF, Recording, Scoped, recorded, recorded_blocking, scoped,
    scoped_blocking,
};
use crate::settings::RedisSettings;

/// A fresh manager on its own in-memory backend.
///
/// ```
/// use forge_cache_runtime::BackendKind;
/// let cache = forge_cache_runtime::testing::manager();
/// assert_eq!(cache.settings().backend_kind(), BackendKind::Memory);
/// ```
pub fn manager() -> CacheManager {
    // The in-memory settings are valid by construction.
    CacheManager::new(RedisSettings::memory()).expect("the in-memory backend always starts")
}

/// Runs `fut` with a fresh in-memory manager as the one cached functions
/// and rate limits use, so tests share no entries and no budgets.
///
/// ```
/// # async fn run() {
/// let n = forge_cache_runtime::testing::isolated(async { 1 }).await;
/// # let _ = n;
/// # }
/// ```
pub async fn isolated<F: Future>(fut: F) -> F::Output {
    manager().scope(fut).await
}

/// Blocking form of [`isolated`].
///
/// ```
/// assert_eq!(forge_cache_runtime::testing::isolated_blocking(|| 2), 2);
/// ```
pub fn isolated_blocking<R>(f: impl FnOnce() -> R) -> R {
    manager().blocking().scope(f)
}

/// Runs `fut` with caching off (every cached function runs its body) and
/// rate limits off (every check admits, and counts nothing).
///
/// ```
/// # async fn run() {
/// let n = forge_cache_runtime::testing::disabled(async { 3 }).await;
/// # let _ = n;
/// # }
/// ```
pub fn disabled<F: Future>(fut: F) -> Scoped<F> {
    scoped(CACHE_OFF | RATE_LIMIT_OFF, fut)
}

/// Blocking form of [`disabled`].
///
/// ```
/// assert_eq!(forge_cache_runtime::testing::disabled_blocking(|| 4), 4);
/// ```
pub fn disabled_blocking<R>(f: impl FnOnce() -> R) -> R {
    scoped_blocking(CACHE_OFF | RATE_LIMIT_OFF, f)
}

/// Runs `fut` and records the cache events of the cached functions it
/// calls: its output, and the [`Calls`]. Only calls made while `fut` is
/// polled count, so tests running in parallel do not see each other's.
///
/// ```
/// # async fn run() {
/// let (out, calls) = forge_cache_runtime::testing::record(async { 5 }).await;
/// assert_eq!((out, calls.total().hits), (5, 0));
/// # }
/// ```
pub async fn record<F: Future>(fut: F) -> (F::Output, Calls) {
    let recording = Arc::new(Recording::default());
    let out = recorded(recording.clone(), fut).await;
    (out, Calls::from(&recording))
}

/// Blocking form of [`record`].
///
/// ```
/// let (out, calls) = forge_cache_runtime::testing::record_blocking(|| 6);
/// assert_eq!((out, calls.total().misses), (6, 0));
/// ```
pub fn record_blocking<R>(f: impl FnOnce() -> R) -> (R, Calls) {
    let recording = Arc::new(Recording::default());
    let out = recorded_blocking(&recording, f);
    (out, Calls::from(&recording))
}

/// The cache events [`record`] saw, per cached function.
///
/// ```
/// let (_, calls) = forge_cache_runtime::testing::record_blocking(|| ());
/// assert_eq!(calls.function("profile").hits, 0);
/// assert_eq!(calls.prefix("users").misses, 0);
/// ```
#[derive(Clone, Debug, Default)]
pub struct Calls {
    by_function: BTreeMap<(&'static str, &'static str), CacheCounters>,
}

impl Calls {
    fn from(recording: &Recording) -> Self {
        let events = recording
            .events
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        Calls {
            by_function: events
                .iter()
                .map(|(k, e)| (*k, CacheCounters::of(e)))
                .collect(),
        }
    }

    /// The counters of the functions named `name` (under any prefix).
    pub fn function(&self, name: &str) -> CacheCounters {
        self.sum(|(_, n)| *n == name)
    }

    /// The counters of the functions under key prefix `prefix`.
    pub fn prefix(&self, prefix: &str) -> CacheCounters {
        self.sum(|(p, _)| *p == prefix)
    }

    /// The counters of every function.
    pub fn total(&self) -> CacheCounters {
        self.sum(|_| true)
    }

    fn sum(&self, pick: impl Fn(&(&'static str, &'static str)) -> bool) -> CacheCounters {
        let mut t = CacheCounters::default();
        for (k, c) in &self.by_function {
            if pick(k) {
                t += *c;
            }
        }
        t
    }
}
