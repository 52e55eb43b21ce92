//! Metrics through the [`metrics`](https://docs.rs/metrics) facade (feature
//! `metrics`), so any exporter (Prometheus, StatsD, ...) publishes them.
//! Without the feature every function here is empty and inlined away.
//!
//! Labels name the code, never the data: a key prefix, a function or limit
//! name, an outcome. Keys, arguments, values and passwords never appear.
//!
//! | name | kind | labels |
//! |---|---|---|
//! | `forge_cache_hits_total` | counter | `prefix`, `function` |
//! | `forge_cache_misses_total` | counter | `prefix`, `function` |
//! | `forge_cache_stores_total` | counter | `prefix`, `function` |
//! | `forge_cache_errors_total` | counter | `prefix`, `function` |
//! | `forge_cache_coalesced_total` | counter | `prefix`, `function` |
//! | `forge_cache_compute_seconds` | histogram | `prefix`, `function` |
//! | `forge_cache_rate_limit_refusals_total` | counter | `prefix`, `name` |
//! | `forge_cache_rate_limit_backend_errors_total` | counter | `prefix`, `name` |
//! | `forge_cache_breaker_opened_total` | counter | none |
//! | `forge_cache_lock_wait_seconds` | histogram | `outcome` (`acquired`, `timed_out`) |

#![cfg_attr(not(feature = "metrics"), allow(unused_variables))]

use std::time::Duration;

use std::borrow::Cow;

/// What happened to one cached call (the counters of
/// [`CacheCounters`](crate::CacheCounters)).
#[derive(Clone, Copy, Debug)]
pub(crate) enum Event {
    Hit,
    Miss,
    Store,
    Error,
    Coalesced,
}

/// One cache event of `site` (the counterpart of its
/// [`CacheCounters`](crate::CacheCounters)).
#[inline]
pub(crate) fn cache_event(prefix: &'static str, function: &'static str, event: Event) {
    #[cfg(feature = "metrics")]
    {
        let name = match event {
            Event::Hit => "forge_cache_hits_total",
            Event::Miss => "forge_cache_misses_total",
            Event::Store => "forge_cache_stores_total",
            Event::Error => "forge_cache_errors_total",
            Event::Coalesced => "forge_cache_coalesced_total",
        };
        ::metrics::counter!(name, "prefix" => prefix, "function" => function).increment(1);
    }
}

/// How long one run of `site`'s function took (misses and refreshes).
#[inline]
pub(crate) fn compute_time(prefix: &'static str, function: &'static str, took: Duration) {
    #[cfg(feature = "metrics")]
    ::metrics::histogram!(
        "forge_cache_compute_seconds",
        "prefix" => prefix,
        "function" => function
    )
    .record(took.as_secs_f64());
}

/// A rate limit refused a call.
#[inline]
// A `Cow` so that a static label reaches the exporter without a copy.
#[allow(clippy::ptr_arg)]
pub(crate) fn rate_limit_refused(prefix: &Cow<'static, str>, name: &Cow<'static, str>) {
    #[cfg(feature = "metrics")]
    ::metrics::counter!(
        "forge_cache_rate_limit_refusals_total",
        "prefix" => prefix.clone(),
        "name" => name.clone()
    )
    .increment(1);
}

/// A rate-limit check could not ask the backend.
#[inline]
// A `Cow` so that a static label reaches the exporter without a copy.
#[allow(clippy::ptr_arg)]
pub(crate) fn rate_limit_backend_error(prefix: &Cow<'static, str>, name: &Cow<'static, str>) {
    #[cfg(feature = "metrics")]
    ::metrics::counter!(
        "forge_cache_rate_limit_backend_errors_total",
        "prefix" => prefix.clone(),
        "name" => name.clone()
    )
    .increment(1);
}

/// The circuit breaker opened.
#[inline]
pub(crate) fn breaker_opened() {
    #[cfg(feature = "metrics")]
    ::metrics::counter!("forge_cache_breaker_opened_total").increment(1);
}

/// A bounded lock wait ended: the lock was `acquired`, or the wait timed
/// out.
#[inline]
pub(crate) fn lock_wait(waited: Duration, acquired: bool) {
    #[cfg(feature = "metrics")]
    ::metrics::histogram!(
        "forge_cache_lock_wait_seconds",
        "outcome" => if acquired { "acquired" } else { "timed_out" }
    )
    .record(waited.as_secs_f64());
}
