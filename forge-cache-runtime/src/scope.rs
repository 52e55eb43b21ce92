//! Scopes that change what cached calls and rate-limit checks do, for the
//! code they run: [`bypass`] (the cache is neither read nor written) and
//! the testing scopes (rate limits off, events recorded).
//!
//! A scope is a thread-local set of flags, set while its future is polled
//! (or its closure runs) and restored after, so it covers exactly the code
//! it wraps, on any runtime and across `.await`s. Work the code spawns onto
//! other tasks or threads is not covered: wrap that work too.

use std::cell::{Cell, RefCell};
use std::collections::BTreeMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};

use crate::telemetry::Event;

/// Flag: cached calls neither read nor write the cache.
pub(crate) const CACHE_OFF: u8 = 1;
/// Flag: rate-limit checks admit without counting.
pub(crate) const RATE_LIMIT_OFF: u8 = 2;
/// Flag: cache events are also recorded in the innermost [`Recording`].
const RECORDING: u8 = 8;

thread_local! {
    static FLAGS: Cell<u8> = const { Cell::new(0) };
    static RECORDINGS: RefCell<Vec<Arc<Recording>>> = const { RefCell::new(Vec::new()) };
}

/// The cache events of one recording scope (`testing::record`), per
/// function (prefix, name).
#[derive(Default)]
pub(crate) struct Recording {
    pub(crate) events: Mutex<BTreeMap<(&'static str, &'static str), Vec<Event>>>,
}

/// Records `event` of a function in the innermost recording scope, if any.
/// Outside one this is a thread-local read.
#[inline]
pub(crate) fn record(prefix: &'static str, name: &'static str, event: Event) {
    if !has(RECORDING) {
        return;
    }
    RECORDINGS.with(|r| {
        if let Some(rec) = r.borrow().last() {
            rec.events
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner)
                .entry((prefix, name))
                .or_default()
                .push(event);
        }
    });
}

/// Whether the current scope has `flag`.
pub(crate) fn has(flag: u8) -> bool {
    FLAGS.with(|f| f.get() & flag != 0)
}

/// Runs `f` with `flags` (and `recording`) added to the scope, restoring
/// the outer scope after, even when `f` unwinds.
fn with_flags<R>(flags: u8, recording: Option<&Arc<Recording>>, f: impl FnOnce() -> R) -> R {
    struct Restore {
        outer: u8,
        recorded: bool,
    }
    impl Drop for Restore {
        fn drop(&mut self) {
            if self.recorded {
                RECORDINGS.with(|r| r.borrow_mut().pop());
            }
            FLAGS.with(|c| c.set(self.outer));
        }
    }
    let mut flags = flags;
    if let Some(rec) = recording {
        RECORDINGS.with(|r| r.borrow_mut().push(rec.clone()));
        flags |= RECORDING;
    }
    let _restore = Restore {
        outer: FLAGS.with(|c| c.replace(c.get() | flags)),
        recorded: recording.is_some(),
    };
    f()
}

pin_project_lite::pin_project! {
    /// A future run in a scope: see [`bypass`].
    #[must_use = "futures do nothing unless awaited"]
    pub struct Scoped<F> {
        flags: u8,
        recording: Option<Arc<Recording>>,
        #[pin]
        inner: F,
    }
}

impl<F: Future> Future for Scoped<F> {
    type Output = F::Output;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<F::Output> {
        let this = self.project();
        let inner = this.inner;
        with_flags(*this.flags, this.recording.as_ref(), || inner.poll(cx))
    }
}

pub(crate) fn scoped<F: Future>(flags: u8, inner: F) -> Scoped<F> {
    Scoped {
        flags,
        recording: None,
        inner,
    }
}

pub(crate) fn scoped_blocking<R>(flags: u8, f: impl FnOnce() -> R) -> R {
    with_flags(flags, None, f)
}

/// `inner`, recording the cache events it causes in `recording`.
pub(crate) fn recorded<F: Future>(recording: Arc<Recording>, inner: F) -> Scoped<F> {
    Scoped {
        flags: 0,
        recording: Some(recording),
        inner,
    }
}

/// Blocking form of [`recorded`].
pub(crate) fn recorded_blocking<R>(recording: &Arc<Recording>, f: impl FnOnce() -> R) -> R {
    with_flags(0, Some(recording), f)
}

/// Runs `fut` with the cache bypassed: every `#[cache_result]` function it
/// calls runs its body, and nothing is read from or written to the cache.
/// Explicit operations (`<fn>_invalidate`, `CacheManager::set`, ...) and
/// rate limits work as usual.
///
/// The scope covers the code `fut` runs, across `.await`s, on any runtime;
/// not tasks it spawns (wrap those too). For sync code use
/// [`blocking::bypass`](crate::blocking::bypass).
///
/// ```
/// use forge_cache_runtime::bypass;
/// # async fn load() -> u32 { 1 }
/// # async fn run() {
/// // e.g. an admin view that must see the database, not the cache
/// let fresh = bypass(async { load().await }).await;
/// # let _ = fresh;
/// # }
/// ```
pub fn bypass<F: Future>(fut: F) -> Scoped<F> {
    scoped(CACHE_OFF, fut)
}

/// Blocking form of [`bypass`]: runs `f` with the cache bypassed.
///
/// ```
/// use forge_cache_runtime::blocking;
/// let n = blocking::bypass(|| 1 + 1);
/// assert_eq!(n, 2);
/// ```
pub fn bypass_blocking<R>(f: impl FnOnce() -> R) -> R {
    scoped_blocking(CACHE_OFF, f)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scopes_nest_and_restore() {
        assert!(!has(CACHE_OFF));
        bypass_blocking(|| {
            assert!(has(CACHE_OFF));
            scoped_blocking(RATE_LIMIT_OFF, || {
                assert!(has(CACHE_OFF) && has(RATE_LIMIT_OFF));
            });
            assert!(!has(RATE_LIMIT_OFF));
        });
        assert!(!has(CACHE_OFF));
    }

    #[test]
    fn a_panic_in_a_scope_restores_the_flags() {
        let _ = std::panic::catch_unwind(|| bypass_blocking(|| panic!("boom")));
        assert!(!has(CACHE_OFF));
    }
}
