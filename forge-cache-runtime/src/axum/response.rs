//! HTTP response caching for axum routes: [`ResponseCacheLayer`].

use std::convert::Infallible;
use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use ::axum::body::{Body, Bytes};
use ::axum::http::header::{
    AGE, CACHE_CONTROL, CONTENT_LENGTH, ETAG, IF_NONE_MATCH, SET_COOKIE, VARY,
};
use ::axum::http::request::Parts;
use ::axum::http::{HeaderMap, HeaderName, HeaderValue, Method, Request, StatusCode};
use ::axum::response::Response;
use http_body::{Body as _, Frame};
use md5::{Digest, Md5};
use tower_layer::Layer;
use tower_service::Service;

use super::entry::Entry;
use crate::drive::{Async, Drive};
use crate::flight::{Flights, Join, State};
use crate::key::{hex_digest, push_bounded_component, push_component};
use crate::manager::CacheManager;

type KeyFn = Arc<dyn Fn(&Parts) -> Option<String> + Send + Sync>;

/// `X-Cache: HIT` or `MISS` on every response that went through the cache.
pub const X_CACHE: HeaderName = HeaderName::from_static("x-cache");

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
    pub async fn invalidate(&self, path: &str) -> crate::Result<u64> {
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

/// The `Cache-Control` directives of `headers`, lowercased, without values.
fn directives(headers: &HeaderMap) -> Vec<String> {
    headers
        .get_all(CACHE_CONTROL)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(|d| d.trim().to_ascii_lowercase())
        .collect()
}

/// `max-age` (or `s-maxage`, which wins) of a response's `Cache-Control`.
fn max_age(directives: &[String]) -> Option<Duration> {
    let find = |name: &str| {
        directives.iter().find_map(|d| {
            let (k, v) = d.split_once('=')?;
            (k.trim() == name).then(|| v.trim().trim_matches('"').parse::<u64>().ok())?
        })
    };
    find("s-maxage")
        .or_else(|| find("max-age"))
        .map(Duration::from_secs)
}

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

/// A strong ETag over the body.
fn etag_of(body: &[u8]) -> String {
    let digest: [u8; 16] = Md5::digest(body).into();
    let mut buf = [0u8; 32];
    format!("\"{}\"", hex_digest(&digest, &mut buf))
}

/// Whether `If-None-Match` names `etag` (or is `*`). Weak comparison, as
/// RFC 9110 requires for `If-None-Match`.
fn none_match(headers: &HeaderMap, etag: &str) -> bool {
    let bare = |t: &str| t.trim().trim_start_matches("W/").to_owned();
    let etag = bare(etag);
    headers
        .get_all(IF_NONE_MATCH)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .any(|t| t.trim() == "*" || bare(t) == etag)
}

/// Headers never stored: hop-by-hop ones (RFC 9110 section 7.6.1) and
/// those this layer sets itself.
fn stored_header(name: &HeaderName, cache_set_cookie: bool) -> bool {
    !matches!(
        name.as_str(),
        "connection"
            | "keep-alive"
            | "proxy-authenticate"
            | "proxy-authorization"
            | "proxy-connection"
            | "te"
            | "trailer"
            | "transfer-encoding"
            | "upgrade"
            | "age"
            | "x-cache"
            | "content-length"
    ) && (cache_set_cookie || *name != SET_COOKIE)
}

/// The response to send for `entry`: `304` when `If-None-Match` matches,
/// no body for `HEAD`.
fn respond(entry: &Entry, req: &Parts, hit: bool, ttl_left: Duration) -> Response {
    let not_modified = none_match(&req.headers, &entry.etag);
    let mut response = if not_modified {
        let mut r = Response::new(Body::empty());
        *r.status_mut() = StatusCode::NOT_MODIFIED;
        // RFC 9110 section 15.4.5: the headers a 200 would have carried
        // that describe caching.
        for (name, value) in &entry.headers {
            if matches!(
                name.as_str(),
                "cache-control" | "content-location" | "date" | "expires" | "vary"
            ) {
                r.headers_mut().append(name.clone(), value.clone());
            }
        }
        r
    } else {
        let body = if req.method == Method::HEAD {
            Body::empty()
        } else {
            Body::from(entry.body.clone())
        };
        let mut r = Response::new(body);
        *r.status_mut() = entry.status;
        for (name, value) in &entry.headers {
            r.headers_mut().append(name.clone(), value.clone());
        }
        if req.method == Method::HEAD || entry.body.is_empty() {
            r.headers_mut()
                .insert(CONTENT_LENGTH, HeaderValue::from(entry.body.len()));
        }
        r
    };
    let h = response.headers_mut();
    if let Ok(v) = HeaderValue::from_str(&entry.etag) {
        h.insert(ETAG, v);
    }
    if !entry.headers.iter().any(|(n, _)| *n == CACHE_CONTROL) {
        let secs = ttl_left.as_secs();
        if let Ok(v) = HeaderValue::from_str(&format!("max-age={secs}")) {
            h.insert(CACHE_CONTROL, v);
        }
    }
    let age = now_ms().saturating_sub(entry.stored_ms) / 1000;
    h.insert(AGE, HeaderValue::from(age));
    h.insert(
        X_CACHE,
        HeaderValue::from_static(if hit { "HIT" } else { "MISS" }),
    );
    response
}

/// A body read up to `limit` bytes: the bytes, or (over the limit, or
/// with trailers) a body that replays what was read, then the rest.
enum Collected {
    Whole(Bytes),
    Passed(Body),
}

async fn collect(mut body: Body, limit: usize) -> Collected {
    let mut read: Vec<Bytes> = Vec::new();
    let mut size = 0usize;
    loop {
        let frame = std::future::poll_fn(|cx| Pin::new(&mut body).poll_frame(cx)).await;
        match frame {
            None => break,
            Some(Ok(frame)) => match frame.into_data() {
                Ok(data) => {
                    size += data.len();
                    read.push(data);
                    if size > limit {
                        return Collected::Passed(Body::new(Replay { read, rest: body }));
                    }
                }
                Err(frame) => {
                    let Ok(trailers) = frame.into_trailers() else {
                        continue;
                    };
                    let rest = Body::new(Trailers(Some(trailers)));
                    return Collected::Passed(Body::new(Replay { read, rest }));
                }
            },
            Some(Err(e)) => {
                // The error reaches the client as the body's error.
                return Collected::Passed(Body::new(Replay {
                    read,
                    rest: Body::new(Failed(Some(e))),
                }));
            }
        }
    }
    Collected::Whole(match read.len() {
        0 => Bytes::new(),
        1 => read.pop().unwrap_or_default(),
        _ => Bytes::from(read.concat()),
    })
}

/// The frames read so far, then `rest`.
struct Replay {
    read: Vec<Bytes>,
    rest: Body,
}

impl http_body::Body for Replay {
    type Data = Bytes;
    type Error = ::axum::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
        if !self.read.is_empty() {
            let data = self.read.remove(0);
            if !data.is_empty() {
                return Poll::Ready(Some(Ok(Frame::data(data))));
            }
        }
        Pin::new(&mut self.rest).poll_frame(cx)
    }
}

/// A body of one trailers frame.
struct Trailers(Option<HeaderMap>);

impl http_body::Body for Trailers {
    type Data = Bytes;
    type Error = ::axum::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        _: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
        Poll::Ready(self.0.take().map(|t| Ok(Frame::trailers(t))))
    }
}

/// A body that fails with the error the handler's body failed with.
struct Failed(Option<::axum::Error>);

impl http_body::Body for Failed {
    type Data = Bytes;
    type Error = ::axum::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        _: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
        Poll::Ready(self.0.take().map(Err))
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
    if ask == Ask::Normal {
        match manager.get_bytes(&key).await {
            Ok(Some(bytes)) => match Entry::decode(&bytes) {
                Some(entry) => {
                    let left = Duration::from_millis(entry.expires_ms.saturating_sub(now_ms()));
                    tracing::debug!(target: "forge_cache", name = %config.name, "response cache hit");
                    return Ok(respond(&entry, &parts, true, left));
                }
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
    let response = inner.call(request).await?;
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
    if let Err(e) = manager.set_bytes(&key, &bytes, ttl).await {
        tracing::debug!(target: "forge_cache", name = %config.name, error = %e, "response cache write failed");
    }
    drop(leader);
    let mut response = respond(&entry, &parts, false, ttl);
    for cookie in set_cookie {
        response.headers_mut().append(SET_COOKIE, cookie);
    }
    Ok(response)
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

    #[test]
    fn if_none_match_compares_weakly_and_accepts_lists() {
        let h = parts("/", &[("if-none-match", "\"x\", W/\"abc\"")]).headers;
        assert!(none_match(&h, "\"abc\""));
        assert!(!none_match(&h, "\"abd\""));
        assert!(none_match(
            &parts("/", &[("if-none-match", "*")]).headers,
            "\"q\""
        ));
    }

    #[test]
    fn max_age_prefers_s_maxage() {
        let d = |s: &str| {
            s.split(',')
                .map(|x| x.trim().to_owned())
                .collect::<Vec<_>>()
        };
        assert_eq!(
            max_age(&d("public, max-age=10")),
            Some(Duration::from_secs(10))
        );
        assert_eq!(
            max_age(&d("max-age=10, s-maxage=3")),
            Some(Duration::from_secs(3))
        );
        assert_eq!(max_age(&d("no-cache")), None);
    }
}
