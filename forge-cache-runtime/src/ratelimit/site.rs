//! What `#[rate_limit]` expands to: a `static` [`RateSite`] per annotated
//! function and a call to [`rate_limit_check`] before the body.

use std::fmt::Display;
use std::future::Future;
use std::time::Duration;

use std::borrow::Cow;

use super::{Algorithm, OnError, RateLimitExceeded, Spec, Who, limiter_key, on_backend_error};
use crate::error::Result;
use crate::global::current;
use crate::manager::CacheManager;

/// One `#[rate_limit]` call site: its limit, key prefix and name, and what
/// to do when the backend fails. Built in a `static` by the macro.
///
/// ```
/// use forge_cache_runtime::{Algorithm, OnError, RateSite};
/// static SITE: RateSite = RateSite::new(
///     "rate_limit", "app::get_data", 100, 3600, Algorithm::FixedWindow, OnError::Allow,
/// );
/// ```
#[derive(Debug)]
pub struct RateSite {
    prefix: Cow<'static, str>,
    name: Cow<'static, str>,
    spec: Spec,
    on_error: OnError,
}

impl RateSite {
    /// A call site allowing `max_requests` per `window_seconds`, keyed
    /// `<prefix>:{<name>[:<key>]}` (`::` in `name` becomes `.`).
    pub const fn new(
        prefix: &'static str,
        name: &'static str,
        max_requests: u64,
        window_seconds: u64,
        algorithm: Algorithm,
        on_error: OnError,
    ) -> Self {
        RateSite {
            prefix: Cow::Borrowed(prefix),
            name: Cow::Borrowed(name),
            spec: Spec {
                max_requests,
                window: Duration::from_secs(window_seconds),
                algorithm,
            },
            on_error,
        }
    }

    /// The key without the manager's namespace (added once the manager is
    /// known, inside the future).
    fn key(&self, key: Option<&dyn Display>) -> String {
        limiter_key(None, &self.prefix, Some(&self.name), key)
    }

    fn who(&self) -> Who<'_> {
        Who {
            prefix: &self.prefix,
            name: &self.name,
        }
    }

    fn settle(
        &self,
        manager: &CacheManager,
        outcome: Result<super::Decision>,
    ) -> Result<(), RateLimitExceeded> {
        match outcome {
            Ok(decision) => decision.into_result().map(drop),
            Err(err) => on_backend_error(manager, self.on_error, &self.spec, self.who(), &err),
        }
    }
}

/// Counts one call at `site` (per `key` when given) on the
/// [current](crate::current) manager. `Err` means the call must not run.
///
/// The key is formatted when this is called, so the returned future is
/// `Send + 'static` whatever the key's type; the manager is looked up when
/// the future first runs (so [`CacheManager::scope`] around it applies).
///
/// ```
/// # #[tokio::main(flavor = "current_thread")] async fn main() {
/// use forge_cache_runtime::{Algorithm, OnError, RateSite, rate_limit_check};
/// static SITE: RateSite = RateSite::new("rate_limit", "doc::login", 1, 60, Algorithm::Gcra, OnError::Allow);
/// assert!(rate_limit_check(&SITE, Some(&"ada")).await.is_ok());
/// assert!(rate_limit_check(&SITE, Some(&"ada")).await.is_err());
/// assert!(rate_limit_check(&SITE, Some(&"bob")).await.is_ok());
/// # }
/// ```
pub fn rate_limit_check(
    site: &'static RateSite,
    key: Option<&dyn Display>,
) -> impl Future<Output = Result<(), RateLimitExceeded>> + Send + 'static {
    let key = site.key(key);
    async move {
        let manager = current();
        let outcome = manager
            .rate_check(&manager.full_key(&key), &site.spec, site.who())
            .await;
        site.settle(&manager, outcome)
    }
}

/// Sync form of [`rate_limit_check`].
///
/// ```
/// use forge_cache_runtime::{Algorithm, OnError, RateSite, rate_limit_check_sync};
/// static SITE: RateSite = RateSite::new("rate_limit", "doc::export", 1, 60, Algorithm::FixedWindow, OnError::Allow);
/// assert!(rate_limit_check_sync(&SITE, None).is_ok());
/// assert!(rate_limit_check_sync(&SITE, None).is_err());
/// ```
pub fn rate_limit_check_sync(
    site: &'static RateSite,
    key: Option<&dyn Display>,
) -> Result<(), RateLimitExceeded> {
    let manager = current();
    let outcome =
        manager.rate_check_sync(&manager.full_key(&site.key(key)), &site.spec, site.who());
    site.settle(&manager, outcome)
}
