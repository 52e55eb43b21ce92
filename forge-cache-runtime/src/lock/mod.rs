//! Distributed locks: `SET NX PX` with a random owner token, released and
//! extended only by their owner (one atomic script each), with a fencing
//! token per lock name and bounded waits.
//!
//! Keys: `[<namespace>:]lock:{<name>}` holds the owner token and
//! `[<namespace>:]lock:{<name>}:fence` the last fencing token. `<name>` is
//! escaped with [`push_component`], so a name cannot reach other keys; the
//! braces make it the Redis Cluster hash tag, so both keys live in one slot.
//! Both keys always have a TTL: the lock's own, and for the fence
//! `max(lock TTL, 7 days)`, refreshed on each acquisition.

mod guard;
mod guide;
mod script;

pub(crate) use script::arg_duration;

use std::future::Future;
use std::pin::pin;
use std::sync::mpsc;
use std::task::Poll;
use std::time::{Duration, Instant};

pub(crate) use guard::Guard;
pub use guard::{BlockingLockGuard, LockGuard};
#[cfg(test)]
pub(crate) use guide::HeldLocks;

use crate::backend::{Arg, Op, reply};
use crate::block::Manager;
use crate::drive::{Async, Drive, block_now};
use crate::error::{Error, Result};
use crate::key::{join_key, push_component};
use crate::manager::CacheManager;
use crate::random;
use guard::Held;
use script::{ACQUIRE, EXTEND, RELEASE};

/// The least TTL of a lock's fencing counter, refreshed on each acquisition.
const FENCE_MIN_TTL: Duration = Duration::from_secs(7 * 24 * 60 * 60);
/// The first pause between attempts while waiting for a lock.
const FIRST_BACKOFF: Duration = Duration::from_millis(4);
/// The longest pause between attempts (before jitter).
const MAX_BACKOFF: Duration = Duration::from_millis(128);

/// A TTL as a script argument: whole milliseconds, at least 1.
pub(crate) fn millis(d: Duration) -> i64 {
    // Capped so that Redis can still add it to the current time.
    d.as_millis().clamp(1, (i64::MAX / 2) as u128) as i64
}

/// One acquisition attempt: the keys and a fresh owner token.
struct Attempt {
    held: Held,
    fence_key: String,
}

impl Attempt {
    fn new(manager: &CacheManager, name: &str) -> Result<Self> {
        if name.is_empty() {
            return Err(Error::InvalidName {
                what: "lock name",
                reason: "must not be empty",
            });
        }
        let mut tag = String::with_capacity(name.len() + 2);
        tag.push('{');
        push_component(&mut tag, &name);
        tag.push('}');
        let ns = manager.settings().namespace();
        Ok(Attempt {
            held: Held {
                name: name.to_owned(),
                key: join_key(ns, &["lock", &tag]),
                token: random::random_id()?,
                fence: 0,
            },
            fence_key: join_key(ns, &["lock", &tag, "fence"]),
        })
    }

    fn op_args(&self, ttl: Duration) -> [Arg<'_>; 3] {
        [
            Arg::Bytes(self.held.token.as_bytes()),
            Arg::Int(millis(ttl)),
            Arg::Int(millis(ttl.max(FENCE_MIN_TTL))),
        ]
    }

    /// The held lock, if the acquire script returned a fencing token.
    fn finish(mut self, fence: i64) -> Option<Held> {
        if fence <= 0 {
            tracing::trace!(target: "forge_cache", lock = %self.held.name, "lock busy");
            return None;
        }
        tracing::debug!(target: "forge_cache", lock = %self.held.name, fencing_token = fence, "lock acquired");
        self.held.fence = fence as u64;
        Some(self.held)
    }
}

/// Exponential backoff with jitter, bounded by a deadline.
struct Backoff {
    /// `None` when `now + wait` does not fit in an `Instant` (a wait of
    /// centuries, e.g. `Duration::MAX`).
    deadline: Option<Instant>,
    step: Duration,
    started: Instant,
}

impl Backoff {
    fn new(wait: Duration) -> Self {
        let started = Instant::now();
        Backoff {
            deadline: started.checked_add(wait),
            step: FIRST_BACKOFF,
            started,
        }
    }

    /// How long to pause before the next attempt, `None` once the deadline
    /// has passed. The pause is a random point in `[step/2, step]`, never
    /// past the deadline, so the last attempt happens at the deadline.
    fn next_pause(&mut self) -> Option<Duration> {
        let left = match self.deadline {
            Some(deadline) => deadline.checked_duration_since(Instant::now())?,
            None => Duration::MAX,
        };
        if left.is_zero() {
            return None;
        }
        let step = self.step;
        self.step = (step * 2).min(MAX_BACKOFF);
        let half = step / 2;
        let jitter = Duration::from_micros(random::below(half.as_micros() as u64 + 1));
        Some((half + jitter).min(left))
    }
}

/// A bounded wait ended with the lock: recorded (and logged if it waited).
fn waited(name: &str, backoff: &Backoff) {
    let waited = backoff.started.elapsed();
    crate::telemetry::lock_wait(waited, true);
    if backoff.step > FIRST_BACKOFF {
        tracing::debug!(target: "forge_cache", lock = name, waited_ms = waited.as_millis() as u64, "lock acquired after waiting");
    }
}

fn timed_out(name: &str, wait: Duration, backoff: &Backoff) -> Error {
    crate::telemetry::lock_wait(backoff.started.elapsed(), false);
    tracing::debug!(target: "forge_cache", lock = name, ?wait, "lock wait timed out");
    Error::LockTimeout {
        name: name.to_owned(),
        waited: wait,
    }
}

/// One attempt to take the lock `name` for `ttl`.
pub(crate) async fn try_acquire<D: Drive>(
    d: &D,
    name: &str,
    ttl: Duration,
) -> Result<Option<Held>> {
    let attempt = Attempt::new(d.manager(), name)?;
    let fence = {
        let keys = [attempt.held.key.as_str(), attempt.fence_key.as_str()];
        let args = attempt.op_args(ttl);
        reply::<i64>(d.exec(Op::Script(&ACQUIRE, &keys, &args)).await?)?
    };
    Ok(attempt.finish(fence))
}

/// Takes the lock `name` for `ttl`, waiting at most `wait` (bounded
/// backoff with jitter).
pub(crate) async fn acquire<D: Drive>(
    d: &D,
    name: &str,
    ttl: Duration,
    wait: Duration,
) -> Result<Held> {
    let mut backoff = Backoff::new(wait);
    loop {
        if let Some(held) = try_acquire(d, name, ttl).await? {
            waited(name, &backoff);
            return Ok(held);
        }
        match backoff.next_pause() {
            Some(pause) => d.pause(pause).await,
            None => return Err(timed_out(name, wait, &backoff)),
        }
    }
}

/// [`acquire`] for the cache path (`lock = true`): a guard that releases
/// the lock if the call is dropped before [`unlock`].
pub(crate) async fn lock<D: Drive>(
    d: &D,
    name: &str,
    ttl: Duration,
    wait: Duration,
) -> Result<Guard> {
    let held = acquire(d, name, ttl, wait).await?;
    Ok(Guard::new(d.manager().clone(), held, D::BLOCKING))
}

/// Releases a guard of [`lock`]; an error is left to the lock's TTL.
pub(crate) async fn unlock<D: Drive>(d: &D, mut guard: Guard) {
    let _ = release(d, guard.disarm()).await;
}

/// Releases `held` if it is still ours (one owner-checked script).
pub(crate) async fn release<D: Drive>(d: &D, held: &Held) -> Result<bool> {
    let keys = [held.key.as_str()];
    let args = [Arg::Bytes(held.token.as_bytes())];
    Ok(reply::<i64>(d.exec(Op::Script(&RELEASE, &keys, &args)).await?)? == 1)
}

/// Sets `held`'s remaining TTL to `ttl` if it is still ours.
pub(crate) async fn extend<D: Drive>(d: &D, held: &Held, ttl: Duration) -> Result<bool> {
    let keys = [held.key.as_str()];
    let args = [Arg::Bytes(held.token.as_bytes()), Arg::Int(millis(ttl))];
    Ok(reply::<i64>(d.exec(Op::Script(&EXTEND, &keys, &args)).await?)? == 1)
}

/// Handles one watchdog extension; `false` when the lock is lost for good.
fn watchdog_tick(manager: &CacheManager, held: &Held, extended: Result<bool>) -> bool {
    match extended {
        Ok(true) => true,
        Ok(false) => {
            tracing::warn!(
                target: "forge_cache",
                lock = %held.name,
                fencing_token = held.fence,
                "lock lost while its work was running (its TTL ran out); \
                 another holder may be running too: rely on the fencing token"
            );
            false
        }
        Err(e) => {
            // Try again next period: two more chances before the TTL ends.
            manager.warn_failure("could not extend a lock; retrying", &e);
            true
        }
    }
}

/// The watchdog of the async `with_lock`: extends `held` to `ttl` every
/// `ttl / 3`; never completes while the lock is held (it is dropped with
/// the work).
async fn keep_extended(d: &Async<'_>, held: &Held, ttl: Duration) {
    let period = (ttl / 3).max(Duration::from_millis(1));
    loop {
        d.pause(period).await;
        if !watchdog_tick(d.manager(), held, extend(d, held, ttl).await) {
            return;
        }
    }
}

fn release_or_log(manager: &CacheManager, released: Result<bool>) {
    if let Err(e) = released {
        manager.warn_failure("could not release a lock; its TTL will free it", &e);
    }
}

impl CacheManager {
    /// Takes the lock `name` for `ttl` if it is free, without waiting:
    /// `Ok(None)` when someone else holds it. Errors when the backend fails
    /// (a lock never "fails open").
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")] async fn main() -> forge_cache_runtime::Result<()> {
    /// use std::time::Duration;
    /// use forge_cache_runtime::{CacheManager, RedisSettings};
    ///
    /// let cache = CacheManager::new(RedisSettings::memory())?;
    /// let guard = cache.try_lock("payment:42", Duration::from_secs(10)).await?;
    /// assert!(guard.is_some());
    /// assert!(cache.try_lock("payment:42", Duration::from_secs(10)).await?.is_none());
    /// # Ok(()) }
    /// ```
    pub async fn try_lock(&self, name: &str, ttl: Duration) -> Result<Option<LockGuard>> {
        let held = try_acquire(&Async(self), name, ttl).await?;
        Ok(held.map(|held| LockGuard(Guard::new(self.clone(), held, false))))
    }

    /// Takes the lock `name` for `ttl`, waiting at most `wait` for the
    /// current holder: attempts are spaced by exponential backoff with
    /// jitter (4 ms doubling to 128 ms), the last one at the deadline. When
    /// the wait runs out, [`Error::LockTimeout`]. A backend error ends the
    /// wait at once and is returned.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")] async fn main() -> forge_cache_runtime::Result<()> {
    /// use std::time::Duration;
    /// use forge_cache_runtime::{CacheManager, Error, RedisSettings};
    ///
    /// let cache = CacheManager::new(RedisSettings::memory())?;
    /// let held = cache.lock("report", Duration::from_secs(30), Duration::from_secs(1)).await?;
    /// let second = cache.lock("report", Duration::from_secs(30), Duration::from_millis(50)).await;
    /// assert!(matches!(second, Err(Error::LockTimeout { .. })));
    /// held.release().await?;
    /// # Ok(()) }
    /// ```
    pub async fn lock(&self, name: &str, ttl: Duration, wait: Duration) -> Result<LockGuard> {
        let held = acquire(&Async(self), name, ttl, wait).await?;
        Ok(LockGuard(Guard::new(self.clone(), held, false)))
    }

    /// Runs `work` under the lock `name`: takes it (waiting at most `wait`,
    /// as [`lock`](Self::lock)), keeps extending it to `ttl` every `ttl / 3`
    /// while `work` runs, then releases it and returns `work`'s output.
    /// `work` gets the fencing token.
    ///
    /// If the lock is lost anyway (the backend was unreachable for a whole
    /// TTL), `work` is not interrupted (stopping it halfway could do more
    /// harm); a warning is logged, and the fencing token is what keeps the
    /// protected resource safe. If this future is dropped, the lock is
    /// released in the background.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")] async fn main() -> forge_cache_runtime::Result<()> {
    /// use std::time::Duration;
    /// use forge_cache_runtime::{CacheManager, RedisSettings};
    ///
    /// let cache = CacheManager::new(RedisSettings::memory())?;
    /// let total = cache
    ///     .with_lock("invoice:7", Duration::from_secs(10), Duration::from_secs(2), |fence| async move {
    ///         // e.g. UPDATE invoices SET ..., fence = $fence WHERE id = 7 AND fence < $fence
    ///         assert!(fence > 0);
    ///         40 + 2
    ///     })
    ///     .await?;
    /// assert_eq!(total, 42);
    /// # Ok(()) }
    /// ```
    pub async fn with_lock<F, Fut, T>(
        &self,
        name: &str,
        ttl: Duration,
        wait: Duration,
        work: F,
    ) -> Result<T>
    where
        F: FnOnce(u64) -> Fut,
        Fut: Future<Output = T>,
    {
        let guard = self.lock(name, ttl, wait).await?;
        let out = {
            let drive = Async(self);
            let mut work = pin!(work(guard.fencing_token()));
            let mut watchdog = pin!(keep_extended(&drive, guard.0.held(), ttl));
            let mut watching = true;
            std::future::poll_fn(|cx| {
                if let Poll::Ready(out) = work.as_mut().poll(cx) {
                    return Poll::Ready(out);
                }
                if watching && watchdog.as_mut().poll(cx).is_ready() {
                    watching = false;
                }
                Poll::Pending
            })
            .await
        };
        release_or_log(self, guard.release().await);
        Ok(out)
    }
}

impl Manager<'_> {
    /// Blocking form of [`CacheManager::try_lock`].
    ///
    /// ```
    /// # let cache = forge_cache_runtime::CacheManager::new(forge_cache_runtime::RedisSettings::memory())?;
    /// let guard = cache.blocking().try_lock("payment:42", std::time::Duration::from_secs(10))?;
    /// assert!(guard.is_some());
    /// # Ok::<(), forge_cache_runtime::Error>(())
    /// ```
    pub fn try_lock(&self, name: &str, ttl: Duration) -> Result<Option<BlockingLockGuard>> {
        let held = block_now(try_acquire(&self.drive(), name, ttl))?;
        Ok(held.map(|held| BlockingLockGuard(Guard::new(self.manager().clone(), held, true))))
    }

    /// Blocking form of [`CacheManager::lock`]; pauses the thread between
    /// attempts.
    ///
    /// ```
    /// # let cache = forge_cache_runtime::CacheManager::new(forge_cache_runtime::RedisSettings::memory())?;
    /// use std::time::Duration;
    /// let guard = cache.blocking().lock("report", Duration::from_secs(30), Duration::from_secs(1))?;
    /// guard.release()?;
    /// # Ok::<(), forge_cache_runtime::Error>(())
    /// ```
    pub fn lock(&self, name: &str, ttl: Duration, wait: Duration) -> Result<BlockingLockGuard> {
        let held = block_now(acquire(&self.drive(), name, ttl, wait))?;
        Ok(BlockingLockGuard(Guard::new(
            self.manager().clone(),
            held,
            true,
        )))
    }

    /// Blocking form of [`CacheManager::with_lock`]: a helper thread
    /// extends the lock while `work` runs on the calling thread.
    ///
    /// ```
    /// # let cache = forge_cache_runtime::CacheManager::new(forge_cache_runtime::RedisSettings::memory())?;
    /// use std::time::Duration;
    /// let rows = cache.blocking().with_lock("nightly", Duration::from_secs(10), Duration::from_secs(1), |_fence| 7)?;
    /// assert_eq!(rows, 7);
    /// # Ok::<(), forge_cache_runtime::Error>(())
    /// ```
    pub fn with_lock<T>(
        &self,
        name: &str,
        ttl: Duration,
        wait: Duration,
        work: impl FnOnce(u64) -> T,
    ) -> Result<T> {
        let guard = self.lock(name, ttl, wait)?;
        let (stop, stopped) = mpsc::channel::<()>();
        let out = std::thread::scope(|s| {
            let held = guard.0.held();
            let drive = self.drive();
            s.spawn(move || {
                // Each pause of the watchdog is a wait for the stop signal.
                let period = (ttl / 3).max(Duration::from_millis(1));
                while let Err(mpsc::RecvTimeoutError::Timeout) = stopped.recv_timeout(period) {
                    let extended = block_now(extend(&drive, held, ttl));
                    if !watchdog_tick(drive.manager(), held, extended) {
                        return;
                    }
                }
            });
            let stop = stop; // dropped on return or unwind: the watchdog ends
            let out = work(guard.fencing_token());
            drop(stop);
            out
        });
        release_or_log(self.manager(), guard.release());
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_to_the_cap_and_stops_at_the_deadline() {
        let mut b = Backoff::new(Duration::from_secs(60));
        let pauses: Vec<Duration> = (0..8).map(|_| b.next_pause().unwrap()).collect();
        for (i, p) in pauses.iter().enumerate() {
            let step = (FIRST_BACKOFF * 2u32.pow(i as u32)).min(MAX_BACKOFF);
            assert!(*p >= step / 2 && *p <= step, "pause {i}: {p:?}");
        }
        let mut done = Backoff::new(Duration::ZERO);
        assert_eq!(done.next_pause(), None);
        let mut forever = Backoff::new(Duration::MAX);
        assert!(forever.next_pause().unwrap() <= FIRST_BACKOFF);
    }
}
