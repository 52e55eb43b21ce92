//! The runtime behind [`forge-cache`](https://docs.rs/forge-cache): settings,
//! the manager, the Redis and in-memory backends, keys, and the functions
//! the attribute macros expand to.
//!
//! Most users depend on `forge-cache`, which re-exports this crate.
#![warn(missing_docs)]
#![forbid(unsafe_code)]

#[cfg(feature = "axum")]
pub mod axum;
mod backend;
mod breaker;
mod cache;
mod cluster_url;
mod codec;
mod counter;
mod error;
pub mod glob;
mod global;
mod health;
mod info;
pub mod key;
mod lock;
mod manager;
mod random;
mod ratelimit;
mod secret;
mod session;
mod settings;
mod telemetry;

pub use backend::pool::{ClusterSyncConnection, PooledConnection, SyncConnection};
pub use backend::raw::AsyncConnection;
pub use cache::{CacheCounters, CacheStats};
pub use error::{Error, Result};
pub use global::{current, global, init, init_sync};
pub use health::Health;
pub use info::{MemoryInfo, NodeMemory};
pub use lock::{LockGuard, SyncLockGuard};
pub use manager::CacheManager;
pub use ratelimit::{Algorithm, Decision, OnError, RateLimit, RateLimitExceeded};
pub use secret::{Secret, redact_url};
pub use session::{DEFAULT_SESSION_TTL, SessionStore};
pub use settings::{BackendKind, RedisSettings, RedisSettingsBuilder};

/// Re-exported so that users and generated code name one `redis` version.
pub use redis;

#[doc(hidden)]
pub mod __private {
    pub use crate::cache::{
        CacheSite, CallKey, KeyArg, KeyHasher, KeyReceiver, KeyTemplate, OptionPolicy, Policy,
        ResultPolicy, ValuePolicy, cached, cached_sync, invalidate, invalidate_all,
        invalidate_all_sync, invalidate_sync,
    };
    pub use crate::error::Result;
    pub use crate::global::current;
    pub use crate::ratelimit::{
        Algorithm, OnError, RateLimitExceeded, RateSite, rate_limit_check,
        rate_limit_check_rendered, rate_limit_check_rendered_sync, rate_limit_check_sync,
    };
}
