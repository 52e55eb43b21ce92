//! The two drivers of the one cache path.
//!
//! The read, single-flight, lock and store logic of a cached call is
//! written once, as async code generic over a [`Drive`]: the few things it
//! waits on (a backend operation, another caller's flight, the
//! cross-process lock). [`Async`] awaits them on the caller's runtime.
//! [`Blocking`] does each one to completion on the calling thread (the
//! sync pool, a condition variable), so every future it returns is ready
//! when first polled and a sync call drives the whole path with one poll
//! ([`block_now`]): no runtime, no thread hop.

use std::future::Future;
use std::pin::pin;
use std::sync::Arc;
use std::task::{Context, Poll, Wake, Waker};
use std::time::Duration;

use redis::Value;

use super::flight::{Flight, State};
use crate::backend::Op;
use crate::error::Result;
use crate::lock::{LockGuard, SyncLockGuard};
use crate::manager::CacheManager;

/// What the cache path waits on.
pub(crate) trait Drive: Sync {
    /// The cross-process lock of `lock = true`.
    type Guard: Send;

    fn manager(&self) -> &CacheManager;

    /// Runs one backend operation through the breaker.
    fn exec<'a>(&'a self, op: Op<'a>) -> impl Future<Output = Result<Value>> + Send + 'a;

    /// Waits until `flight`'s leader finishes or gives up.
    fn wait<'a>(&'a self, flight: &'a Flight) -> impl Future<Output = State> + Send + 'a;

    /// Takes the lock `name`, waiting at most `wait`.
    fn lock<'a>(
        &'a self,
        name: &'a str,
        ttl: Duration,
        wait: Duration,
    ) -> impl Future<Output = Result<Self::Guard>> + Send + 'a;

    /// Releases a lock this call took (an error is left to the TTL).
    fn release(&self, guard: Self::Guard) -> impl Future<Output = ()> + Send + '_;
}

/// Drives the cache path on the caller's runtime.
pub(crate) struct Async<'m>(pub(crate) &'m CacheManager);

impl Drive for Async<'_> {
    type Guard = LockGuard;

    fn manager(&self) -> &CacheManager {
        self.0
    }

    fn exec<'a>(&'a self, op: Op<'a>) -> impl Future<Output = Result<Value>> + Send + 'a {
        self.0.exec(op)
    }

    fn wait<'a>(&'a self, flight: &'a Flight) -> impl Future<Output = State> + Send + 'a {
        flight.wait()
    }

    fn lock<'a>(
        &'a self,
        name: &'a str,
        ttl: Duration,
        wait: Duration,
    ) -> impl Future<Output = Result<LockGuard>> + Send + 'a {
        self.0.lock(name, ttl, wait)
    }

    async fn release(&self, guard: LockGuard) {
        let _ = guard.release().await;
    }
}

/// Drives the cache path on the calling thread, blocking: every future is
/// ready when first polled.
pub(crate) struct Blocking<'m>(pub(crate) &'m CacheManager);

impl Drive for Blocking<'_> {
    type Guard = SyncLockGuard;

    fn manager(&self) -> &CacheManager {
        self.0
    }

    fn exec<'a>(&'a self, op: Op<'a>) -> impl Future<Output = Result<Value>> + Send + 'a {
        std::future::ready(self.0.exec_sync(op))
    }

    fn wait<'a>(&'a self, flight: &'a Flight) -> impl Future<Output = State> + Send + 'a {
        std::future::ready(flight.wait_sync())
    }

    fn lock<'a>(
        &'a self,
        name: &'a str,
        ttl: Duration,
        wait: Duration,
    ) -> impl Future<Output = Result<SyncLockGuard>> + Send + 'a {
        std::future::ready(self.0.lock_sync(name, ttl, wait))
    }

    fn release(&self, guard: SyncLockGuard) -> impl Future<Output = ()> + Send + '_ {
        let _ = guard.release();
        std::future::ready(())
    }
}

/// Runs a future driven by [`Blocking`] on this thread. It is ready at the
/// first poll, with a no-op waker; should it ever not be, this parks the
/// thread until it is woken (or for a millisecond at a time), so it still
/// completes instead of spinning or panicking.
pub(crate) fn block_now<F: Future>(fut: F) -> F::Output {
    let mut fut = pin!(fut);
    if let Poll::Ready(v) = fut.as_mut().poll(&mut Context::from_waker(Waker::noop())) {
        return v;
    }
    struct Unpark(std::thread::Thread);
    impl Wake for Unpark {
        fn wake(self: Arc<Self>) {
            self.0.unpark();
        }
    }
    let waker = Waker::from(Arc::new(Unpark(std::thread::current())));
    let mut cx = Context::from_waker(&waker);
    loop {
        if let Poll::Ready(v) = fut.as_mut().poll(&mut cx) {
            return v;
        }
        std::thread::park_timeout(Duration::from_millis(1));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_future_that_is_not_ready_at_once_still_completes() {
        let mut polls = 0;
        let fut = std::future::poll_fn(|cx| {
            polls += 1;
            if polls < 3 {
                cx.waker().wake_by_ref();
                Poll::Pending
            } else {
                Poll::Ready(polls)
            }
        });
        assert_eq!(block_now(fut), 3);
    }
}
