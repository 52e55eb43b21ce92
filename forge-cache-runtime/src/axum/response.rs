//! HTTP response caching for axum routes: [`ResponseCacheLayer`].

use std::convert::Infallible;
use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use ::axum::body::Body;
use ::axum::http::header::{AUTHORIZATION, CONTENT_LENGTH, ETAG, SET_COOKIE, VARY};
use ::axum::http::request::Parts;
use ::axum::http::{HeaderName, HeaderValue, Method, Request, StatusCode};
use ::axum::response::Response;
use md5::{Digest, Md5};
use tower_layer::Layer;
use tower_service::Service;

use super::body::{CatchPanic, Collected, collect};
use super::cache_headers::{directives, etag_of, max_age, now_ms, respond, stored_header};
use super::entry::Entry;
use crate::drive::{Async, Drive};
use crate::flight::{Flights, Join, State};
use crate::key::{hex_digest, push_bounded_component, push_component};
use crate::manager::CacheManager;

type KeyFn = Arc<dyn Fn(&Parts) -> Option<String> + Send + Sync>;

pub use super::cache_headers::X_CACHE;

/// Caches the responses of a router or route in Redis (or the in-memory
/// backend): `GET` and `HEAD` only, the statuses you allow (200 by
/// default), with a strong `ETag`, `304 Not Modified`, `Age`,
/// `Cache-Control` and `X-Cache: HIT | MISS`.
///
/// - **Key:** the path, the query, the request headers named with
///   [`vary`](Self::vary), and whatever [`key_by`](Self::key_by) returns
///   (say, a user id, for per-user responses):
///   `[namespace:]<name>:<path>:<md5 of the rest>`. `HEAD` is answered from
///   the `GET` entry.
/// - **What is stored:** status, headers (no hop-by-hop headers, and no
///   `Set-Cookie` unless [`cache_set_cookie`](Self::cache_set_cookie)) and
///   the body, up to [`max_body`](Self::max_body) bytes; a larger body is
///   passed through, uncached. A handler's `Cache-Control: no-store` or
///   `private` is obeyed (not stored), and its `max-age` shortens the TTL.
/// - **ETag and 304:** a strong `ETag` over the body (the handler's own, if
///   it set one). `If-None-Match` is answered with `304` on a hit, and on a
///   miss whose fresh body has the same `ETag`. After an invalidation,
///   a changed body has a new `ETag`, so old ones no longer match.
/// - **Client `no-cache`:** ignored by default. A browser or an API client
///   (Postman sends `Cache-Control: no-cache` on every request) would
///   otherwise switch the server cache off for everyone it serves. Turn it
///   on with [`respect_client_no_cache`](Self::respect_client_no_cache).
/// - **Authorized requests** (with an `Authorization` header) pass through
///   uncached, unless [`key_by`](Self::key_by) puts the caller in the key:
///   one user's response is never served to another.
/// - **Single flight:** concurrent misses of one key in this process run
///   the handler once.
/// - **Failures:** when Redis fails, the handler simply runs.
///
/// ```
/// use std::time::Duration;
/// use axum::{Router, routing::get};
/// use forge_cache_runtime::axum::ResponseCacheLayer;
///
/// let app: Router = Router::new()
///     .route("/products", get(|| async { "[]" }))
///     .layer(ResponseCacheLayer::new(Duration::from_secs(60)).name("products").vary(["accept-language"]));
/// ```
#[derive(Clone)]
pub struct ResponseCacheLayer {
    config: Arc<Config>,
}

struct Config {
    ttl: Duration,
    name: String,
    statuses: Vec<StatusCode>,
    vary: Vec<HeaderName>,
    max_body: usize,
    respect_no_cache: bool,
    cache_set_cookie: bool,
    key: Option<KeyFn>,
    manager: Option<CacheManager>,
    stale: Duration,
    timeout: Option<Duration>,
}

impl fmt::Debug for ResponseCacheLayer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let c = &self.config;
        f.debug_struct("ResponseCacheLayer")
            .field("ttl", &c.ttl)
            .field("name", &c.name)
            .field("statuses", &c.statuses)
            .field("vary", &c.vary)
            .field("max_body", &c.max_body)
            .field("respect_client_no_cache", &c.respect_no_cache)
            .field("cache_set_cookie", &c.cache_set_cookie)
            .field("key_by", &c.key.is_some())
            .field("stale_if_error", &c.stale)
            .field("timeout", &c.timeout)
            .finish_non_exhaustive()
    }
}

/// A body larger than this is passed through uncached, by default.
pub const DEFAULT_MAX_BODY: usize = 1 << 20;

impl ResponseCacheLayer {
    /// Caches `200` responses to `GET` for `ttl`, under the name `http`.
    pub fn new(ttl: Duration) -> Self {
        ResponseCacheLayer {
            config: Arc::new(Config {
                ttl,
                name: "http".to_owned(),
                statuses: vec![StatusCode::OK],
                vary: Vec::new(),
                max_body: DEFAULT_MAX_BODY,
                respect_no_cache: false,
                cache_set_cookie: false,
                key: None,
                manager: None,
                stale: Duration::ZERO,
                timeout: None,
            }),
        }
    }

    fn with(mut self, f: impl FnOnce(&mut Config)) -> Self {
        if let Some(c) = Arc::get_mut(&mut self.config) {
            f(c);
        } else {
            let c = &*self.config;
            let mut copy = Config {
                ttl: c.ttl,
                name: c.name.clone(),
                statuses: c.statuses.clone(),
                vary: c.vary.clone(),
                max_body: c.max_body,
                respect_no_cache: c.respect_no_cache,
                cache_set_cookie: c.cache_set_cookie,
                key: c.key.clone(),
                manager: c.manager.clone(),
                stale: c.stale,
                timeout: c.timeout,
            };
            f(&mut copy);
            self.config = Arc::new(copy);
        }
        self
    }

    /// The first key segment (default `http`), for invalidation and
    /// statistics. Escaped like a key part.
    ///
    /// ```
    /// # use std::time::Duration;
    /// # use forge_cache_runtime::axum::ResponseCacheLayer;
    /// let layer = ResponseCacheLayer::new(Duration::from_secs(60)).name("users");
    /// ```
    pub fn name(self, name: &str) -> Self {
        let mut escaped = String::new();
        push_bounded_component(&mut escaped, &name);
        self.with(|c| c.name = escaped)
    }

    /// The statuses that are stored (default: `200` only).
    ///
    /// ```
    /// # use std::time::Duration;
    /// # use forge_cache_runtime::axum::ResponseCacheLayer;
    /// use axum::http::StatusCode;
    /// let layer = ResponseCacheLayer::new(Duration::from_secs(60))
    ///     .statuses([StatusCode::OK, StatusCode::NOT_FOUND]);
    /// ```
    pub fn statuses(self, statuses: impl IntoIterator<Item = StatusCode>) -> Self {
        let statuses = statuses.into_iter().collect();
        self.with(|c| c.statuses = statuses)
    }

    /// Request headers whose values are part of the key (and which the
    /// responses name in `Vary`). A response whose own `Vary` names another
    /// header, or `*`, is not stored.
    ///
    /// ```
    /// # use std::time::Duration;
    /// # use forge_cache_runtime::axum::ResponseCacheLayer;
    /// let layer = ResponseCacheLayer::new(Duration::from_secs(60)).vary(["accept-language"]);
    /// ```
    ///
    /// # Panics
    ///
    /// Never: a name that is not a valid header name is ignored (and
    /// logged).
    pub fn vary<'a>(self, headers: impl IntoIterator<Item = &'a str>) -> Self {
        let mut names = Vec::new();
        for h in headers {
            match HeaderName::from_bytes(h.as_bytes()) {
                Ok(n) => names.push(n),
                Err(_) => {
                    tracing::warn!(target: "forge_cache", header = h, "ignored: not a header name")
                }
            }
        }
        self.with(|c| c.vary = names)
    }

    /// Bodies larger than this are passed through uncached (default 1 MiB).
    ///
    /// ```
    /// # use std::time::Duration;
    /// # use forge_cache_runtime::axum::ResponseCacheLayer;
    /// let layer = ResponseCacheLayer::new(Duration::from_secs(60)).max_body(64 * 1024);
    /// ```
    pub fn max_body(self, bytes: usize) -> Self {
        self.with(|c| c.max_body = bytes)
    }

    /// Whether a client's `Cache-Control: no-cache` (or `no-store`)
    /// bypasses the server cache. Default `false`: clients such as Postman
    /// send it on every request, and one client should not decide for the
    /// server. With `true`, `no-cache` recomputes and stores, `no-store`
    /// neither reads nor stores.
    ///
    /// ```
    /// # use std::time::Duration;
    /// # use forge_cache_runtime::axum::ResponseCacheLayer;
    /// let layer = ResponseCacheLayer::new(Duration::from_secs(60)).respect_client_no_cache(true);
    /// ```
    pub fn respect_client_no_cache(self, respect: bool) -> Self {
        self.with(|c| c.respect_no_cache = respect)
    }

    /// Whether `Set-Cookie` is stored with the response (default `false`:
    /// it is sent to the client that caused the store, and left out of the
    /// cached copy, so one user's cookie is never served to another).
    ///
    /// ```
    /// # use std::time::Duration;
    /// # use forge_cache_runtime::axum::ResponseCacheLayer;
    /// let layer = ResponseCacheLayer::new(Duration::from_secs(60)).cache_set_cookie(false);
    /// ```
    pub fn cache_set_cookie(self, cache: bool) -> Self {
        self.with(|c| c.cache_set_cookie = cache)
    }

    /// Adds to the key what `f` returns for a request, e.g. the user id
    /// from a request extension, for per-user responses. `None` adds
    /// nothing.
    ///
    /// ```
    /// # use std::time::Duration;
    /// # use forge_cache_runtime::axum::ResponseCacheLayer;
    /// let layer = ResponseCacheLayer::new(Duration::from_secs(60))
    ///     .key_by(|req| req.headers.get("x-user-id")?.to_str().ok().map(str::to_owned));
    /// ```
    pub fn key_by(self, f: impl Fn(&Parts) -> Option<String> + Send + Sync + 'static) -> Self {
        let f: KeyFn = Arc::new(f);
        self.with(|c| c.key = Some(f))
    }

    /// Stores with `manager` instead of the current one.
    ///
    /// ```
    /// # use std::time::Duration;
    /// # use forge_cache_runtime::axum::ResponseCacheLayer;
    /// use forge_cache_runtime::{CacheManager, RedisSettings};
    /// let layer = ResponseCacheLayer::new(Duration::from_secs(60))
    ///     .manager(CacheManager::new(RedisSettings::memory())?);
    /// # Ok::<(), forge_cache_runtime::Error>(())
    /// ```
    pub fn manager(self, manager: CacheManager) -> Self {
        self.with(|c| c.manager = Some(manager))
    }

    /// Keeps each response this long past its TTL, and serves that stale
    /// copy (with `X-Cache: STALE`) when the handler fails while
    /// recomputing it: a `5xx`, a panic, or (with [`timeout`](Self::timeout))
    /// no response in time. Default: zero, off.
    ///
    /// ```
    /// # use std::time::Duration;
    /// # use forge_cache_runtime::axum::ResponseCacheLayer;
    /// let layer = ResponseCacheLayer::new(Duration::from_secs(60))
    ///     .stale_if_error(Duration::from_secs(600))
    ///     .timeout(Duration::from_secs(2));
    /// ```
    pub fn stale_if_error(self, stale: Duration) -> Self {
        self.with(|c| c.stale = stale)
    }

    /// With [`stale_if_error`](Self::stale_if_error): how long the handler
    /// may take to recompute an entry that has a stale copy before the stale
    /// copy is served. The handler is not given a deadline otherwise.
    ///
    /// ```
    /// # use std::time::Duration;
    /// # use forge_cache_runtime::axum::ResponseCacheLayer;
    /// let layer = ResponseCacheLayer::new(Duration::from_secs(60)).timeout(Duration::from_secs(2));
    /// ```
    pub fn timeout(self, timeout: Duration) -> Self {
        self.with(|c| c.timeout = Some(timeout))
    }

    /// Removes the cached responses of the paths matching `path` (a path,
    /// or a pattern with `*`, e.g. `/users/*`), whatever their query and
    /// varying headers; returns how many. Paths longer than 200 bytes are
    /// stored by their hash and only reached by `*` alone.
    ///
    /// ```
    /// # use std::time::Duration;
    /// # use forge_cache_runtime::axum::ResponseCacheLayer;
    /// # async fn run() -> forge_cache_runtime::Result<()> {
    /// let layer = ResponseCacheLayer::new(Duration::from_secs(60)).name("users");
    /// layer.invalidate("/users/42").await?;
    /// layer.invalidate("/users/*").await?;
    /// # Ok(()) }
    /// ```
    pub async fn invalidate(&self, path: &str) -> crate::error::Result<u64> {
        let manager = self.config.manager();
        manager.delete_pattern(&self.config.pattern(path)).await
    }
}

impl<S> Layer<S> for ResponseCacheLayer {
    type Service = ResponseCacheService<S>;

    fn layer(&self, inner: S) -> Self::Service {
        ResponseCacheService {
            inner,
            config: self.config.clone(),
        }
    }
}

/// The service of [`ResponseCacheLayer`].
#[derive(Clone)]
pub struct ResponseCacheService<S> {
    inner: S,
    config: Arc<Config>,
}

impl<S> fmt::Debug for ResponseCacheService<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ResponseCacheService")
            .finish_non_exhaustive()
    }
}

impl Config {
    fn manager(&self) -> CacheManager {
        self.manager.clone().unwrap_or_else(crate::global::current)
    }

    /// `<name>:<path>:<md5 of query, varying headers and key_by>`.
    fn key(&self, parts: &Parts) -> String {
        let mut h = Md5::new();
        let mut field = |b: &[u8]| {
            h.update((b.len() as u64).to_le_bytes());
            h.update(b);
        };
        field(parts.uri.query().unwrap_or("").as_bytes());
        for name in &self.vary {
            let values: Vec<&[u8]> = parts
                .headers
                .get_all(name)
                .iter()
                .map(HeaderValue::as_bytes)
                .collect();
            field(&values.join(&b","[..]));
        }
        if let Some(k) = self.key.as_ref().and_then(|f| f(parts)) {
            field(b"key");
            field(k.as_bytes());
        }
        let digest: [u8; 16] = h.finalize().into();
        let mut key = String::with_capacity(self.name.len() + parts.uri.path().len() + 40);
        key.push_str(&self.name);
        key.push(':');
        push_bounded_component(&mut key, &parts.uri.path());
        key.push(':');
        let mut buf = [0u8; 32];
        key.push_str(hex_digest(&digest, &mut buf));
        key
    }

    /// The glob of the keys of the paths matching `path` (`*` kept).
    fn pattern(&self, path: &str) -> String {
        let mut p = String::with_capacity(self.name.len() + path.len() + 4);
        p.push_str(&crate::glob::escape(&self.name));
        p.push(':');
        for (i, literal) in path.split('*').enumerate() {
            if i > 0 {
                p.push('*');
            }
            let mut escaped = String::new();
            push_component(&mut escaped, &literal);
            p.push_str(&crate::glob::escape(&escaped));
        }
        p.push_str(":*");
        p
    }
}

/// What a request asks of the cache.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Ask {
    /// Read, and store on a miss.
    Normal,
    /// `no-cache` (respected): recompute and store.
    Refresh,
    /// `no-store` (respected), or not `GET`/`HEAD`: pass through.
    Pass,
}

fn ask(config: &Config, parts: &Parts) -> Ask {
    if parts.method != Method::GET && parts.method != Method::HEAD {
        return Ask::Pass;
    }
    // RFC 9111 section 3.5: a shared cache does not answer an authorized
    // request from another one's response. With `key_by`, the key says
    // whose response it is.
    if config.key.is_none() && parts.headers.contains_key(AUTHORIZATION) {
        return Ask::Pass;
    }
    if !config.respect_no_cache {
        return Ask::Normal;
    }
    let directives = directives(&parts.headers);
    if directives.iter().any(|d| d == "no-store") {
        Ask::Pass
    } else if directives.iter().any(|d| d == "no-cache") {
        Ask::Refresh
    } else {
        Ask::Normal
    }
}

impl<S> Service<Request<Body>> for ResponseCacheService<S>
where
    S: Service<Request<Body>, Response = Response, Error = Infallible> + Clone + Send + 'static,
    S::Future: Send + 'static,
{
    type Response = Response;
    type Error = Infallible;
    type Future = Pin<Box<dyn Future<Output = Result<Response, Infallible>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: Request<Body>) -> Self::Future {
        // The clone is not ready; keep the one that was polled ready.
        let clone = self.inner.clone();
        let inner = std::mem::replace(&mut self.inner, clone);
        let config = self.config.clone();
        Box::pin(serve(config, inner, request))
    }
}

async fn serve<S>(
    config: Arc<Config>,
    mut inner: S,
    request: Request<Body>,
) -> Result<Response, Infallible>
where
    S: Service<Request<Body>, Response = Response, Error = Infallible>,
{
    let (parts, body) = request.into_parts();
    let ask = ask(&config, &parts);
    if ask == Ask::Pass {
        return inner.call(Request::from_parts(parts, body)).await;
    }
    let manager = config.manager();
    let key = config.key(&parts);
    let mut stale = None;
    if ask == Ask::Normal {
        match manager.get_bytes(&key).await {
            Ok(Some(bytes)) => match Entry::decode_owned(bytes) {
                Some(entry) if entry.expires_ms > now_ms() => {
                    let left = Duration::from_millis(entry.expires_ms.saturating_sub(now_ms()));
                    tracing::debug!(target: "forge_cache", name = %config.name, "response cache hit");
                    return Ok(respond(&entry, &parts, true, left));
                }
                // Past its TTL, within `stale_if_error`: kept for a failure.
                Some(entry) => stale = Some(entry),
                None => {
                    tracing::debug!(target: "forge_cache", name = %config.name, "cached response does not decode; recomputing")
                }
            },
            Ok(None) => {}
            Err(e) => {
                tracing::debug!(target: "forge_cache", name = %config.name, error = %e, "response cache read failed; running the handler");
                let mut response = inner.call(Request::from_parts(parts, body)).await?;
                response
                    .headers_mut()
                    .insert(X_CACHE, HeaderValue::from_static("MISS"));
                return Ok(response);
            }
        }
    }
    // A HEAD miss cannot fill the entry (it has no body): pass it through.
    if parts.method == Method::HEAD {
        let mut response = inner.call(Request::from_parts(parts, body)).await?;
        response
            .headers_mut()
            .insert(X_CACHE, HeaderValue::from_static("MISS"));
        return Ok(response);
    }
    let flights = manager.state::<Flights>();
    let mut leader = match flights.join(&key) {
        Join::Lead(leader) => Some(leader),
        Join::Wait(flight) => {
            if let State::Done(Some(bytes)) = Async(&manager).wait(&flight).await {
                if let Some(entry) = Entry::decode(&bytes) {
                    let left = Duration::from_millis(entry.expires_ms.saturating_sub(now_ms()));
                    return Ok(respond(&entry, &parts, true, left));
                }
            }
            None
        }
    };
    let request = Request::from_parts(parts.clone(), body);
    let response = match run(&config, &mut inner, request, stale.is_some()).await {
        Ok(r) if !(stale.is_some() && r.status().is_server_error()) => r,
        outcome => {
            if let Some(entry) = &stale {
                tracing::warn!(target: "forge_cache", name = %config.name, "handler failed; serving the stale response");
                let mut r = respond(entry, &parts, true, Duration::ZERO);
                r.headers_mut()
                    .insert(X_CACHE, HeaderValue::from_static("STALE"));
                return Ok(r);
            }
            match outcome {
                Ok(r) => r,
                Err(Failure::Panic(payload)) => std::panic::resume_unwind(payload),
                Err(Failure::Timeout) => unreachable_timeout(),
            }
        }
    };
    let (entry, response) = match storable(&config, response).await {
        Ok(entry) => (entry, None),
        Err(response) => (None, Some(response)),
    };
    let Some((entry, ttl, set_cookie)) = entry else {
        if let Some(l) = leader.as_mut() {
            l.finish(None);
        }
        let mut response = response.unwrap_or_default();
        response
            .headers_mut()
            .insert(X_CACHE, HeaderValue::from_static("MISS"));
        return Ok(response);
    };
    let bytes = entry.encode();
    if let Some(l) = leader.as_mut() {
        l.finish(Some(&bytes));
    }
    if let Err(e) = manager.set_bytes(&key, &bytes, ttl + config.stale).await {
        tracing::debug!(target: "forge_cache", name = %config.name, error = %e, "response cache write failed");
    }
    drop(leader);
    let mut response = respond(&entry, &parts, false, ttl);
    for cookie in set_cookie {
        response.headers_mut().append(SET_COOKIE, cookie);
    }
    Ok(response)
}

/// Why the handler gave no response.
enum Failure {
    Panic(Box<dyn std::any::Any + Send>),
    Timeout,
}

/// Runs the handler; with a stale copy to fall back on, a panic and (with
/// `timeout`) a late response are failures rather than the end of the
/// request.
async fn run<S>(
    config: &Config,
    inner: &mut S,
    request: Request<Body>,
    has_stale: bool,
) -> Result<Response, Failure>
where
    S: Service<Request<Body>, Response = Response, Error = Infallible>,
{
    let call = CatchPanic::new(inner.call(request));
    let outcome = match (has_stale, config.timeout) {
        (true, Some(t)) => tokio::time::timeout(t, call)
            .await
            .map_err(|_| Failure::Timeout)?,
        _ => call.await,
    };
    match outcome {
        Ok(Ok(response)) => Ok(response),
        Ok(Err(never)) => match never {},
        Err(payload) => Err(Failure::Panic(payload)),
    }
}

/// A timeout applies only with a stale copy, which is served instead.
fn unreachable_timeout() -> Response {
    let mut r = Response::new(Body::empty());
    *r.status_mut() = StatusCode::GATEWAY_TIMEOUT;
    r
}

/// The entry to store for `response`, its TTL and the `Set-Cookie` headers
/// left out of it; `Ok(None)`-like `Err(response)` when it is not stored.
#[allow(clippy::type_complexity)]
async fn storable(
    config: &Config,
    response: Response,
) -> Result<Option<(Entry, Duration, Vec<HeaderValue>)>, Response> {
    let directives = directives(response.headers());
    let refused = !config.statuses.contains(&response.status())
        || directives.iter().any(|d| d == "no-store" || d == "private")
        || response.headers().get_all(VARY).iter().any(|v| {
            v.to_str().map_or(true, |v| {
                v.split(',').any(|h| {
                    let h = h.trim();
                    h == "*"
                        || !config
                            .vary
                            .iter()
                            .any(|n| n.as_str().eq_ignore_ascii_case(h))
                })
            })
        })
        || response
            .headers()
            .get(CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok()?.parse::<usize>().ok())
            .is_some_and(|n| n > config.max_body);
    if refused {
        return Err(response);
    }
    let ttl = max_age(&directives).map_or(config.ttl, |a| a.min(config.ttl));
    if ttl.is_zero() {
        return Err(response);
    }
    let (parts, body) = response.into_parts();
    let body = match collect(body, config.max_body).await {
        Collected::Whole(b) => b,
        Collected::Passed(body) => return Err(Response::from_parts(parts, body)),
    };
    let mut headers = Vec::new();
    let mut set_cookie = Vec::new();
    for (name, value) in &parts.headers {
        if stored_header(name, config.cache_set_cookie) {
            headers.push((name.clone(), value.clone()));
        } else if *name == SET_COOKIE {
            set_cookie.push(value.clone());
        }
    }
    let etag = match parts.headers.get(ETAG).and_then(|v| v.to_str().ok()) {
        Some(e) => e.to_owned(),
        None => etag_of(&body),
    };
    headers.retain(|(n, _)| *n != ETAG);
    let stored_ms = now_ms();
    let entry = Entry {
        status: parts.status,
        headers,
        body,
        etag,
        stored_ms,
        expires_ms: stored_ms + ttl.as_millis() as u64,
    };
    Ok(Some((entry, ttl, set_cookie)))
}

// The layer must work on axum routers, whose services never fail.
const _: fn() = || {
    fn routable<L>()
    where
        L: Layer<::axum::routing::Route> + Clone + Send + Sync + 'static,
        L::Service: Service<Request<Body>, Error = Infallible> + Clone + Send + Sync + 'static,
        <L::Service as Service<Request<Body>>>::Future: Send + 'static,
    {
    }
    routable::<ResponseCacheLayer>();
};

#[cfg(test)]
mod tests {
    use super::*;

    fn parts(uri: &str, headers: &[(&str, &str)]) -> Parts {
        let mut b = Request::builder().uri(uri);
        for (k, v) in headers {
            b = b.header(*k, *v);
        }
        b.body(()).unwrap().into_parts().0
    }

    #[test]
    fn keys_separate_queries_and_varying_headers_only() {
        let layer = ResponseCacheLayer::new(Duration::from_secs(1)).vary(["accept-language"]);
        let c = &layer.config;
        let en = c.key(&parts("/a?x=1", &[("accept-language", "en")]));
        assert!(en.starts_with("http:/a:"), "{en}");
        assert_ne!(en, c.key(&parts("/a?x=2", &[("accept-language", "en")])));
        assert_ne!(en, c.key(&parts("/a?x=1", &[("accept-language", "fr")])));
        assert_eq!(
            en,
            c.key(&parts(
                "/a?x=1",
                &[("accept-language", "en"), ("user-agent", "x")]
            ))
        );
        // A path cannot add key segments.
        assert!(c.key(&parts("/a:b", &[])).starts_with("http:/a%3Ab:"));
    }

    #[test]
    fn invalidation_patterns_keep_only_the_stars() {
        let layer = ResponseCacheLayer::new(Duration::from_secs(1)).name("users");
        assert_eq!(layer.config.pattern("/users/*"), "users:/users/*:*");
        assert_eq!(layer.config.pattern("/a:[b]"), "users:/a%3A%5Bb%5D:*");
    }
}
