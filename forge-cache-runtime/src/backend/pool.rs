//! The pool of sync connections, for a single server and for a cluster.
//!
//! A connection is opened in the calling thread when no idle one is left
//! and the pool is below its size, so a refused connection fails at once
//! with the real error (a pool that connects in the background would make
//! the caller wait out its whole checkout timeout instead). A caller waits
//! for a connection only when the pool is at its size, and at most the
//! socket timeout.

use std::ops::{Deref, DerefMut};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use crate::error::{Error, Result};

/// Opens one connection, bounded by the socket timeout.
type Opener<C> = Box<dyn Fn() -> redis::RedisResult<C> + Send + Sync>;

struct State<C> {
    idle: Vec<C>,
    /// Connections open, idle or in use, or being opened.
    open: u32,
}

pub(crate) struct Pool<C> {
    opener: Opener<C>,
    size: u32,
    timeout: Duration,
    state: Mutex<State<C>>,
    freed: Condvar,
}

impl<C: redis::ConnectionLike + Send> Pool<C> {
    pub(crate) fn new(
        opener: impl Fn() -> redis::RedisResult<C> + Send + Sync + 'static,
        size: u32,
        timeout: Duration,
    ) -> Self {
        Pool {
            opener: Box::new(opener),
            size: size.max(1),
            timeout,
            state: Mutex::new(State {
                idle: Vec::new(),
                open: 0,
            }),
            freed: Condvar::new(),
        }
    }

    fn lock(&self) -> MutexGuard<'_, State<C>> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// An idle connection, a new one, or (with the pool at its size) the
    /// next one returned within the socket timeout.
    pub(crate) fn get(self: &Arc<Self>) -> Result<PooledConnection<C>> {
        let deadline = Instant::now() + self.timeout;
        let mut state = self.lock();
        loop {
            if let Some(conn) = state.idle.pop() {
                return Ok(self.lend(conn));
            }
            if state.open < self.size {
                state.open += 1;
                drop(state);
                return match (self.opener)() {
                    Ok(conn) => Ok(self.lend(conn)),
                    Err(e) => {
                        self.forget();
                        Err(Error::Redis(e))
                    }
                };
            }
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Err(Error::Timeout(self.timeout));
            }
            state = self
                .freed
                .wait_timeout(state, left)
                .unwrap_or_else(PoisonError::into_inner)
                .0;
        }
    }

    fn lend(self: &Arc<Self>, conn: C) -> PooledConnection<C> {
        PooledConnection {
            pool: self.clone(),
            conn: Some(conn),
        }
    }

    /// A connection closed or failed to open: its place is free.
    fn forget(&self) {
        self.lock().open -= 1;
        self.freed.notify_one();
    }

    fn give_back(&self, conn: C) {
        if redis::ConnectionLike::is_open(&conn) {
            self.lock().idle.push(conn);
            self.freed.notify_one();
        } else {
            self.forget();
        }
    }
}

/// A sync connection borrowed from a manager's pool: use it as the
/// redis-rs connection it dereferences to. It goes back to the pool when
/// dropped, or is closed if it broke.
///
/// ```no_run
/// # fn f(cache: forge_cache_runtime::CacheManager) -> forge_cache_runtime::Result<()> {
/// let mut conn = cache.redis_sync()?;
/// let n: i64 = redis::cmd("INCR").arg("visits").query(&mut *conn)?;
/// # Ok(()) }
/// ```
pub struct PooledConnection<C: redis::ConnectionLike + Send> {
    pool: Arc<Pool<C>>,
    conn: Option<C>,
}

impl<C: redis::ConnectionLike + Send> Deref for PooledConnection<C> {
    type Target = C;
    fn deref(&self) -> &C {
        self.conn.as_ref().expect("present until drop")
    }
}

impl<C: redis::ConnectionLike + Send> DerefMut for PooledConnection<C> {
    fn deref_mut(&mut self) -> &mut C {
        self.conn.as_mut().expect("present until drop")
    }
}

impl<C: redis::ConnectionLike + Send> Drop for PooledConnection<C> {
    fn drop(&mut self) {
        if let Some(conn) = self.conn.take() {
            self.pool.give_back(conn);
        }
    }
}

/// A pooled sync connection to a single Redis server, from
/// [`CacheManager::redis_sync`](crate::CacheManager::redis_sync).
pub type SyncConnection = PooledConnection<redis::Connection>;

/// A pooled sync Redis Cluster connection, from
/// [`CacheManager::redis_cluster_sync`](crate::CacheManager::redis_cluster_sync).
pub type ClusterSyncConnection = PooledConnection<redis::cluster::ClusterConnection>;
