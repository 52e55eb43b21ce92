//! A circuit breaker, so an outage costs one socket timeout per cooldown
//! instead of one per call; and a throttle for outage log lines.

use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// Opens after `threshold` consecutive backend failures; while open, calls
/// skip the backend for `cooldown`. After the cooldown, calls try again: one
/// success closes it, one failure opens it for another cooldown.
pub(crate) struct Breaker {
    threshold: u32,
    cooldown_ms: u64,
    epoch: Instant,
    failures: AtomicU32,
    /// Milliseconds since `epoch` until which the breaker is open; 0 = closed.
    open_until: AtomicU64,
}

impl Breaker {
    pub(crate) fn new(threshold: u32, cooldown: Duration) -> Self {
        Breaker {
            threshold,
            cooldown_ms: cooldown.as_millis().max(1) as u64,
            epoch: Instant::now(),
            failures: AtomicU32::new(0),
            open_until: AtomicU64::new(0),
        }
    }

    fn now_ms(&self) -> u64 {
        self.epoch.elapsed().as_millis() as u64 + 1
    }

    /// Whether a call may go to the backend now.
    #[inline]
    pub(crate) fn allow(&self) -> bool {
        let until = self.open_until.load(Ordering::Relaxed);
        until == 0 || self.now_ms() >= until
    }

    /// Whether the breaker is open right now.
    pub(crate) fn is_open(&self) -> bool {
        !self.allow()
    }

    #[inline]
    pub(crate) fn success(&self) {
        // Loads first: the common case writes nothing, so concurrent hits do
        // not fight over the cache line.
        if self.failures.load(Ordering::Relaxed) != 0 {
            self.failures.store(0, Ordering::Relaxed);
        }
        if self.open_until.load(Ordering::Relaxed) != 0 {
            self.open_until.store(0, Ordering::Relaxed);
            tracing::info!(target: "forge_cache", "circuit breaker closed: backend answers again");
        }
    }

    pub(crate) fn failure(&self) {
        if self.threshold == 0 {
            return;
        }
        let n = self.failures.fetch_add(1, Ordering::Relaxed) + 1;
        let was_open = self.open_until.load(Ordering::Relaxed) != 0;
        if n >= self.threshold || was_open {
            self.open_until
                .store(self.now_ms() + self.cooldown_ms, Ordering::Relaxed);
            if n == self.threshold && !was_open {
                crate::telemetry::breaker_opened();
                tracing::warn!(
                    target: "forge_cache",
                    failures = n,
                    cooldown_ms = self.cooldown_ms,
                    "circuit breaker open: skipping the backend during the cooldown"
                );
            }
        }
    }
}

/// Lets one log line through per interval and counts the rest.
pub(crate) struct LogThrottle {
    epoch: Instant,
    next_ms: AtomicU64,
    suppressed: AtomicU64,
}

impl LogThrottle {
    pub(crate) fn new() -> Self {
        LogThrottle {
            epoch: Instant::now(),
            next_ms: AtomicU64::new(0),
            suppressed: AtomicU64::new(0),
        }
    }

    /// `Some(n)` when a line may be logged now, `n` being how many were
    /// suppressed since the last one; `None` otherwise.
    pub(crate) fn permit(&self) -> Option<u64> {
        let now = self.epoch.elapsed().as_millis() as u64;
        let next = self.next_ms.load(Ordering::Relaxed);
        if now >= next
            && self
                .next_ms
                .compare_exchange(next, now + 1000, Ordering::Relaxed, Ordering::Relaxed)
                .is_ok()
        {
            Some(self.suppressed.swap(0, Ordering::Relaxed))
        } else {
            self.suppressed.fetch_add(1, Ordering::Relaxed);
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn opens_after_threshold_and_closes_on_success() {
        let b = Breaker::new(3, Duration::from_secs(60));
        b.failure();
        b.failure();
        assert!(b.allow());
        b.failure();
        assert!(!b.allow());
        b.success();
        assert!(b.allow());
    }

    #[test]
    fn threshold_zero_never_opens() {
        let b = Breaker::new(0, Duration::from_secs(60));
        for _ in 0..100 {
            b.failure();
        }
        assert!(b.allow());
    }

    #[test]
    fn throttle_lets_one_line_through_per_interval() {
        let t = LogThrottle::new();
        assert_eq!(t.permit(), Some(0));
        assert_eq!(t.permit(), None);
        assert_eq!(t.permit(), None);
    }
}
