//! A link: the one async connection of a backend, opened on first use on
//! a runtime that outlives the call ([`io`](super::io)), and opened again
//! after it breaks or its runtime shuts down.
//!
//! - A connection attempt is made once, bounded by the socket timeout, with
//!   no retries inside the call: a refused connection costs what the
//!   refusal costs, and the circuit breaker decides when to try again.
//! - Concurrent callers wait for one attempt and share its outcome, so a
//!   burst of calls during an outage costs one attempt, not one each. The
//!   attempt runs in a task of its own, which installs the connection (or
//!   records the failure) even when the caller that started it has given up.
//! - After a call sees the connection break, the next call opens a new one;
//!   an idempotent operation that saw it break is sent once more, on the
//!   new connection. Each step is bounded by the socket timeout (by one
//!   bound for the whole call where the connection does not bound its
//!   replies itself: the cluster).

use std::future::Future;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use arc_swap::ArcSwap;
use redis::{RedisError, RedisResult, Value};

use super::{Op, io};
use crate::error::{Error, Result};

/// How a backend opens its async connection and runs an operation on it.
pub(crate) trait Connect: Send + Sync {
    type Conn: redis::aio::ConnectionLike + Clone + Send + Sync + 'static;

    /// Whether the connection bounds each reply by the socket timeout
    /// itself, so that one operation needs no timer of its own (a timer per
    /// call is measurable client CPU on the hit path).
    const BOUNDS_REPLIES: bool;

    /// Opens a connection; runs on the connection's home runtime.
    fn open(&self) -> impl Future<Output = RedisResult<Self::Conn>> + Send + 'static;

    /// Sends `op`.
    fn run<'a>(
        conn: &'a mut Self::Conn,
        op: Op<'a>,
    ) -> impl Future<Output = RedisResult<Value>> + Send + 'a;
}

/// The outcome of the last failed attempt, handed to callers that waited
/// for it.
#[derive(Clone)]
enum Failure {
    Redis(RedisError),
    Timeout(Duration),
    NoRuntime,
}

impl From<Failure> for Error {
    fn from(f: Failure) -> Self {
        match f {
            Failure::Redis(e) => Error::Redis(e),
            Failure::Timeout(d) => Error::Timeout(d),
            // An outage: nothing can reach the backend from here.
            Failure::NoRuntime => Error::Redis(RedisError::from(std::io::Error::other(
                "no runtime to open the connection on (or its task failed)",
            ))),
        }
    }
}

/// The connection's response timeout, reported as ours.
fn timeout_error(timeout: Duration) -> impl Fn(Error) -> Error {
    move |e| match e {
        Error::Redis(r) if r.is_timeout() => Error::Timeout(timeout),
        other => other,
    }
}

/// Our error as redis-rs's, for a caller of the raw connection: an outage
/// stays an I/O error, so redis-rs and the caller see it as one.
fn into_redis(e: Error) -> RedisError {
    match e {
        Error::Redis(e) => e,
        Error::Timeout(_) => RedisError::from(std::io::Error::from(std::io::ErrorKind::TimedOut)),
        other => RedisError::from(std::io::Error::other(other.to_string())),
    }
}

/// An open connection and the watch on its home runtime.
pub(crate) struct Live<C> {
    pub(crate) conn: C,
    home: io::Watch,
}

pub(crate) struct Link<K: Connect> {
    connect: K,
    state: Arc<State<K::Conn>>,
    /// Held while a caller waits for an attempt.
    attempt: tokio::sync::Mutex<()>,
    timeout: Duration,
}

/// What attempts share with the link, since they outlive their callers.
struct State<C> {
    /// The open connections, one per home runtime in use (almost always
    /// one; a few while several multi-thread runtimes call at once).
    open: ArcSwap<Vec<Arc<Live<C>>>>,
    /// Failed attempts so far.
    failures: AtomicU64,
    last_failure: Mutex<Option<Failure>>,
}

impl<C> State<C> {
    /// Adds `live`, replacing any connection of the same home and dropping
    /// those whose home shut down.
    fn install(&self, live: Arc<Live<C>>) {
        self.open.rcu(|open| {
            let mut next: Vec<_> = open
                .iter()
                .filter(|c| c.home.alive() && !c.home.same_home(&live.home))
                .cloned()
                .collect();
            next.push(live.clone());
            next
        });
    }

    fn fail(&self, f: Failure) {
        *self.lock_failure() = Some(f);
        self.failures.fetch_add(1, Ordering::Release);
    }

    fn lock_failure(&self) -> std::sync::MutexGuard<'_, Option<Failure>> {
        self.last_failure
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

impl<K: Connect> Link<K> {
    /// A link whose attempts and operations are bounded by `timeout`.
    pub(crate) fn new(connect: K, timeout: Duration) -> Self {
        Link {
            connect,
            state: Arc::new(State {
                open: ArcSwap::default(),
                failures: AtomicU64::new(0),
                last_failure: Mutex::new(None),
            }),
            attempt: tokio::sync::Mutex::new(()),
            timeout,
        }
    }

    /// Runs `op`, each step bounded by the socket timeout (the whole call,
    /// unless the connection bounds its replies itself).
    pub(crate) async fn exec(&self, op: Op<'_>) -> Result<Value> {
        let Ok(home) = io::caller() else {
            return Err(Failure::NoRuntime.into());
        };
        let run = async {
            let live = self.get(home).await?;
            let mut conn = live.conn.clone();
            match K::run(&mut conn, op).await {
                Err(e) if self.check(&live, &e) && op.is_idempotent() => {
                    let mut conn = self.get(home).await?.conn.clone();
                    Ok(K::run(&mut conn, op).await?)
                }
                r => Ok(r?),
            }
        };
        if K::BOUNDS_REPLIES {
            // Each step bounds itself: a connection attempt by its own
            // timeout, each command by the connection's response timeout.
            return run.await.map_err(timeout_error(self.timeout));
        }
        match tokio::time::timeout(self.timeout, run).await {
            Ok(r) => r,
            Err(_) => Err(Error::Timeout(self.timeout)),
        }
    }

    /// Sends a caller's packed command ([`AsyncConnection`]): on the
    /// connection for this call's home, replaced if it broke.
    ///
    /// [`AsyncConnection`]: super::raw::AsyncConnection
    pub(crate) async fn packed(&self, cmd: &redis::Cmd) -> RedisResult<Value> {
        use redis::aio::ConnectionLike;
        let home = io::caller().map_err(|_| into_redis(Failure::NoRuntime.into()))?;
        let live = self.get(home).await.map_err(into_redis)?;
        let mut conn = live.conn.clone();
        let r = conn.req_packed_command(cmd).await;
        if let Err(e) = &r {
            self.check(&live, e);
        }
        r
    }

    /// [`packed`](Self::packed) for a pipeline.
    pub(crate) async fn packed_pipeline(
        &self,
        pipe: &redis::Pipeline,
        offset: usize,
        count: usize,
    ) -> RedisResult<Vec<Value>> {
        use redis::aio::ConnectionLike;
        let home = io::caller().map_err(|_| into_redis(Failure::NoRuntime.into()))?;
        let live = self.get(home).await.map_err(into_redis)?;
        let mut conn = live.conn.clone();
        let r = conn.req_packed_commands(pipe, offset, count).await;
        if let Err(e) = &r {
            self.check(&live, e);
        }
        r
    }

    /// The connection for a call whose home is `home` ([`io::caller`]): the
    /// open one there, or a new one opened there. The `Arc`
    /// identifies this connection to [`check`](Self::check).
    #[inline]
    async fn get(&self, home: Option<tokio::runtime::Id>) -> Result<Arc<Live<K::Conn>>> {
        match self.serving(home) {
            Some(c) => Ok(c),
            None => self.open(home).await,
        }
    }

    #[inline]
    fn serving(&self, home: Option<tokio::runtime::Id>) -> Option<Arc<Live<K::Conn>>> {
        self.state
            .open
            .load()
            .iter()
            .find(|c| c.home.serves(home))
            .cloned()
    }

    #[cold]
    async fn open(&self, home: Option<tokio::runtime::Id>) -> Result<Arc<Live<K::Conn>>> {
        let state = &self.state;
        let failures = state.failures.load(Ordering::Acquire);
        let Ok(_turn) = tokio::time::timeout(self.timeout, self.attempt.lock()).await else {
            return Err(Error::Timeout(self.timeout));
        };
        if let Some(c) = self.serving(home) {
            return Ok(c);
        }
        if state.failures.load(Ordering::Acquire) != failures {
            // An attempt failed while this call waited for its turn.
            if let Some(f) = state.lock_failure().clone() {
                return Err(f.into());
            }
        }
        let Some(home) = io::home() else {
            state.fail(Failure::NoRuntime);
            return Err(Failure::NoRuntime.into());
        };
        let (shared, timeout, open) = (state.clone(), self.timeout, self.connect.open());
        let handle = home.handle.clone();
        let attempt = handle.spawn(async move {
            let outcome = match tokio::time::timeout(timeout, open).await {
                Ok(Ok(conn)) => Ok(conn),
                Ok(Err(e)) => Err(Failure::Redis(e)),
                Err(_) => Err(Failure::Timeout(timeout)),
            };
            match outcome {
                Ok(conn) => {
                    let live = Arc::new(Live {
                        conn,
                        home: home.watch(),
                    });
                    shared.install(live.clone());
                    Ok(live)
                }
                Err(f) => {
                    shared.fail(f.clone());
                    Err(f)
                }
            }
        });
        // The attempt bounds itself; the margin only covers its scheduling.
        match tokio::time::timeout(timeout + Duration::from_millis(100), attempt).await {
            Ok(Ok(outcome)) => outcome.map_err(Error::from),
            Ok(Err(_)) => Err(Failure::NoRuntime.into()),
            Err(_) => Err(Error::Timeout(timeout)),
        }
    }

    /// Called after `conn` failed with `err`: if the error means the
    /// connection is gone, the next call opens a new one, and this returns
    /// true.
    fn check(&self, conn: &Arc<Live<K::Conn>>, err: &RedisError) -> bool {
        let gone = err.is_connection_dropped() || err.is_unrecoverable_error();
        if gone {
            self.state.open.rcu(|open| {
                open.iter()
                    .filter(|c| !Arc::ptr_eq(c, conn))
                    .cloned()
                    .collect::<Vec<_>>()
            });
        }
        gone
    }
}
