//! forge-cache: cache function results and rate-limit handlers in Redis
//! with one attribute.
//!
//! Configure the manager once at startup ([`init`]); then
//! [`cache_result`] serves a function's result from Redis (or the
//! in-memory backend) until its TTL runs out, and [`rate_limit`] refuses
//! calls over a budget. When Redis fails, cached functions simply run.
//!
//! ```
//! use forge_cache::{RateLimitExceeded, RedisSettings, cache_result, rate_limit};
//!
//! #[cache_result(ttl = 1800, key_prefix = "products")]
//! async fn get_products(category: &str) -> Vec<String> {
//!     // a slow query
//!     vec![format!("{category}-1")]
//! }
//!
//! #[rate_limit(max_requests = 2, window_seconds = 60)]
//! async fn send_report() -> Result<(), RateLimitExceeded> {
//!     Ok(())
//! }
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), forge_cache::Error> {
//! // From the REDIS_* variables; `memory://` when none is set.
//! forge_cache::init(RedisSettings::memory()).await?;
//! assert_eq!(get_products("books").await, ["books-1"]); // miss: runs, stores
//! assert_eq!(get_products("books").await, ["books-1"]); // hit
//! get_products_invalidate("books").await?;
//!
//! assert!(send_report().await.is_ok());
//! assert!(send_report().await.is_ok());
//! assert!(send_report().await.is_err()); // over the budget: the body did not run
//! # Ok(()) }
//! ```
//!
//! The README maps every call of the Redis guide this crate ports to its
//! forge-cache form, and says where and why we differ from it.
#![warn(missing_docs)]
#![forbid(unsafe_code)]

pub use forge_cache_runtime::*;

#[cfg(feature = "macros")]
pub use forge_cache_macros::*;

#[doc(hidden)]
pub mod __private {
    pub use forge_cache_runtime::__private::*;
}
