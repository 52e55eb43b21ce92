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

use redis::Value;

use super::Op;
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
    /// Runs `op` with `run` on a pooled connection. When the connection
    /// turns out to be broken (the server restarted since it was last
    /// used), the other idle ones are too: they are dropped, and an
    /// idempotent `op` is sent once more on a new connection, so a restart
    /// costs no failed call and does not trip the breaker.
    pub(crate) fn exec(
        self: &Arc<Self>,
        op: Op<'_>,
        run: impl Fn(&mut C, Op<'_>) -> redis::RedisResult<Value>,
    ) -> Result<Value> {
        let mut conn = self.get()?;
        match run(&mut conn, op) {
            Err(e) if e.is_connection_dropped() => {
                drop(conn);
                self.drop_idle();
                if !op.is_idempotent() {
                    return Err(Error::Redis(e));
                }
                let mut conn = self.get()?;
                Ok(run(&mut conn, op)?)
            }
            r => Ok(r?),
        }
    }

    /// Closes every idle connection.
    fn drop_idle(&self) {
        let idle = {
            let mut state = self.lock();
            let idle = std::mem::take(&mut state.idle);
            state.open -= idle.len() as u32;
            idle
        };
        drop(idle);
        self.freed.notify_all();
    }

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
                // Frees the place if opening fails or panics.
                let place = Place(self);
                let conn = (self.opener)()?;
                std::mem::forget(place);
                return Ok(self.lend(conn));
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
            reuse: true,
        }
    }

    /// A connection for the caller to use as it likes ([`SyncConnection`]):
    /// closed rather than returned to the pool when dropped, since the
    /// caller may have changed its state (`SELECT`, `MULTI`, `CLIENT
    /// REPLY`, a subscription).
    pub(crate) fn lend_out(self: &Arc<Self>) -> Result<PooledConnection<C>> {
        let mut conn = self.get()?;
        conn.reuse = false;
        Ok(conn)
    }

    /// A connection closed or failed to open: its place is free.
    fn forget(&self) {
        self.lock().open -= 1;
        self.freed.notify_one();
    }

    fn give_back(&self, conn: C, reuse: bool) {
        if reuse && redis::ConnectionLike::is_open(&conn) {
            self.lock().idle.push(conn);
            self.freed.notify_one();
        } else {
            self.forget();
        }
    }
}

/// Frees a place in the pool on drop: held while a connection opens
/// outside the lock, so a panicking opener does not leak the place.
struct Place<'p, C: redis::ConnectionLike + Send>(&'p Pool<C>);

impl<C: redis::ConnectionLike + Send> Drop for Place<'_, C> {
    fn drop(&mut self) {
        self.0.forget();
    }
}

/// A sync connection from a manager's pool: use it as the redis-rs
/// connection it dereferences to. Handed out by
/// [`cache.blocking().redis()`](crate::blocking::Manager::redis), it takes
/// a place in the pool while it lives and is closed when dropped.
///
/// ```no_run
/// # fn f(cache: forge_cache_runtime::CacheManager) -> forge_cache_runtime::Result<()> {
/// let mut conn = cache.blocking().redis()?;
/// let n: i64 = redis::cmd("INCR").arg("visits").query(&mut *conn)?;
/// # Ok(()) }
/// ```
pub struct PooledConnection<C: redis::ConnectionLike + Send> {
    pool: Arc<Pool<C>>,
    conn: Option<C>,
    /// Whether it goes back to the pool when dropped.
    reuse: bool,
}

impl<C: redis::ConnectionLike + Send> std::fmt::Debug for PooledConnection<C> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PooledConnection")
            .field("db", &self.conn.as_ref().map(redis::ConnectionLike::get_db))
            .finish_non_exhaustive()
    }
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
            self.pool.give_back(conn, self.reuse);
        }
    }
}

/// A pooled sync connection to a single Redis server, from
/// [`cache.blocking().redis()`](crate::blocking::Manager::redis).
pub type SyncConnection = PooledConnection<redis::Connection>;

/// A pooled sync Redis Cluster connection, from
/// [`cache.blocking().redis_cluster()`](crate::blocking::Manager::redis_cluster).
pub type ClusterSyncConnection = PooledConnection<redis::cluster::ClusterConnection>;
