//! The key-value operations, pattern deletion, `PING` and memory figures:
//! each written once over a [`Drive`], with its async method on
//! [`CacheManager`] and its blocking one on [`blocking::Manager`](Manager).

use std::time::{Duration, Instant};

use redis::Value;
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::backend::pool::{ClusterSyncConnection, SyncConnection};
use crate::backend::raw::AsyncConnection;
use crate::backend::{Op, reply};
use crate::block::Manager;
use crate::codec::decode;
use crate::drive::{Async, Drive, block_now};
use crate::error::{Error, Result};
use crate::info::MemoryInfo;
use crate::manager::CacheManager;

pub(crate) async fn set<D: Drive, T: Serialize + ?Sized>(
    d: &D,
    key: &str,
    value: &T,
    ttl: Duration,
) -> Result<()> {
    let bytes = d.manager().encode_checked(value)?;
    set_bytes(d, key, &bytes, ttl).await
}

pub(crate) async fn set_bytes<D: Drive>(
    d: &D,
    key: &str,
    value: &[u8],
    ttl: Duration,
) -> Result<()> {
    d.exec(Op::Set(&d.manager().full_key(key), value, ttl))
        .await
        .map(drop)
}

pub(crate) async fn get<D: Drive, T: DeserializeOwned>(d: &D, key: &str) -> Result<Option<T>> {
    match get_bytes(d, key).await? {
        Some(b) => decode(&b).map(Some),
        None => Ok(None),
    }
}

pub(crate) async fn get_bytes<D: Drive>(d: &D, key: &str) -> Result<Option<Vec<u8>>> {
    reply(d.exec(Op::Get(&d.manager().full_key(key))).await?)
}

pub(crate) async fn set_nx<D: Drive, T: Serialize + ?Sized>(
    d: &D,
    key: &str,
    value: &T,
    ttl: Duration,
) -> Result<bool> {
    let bytes = d.manager().encode_checked(value)?;
    let v = d
        .exec(Op::SetNx(&d.manager().full_key(key), &bytes, ttl))
        .await?;
    Ok(v != Value::Nil)
}

pub(crate) async fn delete<D: Drive>(d: &D, key: &str) -> Result<bool> {
    delete_full(d, &d.manager().full_key(key)).await
}

/// Deletes a key already in full form (namespace included).
pub(crate) async fn delete_full<D: Drive>(d: &D, full_key: &str) -> Result<bool> {
    Ok(reply::<i64>(d.exec(Op::Del(full_key)).await?)? > 0)
}

/// `SCAN` of every node that holds keys (every primary of a cluster: a
/// cluster-wide `SCAN` does not exist), with one `UNLINK` per batch found
/// (split by slot on a cluster). Never `KEYS`: the server is never busy
/// for long. The breaker sees the whole as one operation.
pub(crate) async fn delete_pattern<D: Drive>(d: &D, pattern: &str) -> Result<u64> {
    let m = d.manager();
    m.admit()?;
    let r = delete_full_pattern(d, &m.full_pattern(pattern)).await;
    m.record(&r);
    r
}

async fn delete_full_pattern<D: Drive>(d: &D, pattern: &str) -> Result<u64> {
    let mut deleted = 0u64;
    for node in reply::<Vec<String>>(d.io(Op::Primaries).await?)? {
        let mut cursor = 0u64;
        loop {
            let (next, keys): (u64, Vec<Vec<u8>>) =
                reply(d.io(Op::Scan(&node, cursor, pattern)).await?)?;
            if !keys.is_empty() {
                deleted += reply::<u64>(d.io(Op::Unlink(&keys)).await?)?;
            }
            if next == 0 {
                break;
            }
            cursor = next;
        }
    }
    Ok(deleted)
}

pub(crate) async fn ttl<D: Drive>(d: &D, key: &str) -> Result<Option<Duration>> {
    let ms: i64 = reply(d.exec(Op::Pttl(&d.manager().full_key(key))).await?)?;
    Ok((ms >= 0).then(|| Duration::from_millis(ms as u64)))
}

pub(crate) async fn expire<D: Drive>(d: &D, key: &str, ttl: Duration) -> Result<bool> {
    Ok(reply::<i64>(d.exec(Op::Expire(&d.manager().full_key(key), ttl)).await?)? == 1)
}

/// `PING` past the breaker; its outcome closes or re-opens it.
pub(crate) async fn ping<D: Drive>(d: &D) -> Result<Duration> {
    let start = Instant::now();
    let r = d.io(Op::Ping).await;
    d.manager().record(&r);
    r?;
    Ok(start.elapsed())
}

/// `INFO memory` in one round trip: of the server, or of every primary of
/// a cluster at once (each one's figures, and their sums).
pub(crate) async fn memory_info<D: Drive>(d: &D) -> Result<MemoryInfo> {
    match d.exec(Op::InfoMemory).await? {
        Value::Map(nodes) => MemoryInfo::from_nodes(
            nodes
                .into_iter()
                .map(|(node, text)| Ok((reply(node)?, node_text(text)?)))
                .collect::<Result<_>>()?,
        ),
        text => MemoryInfo::parse_info(&reply::<String>(text)?),
    }
}

/// One primary's part of a fanned-out reply; its error fails the whole.
fn node_text(value: Value) -> Result<String> {
    match value {
        Value::ServerError(e) => Err(Error::Redis(e.into())),
        other => reply(other),
    }
}

impl CacheManager {
    /// Stores `value` as JSON under `key` for `ttl` (`SET key value PX ttl`).
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")] async fn main() -> forge_cache_runtime::Result<()> {
    /// # let cache = forge_cache_runtime::CacheManager::new(Default::default())?;
    /// cache.set("user:1", &vec![1, 2, 3], std::time::Duration::from_secs(60)).await?;
    /// # Ok(()) }
    /// ```
    pub async fn set<T: Serialize + ?Sized>(
        &self,
        key: &str,
        value: &T,
        ttl: Duration,
    ) -> Result<()> {
        set(&Async(self), key, value, ttl).await
    }

    /// Reads the JSON value under `key`; `Ok(None)` when absent. A stored
    /// `0`, `""`, `[]`, `false` or `null` is a value, not a miss.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")] async fn main() -> forge_cache_runtime::Result<()> {
    /// # let cache = forge_cache_runtime::CacheManager::new(Default::default())?;
    /// assert_eq!(cache.get::<u32>("absent").await?, None);
    /// # Ok(()) }
    /// ```
    pub async fn get<T: DeserializeOwned>(&self, key: &str) -> Result<Option<T>> {
        get(&Async(self), key).await
    }

    /// Reads the raw bytes under `key`.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")] async fn main() -> forge_cache_runtime::Result<()> {
    /// # let cache = forge_cache_runtime::CacheManager::new(Default::default())?;
    /// cache.set_bytes("raw", b"\x00\x01", std::time::Duration::from_secs(5)).await?;
    /// assert_eq!(cache.get_bytes("raw").await?, Some(vec![0, 1]));
    /// # Ok(()) }
    /// ```
    pub async fn get_bytes(&self, key: &str) -> Result<Option<Vec<u8>>> {
        get_bytes(&Async(self), key).await
    }

    /// Stores raw bytes under `key` for `ttl`.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")] async fn main() -> forge_cache_runtime::Result<()> {
    /// # let cache = forge_cache_runtime::CacheManager::new(Default::default())?;
    /// cache.set_bytes("raw", b"abc", std::time::Duration::from_secs(5)).await?;
    /// # Ok(()) }
    /// ```
    pub async fn set_bytes(&self, key: &str, value: &[u8], ttl: Duration) -> Result<()> {
        set_bytes(&Async(self), key, value, ttl).await
    }

    /// Stores `value` only if `key` does not exist (`SET NX PX`); returns
    /// whether it was stored.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")] async fn main() -> forge_cache_runtime::Result<()> {
    /// # let cache = forge_cache_runtime::CacheManager::new(Default::default())?;
    /// # use std::time::Duration;
    /// assert!(cache.set_nx("once", &1, Duration::from_secs(5)).await?);
    /// assert!(!cache.set_nx("once", &2, Duration::from_secs(5)).await?);
    /// # Ok(()) }
    /// ```
    pub async fn set_nx<T: Serialize + ?Sized>(
        &self,
        key: &str,
        value: &T,
        ttl: Duration,
    ) -> Result<bool> {
        set_nx(&Async(self), key, value, ttl).await
    }

    /// Deletes `key`; returns whether it existed.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")] async fn main() -> forge_cache_runtime::Result<()> {
    /// # let cache = forge_cache_runtime::CacheManager::new(Default::default())?;
    /// assert!(!cache.delete("absent").await?);
    /// # Ok(()) }
    /// ```
    pub async fn delete(&self, key: &str) -> Result<bool> {
        delete(&Async(self), key).await
    }

    /// Deletes every key matching the Redis glob `pattern` with `SCAN` and
    /// batched `UNLINK` (never `KEYS`); returns how many were deleted. Use
    /// [`glob::escape`](crate::glob::escape) for literal parts that come
    /// from users.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")] async fn main() -> forge_cache_runtime::Result<()> {
    /// # let cache = forge_cache_runtime::CacheManager::new(Default::default())?;
    /// # use std::time::Duration;
    /// cache.set("products:1", &1, Duration::from_secs(60)).await?;
    /// cache.set("products:2", &2, Duration::from_secs(60)).await?;
    /// assert_eq!(cache.delete_pattern("products:*").await?, 2);
    /// # Ok(()) }
    /// ```
    pub async fn delete_pattern(&self, pattern: &str) -> Result<u64> {
        delete_pattern(&Async(self), pattern).await
    }

    /// Remaining time to live of `key`, `None` when it does not exist.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")] async fn main() -> forge_cache_runtime::Result<()> {
    /// # let cache = forge_cache_runtime::CacheManager::new(Default::default())?;
    /// assert_eq!(cache.ttl("absent").await?, None);
    /// # Ok(()) }
    /// ```
    pub async fn ttl(&self, key: &str) -> Result<Option<Duration>> {
        ttl(&Async(self), key).await
    }

    /// Sets a new TTL on an existing key; returns whether it exists.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")] async fn main() -> forge_cache_runtime::Result<()> {
    /// # let cache = forge_cache_runtime::CacheManager::new(Default::default())?;
    /// assert!(!cache.expire("absent", std::time::Duration::from_secs(5)).await?);
    /// # Ok(()) }
    /// ```
    pub async fn expire(&self, key: &str, ttl: Duration) -> Result<bool> {
        expire(&Async(self), key, ttl).await
    }

    /// Sends `PING`, even while the circuit breaker is open (its outcome
    /// then closes or re-opens the breaker); returns the round-trip time.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")] async fn main() -> forge_cache_runtime::Result<()> {
    /// # let cache = forge_cache_runtime::CacheManager::new(Default::default())?;
    /// let rtt = cache.ping().await?;
    /// # Ok(()) }
    /// ```
    pub async fn ping(&self) -> Result<Duration> {
        ping(&Async(self)).await
    }

    /// Whether the backend answers `PING`.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")] async fn main() -> forge_cache_runtime::Result<()> {
    /// # let cache = forge_cache_runtime::CacheManager::new(Default::default())?;
    /// assert!(cache.test_connection().await);
    /// # Ok(()) }
    /// ```
    pub async fn test_connection(&self) -> bool {
        self.ping().await.is_ok()
    }

    /// Memory figures (`INFO memory`). On a Redis Cluster: every primary's
    /// figures, and their sums. On the in-memory backend: the bytes keys
    /// and values hold, and the number of entries.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")] async fn main() -> forge_cache_runtime::Result<()> {
    /// # let cache = forge_cache_runtime::CacheManager::new(Default::default())?;
    /// let info = cache.memory_info().await?;
    /// println!("{} in use", info.used_memory_human);
    /// # Ok(()) }
    /// ```
    pub async fn memory_info(&self) -> Result<MemoryInfo> {
        memory_info(&Async(self)).await
    }

    /// The manager's async Redis connection (multiplexed) for commands
    /// forge-cache does not wrap.
    ///
    /// It works from any Tokio runtime and reconnects by itself (see
    /// [`AsyncConnection`]). Errors with
    /// [`Error::Unsupported`](crate::Error::Unsupported) on the in-memory
    /// backend and on a Redis Cluster (use
    /// [`redis_cluster`](Self::redis_cluster)).
    ///
    /// ```no_run
    /// # async fn f(cache: forge_cache_runtime::CacheManager) -> forge_cache_runtime::Result<()> {
    /// let mut conn = cache.redis()?;
    /// let n: i64 = redis::cmd("INCR").arg("visits").query_async(&mut conn).await?;
    /// # Ok(()) }
    /// ```
    pub fn redis(&self) -> Result<AsyncConnection> {
        self.backend().raw(false)
    }

    /// The raw async Redis Cluster connection for commands forge-cache does
    /// not wrap: it routes each command by its key's slot and follows
    /// `MOVED`/`ASK`; it works from any Tokio runtime and reconnects by
    /// itself (see [`AsyncConnection`]). Errors with
    /// [`Error::Unsupported`](crate::Error::Unsupported) unless the manager
    /// is on a cluster.
    ///
    /// ```no_run
    /// # async fn f(cache: forge_cache_runtime::CacheManager) -> forge_cache_runtime::Result<()> {
    /// let mut conn = cache.redis_cluster()?;
    /// let n: i64 = redis::cmd("INCR").arg("visits").query_async(&mut conn).await?;
    /// # Ok(()) }
    /// ```
    pub fn redis_cluster(&self) -> Result<AsyncConnection> {
        self.backend().raw(true)
    }
}

impl Manager<'_> {
    /// Blocking form of [`CacheManager::set`].
    ///
    /// ```
    /// # let cache = forge_cache_runtime::CacheManager::new(Default::default())?;
    /// cache.blocking().set("user:1", &[1, 2, 3], std::time::Duration::from_secs(60))?;
    /// # Ok::<(), forge_cache_runtime::Error>(())
    /// ```
    pub fn set<T: Serialize + ?Sized>(&self, key: &str, value: &T, ttl: Duration) -> Result<()> {
        block_now(set(&self.drive(), key, value, ttl))
    }

    /// Blocking form of [`CacheManager::get`].
    ///
    /// ```
    /// # let cache = forge_cache_runtime::CacheManager::new(Default::default())?;
    /// assert_eq!(cache.blocking().get::<u32>("absent")?, None);
    /// # Ok::<(), forge_cache_runtime::Error>(())
    /// ```
    pub fn get<T: DeserializeOwned>(&self, key: &str) -> Result<Option<T>> {
        block_now(get(&self.drive(), key))
    }

    /// Blocking form of [`CacheManager::get_bytes`].
    ///
    /// ```
    /// # let cache = forge_cache_runtime::CacheManager::new(Default::default())?;
    /// assert_eq!(cache.blocking().get_bytes("absent")?, None);
    /// # Ok::<(), forge_cache_runtime::Error>(())
    /// ```
    pub fn get_bytes(&self, key: &str) -> Result<Option<Vec<u8>>> {
        block_now(get_bytes(&self.drive(), key))
    }

    /// Blocking form of [`CacheManager::set_bytes`].
    ///
    /// ```
    /// # let cache = forge_cache_runtime::CacheManager::new(Default::default())?;
    /// cache.blocking().set_bytes("raw", b"abc", std::time::Duration::from_secs(5))?;
    /// # Ok::<(), forge_cache_runtime::Error>(())
    /// ```
    pub fn set_bytes(&self, key: &str, value: &[u8], ttl: Duration) -> Result<()> {
        block_now(set_bytes(&self.drive(), key, value, ttl))
    }

    /// Blocking form of [`CacheManager::set_nx`].
    ///
    /// ```
    /// # let cache = forge_cache_runtime::CacheManager::new(Default::default())?;
    /// assert!(cache.blocking().set_nx("once", &1, std::time::Duration::from_secs(5))?);
    /// # Ok::<(), forge_cache_runtime::Error>(())
    /// ```
    pub fn set_nx<T: Serialize + ?Sized>(
        &self,
        key: &str,
        value: &T,
        ttl: Duration,
    ) -> Result<bool> {
        block_now(set_nx(&self.drive(), key, value, ttl))
    }

    /// Blocking form of [`CacheManager::delete`].
    ///
    /// ```
    /// # let cache = forge_cache_runtime::CacheManager::new(Default::default())?;
    /// assert!(!cache.blocking().delete("absent")?);
    /// # Ok::<(), forge_cache_runtime::Error>(())
    /// ```
    pub fn delete(&self, key: &str) -> Result<bool> {
        block_now(delete(&self.drive(), key))
    }

    /// Blocking form of [`CacheManager::delete_pattern`].
    ///
    /// ```
    /// # let cache = forge_cache_runtime::CacheManager::new(Default::default())?;
    /// assert_eq!(cache.blocking().delete_pattern("nothing:*")?, 0);
    /// # Ok::<(), forge_cache_runtime::Error>(())
    /// ```
    pub fn delete_pattern(&self, pattern: &str) -> Result<u64> {
        block_now(delete_pattern(&self.drive(), pattern))
    }

    /// Blocking form of [`CacheManager::ttl`].
    ///
    /// ```
    /// # let cache = forge_cache_runtime::CacheManager::new(Default::default())?;
    /// assert_eq!(cache.blocking().ttl("absent")?, None);
    /// # Ok::<(), forge_cache_runtime::Error>(())
    /// ```
    pub fn ttl(&self, key: &str) -> Result<Option<Duration>> {
        block_now(ttl(&self.drive(), key))
    }

    /// Blocking form of [`CacheManager::expire`].
    ///
    /// ```
    /// # let cache = forge_cache_runtime::CacheManager::new(Default::default())?;
    /// assert!(!cache.blocking().expire("absent", std::time::Duration::from_secs(5))?);
    /// # Ok::<(), forge_cache_runtime::Error>(())
    /// ```
    pub fn expire(&self, key: &str, ttl: Duration) -> Result<bool> {
        block_now(expire(&self.drive(), key, ttl))
    }

    /// Blocking form of [`CacheManager::ping`].
    ///
    /// ```
    /// # let cache = forge_cache_runtime::CacheManager::new(Default::default())?;
    /// let rtt = cache.blocking().ping()?;
    /// # Ok::<(), forge_cache_runtime::Error>(())
    /// ```
    pub fn ping(&self) -> Result<Duration> {
        block_now(ping(&self.drive()))
    }

    /// Blocking form of [`CacheManager::test_connection`].
    ///
    /// ```
    /// # let cache = forge_cache_runtime::CacheManager::new(Default::default())?;
    /// assert!(cache.blocking().test_connection());
    /// # Ok::<(), forge_cache_runtime::Error>(())
    /// ```
    pub fn test_connection(&self) -> bool {
        self.ping().is_ok()
    }

    /// Blocking form of [`CacheManager::memory_info`].
    ///
    /// ```
    /// # let cache = forge_cache_runtime::CacheManager::new(Default::default())?;
    /// let info = cache.blocking().memory_info()?;
    /// # Ok::<(), forge_cache_runtime::Error>(())
    /// ```
    pub fn memory_info(&self) -> Result<MemoryInfo> {
        block_now(memory_info(&self.drive()))
    }

    /// A raw blocking Redis connection. It takes a place in the manager's
    /// pool while it lives and is closed when dropped (not reused: whatever
    /// you did to it, `SELECT` or `MULTI`, cannot reach forge-cache's
    /// calls). Errors with [`Error::Unsupported`](crate::Error::Unsupported)
    /// unless the manager is on a single Redis server.
    ///
    /// ```no_run
    /// # fn f(cache: forge_cache_runtime::CacheManager) -> forge_cache_runtime::Result<()> {
    /// let mut conn = cache.blocking().redis()?;
    /// let n: i64 = redis::cmd("INCR").arg("visits").query(&mut *conn)?;
    /// # Ok(()) }
    /// ```
    pub fn redis(&self) -> Result<SyncConnection> {
        self.manager().backend().raw_blocking()
    }

    /// A raw blocking Redis Cluster connection. It takes a place in the
    /// manager's pool while it lives and is closed when dropped. Errors
    /// with [`Error::Unsupported`](crate::Error::Unsupported) unless the
    /// manager is on a cluster.
    ///
    /// ```no_run
    /// # fn f(cache: forge_cache_runtime::CacheManager) -> forge_cache_runtime::Result<()> {
    /// let mut conn = cache.blocking().redis_cluster()?;
    /// let n: i64 = redis::cmd("INCR").arg("visits").query(&mut *conn)?;
    /// # Ok(()) }
    /// ```
    pub fn redis_cluster(&self) -> Result<ClusterSyncConnection> {
        self.manager().backend().raw_cluster_blocking()
    }
}
