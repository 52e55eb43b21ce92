//! A tower layer limiting a router or route per client.

use std::convert::Infallible;
use std::fmt;
use std::future::Future;
use std::net::{IpAddr, Ipv6Addr};
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::task::{Context, Poll};

use ::axum::http::Request;
use ::axum::http::request::Parts;
use ::axum::response::{IntoResponse, Response};
use tower_layer::Layer;
use tower_service::Service;

use super::client::{ClientIp, TrustedProxies, peer};
use super::write_headers;
use crate::manager::CacheManager;
use crate::ratelimit::{OnError, RateLimit, on_backend_error};

type KeyFn = Arc<dyn Fn(&Parts) -> Option<String> + Send + Sync>;

/// Limits every request through a router or route: one check per request,
/// keyed by client IP (or by [`key_by`](Self::key_by)), `429` when refused,
/// and the rate-limit headers on admitted responses too.
///
/// The client IP is the TCP peer, so serve with
/// `into_make_service_with_connect_info::<SocketAddr>()`; behind proxies,
/// list them with [`trusted_proxies`](Self::trusted_proxies). The resolved
/// address is put in the request's extensions as [`ClientIp`].
///
/// Counts go to the [current](crate::current) manager unless one is given
/// with [`manager`](Self::manager). Keys are `<prefix>:{<name>:ip:<addr>}`
/// (IPv6 clients by their /64, which one subscriber usually holds whole) or
/// `<prefix>:{<name>:user:<key>}`, escaped.
///
/// ```
/// use std::time::Duration;
/// use axum::{Router, routing::get};
/// use forge_cache_runtime::{Algorithm, RateLimit};
/// use forge_cache_runtime::axum::{RateLimitLayer, TrustedProxies};
///
/// let per_ip = RateLimitLayer::new(
///     RateLimit::new(60, Duration::from_secs(60))
///         .with_algorithm(Algorithm::Gcra)
///         .with_name("per_ip"),
/// )
/// .trusted_proxies(TrustedProxies::new(["10.0.0.0/8"])?);
///
/// // Per user when the request says who it is, per IP otherwise.
/// let per_user = RateLimitLayer::new(RateLimit::new(5, Duration::from_secs(60)).with_name("search"))
///     .key_by(|req| req.headers.get("x-user-id")?.to_str().ok().map(str::to_owned));
///
/// let app: Router = Router::new()
///     .route("/search", get(|| async { "results" }).layer(per_user))
///     .layer(per_ip);
/// # Ok::<(), forge_cache_runtime::Error>(())
/// ```
#[derive(Clone)]
pub struct RateLimitLayer {
    config: Config,
}

#[derive(Clone)]
struct Config {
    limit: RateLimit,
    on_error: OnError,
    manager: Option<CacheManager>,
    proxies: TrustedProxies,
    key: Option<KeyFn>,
}

impl fmt::Debug for RateLimitLayer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let c = &self.config;
        f.debug_struct("RateLimitLayer")
            .field("limit", &c.limit)
            .field("on_error", &c.on_error)
            .field("proxies", &c.proxies)
            .field("key_by", &c.key.is_some())
            .finish_non_exhaustive()
    }
}

impl RateLimitLayer {
    /// A layer enforcing `limit` per client IP, trusting no proxy, admitting
    /// requests when the backend fails ([`OnError::Allow`]).
    pub fn new(limit: RateLimit) -> Self {
        RateLimitLayer {
            config: Config {
                limit,
                on_error: OnError::Allow,
                manager: None,
                proxies: TrustedProxies::none(),
                key: None,
            },
        }
    }

    /// What to do when the backend cannot be asked.
    ///
    /// ```
    /// # use std::time::Duration;
    /// use forge_cache_runtime::{OnError, RateLimit};
    /// use forge_cache_runtime::axum::RateLimitLayer;
    /// let strict = RateLimitLayer::new(RateLimit::new(5, Duration::from_secs(60))).on_error(OnError::Deny);
    /// ```
    pub fn on_error(mut self, on_error: OnError) -> Self {
        self.config.on_error = on_error;
        self
    }

    /// Counts with `manager` instead of the current one.
    ///
    /// ```
    /// # use std::time::Duration;
    /// use forge_cache_runtime::{CacheManager, RateLimit, RedisSettings};
    /// use forge_cache_runtime::axum::RateLimitLayer;
    /// let m = CacheManager::new(RedisSettings::memory())?;
    /// let layer = RateLimitLayer::new(RateLimit::new(5, Duration::from_secs(60))).manager(m);
    /// # Ok::<(), forge_cache_runtime::Error>(())
    /// ```
    pub fn manager(mut self, manager: CacheManager) -> Self {
        self.config.manager = Some(manager);
        self
    }

    /// Believes forwarding headers from these proxies (see
    /// [`TrustedProxies`]).
    pub fn trusted_proxies(mut self, proxies: TrustedProxies) -> Self {
        self.config.proxies = proxies;
        self
    }

    /// Keys requests by what `key` returns (e.g. a user id from a header or
    /// an extension set by an auth layer); requests for which it returns
    /// `None` are keyed by client IP. The two never share a counter.
    pub fn key_by<F>(mut self, key: F) -> Self
    where
        F: Fn(&Parts) -> Option<String> + Send + Sync + 'static,
    {
        self.config.key = Some(Arc::new(key));
        self
    }
}

impl<S> Layer<S> for RateLimitLayer {
    type Service = RateLimitService<S>;

    fn layer(&self, inner: S) -> Self::Service {
        RateLimitService {
            inner,
            config: Arc::new(self.config.clone()),
        }
    }
}

/// The service [`RateLimitLayer`] wraps around a route.
#[derive(Clone)]
pub struct RateLimitService<S> {
    inner: S,
    config: Arc<Config>,
}

impl<S: fmt::Debug> fmt::Debug for RateLimitService<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RateLimitService")
            .field("inner", &self.inner)
            .finish_non_exhaustive()
    }
}

static WARNED_NO_PEER: AtomicBool = AtomicBool::new(false);

impl Config {
    /// The counter key for a request, after recording its [`ClientIp`].
    fn key(&self, parts: &mut Parts) -> String {
        let client = peer(parts).map(|p| self.proxies.client_ip(p, &parts.headers));
        if let Some(ip) = client {
            parts.extensions.insert(ClientIp(ip));
        }
        if let Some(user) = self.key.as_ref().and_then(|f| f(parts)) {
            return format!("user:{user}");
        }
        match client {
            Some(IpAddr::V6(v6)) => {
                // One IPv6 subscriber usually holds a whole /64.
                let net = Ipv6Addr::from(u128::from(v6) & !((1u128 << 64) - 1));
                format!("ip:{net}/64")
            }
            Some(ip) => format!("ip:{ip}"),
            None => {
                if !WARNED_NO_PEER.swap(true, Ordering::Relaxed) {
                    tracing::warn!(target: "forge_cache",
                        "rate limit layer: no peer address (serve with into_make_service_with_connect_info::<SocketAddr>()); all such requests share one counter");
                }
                "ip:unknown".to_owned()
            }
        }
    }
}

impl<S, B> Service<Request<B>> for RateLimitService<S>
where
    S: Service<Request<B>, Response = Response> + Clone + Send + 'static,
    S::Future: Send + 'static,
    B: Send + 'static,
{
    type Response = Response;
    type Error = S::Error;
    type Future = Pin<Box<dyn Future<Output = Result<Response, S::Error>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: Request<B>) -> Self::Future {
        // The clone is not ready; keep the one that was polled ready.
        let clone = self.inner.clone();
        let mut inner = std::mem::replace(&mut self.inner, clone);
        let config = self.config.clone();
        let (mut parts, body) = request.into_parts();
        let key = config.key(&mut parts);
        let request = Request::from_parts(parts, body);
        Box::pin(async move {
            let manager = config
                .manager
                .clone()
                .unwrap_or_else(crate::global::current);
            let decision = match manager.check_rate_limit(&key, &config.limit).await {
                Ok(d) => d,
                Err(err) => {
                    let spec = config.limit.spec();
                    let who = config.limit.who();
                    return match on_backend_error(&manager, config.on_error, &spec, who, &err) {
                        Ok(()) => inner.call(request).await,
                        Err(refused) => Ok(refused.into_response()),
                    };
                }
            };
            match decision.into_result() {
                Ok(d) => {
                    let mut response = inner.call(request).await?;
                    let h = response.headers_mut();
                    write_headers(h, d.limit, d.remaining, d.reset_after, d.window, false);
                    Ok(response)
                }
                Err(refused) => Ok(refused.into_response()),
            }
        })
    }
}

// The layer must work on axum routers, whose services never fail.
const _: fn() = || {
    fn routable<L>()
    where
        L: Layer<::axum::routing::Route> + Clone + Send + Sync + 'static,
        L::Service: Service<Request<::axum::body::Body>, Error = Infallible>
            + Clone
            + Send
            + Sync
            + 'static,
        <L::Service as Service<Request<::axum::body::Body>>>::Future: Send + 'static,
    {
    }
    routable::<RateLimitLayer>();
};

#[cfg(test)]
mod tests {
    use std::net::SocketAddr;
    use std::time::Duration;

    use ::axum::extract::ConnectInfo;

    use super::*;

    fn parts_from(peer: SocketAddr) -> Parts {
        let request = Request::builder()
            .extension(ConnectInfo(peer))
            .body(())
            .unwrap();
        request.into_parts().0
    }

    fn layer() -> RateLimitLayer {
        RateLimitLayer::new(RateLimit::new(1, Duration::from_secs(1)))
    }

    #[test]
    fn ipv6_clients_are_keyed_by_their_64() {
        let config = layer().config;
        let a: SocketAddr = "[2001:db8:1:2:aaaa::1]:443".parse().unwrap();
        let b: SocketAddr = "[2001:db8:1:2:bbbb::9]:443".parse().unwrap();
        let c: SocketAddr = "[2001:db8:1:3::1]:443".parse().unwrap();
        let key_a = config.key(&mut parts_from(a));
        assert_eq!(key_a, "ip:2001:db8:1:2::/64");
        assert_eq!(key_a, config.key(&mut parts_from(b)));
        assert_ne!(key_a, config.key(&mut parts_from(c)));
        let v4: SocketAddr = "[::ffff:192.0.2.1]:80".parse().unwrap();
        let mut parts = parts_from(v4);
        assert_eq!(config.key(&mut parts), "ip:192.0.2.1");
        assert_eq!(
            parts.extensions.get::<ClientIp>(),
            Some(&ClientIp("192.0.2.1".parse().unwrap()))
        );
    }

    #[test]
    fn user_keys_cannot_reach_ip_keys() {
        let config = layer()
            .key_by(|p| p.headers.get("x-user")?.to_str().ok().map(str::to_owned))
            .config;
        let mut parts = parts_from("10.0.0.1:1".parse().unwrap());
        parts
            .headers
            .insert("x-user", "ip:10.0.0.1".parse().unwrap());
        assert_eq!(config.key(&mut parts), "user:ip:10.0.0.1");
        parts.headers.clear();
        assert_eq!(config.key(&mut parts), "ip:10.0.0.1");
    }
}
