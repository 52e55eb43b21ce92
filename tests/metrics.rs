//! The `metrics` feature, on the memory backend and on Redis: cached calls,
//! rate limits, the circuit breaker and lock waits are counted through the
//! `metrics` facade, labelled by prefix and function, never by key or value.
//! A small recorder below keeps what it is given in memory.
#![cfg(feature = "metrics")]

mod common;

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, Once};
use std::time::Duration;

use common::Env;
use forge_cache::{CacheManager, RateLimitExceeded, cache_result, rate_limit};
use metrics::{
    Counter, CounterFn, Gauge, Histogram, HistogramFn, Key, KeyName, Metadata, Recorder,
    SharedString, Unit,
};

/// Every series the library registered: `name{label=value,...}` with its
/// count (counters: the sum; histograms: how many samples).
static SERIES: Mutex<BTreeMap<String, Arc<Series>>> = Mutex::new(BTreeMap::new());

#[derive(Default)]
struct Series {
    total: AtomicU64,
}

impl CounterFn for Series {
    fn increment(&self, value: u64) {
        self.total.fetch_add(value, Ordering::Relaxed);
    }
    fn absolute(&self, value: u64) {
        self.total.store(value, Ordering::Relaxed);
    }
}

impl HistogramFn for Series {
    fn record(&self, value: f64) {
        assert!(value >= 0.0 && value.is_finite(), "bad sample {value}");
        self.total.fetch_add(1, Ordering::Relaxed);
    }
}

struct InMemory;

fn series(key: &Key) -> Arc<Series> {
    let mut labels: Vec<String> = key
        .labels()
        .map(|l| format!("{}={}", l.key(), l.value()))
        .collect();
    labels.sort();
    let id = format!("{}{{{}}}", key.name(), labels.join(","));
    SERIES.lock().unwrap().entry(id).or_default().clone()
}

impl Recorder for InMemory {
    fn describe_counter(&self, _: KeyName, _: Option<Unit>, _: SharedString) {}
    fn describe_gauge(&self, _: KeyName, _: Option<Unit>, _: SharedString) {}
    fn describe_histogram(&self, _: KeyName, _: Option<Unit>, _: SharedString) {}

    fn register_counter(&self, key: &Key, _: &Metadata<'_>) -> Counter {
        Counter::from_arc(series(key))
    }

    fn register_gauge(&self, _: &Key, _: &Metadata<'_>) -> Gauge {
        Gauge::noop()
    }

    fn register_histogram(&self, key: &Key, _: &Metadata<'_>) -> Histogram {
        Histogram::from_arc(series(key))
    }
}

fn install() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| metrics::set_global_recorder(InMemory).expect("one recorder"));
}

/// The sum over the series named `name` whose labels include `label`.
fn total(name: &str, label: &str) -> u64 {
    SERIES
        .lock()
        .unwrap()
        .iter()
        .filter(|(id, _)| id.starts_with(&format!("{name}{{")) && id.contains(label))
        .map(|(_, s)| s.total.load(Ordering::Relaxed))
        .sum()
}

#[cache_result(ttl = 60, key_prefix = "m_cache")]
async fn square(x: u64) -> u64 {
    x * x
}

/// Used only by the label test, so the counts above stay exact.
#[cache_result(ttl = 60, key_prefix = "m_labels")]
async fn cube(x: u64) -> u64 {
    x * x * x
}

#[rate_limit(max_requests = 1, window_seconds = 60, key_prefix = "m_rl")]
async fn once_a_minute() -> Result<(), RateLimitExceeded> {
    Ok(())
}

/// What one backend adds to the counters.
async fn counts_on(m: &CacheManager) {
    let before = |n: &str| total(n, "prefix=m_cache");
    let (hits, misses, stores, computed) = (
        before("forge_cache_hits_total"),
        before("forge_cache_misses_total"),
        before("forge_cache_stores_total"),
        before("forge_cache_compute_seconds"),
    );
    let refusals = total("forge_cache_rate_limit_refusals_total", "prefix=m_rl");
    m.scope(async {
        assert_eq!(square(3).await, 9);
        assert_eq!(square(3).await, 9);
        assert_eq!(square(4).await, 16);
        assert!(once_a_minute().await.is_ok());
        assert!(once_a_minute().await.is_err());
    })
    .await;
    assert_eq!(before("forge_cache_hits_total") - hits, 1);
    assert_eq!(before("forge_cache_misses_total") - misses, 2);
    assert_eq!(before("forge_cache_stores_total") - stores, 2);
    assert_eq!(before("forge_cache_compute_seconds") - computed, 2);
    assert_eq!(
        total("forge_cache_rate_limit_refusals_total", "prefix=m_rl") - refusals,
        1
    );

    let waits = |o: &str| total("forge_cache_lock_wait_seconds", &format!("outcome={o}"));
    let (acquired, timed_out) = (waits("acquired"), waits("timed_out"));
    let held = m
        .lock("m_lock", Duration::from_secs(30), Duration::from_secs(1))
        .await
        .unwrap();
    assert!(
        m.lock("m_lock", Duration::from_secs(30), Duration::from_millis(20))
            .await
            .is_err()
    );
    held.release().await.unwrap();
    assert_eq!(waits("acquired") - acquired, 1);
    assert_eq!(waits("timed_out") - timed_out, 1);
}

/// One test walks both backends in turn: the counters are global, and the
/// functions (so the labels) are the same on both.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cache_rate_limit_and_lock_events_are_counted_on_memory_and_redis() {
    install();
    counts_on(&Env::memory().manager).await;

    let mut env = Env::redis_with(|b| {
        b.socket_timeout(Duration::from_millis(300))
            .breaker_threshold(2)
            .breaker_cooldown(Duration::from_secs(60))
    });
    counts_on(&env.manager).await;

    // Redis gone: cached calls count errors, the rate limit a backend error
    // (and admits: on_error = allow), and the breaker opens once.
    let errors = total("forge_cache_errors_total", "prefix=m_cache");
    let backend = total("forge_cache_rate_limit_backend_errors_total", "prefix=m_rl");
    let opened = total("forge_cache_breaker_opened_total", "");
    env.server().stop();
    let m = env.manager.clone();
    m.scope(async {
        assert_eq!(square(5).await, 25);
        assert!(once_a_minute().await.is_ok());
        assert!(once_a_minute().await.is_ok());
    })
    .await;
    assert!(total("forge_cache_errors_total", "prefix=m_cache") > errors);
    assert!(total("forge_cache_rate_limit_backend_errors_total", "prefix=m_rl") >= backend + 2);
    assert_eq!(total("forge_cache_breaker_opened_total", "") - opened, 1);
}

/// Labels name code (prefix, function, limit name, outcome), never keys,
/// arguments or values.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn labels_never_carry_keys_or_values() {
    install();
    let env = Env::memory();
    env.manager
        .scope(async {
            assert_eq!(cube(123_456).await, 1_881_640_295_202_816);
        })
        .await;
    let ids: Vec<String> = SERIES.lock().unwrap().keys().cloned().collect();
    assert!(!ids.is_empty());
    for id in &ids {
        assert!(id.starts_with("forge_cache_"), "{id}");
        assert!(
            !id.contains("123456") && !id.contains("1881640295202816"),
            "{id}"
        );
        let labels = id.split_once('{').unwrap().1.trim_end_matches('}');
        for label in labels.split(',').filter(|l| !l.is_empty()) {
            let (k, _) = label.split_once('=').unwrap();
            assert!(
                ["prefix", "function", "name", "outcome"].contains(&k),
                "unexpected label {k} in {id}"
            );
        }
    }
}
