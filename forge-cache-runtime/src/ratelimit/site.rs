//! What `#[rate_limit]` expands to: a `static` [`RateSite`] per annotated
//! function and a call to [`rate_limit_check`] (or, with a key template,
//! `rate_limit_check_rendered`) before the body.

use std::fmt::Display;
use std::future::Future;
use std::time::Duration;

use std::borrow::Cow;

use super::rate_check;
use super::{Algorithm, OnError, RateLimitExceeded, Spec, Who, limiter_key, on_backend_error};
use crate::cache::KeyTemplate;
use crate::drive::{Async, Blocking, Drive, block_now};
use crate::error::Result;
use crate::global::current;
use crate::manager::CacheManager;

/// One `#[rate_limit]` call site: its limit, key prefix and name, and what
/// to do when the backend fails. Built in a `static` by the macro.
///
/// ```
/// use forge_cache_runtime::__private::RateSite;
/// use forge_cache_runtime::{Algorithm, OnError};
/// # use std::time::Duration;
/// static SITE: RateSite = RateSite::new(
///     "rate_limit", "app::get_data", 100, Duration::from_secs(3600), Algorithm::FixedWindow, OnError::Allow,
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
    /// A call site allowing `max_requests` per `window` (counted in whole
    /// milliseconds), keyed `<prefix>:{<name>[:<key>]}` (`::` in `name`
    /// becomes `.`).
    pub const fn new(
        prefix: &'static str,
        name: &'static str,
        max_requests: u64,
        window: Duration,
        algorithm: Algorithm,
        on_error: OnError,
    ) -> Self {
        RateSite {
            prefix: Cow::Borrowed(prefix),
            name: Cow::Borrowed(name),
            spec: Spec {
                max_requests,
                window,
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

    /// [`Self::key`] for a key template's rendering, whose placeholders are
    /// already escaped: `<prefix>:{<name>:<rendered>}`.
    fn rendered_key(&self, rendered: &KeyTemplate) -> String {
        let mut key = limiter_key(None, &self.prefix, Some(&self.name), None);
        key.pop(); // the closing `}` of the hash tag
        key.push(':');
        key.push_str(rendered.as_str());
        key.push('}');
        key
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
/// use forge_cache_runtime::__private::{RateSite, rate_limit_check};
/// use forge_cache_runtime::{Algorithm, OnError};
/// # use std::time::Duration;
/// static SITE: RateSite =
///     RateSite::new("rate_limit", "doc::login", 1, Duration::from_secs(60), Algorithm::Gcra, OnError::Allow);
/// assert!(rate_limit_check(&SITE, Some(&"ada")).await.is_ok());
/// assert!(rate_limit_check(&SITE, Some(&"ada")).await.is_err());
/// assert!(rate_limit_check(&SITE, Some(&"bob")).await.is_ok());
/// # }
/// ```
pub fn rate_limit_check(
    site: &'static RateSite,
    key: Option<&dyn Display>,
) -> impl Future<Output = Result<(), RateLimitExceeded>> + Send + 'static {
    check(site, site.key(key))
}

/// [`rate_limit_check`] with the caller key rendered from a key template
/// (`#[rate_limit(key = "{creds.username}")]`).
///
/// ```
/// # #[tokio::main(flavor = "current_thread")] async fn main() {
/// # use std::time::Duration;
/// use forge_cache_runtime::__private::{KeyTemplate, RateSite, rate_limit_check, rate_limit_check_rendered};
/// use forge_cache_runtime::{Algorithm, OnError};
/// static SITE: RateSite =
///     RateSite::new("rate_limit", "doc::rendered", 1, Duration::from_secs(60), Algorithm::Gcra, OnError::Allow);
/// let mut key = KeyTemplate::new(8);
/// key.part(&"ada");
/// assert!(rate_limit_check_rendered(&SITE, key).await.is_ok());
/// // A single placeholder keys exactly as the caller key itself.
/// assert!(rate_limit_check(&SITE, Some(&"ada")).await.is_err());
/// # }
/// ```
#[doc(hidden)]
pub fn rate_limit_check_rendered(
    site: &'static RateSite,
    key: KeyTemplate,
) -> impl Future<Output = Result<(), RateLimitExceeded>> + Send + 'static {
    check(site, site.rendered_key(&key))
}

/// The check, once the key is formatted (so the future owns everything
/// it needs).
async fn check(site: &'static RateSite, key: String) -> Result<(), RateLimitExceeded> {
    let manager = current();
    check_with(&Async(&manager), site, &key).await
}

/// One check of `site` for the rendered caller key `key`, written once for
/// both drivers.
async fn check_with<D: Drive>(
    d: &D,
    site: &'static RateSite,
    key: &str,
) -> Result<(), RateLimitExceeded> {
    let manager = d.manager();
    let outcome = rate_check(d, &manager.full_key(key), &site.spec, site.who()).await;
    site.settle(manager, outcome)
}

/// Blocking form of [`rate_limit_check`], for sync functions.
///
/// ```
/// use forge_cache_runtime::__private::{RateSite, blocking};
/// use forge_cache_runtime::{Algorithm, OnError};
/// # use std::time::Duration;
/// static SITE: RateSite = RateSite::new(
///     "rate_limit", "doc::export", 1, Duration::from_secs(60), Algorithm::FixedWindow, OnError::Allow,
/// );
/// assert!(blocking::rate_limit_check(&SITE, None).is_ok());
/// assert!(blocking::rate_limit_check(&SITE, None).is_err());
/// ```
pub fn rate_limit_check_blocking(
    site: &'static RateSite,
    key: Option<&dyn Display>,
) -> Result<(), RateLimitExceeded> {
    block_now(check_with(&Blocking(&current()), site, &site.key(key)))
}

/// Blocking form of [`rate_limit_check_rendered`].
#[doc(hidden)]
pub fn rate_limit_check_rendered_blocking(
    site: &'static RateSite,
    key: KeyTemplate,
) -> Result<(), RateLimitExceeded> {
    block_now(check_with(
        &Blocking(&current()),
        site,
        &site.rendered_key(&key),
    ))
}
