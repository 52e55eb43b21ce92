//! The two drivers of the one core.
//!
//! Every piece of logic that talks to the backend (the cache path, the
//! key-value operations, locks, sessions, counters, rate-limit checks,
//! pattern deletion) is written once, as async code generic over a
//! [`Drive`]: the few things it waits on. [`Async`] awaits them on the
//! caller's runtime. [`Blocking`] does each one to completion on the
//! calling thread (the sync pool, a condition variable, a sleep), so every
//! future it returns is ready when first polled and a blocking call drives
//! the whole path with one poll ([`block_now`]): no runtime, no thread hop.

use std::future::Future;
use std::pin::pin;
use std::sync::Arc;
use std::task::{Context, Poll, Wake, Waker};
use std::time::Duration;

use redis::Value;

use crate::backend::Op;
use crate::error::Result;
use crate::flight::{Flight, State};
use crate::manager::CacheManager;

/// What the core waits on.
pub(crate) trait Drive: Sync {
    /// Whether this driver blocks the calling thread (and its futures are
    /// ready at once).
    const BLOCKING: bool;

    fn manager(&self) -> &CacheManager;

    /// Runs one backend operation, bypassing the circuit breaker.
    fn io<'a>(&'a self, op: Op<'a>) -> impl Future<Output = Result<Value>> + Send + 'a;

    /// Runs one backend operation through the circuit breaker, recording
    /// its outcome.
    fn exec<'a>(&'a self, op: Op<'a>) -> impl Future<Output = Result<Value>> + Send + 'a {
        async move {
            let manager = self.manager();
            manager.admit()?;
            let r = self.io(op).await;
            manager.record(&r);
            r
        }
    }

    /// Waits until `flight`'s leader finishes or gives up.
    fn wait<'a>(&'a self, flight: &'a Flight) -> impl Future<Output = State> + Send + 'a;

    /// Pauses for `d` (a bounded backoff step).
    fn pause(&self, d: Duration) -> impl Future<Output = ()> + Send + '_;
}

/// Drives the core on the caller's runtime.
pub(crate) struct Async<'m>(pub(crate) &'m CacheManager);

impl Drive for Async<'_> {
    const BLOCKING: bool = false;

    #[inline]
    fn manager(&self) -> &CacheManager {
        self.0
    }

    #[inline]
    fn io<'a>(&'a self, op: Op<'a>) -> impl Future<Output = Result<Value>> + Send + 'a {
        self.0.backend().exec(op)
    }

    fn wait<'a>(&'a self, flight: &'a Flight) -> impl Future<Output = State> + Send + 'a {
        flight.wait()
    }

    fn pause(&self, d: Duration) -> impl Future<Output = ()> + Send + '_ {
        tokio::time::sleep(d)
    }
}

/// Drives the core on the calling thread, blocking: every future is ready
/// when first polled.
pub(crate) struct Blocking<'m>(pub(crate) &'m CacheManager);

impl Drive for Blocking<'_> {
    const BLOCKING: bool = true;

    #[inline]
    fn manager(&self) -> &CacheManager {
        self.0
    }

    #[inline]
    fn io<'a>(&'a self, op: Op<'a>) -> impl Future<Output = Result<Value>> + Send + 'a {
        std::future::ready(self.0.backend().exec_blocking(op))
    }

    fn wait<'a>(&'a self, flight: &'a Flight) -> impl Future<Output = State> + Send + 'a {
        std::future::ready(flight.wait_blocking())
    }

    fn pause(&self, d: Duration) -> impl Future<Output = ()> + Send + '_ {
        std::thread::sleep(d);
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
