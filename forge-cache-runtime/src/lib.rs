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
mod block;
mod breaker;
mod cache;
mod cluster_url;
mod codec;
mod counter;
mod drive;
mod error;
mod flight;
mod format;
pub mod glob;
mod global;
mod health;
mod info;
pub mod key;
mod lock;
mod manager;
mod ops;
mod random;
mod ratelimit;
mod scope;
mod secret;
mod session;
mod settings;
mod telemetry;
pub mod testing;

pub use backend::pool::{ClusterSyncConnection, PooledConnection, SyncConnection};
pub use backend::raw::AsyncConnection;
pub use cache::{CacheCounters, CacheStats, invalidate_tag};
pub use error::{Error, Result};
pub use format::Format;
pub use global::{current, global, init};
pub use health::Health;
pub use info::{MemoryInfo, NodeMemory};
pub use lock::LockGuard;
pub use manager::CacheManager;
pub use ratelimit::{Algorithm, Decision, OnError, RateLimit, RateLimitExceeded};
pub use scope::{Scoped, bypass};
pub use secret::{Secret, redact_url};
pub use session::{DEFAULT_SESSION_TTL, SessionStore};
pub use settings::{BackendKind, RedisSettings, RedisSettingsBuilder};

/// Re-exported so that users and generated code name one `redis` version.
pub use redis;

pub mod blocking {
    //! Everything for sync code: the blocking view of a manager
    //! ([`CacheManager::blocking`](crate::CacheManager::blocking)), its lock
    //! guard, the blocking view of a session store, and [`init`].
    //!
    //! Each blocking operation runs the same code as its async form (one
    //! core, two drivers), on the calling thread and the manager's pool of
    //! blocking connections, with no runtime and no thread hop.
    //!
    //! ```
    //! use std::time::Duration;
    //! use forge_cache_runtime::{RedisSettings, blocking};
    //!
    //! let cache = blocking::init(RedisSettings::memory())?;
    //! cache.blocking().set("k", &1, Duration::from_secs(60))?;
    //! let guard: blocking::LockGuard = cache.blocking().lock("job", Duration::from_secs(5), Duration::from_secs(1))?;
    //! guard.release()?;
    //! # Ok::<(), forge_cache_runtime::Error>(())
    //! ```
    pub use crate::block::Manager;
    pub use crate::cache::invalidate_tag_blocking as invalidate_tag;
    pub use crate::global::init_blocking as init;
    pub use crate::lock::BlockingLockGuard as LockGuard;
    pub use crate::scope::bypass_blocking as bypass;
    pub use crate::session::BlockingSessions as Sessions;
}

/// `format = "msgpack"` in generated code: the format, or a compile error
/// naming the feature it needs.
#[doc(hidden)]
#[macro_export]
#[cfg(feature = "msgpack")]
macro_rules! __forge_cache_format_msgpack {
    () => {
        $crate::__private::Format::MessagePack
    };
}

#[doc(hidden)]
#[macro_export]
#[cfg(not(feature = "msgpack"))]
macro_rules! __forge_cache_format_msgpack {
    () => {
        ::core::compile_error!(
            "`format = \"msgpack\"` needs the `msgpack` feature of forge-cache: `forge-cache = { version = \"...\", features = [\"msgpack\"] }`"
        )
    };
}

/// `format = "postcard"` in generated code: the format, or a compile error
/// naming the feature it needs.
#[doc(hidden)]
#[macro_export]
#[cfg(feature = "postcard")]
macro_rules! __forge_cache_format_postcard {
    () => {
        $crate::__private::Format::Postcard
    };
}

#[doc(hidden)]
#[macro_export]
#[cfg(not(feature = "postcard"))]
macro_rules! __forge_cache_format_postcard {
    () => {
        ::core::compile_error!(
            "`format = \"postcard\"` needs the `postcard` feature of forge-cache: `forge-cache = { version = \"...\", features = [\"postcard\"] }`"
        )
    };
}

#[doc(hidden)]
pub mod __private {
    pub use crate::cache::{
        CacheSite, CallKey, JsonPolicy, KeyArg, KeyHasher, KeyReceiver, KeyTemplate,
        OptionJsonPolicy, OptionPolicy, Options, Output, Policy, ResultErrPolicy, ResultJsonPolicy,
        ResultPolicy, Tags, ValuePolicy, cached, invalidate, invalidate_all,
    };
    pub use crate::error::Result;
    pub use crate::format::{Format, decode_as, encode_as};
    pub use crate::global::current;
    pub use crate::ratelimit::{
        Algorithm, OnError, RateLimitExceeded, RateSite, rate_limit_check,
        rate_limit_check_rendered,
    };
    pub use crate::{
        __forge_cache_format_msgpack as format_msgpack,
        __forge_cache_format_postcard as format_postcard,
    };

    /// What the expansion of a sync function calls: the blocking driver of
    /// the same core.
    pub mod blocking {
        pub use crate::cache::{
            cached_blocking as cached, invalidate_all_blocking as invalidate_all,
            invalidate_blocking as invalidate,
        };
        pub use crate::ratelimit::{
            rate_limit_check_blocking as rate_limit_check,
            rate_limit_check_rendered_blocking as rate_limit_check_rendered,
        };
    }
}

#[cfg(test)]
mod tests {
    use crate::manager::{FeatureState, SLOTS};

    #[test]
    fn every_feature_state_has_a_slot_of_its_own() {
        let slots = [crate::flight::Flights::SLOT, crate::lock::HeldLocks::SLOT];
        for (i, a) in slots.iter().enumerate() {
            assert!(*a < SLOTS);
            assert!(!slots[i + 1..].contains(a), "slot {a} is taken twice");
        }
    }
}
