//! Rate limiting: three algorithms, each one atomic round trip to the
//! backend, with the same results on Redis and in memory.
//!
//! A limiter that reads the counter with `GET` and then calls `INCR` races:
//! concurrent requests all read the same count and all get in, and when the
//! key expired between the two calls `INCR` created a counter with no TTL,
//! which locked that user out for good. Here every check is a single Lua
//! script (run by SHA, reloaded after `NOSCRIPT`) that reads the server's
//! clock, decides and writes, and every key it writes carries a TTL (a TTL
//! found missing is put back).
//!
//! - [`Algorithm::FixedWindow`] (the default): at
//!   most `max_requests` per window; the window starts at the first request.
//! - [`Algorithm::SlidingWindow`]: a two-window weighted counter, without the
//!   fixed window's double burst at a window edge.
//! - [`Algorithm::Gcra`]: a token bucket holding `max_requests`, refilled
//!   evenly over the window, with an exact `retry_after`.
//!
//! Use [`CacheManager::check_rate_limit`] directly, the `#[rate_limit]`
//! attribute, or (feature `axum`) the [`RateLimitLayer`](crate::axum::RateLimitLayer).

mod scripts;
mod site;

use std::borrow::Cow;
use std::fmt::Display;
use std::time::Duration;

use crate::backend::{Arg, Op, reply};
use crate::block::Manager;
use crate::drive::{Async, Drive, block_now};
use crate::error::{Chain, Result};
use crate::key::{join_key, push_bounded_component, push_component};
use crate::manager::CacheManager;

pub use site::{
    RateSite, rate_limit_check, rate_limit_check_blocking, rate_limit_check_rendered,
    rate_limit_check_rendered_blocking,
};

/// How requests are counted. Each check is one atomic Lua script on Redis
/// (or its twin under one lock in memory), decided on the server's clock;
/// every key written has a TTL.
///
/// ```
/// use forge_cache_runtime::Algorithm;
/// assert_eq!(Algorithm::default(), Algorithm::FixedWindow);
/// ```
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Algorithm {
    /// At most `max_requests` per window; the window starts with the first
    /// request and its counter expires with it. Allows up to twice the limit
    /// in a short span straddling the end of one window and the start of the
    /// next.
    #[default]
    FixedWindow,
    /// Windows aligned to the clock; a request is admitted while
    /// `previous_count × (unelapsed fraction of the current window) +
    /// current_count` stays below `max_requests`. No double burst at a
    /// window edge.
    SlidingWindow,
    /// Generic cell rate algorithm: a bucket of `max_requests` tokens,
    /// one token back every `window / max_requests`. A full bucket allows a
    /// burst of `max_requests`; after that, requests are spaced evenly.
    Gcra,
}

/// What a rate-limited call does when the backend cannot be asked.
///
/// ```
/// use forge_cache_runtime::OnError;
/// assert_eq!(OnError::default(), OnError::Allow);
/// ```
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum OnError {
    /// Admit the call (fail open). The failure is logged, at most once a
    /// second.
    #[default]
    Allow,
    /// Refuse the call with a [`RateLimitExceeded`] whose
    /// `backend_unavailable` is `true` (fail closed).
    Deny,
}

/// A rate limit for [`CacheManager::check_rate_limit`]: `max_requests` per
/// `window`, counted by `algorithm`, under keys
/// `[<namespace>:]<prefix>:{[<name>:]<key>}`.
///
/// ```
/// use std::time::Duration;
/// use forge_cache_runtime::{Algorithm, RateLimit};
///
/// let login = RateLimit::new(5, Duration::from_secs(60))
///     .with_algorithm(Algorithm::Gcra)
///     .with_name("login");
/// assert_eq!(login.key_for("ada"), "rate_limit:{login:ada}");
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RateLimit {
    /// Requests admitted per window (the bucket size for GCRA). Zero denies
    /// every request without asking the backend.
    pub max_requests: u64,
    /// The window (the refill period for GCRA). Counted in whole
    /// milliseconds, at least one.
    pub window: Duration,
    /// How requests are counted.
    pub algorithm: Algorithm,
    /// First key component; default `"rate_limit"`.
    pub prefix: Cow<'static, str>,
    /// Optional name separating this limit from others on the same keys.
    pub name: Option<Cow<'static, str>>,
}

impl RateLimit {
    /// `max_requests` per `window`, fixed window, prefix `"rate_limit"`.
    ///
    /// ```
    /// use std::time::Duration;
    /// use forge_cache_runtime::RateLimit;
    /// const API: RateLimit = RateLimit::new(100, Duration::from_secs(3600));
    /// assert_eq!(API.key_for(42), "rate_limit:{42}");
    /// ```
    pub const fn new(max_requests: u64, window: Duration) -> Self {
        RateLimit {
            max_requests,
            window,
            algorithm: Algorithm::FixedWindow,
            prefix: Cow::Borrowed("rate_limit"),
            name: None,
        }
    }

    /// The same limit counted by `algorithm`.
    ///
    /// ```
    /// # use std::time::Duration;
    /// use forge_cache_runtime::{Algorithm, RateLimit};
    /// let l = RateLimit::new(10, Duration::from_secs(1)).with_algorithm(Algorithm::SlidingWindow);
    /// assert_eq!(l.algorithm, Algorithm::SlidingWindow);
    /// ```
    pub fn with_algorithm(mut self, algorithm: Algorithm) -> Self {
        self.algorithm = algorithm;
        self
    }

    /// The same limit under another key prefix.
    ///
    /// ```
    /// # use std::time::Duration;
    /// use forge_cache_runtime::RateLimit;
    /// let l = RateLimit::new(10, Duration::from_secs(1)).with_prefix("rl");
    /// assert_eq!(l.key_for("u1"), "rl:{u1}");
    /// ```
    pub fn with_prefix(mut self, prefix: impl Into<Cow<'static, str>>) -> Self {
        self.prefix = prefix.into();
        self
    }

    /// The same limit with a name, so several limits can count the same
    /// caller keys separately. `::` in the name becomes `.`.
    ///
    /// ```
    /// # use std::time::Duration;
    /// use forge_cache_runtime::RateLimit;
    /// let l = RateLimit::new(10, Duration::from_secs(1)).with_name("app::search");
    /// assert_eq!(l.key_for("u1"), "rate_limit:{app.search:u1}");
    /// ```
    pub fn with_name(mut self, name: impl Into<Cow<'static, str>>) -> Self {
        self.name = Some(name.into());
        self
    }

    /// The key (without the manager's namespace) this limit counts `key`
    /// under, e.g. to inspect it with [`CacheManager::ttl`] or reset it with
    /// [`CacheManager::delete`].
    ///
    /// The caller's key is escaped (`:`, `*`, `{`, … cannot reach other
    /// keys or act as glob syntax) and replaced by `h:<md5>` when its escaped
    /// form is longer than 200 bytes. Everything after the prefix is one
    /// Redis Cluster hash tag.
    ///
    /// ```
    /// # use std::time::Duration;
    /// use forge_cache_runtime::RateLimit;
    /// let l = RateLimit::new(10, Duration::from_secs(1));
    /// assert_eq!(l.key_for("a:*{b}"), "rate_limit:{a%3A%2A%7Bb%7D}");
    /// assert!(l.key_for("x".repeat(10_000)).starts_with("rate_limit:{h:"));
    /// ```
    pub fn key_for(&self, key: impl Display) -> String {
        limiter_key(None, &self.prefix, self.name.as_deref(), Some(&key))
    }

    pub(crate) fn spec(&self) -> Spec {
        Spec {
            max_requests: self.max_requests,
            window: self.window,
            algorithm: self.algorithm,
        }
    }
}

/// The outcome of one rate-limit check.
///
/// ```
/// # #[tokio::main(flavor = "current_thread")] async fn main() -> forge_cache_runtime::Result<()> {
/// use std::time::Duration;
/// use forge_cache_runtime::{CacheManager, RateLimit, RedisSettings};
///
/// let cache = CacheManager::new(RedisSettings::memory())?;
/// let limit = RateLimit::new(2, Duration::from_secs(60));
/// let d = cache.check_rate_limit("ada", &limit).await?;
/// assert!(d.allowed);
/// assert_eq!((d.limit, d.remaining), (2, 1));
/// assert_eq!(d.retry_after, Duration::ZERO);
/// # Ok(()) }
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Decision {
    /// Whether the request is admitted (and was counted).
    pub allowed: bool,
    /// `max_requests` of the limit.
    pub limit: u64,
    /// Requests still admitted right now after this one.
    pub remaining: u64,
    /// Time until the full quota is available again (fixed window: until
    /// the window ends; sliding window: until both counted windows have
    /// passed; GCRA: until the bucket is full).
    pub reset_after: Duration,
    /// When refused, the time until a request would be admitted; zero when
    /// admitted.
    pub retry_after: Duration,
    /// The limit's window.
    pub window: Duration,
}

impl Decision {
    /// `Ok(self)` when admitted, else the error to return.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")] async fn main() -> forge_cache_runtime::Result<()> {
    /// use std::time::Duration;
    /// use forge_cache_runtime::{CacheManager, RateLimit, RedisSettings};
    ///
    /// let cache = CacheManager::new(RedisSettings::memory())?;
    /// let limit = RateLimit::new(1, Duration::from_secs(60));
    /// assert!(cache.check_rate_limit(7, &limit).await?.into_result().is_ok());
    /// let refused = cache.check_rate_limit(7, &limit).await?.into_result().unwrap_err();
    /// assert!(refused.retry_after > Duration::ZERO);
    /// # Ok(()) }
    /// ```
    pub fn into_result(self) -> Result<Decision, RateLimitExceeded> {
        if self.allowed {
            Ok(self)
        } else {
            Err(RateLimitExceeded {
                limit: self.limit,
                remaining: self.remaining,
                reset_after: self.reset_after,
                retry_after: self.retry_after,
                window: self.window,
                backend_unavailable: false,
            })
        }
    }
}

/// A call was refused by a rate limit. Displays as `Rate limit exceeded`;
/// with the `axum` feature it is a `429 Too Many
/// Requests` response with `Retry-After` and rate-limit headers.
///
/// When the backend failed and the limit's policy is [`OnError::Deny`],
/// `backend_unavailable` is `true`, `remaining` is 0, `reset_after` is zero,
/// and `retry_after` is the circuit breaker's cooldown (when the backend
/// will next be tried).
///
/// ```
/// # #[tokio::main(flavor = "current_thread")] async fn main() -> forge_cache_runtime::Result<()> {
/// use std::time::Duration;
/// use forge_cache_runtime::{CacheManager, RateLimit, RedisSettings};
///
/// let cache = CacheManager::new(RedisSettings::memory())?;
/// let limit = RateLimit::new(0, Duration::from_secs(60));
/// let err = cache.check_rate_limit("x", &limit).await?.into_result().unwrap_err();
/// assert_eq!(err.to_string(), "Rate limit exceeded");
/// assert_eq!(err.limit, 0);
/// # Ok(()) }
/// ```
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("Rate limit exceeded")]
#[non_exhaustive]
pub struct RateLimitExceeded {
    /// `max_requests` of the limit.
    pub limit: u64,
    /// Requests still admitted (0 when refused).
    pub remaining: u64,
    /// Time until the full quota is available again.
    pub reset_after: Duration,
    /// Time until a request would be admitted.
    pub retry_after: Duration,
    /// The limit's window.
    pub window: Duration,
    /// Refused because the backend could not be asked (policy
    /// [`OnError::Deny`]), not because the quota is used up.
    pub backend_unavailable: bool,
}

impl RateLimitExceeded {
    /// The refusal for a backend failure under [`OnError::Deny`].
    pub(crate) fn unavailable(spec: &Spec, retry_after: Duration) -> Self {
        RateLimitExceeded {
            limit: spec.max_requests,
            remaining: 0,
            reset_after: Duration::ZERO,
            retry_after,
            window: spec.window,
            backend_unavailable: true,
        }
    }
}

/// Applies `policy` to a failed check: admit (`Ok`) or refuse, logging the
/// failure at most once a second either way.
pub(crate) fn on_backend_error(
    manager: &CacheManager,
    policy: OnError,
    spec: &Spec,
    who: Who<'_>,
    err: &crate::error::Error,
) -> Result<(), RateLimitExceeded> {
    match policy {
        OnError::Allow => {
            manager.warn_failure_at(
                who.prefix,
                who.name,
                "rate limit check failed; admitting the call (on_error = allow)",
                err,
            );
            Ok(())
        }
        OnError::Deny => {
            manager.warn_failure_at(
                who.prefix,
                who.name,
                "rate limit check failed; refusing the call (on_error = deny)",
                err,
            );
            let retry_after = manager.settings().breaker_cooldown;
            Err(RateLimitExceeded::unavailable(spec, retry_after))
        }
    }
}

/// Which limit a check is for, in logs and metrics: its key prefix and its
/// name (the function's path for `#[rate_limit]`; empty when unnamed).
/// Never the caller's key, which is often a user id or an address.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Who<'a> {
    pub(crate) prefix: &'a Cow<'static, str>,
    pub(crate) name: &'a Cow<'static, str>,
}

static UNNAMED: Cow<'static, str> = Cow::Borrowed("");

impl RateLimit {
    pub(crate) fn who(&self) -> Who<'_> {
        Who {
            prefix: &self.prefix,
            name: self.name.as_ref().unwrap_or(&UNNAMED),
        }
    }
}

/// What a check needs besides the key.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Spec {
    pub(crate) max_requests: u64,
    pub(crate) window: Duration,
    pub(crate) algorithm: Algorithm,
}

/// Longest window counted exactly (2^40 ms, about 34 years).
const MAX_WINDOW_MS: u64 = 1 << 40;
/// Largest limit counted (2^40).
const MAX_REQUESTS: u64 = 1 << 40;

impl Spec {
    fn window_ms(&self) -> i64 {
        (self.window.as_millis().clamp(1, MAX_WINDOW_MS as u128)) as i64
    }

    fn script(&self) -> &'static crate::backend::Script {
        match self.algorithm {
            Algorithm::FixedWindow => &scripts::FIXED_WINDOW,
            Algorithm::SlidingWindow => &scripts::SLIDING_WINDOW,
            Algorithm::Gcra => &scripts::GCRA,
        }
    }

    /// The refusal for `max_requests == 0`, decided without the backend.
    fn deny_all(&self) -> Decision {
        Decision {
            allowed: false,
            limit: 0,
            remaining: 0,
            reset_after: self.window,
            retry_after: self.window,
            window: self.window,
        }
    }

    /// The admission of a check in `testing::disabled`: nothing counted,
    /// the whole budget left.
    fn unlimited(&self) -> Decision {
        Decision {
            allowed: true,
            limit: self.max_requests,
            remaining: self.max_requests,
            reset_after: Duration::ZERO,
            retry_after: Duration::ZERO,
            window: self.window,
        }
    }

    fn decision(&self, reply: (i64, i64, i64, i64)) -> Decision {
        let (allowed, remaining, reset_us, retry_us) = reply;
        let micros = |us: i64| Duration::from_micros(us.max(0) as u64);
        Decision {
            allowed: allowed == 1,
            limit: self.max_requests,
            remaining: remaining.max(0) as u64,
            reset_after: micros(reset_us),
            retry_after: micros(retry_us),
            window: self.window,
        }
    }
}

/// The one function building rate-limit keys:
/// `[<namespace>:]<prefix>:{[<name>:]<key>}`. The hash tag makes the key's
/// slot depend on the limited caller, and keeps any future companion keys of
/// one limiter on one Redis Cluster node.
pub(crate) fn limiter_key(
    namespace: Option<&str>,
    prefix: &str,
    name: Option<&str>,
    key: Option<&dyn Display>,
) -> String {
    let mut head = String::with_capacity(prefix.len());
    push_component(&mut head, &prefix);
    let mut tag = String::from("{");
    if let Some(name) = name {
        push_component(&mut tag, &name.replace("::", "."));
    }
    if let Some(key) = key {
        if name.is_some() {
            tag.push(':');
        }
        push_bounded_component(&mut tag, key);
    }
    tag.push('}');
    join_key(namespace, &[&head, &tag])
}

impl CacheManager {
    /// Counts one request for `key` against `limit` and says whether it is
    /// admitted: one atomic round trip (a Lua script on Redis), so
    /// concurrent checks never admit more than the limit.
    ///
    /// Errors only when the backend fails; what to do then is the caller's
    /// choice (the attribute and the layer follow their [`OnError`]).
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")] async fn main() -> forge_cache_runtime::Result<()> {
    /// use std::time::Duration;
    /// use forge_cache_runtime::{CacheManager, RateLimit, RedisSettings};
    ///
    /// let cache = CacheManager::new(RedisSettings::memory())?;
    /// let limit = RateLimit::new(3, Duration::from_secs(3600));
    /// let admitted = {
    ///     let mut n = 0;
    ///     for _ in 0..5 {
    ///         n += cache.check_rate_limit(42, &limit).await?.allowed as u32;
    ///     }
    ///     n
    /// };
    /// assert_eq!(admitted, 3);
    /// # Ok(()) }
    /// ```
    pub async fn check_rate_limit(&self, key: impl Display, limit: &RateLimit) -> Result<Decision> {
        let full = limiter_key(
            self.settings().namespace(),
            &limit.prefix,
            limit.name.as_deref(),
            Some(&key),
        );
        rate_check(&Async(self), &full, &limit.spec(), limit.who()).await
    }
}

impl Manager<'_> {
    /// Blocking form of [`CacheManager::check_rate_limit`].
    ///
    /// ```
    /// use std::time::Duration;
    /// use forge_cache_runtime::{CacheManager, RateLimit, RedisSettings};
    ///
    /// let cache = CacheManager::new(RedisSettings::memory())?;
    /// let d = cache.blocking().check_rate_limit("ada", &RateLimit::new(1, Duration::from_secs(9)))?;
    /// assert!(d.allowed);
    /// # Ok::<(), forge_cache_runtime::Error>(())
    /// ```
    pub fn check_rate_limit(&self, key: impl Display, limit: &RateLimit) -> Result<Decision> {
        let full = limiter_key(
            self.manager().settings().namespace(),
            &limit.prefix,
            limit.name.as_deref(),
            Some(&key),
        );
        block_now(rate_check(&self.drive(), &full, &limit.spec(), limit.who()))
    }
}

/// Runs `spec`'s script on the full key `key`: one check, written once for
/// both drivers.
pub(crate) async fn rate_check<D: Drive>(
    d: &D,
    key: &str,
    spec: &Spec,
    who: Who<'_>,
) -> Result<Decision> {
    if spec.max_requests == 0 {
        return observe(who, Ok(spec.deny_all()));
    }
    if crate::scope::has(crate::scope::RATE_LIMIT_OFF) {
        return Ok(spec.unlimited());
    }
    let args = script_args(spec);
    let value = d.exec(Op::Script(spec.script(), &[key], &args)).await;
    observe(who, value.and_then(|v| Ok(spec.decision(reply(v)?))))
}

/// Logs and counts refusals and backend failures of one check.
fn observe(who: Who<'_>, outcome: Result<Decision>) -> Result<Decision> {
    match &outcome {
        Ok(d) if !d.allowed => {
            crate::telemetry::rate_limit_refused(who.prefix, who.name);
            tracing::debug!(target: "forge_cache", prefix = %who.prefix, name = %who.name,
                retry_after_ms = d.retry_after.as_millis() as u64, "rate limit exceeded");
        }
        Ok(_) => {}
        Err(e) => {
            crate::telemetry::rate_limit_backend_error(who.prefix, who.name);
            tracing::debug!(target: "forge_cache", prefix = %who.prefix, name = %who.name,
                error = %Chain(e), "rate limit check failed");
        }
    }
    outcome
}

fn script_args(spec: &Spec) -> [Arg<'static>; 2] {
    [
        Arg::Int(spec.max_requests.min(MAX_REQUESTS) as i64),
        Arg::Int(spec.window_ms()),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn long_keys_are_hashed() {
        let a = limiter_key(None, "p", None, Some(&"a".repeat(500)));
        assert_eq!(a.len(), "p:{h:}".len() + 32);
    }

    #[test]
    fn hostile_parts_cannot_open_a_second_hash_tag() {
        let k = limiter_key(Some("ns"), "p{x}", Some("a::b:c"), Some(&"}{*"));
        assert_eq!(k, "ns:p%7Bx%7D:{a.b%3Ac:%7D%7B%2A}");
    }
}
