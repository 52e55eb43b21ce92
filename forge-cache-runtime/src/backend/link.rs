//! A link: the one async connection of a backend, opened on first use on
//! a runtime that outlives the call ([`io`](super::io)), and opened again
//! after it breaks or its runtime shuts down.
//!
//! - A connection attempt is made once, bounded by the socket timeout, with
//!   no retries inside the call: a refused connection costs what the
//!   refusal costs, and the circuit breaker decides when to try again.
//! - Concurrent callers wait for one attempt and share its outcome, so a
//!   burst of calls during an outage costs one attempt, not one each.
//! - After a call sees the connection break, the next call opens a new one;
//!   an idempotent operation that saw it break is sent once more, on the
//!   new connection, within the same socket-timeout bound.

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
    type Conn: Clone + Send + Sync + 'static;

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
            Failure::NoRuntime => Error::Redis(RedisError::from((
                redis::ErrorKind::Client,
                "no runtime to open the connection on",
            ))),
        }
    }
}

/// An open connection and the watch on its home runtime.
pub(crate) struct Live<C> {
    pub(crate) conn: C,
    home: io::Watch,
}

pub(crate) struct Link<K: Connect> {
    connect: K,
    /// The open connections, one per home runtime in use (almost always
    /// one; a few while several multi-thread runtimes call at once).
    open: ArcSwap<Vec<Arc<Live<K::Conn>>>>,
    /// Held while an attempt runs.
    attempt: tokio::sync::Mutex<()>,
    /// Failed attempts so far.
    failures: AtomicU64,
    last_failure: Mutex<Option<Failure>>,
    timeout: Duration,
}

impl<K: Connect> Link<K> {
    /// A link whose attempts and operations are bounded by `timeout`.
    pub(crate) fn new(connect: K, timeout: Duration) -> Self {
        Link {
            connect,
            open: ArcSwap::default(),
            attempt: tokio::sync::Mutex::new(()),
            failures: AtomicU64::new(0),
            last_failure: Mutex::new(None),
            timeout,
        }
    }

    /// Runs `op`, bounded by the socket timeout.
    pub(crate) async fn exec(&self, op: Op<'_>) -> Result<Value> {
        let run = async {
            let live = self.get().await?;
            let mut conn = live.conn.clone();
            match K::run(&mut conn, op).await {
                Err(e) if self.check(&live, &e) && op.is_idempotent() => {
                    let mut conn = self.get().await?.conn.clone();
                    Ok(K::run(&mut conn, op).await?)
                }
                r => Ok(r?),
            }
        };
        match tokio::time::timeout(self.timeout, run).await {
            Ok(r) => r,
            Err(_) => Err(Error::Timeout(self.timeout)),
        }
    }

    /// A clone of the open connection, or of a new one.
    pub(crate) async fn conn(&self) -> Result<K::Conn> {
        Ok(self.get().await?.conn.clone())
    }

    /// The connection for a call made here: the open one whose home is
    /// this call's ([`io::caller`]), or a new one opened there. The `Arc`
    /// identifies this connection to [`check`](Self::check).
    #[inline]
    async fn get(&self) -> Result<Arc<Live<K::Conn>>> {
        let home = io::caller();
        match self.serving(home) {
            Some(c) => Ok(c),
            None => self.open(home).await,
        }
    }

    #[inline]
    fn serving(&self, home: Option<tokio::runtime::Id>) -> Option<Arc<Live<K::Conn>>> {
        self.open
            .load()
            .iter()
            .find(|c| c.home.serves(home))
            .cloned()
    }

    #[cold]
    async fn open(&self, home: Option<tokio::runtime::Id>) -> Result<Arc<Live<K::Conn>>> {
        let failures = self.failures.load(Ordering::Acquire);
        let Ok(_turn) = tokio::time::timeout(self.timeout, self.attempt.lock()).await else {
            return Err(Error::Timeout(self.timeout));
        };
        if let Some(c) = self.serving(home) {
            return Ok(c);
        }
        if self.failures.load(Ordering::Acquire) != failures {
            // An attempt failed while this call waited for its turn.
            if let Some(f) = self.lock_failure().clone() {
                return Err(f.into());
            }
        }
        let outcome = match io::home() {
            None => Err(Failure::NoRuntime),
            Some(home) => {
                let task = home.handle.spawn(self.connect.open());
                match tokio::time::timeout(self.timeout, task).await {
                    Ok(Ok(Ok(conn))) => Ok((conn, home)),
                    Ok(Ok(Err(e))) => Err(Failure::Redis(e)),
                    Ok(Err(_)) => Err(Failure::NoRuntime),
                    Err(_) => Err(Failure::Timeout(self.timeout)),
                }
            }
        };
        match outcome {
            Ok((conn, home)) => {
                let live = Arc::new(Live {
                    conn,
                    home: home.watch(),
                });
                // Under the attempt lock: the only writer besides `check`.
                self.open.rcu(|open| {
                    let mut next: Vec<_> =
                        open.iter().filter(|c| c.home.alive()).cloned().collect();
                    next.push(live.clone());
                    next
                });
                Ok(live)
            }
            Err(f) => {
                *self.lock_failure() = Some(f.clone());
                self.failures.fetch_add(1, Ordering::Release);
                Err(f.into())
            }
        }
    }

    fn lock_failure(&self) -> std::sync::MutexGuard<'_, Option<Failure>> {
        self.last_failure
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Called after `conn` failed with `err`: if the error means the
    /// connection is gone, the next call opens a new one, and this returns
    /// true.
    fn check(&self, conn: &Arc<Live<K::Conn>>, err: &RedisError) -> bool {
        let gone = err.is_connection_dropped() || err.is_unrecoverable_error();
        if gone {
            self.open.rcu(|open| {
                open.iter()
                    .filter(|c| !Arc::ptr_eq(c, conn))
                    .cloned()
                    .collect::<Vec<_>>()
            });
        }
        gone
    }
}
