//! axum integration (feature `axum`).
//!
//! - [`RateLimitExceeded`] is a response: `429 Too Many Requests`, body
//!   `{"detail":"Rate limit exceeded"}`, `Retry-After`, and the
//!   rate-limit headers below. So a handler returning
//!   `Result<_, RateLimitExceeded>` (or an error type that converts from it)
//!   needs nothing else.
//! - [`Decision`] is a response part that sets the headers, for handlers
//!   that call [`CacheManager::check_rate_limit`](crate::CacheManager::check_rate_limit) themselves.
//! - [`RateLimitLayer`] limits a router or route per client IP (behind
//!   [`TrustedProxies`] if any) or per key from the request, and sets the
//!   headers on admitted responses too.
//! - [`ResponseCacheLayer`] caches the responses of a router or route, with
//!   `ETag` and `304`, `Cache-Control`, `Age`, `Vary` and `X-Cache`.
//!
//! Headers, for `max_requests = 100` per hour with 99 left and 3599 s to
//! the full quota:
//!
//! ```text
//! X-RateLimit-Limit: 100
//! X-RateLimit-Remaining: 99
//! X-RateLimit-Reset: 3599            (seconds from now, rounded up)
//! RateLimit-Policy: "default";q=100;w=3600
//! RateLimit: "default";r=99;t=3599
//! Retry-After: 3599                  (429 only, seconds rounded up)
//! ```
//!
//! `RateLimit-Policy` and `RateLimit` follow the IETF draft
//! `draft-ietf-httpapi-ratelimit-headers` (structured fields: quota `q`,
//! window `w`, remaining `r`, reset `t`).

mod body;
mod cache_headers;
mod client;
mod entry;
mod layer;
mod response;
#[cfg(feature = "tower-sessions")]
mod tower_sessions;

use std::time::Duration;

use ::axum::http::header::{CONTENT_TYPE, RETRY_AFTER};
use ::axum::http::{HeaderMap, HeaderName, HeaderValue, StatusCode};
use ::axum::response::{IntoResponse, IntoResponseParts, Response, ResponseParts};

pub use client::{ClientIp, ForwardedHeader, TrustedProxies};
pub use layer::{RateLimitLayer, RateLimitService};
pub use response::{DEFAULT_MAX_BODY, ResponseCacheLayer, ResponseCacheService, X_CACHE};
#[cfg(feature = "tower-sessions")]
pub use tower_sessions::TowerSessionStore;

use crate::ratelimit::{Decision, RateLimitExceeded};

/// The body of a 429, in the shape FastAPI's `HTTPException` gives it.
pub const EXCEEDED_BODY: &str = r#"{"detail":"Rate limit exceeded"}"#;

const X_LIMIT: HeaderName = HeaderName::from_static("x-ratelimit-limit");
const X_REMAINING: HeaderName = HeaderName::from_static("x-ratelimit-remaining");
const X_RESET: HeaderName = HeaderName::from_static("x-ratelimit-reset");
const POLICY: HeaderName = HeaderName::from_static("ratelimit-policy");
const RATELIMIT: HeaderName = HeaderName::from_static("ratelimit");

/// Whole seconds, rounded up (a client waiting this long is never early).
fn secs(d: Duration) -> u64 {
    d.as_micros().div_ceil(1_000_000) as u64
}

/// Writes the five rate-limit headers; with `overwrite` false, headers
/// already present (e.g. from an inner limit's 429) are kept.
fn write_headers(
    headers: &mut HeaderMap,
    limit: u64,
    remaining: u64,
    reset_after: Duration,
    window: Duration,
    overwrite: bool,
) {
    let reset = secs(reset_after);
    let values = [
        (X_LIMIT, HeaderValue::from(limit)),
        (X_REMAINING, HeaderValue::from(remaining)),
        (X_RESET, HeaderValue::from(reset)),
        (
            POLICY,
            number_header(format!("\"default\";q={limit};w={}", secs(window).max(1))),
        ),
        (
            RATELIMIT,
            number_header(format!("\"default\";r={remaining};t={reset}")),
        ),
    ];
    for (name, value) in values {
        if overwrite || !headers.contains_key(&name) {
            headers.insert(name, value);
        }
    }
}

/// A header value made of ASCII we formatted ourselves.
fn number_header(s: String) -> HeaderValue {
    HeaderValue::try_from(s).unwrap_or_else(|_| HeaderValue::from_static(""))
}

/// `429 Too Many Requests` with `Retry-After`, the rate-limit headers and
/// the JSON body `{"detail":"Rate limit exceeded"}`.
///
/// ```
/// # #[tokio::main(flavor = "current_thread")] async fn main() -> forge_cache_runtime::Result<()> {
/// use std::time::Duration;
/// use axum::response::IntoResponse;
/// use forge_cache_runtime::{CacheManager, RateLimit, RedisSettings};
///
/// let cache = CacheManager::new(RedisSettings::memory())?;
/// let limit = RateLimit::new(0, Duration::from_secs(60));
/// let refused = cache.check_rate_limit("ip", &limit).await?.into_result().unwrap_err();
/// let response = refused.into_response();
/// assert_eq!(response.status(), 429);
/// assert_eq!(response.headers()["retry-after"], "60");
/// # Ok(()) }
/// ```
impl IntoResponse for RateLimitExceeded {
    fn into_response(self) -> Response {
        let mut response = (
            StatusCode::TOO_MANY_REQUESTS,
            [(CONTENT_TYPE, HeaderValue::from_static("application/json"))],
            EXCEEDED_BODY,
        )
            .into_response();
        let headers = response.headers_mut();
        write_headers(
            headers,
            self.limit,
            self.remaining,
            self.reset_after,
            self.window,
            true,
        );
        headers.insert(RETRY_AFTER, HeaderValue::from(secs(self.retry_after)));
        response
    }
}

/// Sets the rate-limit headers (not `Retry-After`) on a response, e.g.
/// `(decision, Json(data))` from a handler that checked the limit itself.
///
/// ```
/// use std::time::Duration;
/// use axum::response::IntoResponse;
/// use forge_cache_runtime::{CacheManager, RateLimit, RedisSettings};
///
/// let cache = CacheManager::new(RedisSettings::memory())?;
/// let d = cache.blocking().check_rate_limit("ip", &RateLimit::new(10, Duration::from_secs(60)))?;
/// let response = (d, "hello").into_response();
/// assert_eq!(response.headers()["x-ratelimit-remaining"], "9");
/// # Ok::<(), forge_cache_runtime::Error>(())
/// ```
impl IntoResponseParts for Decision {
    type Error = std::convert::Infallible;

    fn into_response_parts(self, mut res: ResponseParts) -> Result<ResponseParts, Self::Error> {
        write_headers(
            res.headers_mut(),
            self.limit,
            self.remaining,
            self.reset_after,
            self.window,
            true,
        );
        Ok(res)
    }
}
