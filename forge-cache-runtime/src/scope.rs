//! Scopes that change what cached calls and rate-limit checks do, for the
//! code they run: [`bypass`] (the cache is neither read nor written),
//! `refresh` (the next cached call recomputes and stores, behind the
//! generated `<fn>_refresh`) and the testing scope that also turns rate
//! limits off.
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
/// Flag: the next cached call recomputes and stores (consumed by it).
pub(crate) const REFRESH_NEXT: u8 = 4;
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

/// What the next cached call on this thread does: `CACHE_OFF`,
/// `REFRESH_NEXT` (consumed here) or neither.
pub(crate) fn take_cache_mode() -> u8 {
    FLAGS.with(|f| {
        let bits = f.get();
        if bits & REFRESH_NEXT != 0 {
            f.set(bits & !REFRESH_NEXT);
        }
        bits & (CACHE_OFF | REFRESH_NEXT)
    })
}

/// Runs `f` with `flags` added to the scope; returns the result and
/// whether the `REFRESH_NEXT` this scope added was consumed.
fn with_flags<R>(
    flags: u8,
    recording: Option<&Arc<Recording>>,
    f: impl FnOnce() -> R,
) -> (R, bool) {
    // Restores the outer flags, even when `f` unwinds. A `REFRESH_NEXT`
    // of the outer scope consumed inside stays consumed.
    struct Restore {
        outer: u8,
        added: u8,
    }
    impl Drop for Restore {
        fn drop(&mut self) {
            if self.added & RECORDING != 0 {
                RECORDINGS.with(|r| r.borrow_mut().pop());
            }
            FLAGS.with(|c| {
                let mut outer = self.outer;
                if c.get() & REFRESH_NEXT == 0 && self.added & REFRESH_NEXT == 0 {
                    outer &= !REFRESH_NEXT;
                }
                c.set(outer);
            });
        }
    }
    let flags = match recording {
        Some(rec) => {
            RECORDINGS.with(|r| r.borrow_mut().push(rec.clone()));
            flags | RECORDING
        }
        None => flags,
    };
    let outer = FLAGS.with(|c| c.replace(c.get() | flags));
    let restore = Restore {
        outer,
        added: flags,
    };
    let out = f();
    let consumed = flags & REFRESH_NEXT != 0 && !has(REFRESH_NEXT);
    drop(restore);
    (out, consumed)
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
        let (poll, consumed) = with_flags(*this.flags, this.recording.as_ref(), || inner.poll(cx));
        if consumed {
            *this.flags &= !REFRESH_NEXT;
        }
        poll
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
    with_flags(flags, None, f).0
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
    with_flags(0, Some(recording), f).0
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

/// Behind the generated `<fn>_refresh`: the first cached call `fut` makes
/// skips the read, recomputes and stores its result.
pub fn refresh<F: Future>(fut: F) -> Scoped<F> {
    scoped(REFRESH_NEXT, fut)
}

/// Blocking form of [`refresh`].
pub fn refresh_blocking<R>(f: impl FnOnce() -> R) -> R {
    scoped_blocking(REFRESH_NEXT, f)
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
    fn refresh_is_consumed_by_the_first_call_only() {
        refresh_blocking(|| {
            assert_eq!(take_cache_mode(), REFRESH_NEXT);
            assert_eq!(take_cache_mode(), 0);
        });
    }

    #[test]
    fn a_panic_in_a_scope_restores_the_flags() {
        let _ = std::panic::catch_unwind(|| bypass_blocking(|| panic!("boom")));
        assert!(!has(CACHE_OFF));
    }
}
