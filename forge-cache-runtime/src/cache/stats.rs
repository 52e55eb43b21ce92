//! Per-prefix counters of cached calls: atomics in each function's static
//! site, summed by prefix on demand.

use std::collections::BTreeMap;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use super::site::CacheSite;
use crate::manager::CacheManager;

/// The counters of one site. Updating one is a relaxed atomic add.
pub(crate) struct Counters {
    hits: AtomicU64,
    misses: AtomicU64,
    stores: AtomicU64,
    errors: AtomicU64,
    coalesced: AtomicU64,
    registered: AtomicBool,
}

/// Every site that has counted something, for [`CacheManager::stats`].
static SITES: Mutex<Vec<&'static CacheSite>> = Mutex::new(Vec::new());

pub(crate) use crate::telemetry::Event;

impl Counters {
    pub(crate) const fn new() -> Self {
        Counters {
            hits: AtomicU64::new(0),
            misses: AtomicU64::new(0),
            stores: AtomicU64::new(0),
            errors: AtomicU64::new(0),
            coalesced: AtomicU64::new(0),
            registered: AtomicBool::new(false),
        }
    }

    fn snapshot(&self) -> CacheCounters {
        CacheCounters {
            hits: self.hits.load(Ordering::Relaxed),
            misses: self.misses.load(Ordering::Relaxed),
            stores: self.stores.load(Ordering::Relaxed),
            errors: self.errors.load(Ordering::Relaxed),
            coalesced: self.coalesced.load(Ordering::Relaxed),
        }
    }
}

/// Counts `event` for `site`; registers the site on its first event.
#[inline]
pub(crate) fn count(site: &'static CacheSite, event: Event) {
    let c = &site.counters;
    let counter = match event {
        Event::Hit => &c.hits,
        Event::Miss => &c.misses,
        Event::Store => &c.stores,
        Event::Error => &c.errors,
        Event::Coalesced => &c.coalesced,
    };
    counter.fetch_add(1, Ordering::Relaxed);
    crate::scope::record(site.prefix(), site.name(), event);
    crate::telemetry::cache_event(site.prefix(), site.name(), event);
    if !c.registered.load(Ordering::Relaxed) && !c.registered.swap(true, Ordering::AcqRel) {
        SITES
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .push(site);
    }
}

/// Counters of the cached calls under one key prefix.
///
/// `hits` were served from the cache; `misses` did not find a value (the
/// function ran, or, for `coalesced` ones, another in-process call of the
/// same key ran it and shared the value); `stores` wrote a value; `errors`
/// counts backend failures, undecodable stored values and results that
/// could not be stored.
///
/// ```
/// use forge_cache_runtime::CacheCounters;
/// let c: CacheCounters = forge_cache_runtime::global().stats().prefix("products");
/// let lookups = c.hits + c.misses;
/// assert!(c.coalesced <= c.misses);
/// # let _ = lookups;
/// ```
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct CacheCounters {
    /// Values served from the cache.
    pub hits: u64,
    /// Calls that found no (usable) value.
    pub misses: u64,
    /// Values written.
    pub stores: u64,
    /// Backend, decode and encode failures.
    pub errors: u64,
    /// Misses answered by a concurrent call of the same key in this process
    /// (single-flight) instead of running the function.
    pub coalesced: u64,
}

impl CacheCounters {
    /// The counters of these events.
    pub(crate) fn of(events: &[Event]) -> Self {
        let mut c = CacheCounters::default();
        for e in events {
            *match e {
                Event::Hit => &mut c.hits,
                Event::Miss => &mut c.misses,
                Event::Store => &mut c.stores,
                Event::Error => &mut c.errors,
                Event::Coalesced => &mut c.coalesced,
            } += 1;
        }
        c
    }
}

impl std::ops::AddAssign for CacheCounters {
    fn add_assign(&mut self, o: Self) {
        self.hits += o.hits;
        self.misses += o.misses;
        self.stores += o.stores;
        self.errors += o.errors;
        self.coalesced += o.coalesced;
    }
}

/// A snapshot of [`CacheCounters`] per key prefix, from
/// [`CacheManager::stats`].
///
/// ```
/// let stats = forge_cache_runtime::global().stats();
/// for (prefix, c) in stats.iter() {
///     println!("{prefix}: {} hits, {} misses", c.hits, c.misses);
/// }
/// assert_eq!(stats.prefix("never-used").hits, 0);
/// ```
#[derive(Clone, Debug, Default)]
pub struct CacheStats {
    by_prefix: BTreeMap<&'static str, CacheCounters>,
}

impl CacheStats {
    /// The counters of one prefix (all zero if it has none).
    pub fn prefix(&self, prefix: &str) -> CacheCounters {
        self.by_prefix.get(prefix).copied().unwrap_or_default()
    }

    /// Every prefix with its counters, in prefix order.
    pub fn iter(&self) -> impl Iterator<Item = (&'static str, CacheCounters)> + '_ {
        self.by_prefix.iter().map(|(p, c)| (*p, *c))
    }

    /// The sum over all prefixes.
    pub fn total(&self) -> CacheCounters {
        let mut t = CacheCounters::default();
        for c in self.by_prefix.values() {
            t += *c;
        }
        t
    }
}

impl CacheManager {
    /// Hits, misses, stores and errors of `#[cache_result]` functions, per
    /// key prefix. Counting costs one relaxed atomic add per event; this
    /// snapshot sums the functions' counters.
    ///
    /// The counters live in the functions' static sites, so they count the
    /// calls of this process whichever manager served them.
    ///
    /// ```
    /// let stats = forge_cache_runtime::global().stats();
    /// let products = stats.prefix("products");
    /// println!("hit ratio: {:.2}", products.hits as f64 / (products.hits + products.misses).max(1) as f64);
    /// ```
    pub fn stats(&self) -> CacheStats {
        let sites = SITES
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let mut by_prefix = BTreeMap::<&'static str, CacheCounters>::new();
        for site in sites.iter() {
            *by_prefix.entry(site.prefix()).or_default() += site.counters.snapshot();
        }
        CacheStats { by_prefix }
    }
}
