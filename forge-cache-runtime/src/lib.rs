//! The runtime behind [`forge-cache`](https://docs.rs/forge-cache): settings,
//! the manager, the Redis and in-memory backends, keys, and the functions
//! the attribute macros expand to.
//!
//! Most users depend on `forge-cache`, which re-exports this crate.
#![warn(missing_docs)]
#![forbid(unsafe_code)]

mod backend;
mod breaker;
mod cluster_url;
mod codec;
mod error;
pub mod glob;
mod global;
mod info;
pub mod key;
mod manager;
mod secret;
mod settings;

pub use backend::cluster::{ClusterSyncConnection, ClusterSyncConnector};
pub use backend::redis::{SyncConnection, SyncConnector};
pub use error::{Error, Result};
pub use global::{current, global, init, init_sync};
pub use info::{MemoryInfo, NodeMemory};
pub use manager::CacheManager;
pub use secret::{Secret, redact_url};
pub use settings::{BackendKind, RedisSettings, RedisSettingsBuilder};

/// Re-exported so that users and generated code name one `redis` version.
pub use redis;

#[doc(hidden)]
pub mod __private {
    pub use crate::global::current;
}
