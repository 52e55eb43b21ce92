//! The manager: one handle over a backend, with the circuit breaker, the
//! key namespace, throttled failure logging, and a slot per feature for
//! the state that feature keeps (single-flight, name-only locks, ...).
//!
//! The manager knows no feature: each one adds its methods to
//! [`CacheManager`] (and to the blocking view) in its own module, written
//! once over a [`Drive`](crate::drive::Drive), and keeps its state in
//! [`CacheManager::state`].

use std::any::Any;
use std::borrow::Cow;
use std::sync::{Arc, OnceLock};

use serde::Serialize;

use crate::backend::Backend;
use crate::breaker::{Breaker, LogThrottle};
use crate::codec::encode;
use crate::error::{Chain, Error, Result};
use crate::glob;
use crate::key::join_key;
use crate::settings::{BackendKind, RedisSettings};

/// State a feature keeps per manager, made on first use.
pub(crate) trait FeatureState: Default + Send + Sync + 'static {
    /// The feature's slot, below [`SLOTS`]: one per feature, fixed at
    /// compile time so that finding the state is one atomic load.
    const SLOT: usize;
}

/// How many features keep state in a manager.
pub(crate) const SLOTS: usize = 4;

/// A handle to the configured backend. Cheap to clone (one `Arc`).
///
/// Most programs configure one with [`init`](crate::init) at startup and
/// never touch it again: the attribute macros find it on their own. Use it
/// directly for manual operations: get, set, delete, patterns, locks.
///
/// ```
/// # #[tokio::main(flavor = "current_thread")] async fn main() -> forge_cache_runtime::Result<()> {
/// use std::time::Duration;
/// use forge_cache_runtime::{CacheManager, RedisSettings};
///
/// let cache = CacheManager::new(RedisSettings::memory())?;
/// cache.set("greeting", &"hello", Duration::from_secs(60)).await?;
/// assert_eq!(cache.get::<String>("greeting").await?, Some("hello".into()));
/// assert!(cache.delete("greeting").await?);
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct CacheManager {
    pub(crate) inner: Arc<Inner>,
}

pub(crate) struct Inner {
    backend: Backend,
    settings: RedisSettings,
    breaker: Breaker,
    log: LogThrottle,
    /// Each feature's state, by [`FeatureState::SLOT`].
    states: [OnceLock<Box<dyn Any + Send + Sync>>; SLOTS],
}

impl std::fmt::Debug for CacheManager {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CacheManager")
            .field("backend", &self.backend_kind())
            .field("settings", &self.inner.settings)
            .finish()
    }
}

impl CacheManager {
    /// Creates a manager. Nothing connects yet: connections open on first
    /// use, so an unreachable Redis at startup is an outage to ride out, not
    /// a crash. Fails only for invalid settings.
    pub fn new(settings: RedisSettings) -> Result<Self> {
        let backend = Backend::new(&settings)?;
        Ok(Self::with_backend(backend, settings))
    }

    pub(crate) fn with_backend(backend: Backend, settings: RedisSettings) -> Self {
        CacheManager {
            inner: Arc::new(Inner {
                breaker: Breaker::new(settings.breaker_threshold, settings.breaker_cooldown),
                backend,
                settings,
                log: LogThrottle::new(),
                states: Default::default(),
            }),
        }
    }

    /// A manager whose every operation fails as an outage would, for when
    /// the configuration is invalid but the application must keep running.
    pub(crate) fn disabled(reason: String) -> Self {
        Self::with_backend(Backend::Disabled(reason.into()), RedisSettings::memory())
    }

    /// The settings this manager was built from.
    pub fn settings(&self) -> &RedisSettings {
        &self.inner.settings
    }

    /// Which backend this manager talks to.
    pub fn backend_kind(&self) -> BackendKind {
        match self.inner.backend.disabled_reason() {
            Some(_) => BackendKind::Disabled,
            None => self.inner.settings.backend_kind(),
        }
    }

    /// Why this manager is disabled, if it is: the process-wide manager,
    /// configured from an environment with an invalid setting, names the
    /// setting, its value and what is accepted. Every operation then fails
    /// with [`Error::Disabled`] carrying the same text.
    ///
    /// ```
    /// let cache = forge_cache_runtime::CacheManager::new(Default::default()).unwrap();
    /// assert_eq!(cache.disabled_reason(), None);
    /// ```
    pub fn disabled_reason(&self) -> Option<&str> {
        self.inner.backend.disabled_reason()
    }

    /// Whether the circuit breaker is open (the backend is being skipped).
    pub fn breaker_open(&self) -> bool {
        self.inner.breaker.is_open()
    }

    /// The full key for `key`: the namespace, if configured, then `key`.
    pub fn full_key<'k>(&self, key: &'k str) -> Cow<'k, str> {
        match self.inner.settings.namespace() {
            None => Cow::Borrowed(key),
            Some(ns) => Cow::Owned(join_key(Some(ns), &[key])),
        }
    }

    /// The full pattern for `pattern`: the namespace, glob-escaped, then
    /// `pattern`.
    pub(crate) fn full_pattern<'k>(&self, pattern: &'k str) -> Cow<'k, str> {
        match self.inner.settings.namespace() {
            None => Cow::Borrowed(pattern),
            Some(ns) => Cow::Owned(join_key(Some(&glob::escape(ns)), &[pattern])),
        }
    }

    /// The backend, for the drivers.
    #[inline]
    pub(crate) fn backend(&self) -> &Backend {
        &self.inner.backend
    }

    /// A feature's state in this manager, made on first use.
    pub(crate) fn state<T: FeatureState>(&self) -> &T {
        let any = self.inner.states[T::SLOT].get_or_init(|| Box::new(T::default()));
        match any.downcast_ref::<T>() {
            Some(state) => state,
            // Two features given one slot: a bug the module's unit test
            // catches; never reached in a build that passed it.
            None => unreachable!("two feature states share slot {}", T::SLOT),
        }
    }

    /// Whether the circuit breaker lets an operation through.
    #[inline]
    pub(crate) fn admit(&self) -> Result<()> {
        if self.inner.breaker.allow() {
            Ok(())
        } else {
            Err(Error::CircuitOpen)
        }
    }

    #[inline]
    pub(crate) fn record<T>(&self, r: &Result<T>) {
        match r {
            Ok(_) => self.inner.breaker.success(),
            // A disabled manager stays disabled; its error names the
            // setting, which an open breaker's error would hide.
            Err(Error::Disabled(_)) => {}
            Err(e) if e.is_outage() => self.inner.breaker.failure(),
            Err(_) => {}
        }
    }

    /// Logs a backend failure at most once a second (with a count of the
    /// lines suppressed meanwhile), so an outage does not flood the logs.
    pub(crate) fn warn_failure(&self, what: &str, err: &Error) {
        if let Some(suppressed) = self.inner.log.permit() {
            tracing::warn!(target: "forge_cache", error = %Chain(err), suppressed, "{what}");
        }
    }

    /// [`warn_failure`](Self::warn_failure) for one cached or rate-limited
    /// function, named by its key prefix and function name.
    pub(crate) fn warn_failure_at(&self, prefix: &str, function: &str, what: &str, err: &Error) {
        if let Some(suppressed) = self.inner.log.permit() {
            tracing::warn!(target: "forge_cache", prefix, function, error = %Chain(err), suppressed, "{what}");
        }
    }

    pub(crate) fn encode_checked<T: Serialize + ?Sized>(&self, value: &T) -> Result<Vec<u8>> {
        let bytes = encode(value)?;
        let limit = self.inner.settings.max_value_bytes;
        if bytes.len() > limit {
            return Err(Error::TooLarge {
                size: bytes.len(),
                limit,
            });
        }
        Ok(bytes)
    }
}
