//! The manager: one handle over a backend, with the circuit breaker, the key
//! namespace and the key-value operations in async and sync form.

use std::borrow::Cow;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use ::redis::Value;
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::backend::cluster::ClusterBackend;
use crate::backend::memory::MemoryStore;
use crate::backend::pool::ClusterSyncConnection;
use crate::backend::raw::AsyncConnection;
use crate::backend::redis::RedisBackend;
use crate::backend::{Backend, Op, reply};
use crate::breaker::{Breaker, LogThrottle};
use crate::cache::flight::Flights;
use crate::codec::{decode, encode};
use crate::error::{Chain, Error, Result};
use crate::glob;
use crate::info::MemoryInfo;
use crate::key::join_key;
use crate::settings::{BackendKind, RedisSettings, Target};

/// A handle to the configured backend. Cheap to clone (one `Arc`).
///
/// Most programs configure one with [`init`](crate::init) at startup and
/// never touch it again: the attribute macros find it on their own. Use it
/// directly for manual operations: get, set, delete, patterns, locks.
///
/// ```
/// # #[tokio::main(flavor = "current_thread")] async fn main() -> forge_cache_runtime::Result<()> {
/// use std::time::Duration;
/// use forge_cache_runtime::{CacheManager, RedisSettings};
///
/// let cache = CacheManager::new(RedisSettings::memory())?;
/// cache.set("greeting", &"hello", Duration::from_secs(60)).await?;
/// assert_eq!(cache.get::<String>("greeting").await?, Some("hello".into()));
/// assert!(cache.delete("greeting").await?);
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct CacheManager {
    pub(crate) inner: Arc<Inner>,
}

pub(crate) struct Inner {
    pub(crate) backend: Backend,
    pub(crate) settings: RedisSettings,
    pub(crate) breaker: Breaker,
    log: LogThrottle,
    peak_bytes: AtomicUsize,
    /// In-flight misses of `#[cache_result]` calls (single-flight).
    pub(crate) flights: Flights,
    /// Locks taken with the name-only `acquire_lock`, by name.
    pub(crate) held_locks: crate::lock::HeldLocks,
}

impl std::fmt::Debug for CacheManager {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CacheManager")
            .field("backend", &self.backend_kind())
            .field("settings", &self.inner.settings)
            .finish()
    }
}

impl CacheManager {
    /// Creates a manager. Nothing connects yet: connections open on first
    /// use, so an unreachable Redis at startup is an outage to ride out, not
    /// a crash. Fails only for invalid settings.
    pub fn new(settings: RedisSettings) -> Result<Self> {
        let backend = match &settings.target {
            Target::Memory => {
                tracing::info!(
                    target: "forge_cache",
                    max_entries = settings.memory_max_entries,
                    "using the in-memory backend: entries live in this process only and are not shared with other processes"
                );
                Backend::Memory(Arc::new(MemoryStore::new(settings.memory_max_entries)))
            }
            Target::Redis(info) => {
                Backend::Redis(Arc::new(RedisBackend::new((**info).clone(), &settings)?))
            }
            Target::Cluster(nodes) => {
                Backend::Cluster(Arc::new(ClusterBackend::new(nodes.clone(), &settings)?))
            }
        };
        Ok(Self::with_backend(backend, settings))
    }

    pub(crate) fn with_backend(backend: Backend, settings: RedisSettings) -> Self {
        CacheManager {
            inner: Arc::new(Inner {
                breaker: Breaker::new(settings.breaker_threshold, settings.breaker_cooldown),
                backend,
                settings,
                log: LogThrottle::new(),
                peak_bytes: AtomicUsize::new(0),
                flights: Flights::default(),
                held_locks: Default::default(),
            }),
        }
    }

    /// A manager whose every operation fails as an outage would, for when
    /// the configuration is invalid but the application must keep running.
    pub(crate) fn disabled(reason: String) -> Self {
        Self::with_backend(Backend::Disabled(reason.into()), RedisSettings::memory())
    }

    /// The settings this manager was built from.
    pub fn settings(&self) -> &RedisSettings {
        &self.inner.settings
    }

    /// Which backend this manager talks to.
    pub fn backend_kind(&self) -> BackendKind {
        match &self.inner.backend {
            Backend::Disabled(_) => BackendKind::Disabled,
            _ => self.inner.settings.backend_kind(),
        }
    }

    /// Why this manager is disabled, if it is: the process-wide manager,
    /// configured from an environment with an invalid setting, names the
    /// setting, its value and what is accepted. Every operation then fails
    /// with [`Error::Disabled`] carrying the same text.
    ///
    /// ```
    /// let cache = forge_cache_runtime::CacheManager::new(Default::default()).unwrap();
    /// assert_eq!(cache.disabled_reason(), None);
    /// ```
    pub fn disabled_reason(&self) -> Option<&str> {
        match &self.inner.backend {
            Backend::Disabled(why) => Some(why),
            _ => None,
        }
    }

    /// Whether the circuit breaker is open (the backend is being skipped).
    pub fn breaker_open(&self) -> bool {
        self.inner.breaker.is_open()
    }

    /// The full key for `key`: the namespace, if configured, then `key`.
    pub fn full_key<'k>(&self, key: &'k str) -> Cow<'k, str> {
        match self.inner.settings.namespace() {
            None => Cow::Borrowed(key),
            Some(ns) => Cow::Owned(join_key(Some(ns), &[key])),
        }
    }

    fn full_pattern<'k>(&self, pattern: &'k str) -> Cow<'k, str> {
        match self.inner.settings.namespace() {
            None => Cow::Borrowed(pattern),
            Some(ns) => Cow::Owned(join_key(Some(&glob::escape(ns)), &[pattern])),
        }
    }

    /// Runs one operation through the breaker, recording the outcome.
    pub(crate) async fn exec(&self, op: Op<'_>) -> Result<Value> {
        let inner = &*self.inner;
        if !inner.breaker.allow() {
            return Err(Error::CircuitOpen);
        }
        let r = inner.backend.exec(op).await;
        self.record(&r);
        r
    }

    pub(crate) fn exec_sync(&self, op: Op<'_>) -> Result<Value> {
        let inner = &*self.inner;
        if !inner.breaker.allow() {
            return Err(Error::CircuitOpen);
        }
        let r = inner.backend.exec_sync(op);
        self.record(&r);
        r
    }

    #[inline]
    pub(crate) fn record<T>(&self, r: &Result<T>) {
        match r {
            Ok(_) => self.inner.breaker.success(),
            // A disabled manager stays disabled; its error names the
            // setting, which an open breaker's error would hide.
            Err(Error::Disabled(_)) => {}
            Err(e) if e.is_outage() => self.inner.breaker.failure(),
            Err(_) => {}
        }
    }

    /// Logs a backend failure at most once a second (with a count of the
    /// lines suppressed meanwhile), so an outage does not flood the logs.
    pub(crate) fn warn_failure(&self, what: &str, err: &Error) {
        if let Some(suppressed) = self.inner.log.permit() {
            tracing::warn!(target: "forge_cache", error = %Chain(err), suppressed, "{what}");
        }
    }

    /// [`warn_failure`](Self::warn_failure) for one cached or rate-limited
    /// function, named by its key prefix and function name.
    pub(crate) fn warn_failure_at(&self, prefix: &str, function: &str, what: &str, err: &Error) {
        if let Some(suppressed) = self.inner.log.permit() {
            tracing::warn!(target: "forge_cache", prefix, function, error = %Chain(err), suppressed, "{what}");
        }
    }

    // ----- key-value operations ---------------------------------------------

    /// Stores `value` as JSON under `key` for `ttl` (`SET key value PX ttl`).
    pub async fn set<T: Serialize + ?Sized>(
        &self,
        key: &str,
        value: &T,
        ttl: Duration,
    ) -> Result<()> {
        let bytes = self.encode_checked(value)?;
        self.exec(Op::Set(&self.full_key(key), &bytes, ttl))
            .await
            .map(drop)
    }

    /// Sync form of [`set`](Self::set).
    pub fn set_sync<T: Serialize + ?Sized>(
        &self,
        key: &str,
        value: &T,
        ttl: Duration,
    ) -> Result<()> {
        let bytes = self.encode_checked(value)?;
        self.exec_sync(Op::Set(&self.full_key(key), &bytes, ttl))
            .map(drop)
    }

    /// Reads the JSON value under `key`; `Ok(None)` when absent. A stored
    /// `0`, `""`, `[]`, `false` or `null` is a value, not a miss.
    pub async fn get<T: DeserializeOwned>(&self, key: &str) -> Result<Option<T>> {
        match self.get_bytes(key).await? {
            Some(b) => decode(&b).map(Some),
            None => Ok(None),
        }
    }

    /// Sync form of [`get`](Self::get).
    pub fn get_sync<T: DeserializeOwned>(&self, key: &str) -> Result<Option<T>> {
        match self.get_bytes_sync(key)? {
            Some(b) => decode(&b).map(Some),
            None => Ok(None),
        }
    }

    /// Reads the raw bytes under `key`.
    pub async fn get_bytes(&self, key: &str) -> Result<Option<Vec<u8>>> {
        reply(self.exec(Op::Get(&self.full_key(key))).await?)
    }

    /// Sync form of [`get_bytes`](Self::get_bytes).
    pub fn get_bytes_sync(&self, key: &str) -> Result<Option<Vec<u8>>> {
        reply(self.exec_sync(Op::Get(&self.full_key(key)))?)
    }

    /// Stores raw bytes under `key` for `ttl`.
    pub async fn set_bytes(&self, key: &str, value: &[u8], ttl: Duration) -> Result<()> {
        self.exec(Op::Set(&self.full_key(key), value, ttl))
            .await
            .map(drop)
    }

    /// Sync form of [`set_bytes`](Self::set_bytes).
    pub fn set_bytes_sync(&self, key: &str, value: &[u8], ttl: Duration) -> Result<()> {
        self.exec_sync(Op::Set(&self.full_key(key), value, ttl))
            .map(drop)
    }

    /// Stores `value` only if `key` does not exist (`SET NX PX`); returns
    /// whether it was stored.
    pub async fn set_nx<T: Serialize + ?Sized>(
        &self,
        key: &str,
        value: &T,
        ttl: Duration,
    ) -> Result<bool> {
        let bytes = self.encode_checked(value)?;
        let v = self
            .exec(Op::SetNx(&self.full_key(key), &bytes, ttl))
            .await?;
        Ok(v != Value::Nil)
    }

    /// Sync form of [`set_nx`](Self::set_nx).
    pub fn set_nx_sync<T: Serialize + ?Sized>(
        &self,
        key: &str,
        value: &T,
        ttl: Duration,
    ) -> Result<bool> {
        let bytes = self.encode_checked(value)?;
        let v = self.exec_sync(Op::SetNx(&self.full_key(key), &bytes, ttl))?;
        Ok(v != Value::Nil)
    }

    /// Deletes `key`; returns whether it existed.
    pub async fn delete(&self, key: &str) -> Result<bool> {
        Ok(reply::<i64>(self.exec(Op::Del(&self.full_key(key))).await?)? > 0)
    }

    /// Sync form of [`delete`](Self::delete).
    pub fn delete_sync(&self, key: &str) -> Result<bool> {
        Ok(reply::<i64>(self.exec_sync(Op::Del(&self.full_key(key)))?)? > 0)
    }

    /// Deletes every key matching the Redis glob `pattern` with `SCAN` and
    /// batched `UNLINK` (never `KEYS`); returns how many were deleted. Use
    /// [`glob::escape`] for literal parts that come from users.
    pub async fn delete_pattern(&self, pattern: &str) -> Result<u64> {
        if !self.inner.breaker.allow() {
            return Err(Error::CircuitOpen);
        }
        let r = self
            .inner
            .backend
            .delete_pattern(&self.full_pattern(pattern))
            .await;
        self.record(&r);
        r
    }

    /// Sync form of [`delete_pattern`](Self::delete_pattern).
    pub fn delete_pattern_sync(&self, pattern: &str) -> Result<u64> {
        if !self.inner.breaker.allow() {
            return Err(Error::CircuitOpen);
        }
        let r = self
            .inner
            .backend
            .delete_pattern_sync(&self.full_pattern(pattern));
        self.record(&r);
        r
    }

    /// Remaining time to live of `key`, `None` when it does not exist.
    pub async fn ttl(&self, key: &str) -> Result<Option<Duration>> {
        Ok(pttl(reply(
            self.exec(Op::Pttl(&self.full_key(key))).await?,
        )?))
    }

    /// Sync form of [`ttl`](Self::ttl).
    pub fn ttl_sync(&self, key: &str) -> Result<Option<Duration>> {
        Ok(pttl(reply(self.exec_sync(Op::Pttl(&self.full_key(key)))?)?))
    }

    /// Sets a new TTL on an existing key; returns whether it exists.
    pub async fn expire(&self, key: &str, ttl: Duration) -> Result<bool> {
        Ok(reply::<i64>(self.exec(Op::Expire(&self.full_key(key), ttl)).await?)? == 1)
    }

    /// Sync form of [`expire`](Self::expire).
    pub fn expire_sync(&self, key: &str, ttl: Duration) -> Result<bool> {
        Ok(reply::<i64>(self.exec_sync(Op::Expire(&self.full_key(key), ttl))?)? == 1)
    }

    /// Sends `PING`, even while the circuit breaker is open (its outcome
    /// then closes or re-opens the breaker); returns the round-trip time.
    pub async fn ping(&self) -> Result<Duration> {
        let start = Instant::now();
        let r = self.inner.backend.exec(Op::Ping).await;
        self.record(&r);
        r?;
        Ok(start.elapsed())
    }

    /// Sync form of [`ping`](Self::ping).
    pub fn ping_sync(&self) -> Result<Duration> {
        let start = Instant::now();
        let r = self.inner.backend.exec_sync(Op::Ping);
        self.record(&r);
        r?;
        Ok(start.elapsed())
    }

    /// Whether the backend answers `PING`.
    pub async fn test_connection(&self) -> bool {
        self.ping().await.is_ok()
    }

    /// Sync form of [`test_connection`](Self::test_connection).
    pub fn test_connection_sync(&self) -> bool {
        self.ping_sync().is_ok()
    }

    /// Memory figures (`INFO memory`). On
    /// a Redis Cluster: every primary's figures, and their sums.
    pub async fn memory_info(&self) -> Result<MemoryInfo> {
        match &self.inner.backend {
            Backend::Cluster(c) => c.memory_info().await,
            Backend::Redis(r) => {
                let mut conn = r.conn().await?;
                let text: String = ::redis::cmd("INFO")
                    .arg("memory")
                    .query_async(&mut conn)
                    .await?;
                MemoryInfo::parse_info(&text)
            }
            _ => self.memory_info_sync(),
        }
    }

    /// Sync form of [`memory_info`](Self::memory_info).
    pub fn memory_info_sync(&self) -> Result<MemoryInfo> {
        match &self.inner.backend {
            Backend::Memory(m) => {
                let (entries, bytes) = m.usage();
                let peak = self
                    .inner
                    .peak_bytes
                    .fetch_max(bytes, Ordering::Relaxed)
                    .max(bytes);
                Ok(MemoryInfo::from_memory(entries, bytes, peak))
            }
            Backend::Redis(r) => {
                let mut conn = r.sync_conn()?;
                let text: String = ::redis::cmd("INFO").arg("memory").query(&mut *conn)?;
                MemoryInfo::parse_info(&text)
            }
            Backend::Cluster(c) => c.memory_info_sync(),
            Backend::Disabled(why) => Err(Error::Disabled(why.to_string())),
        }
    }

    /// The manager's async Redis connection (multiplexed) for commands
    /// forge-cache does not wrap.
    ///
    /// It works from any Tokio runtime and reconnects by itself (see
    /// [`AsyncConnection`](crate::AsyncConnection)). Errors with
    /// [`Error::Unsupported`] on the in-memory backend and on a Redis
    /// Cluster (use [`redis_cluster_async`](Self::redis_cluster_async)).
    ///
    /// ```no_run
    /// # async fn f(cache: forge_cache_runtime::CacheManager) -> forge_cache_runtime::Result<()> {
    /// let mut conn = cache.redis_async()?;
    /// let n: i64 = redis::cmd("INCR").arg("visits").query_async(&mut conn).await?;
    /// # Ok(()) }
    /// ```
    pub fn redis_async(&self) -> Result<AsyncConnection> {
        match &self.inner.backend {
            Backend::Redis(r) => Ok(AsyncConnection::redis(r.clone(), r.db())),
            Backend::Cluster(_) => Err(Error::Unsupported(
                "a single-server connection on a Redis Cluster (use redis_cluster_async)",
            )),
            _ => Err(Error::Unsupported(
                "a raw Redis connection (this manager is not on Redis)",
            )),
        }
    }

    /// The raw async Redis Cluster connection for commands forge-cache does
    /// not wrap: it routes each command by its key's slot and follows
    /// `MOVED`/`ASK`; it works from any Tokio runtime and reconnects by
    /// itself (see [`AsyncConnection`](crate::AsyncConnection)). Errors
    /// with [`Error::Unsupported`] unless the manager is on a cluster.
    ///
    /// ```no_run
    /// # async fn f(cache: forge_cache_runtime::CacheManager) -> forge_cache_runtime::Result<()> {
    /// let mut conn = cache.redis_cluster_async()?;
    /// let n: i64 = redis::cmd("INCR").arg("visits").query_async(&mut conn).await?;
    /// # Ok(()) }
    /// ```
    pub fn redis_cluster_async(&self) -> Result<AsyncConnection> {
        match &self.inner.backend {
            Backend::Cluster(c) => Ok(AsyncConnection::cluster(c.clone())),
            _ => Err(Error::Unsupported(
                "a Redis Cluster connection (this manager is not on a cluster)",
            )),
        }
    }

    /// A raw sync Redis Cluster connection. It takes a place in the
    /// manager's pool while it lives and is closed when dropped.
    ///
    /// ```no_run
    /// # fn f(cache: forge_cache_runtime::CacheManager) -> forge_cache_runtime::Result<()> {
    /// let mut conn = cache.redis_cluster_sync()?;
    /// let n: i64 = redis::cmd("INCR").arg("visits").query(&mut *conn)?;
    /// # Ok(()) }
    /// ```
    pub fn redis_cluster_sync(&self) -> Result<ClusterSyncConnection> {
        match &self.inner.backend {
            Backend::Cluster(c) => c.lend_sync(),
            _ => Err(Error::Unsupported(
                "a Redis Cluster connection (this manager is not on a cluster)",
            )),
        }
    }

    /// A raw sync Redis connection. It takes a place in the manager's pool
    /// while it lives and is closed when dropped (not reused: whatever you
    /// did to it, `SELECT` or `MULTI`, cannot reach forge-cache's calls).
    ///
    /// ```no_run
    /// # fn f(cache: forge_cache_runtime::CacheManager) -> forge_cache_runtime::Result<()> {
    /// let mut conn = cache.redis_sync()?;
    /// let n: i64 = redis::cmd("INCR").arg("visits").query(&mut *conn)?;
    /// # Ok(()) }
    /// ```
    pub fn redis_sync(&self) -> Result<crate::backend::pool::SyncConnection> {
        match &self.inner.backend {
            Backend::Redis(r) => r.lend_sync(),
            Backend::Cluster(_) => Err(Error::Unsupported(
                "a single-server connection on a Redis Cluster (use redis_cluster_sync)",
            )),
            _ => Err(Error::Unsupported(
                "a raw Redis connection (this manager is not on Redis)",
            )),
        }
    }

    pub(crate) fn encode_checked<T: Serialize + ?Sized>(&self, value: &T) -> Result<Vec<u8>> {
        let bytes = encode(value)?;
        let limit = self.inner.settings.max_value_bytes;
        if bytes.len() > limit {
            return Err(Error::TooLarge {
                size: bytes.len(),
                limit,
            });
        }
        Ok(bytes)
    }
}

fn pttl(ms: i64) -> Option<Duration> {
    (ms >= 0).then(|| Duration::from_millis(ms as u64))
}
