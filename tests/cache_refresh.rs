//! Stampede options of `#[cache_result]` on every backend: `stale_ttl`
//! serves the previous value while one caller refreshes it (and when the
//! refresh fails); `early_refresh` (XFetch) replaces values before they
//! expire, so a steady load never sees a miss after the first.

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use common::{Env, eventually};
use forge_cache::{CacheManager, cache_result};
use tokio::sync::Semaphore;

type Calls = AtomicUsize;

fn runs(calls: &Calls) -> usize {
    calls.load(Ordering::SeqCst)
}

/// Returns how many times it ran; every run after the first waits for a
/// permit from `gate`.
#[cache_result(ttl = 1, stale_ttl = 60, key = "t_stale:{x}", skip(calls, gate))]
async fn versioned(calls: Arc<Calls>, gate: Arc<Semaphore>, x: u32) -> u32 {
    let n = calls.fetch_add(1, Ordering::SeqCst) + 1;
    if n > 1 {
        gate.acquire().await.unwrap().forget();
    }
    n as u32 + x
}

/// Polls until `key`'s fresh second has passed (only the stale minute is
/// left of its TTL).
async fn until_stale(m: &CacheManager, key: &str) {
    assert!(
        eventually(Duration::from_secs(5), async || m
            .ttl(key)
            .await
            .unwrap()
            .is_some_and(|t| t < Duration::from_secs(60)))
        .await,
        "{key} should turn stale after 1 s"
    );
}

async fn stale_value_is_served_while_one_caller_refreshes(env: Env) {
    let m = env.manager.clone();
    let calls = Arc::new(Calls::new(0));
    let gate = Arc::new(Semaphore::new(0));
    let call = |m: CacheManager| {
        let (calls, gate) = (calls.clone(), gate.clone());
        async move { m.scope(versioned(calls, gate, 0)).await }
    };
    assert_eq!(call(m.clone()).await, 1);
    until_stale(&m, "t_stale:0").await;
    // The first caller after the value turned stale refreshes it...
    let refresher = tokio::spawn(call(m.clone()));
    assert!(eventually(Duration::from_secs(5), async || runs(&calls) == 2).await);
    // ...while every other caller, here and in another process, gets the
    // stale value at once.
    assert_eq!(call(m.clone()).await, 1);
    assert_eq!(call(env.second_manager()).await, 1);
    gate.add_permits(1);
    assert_eq!(refresher.await.unwrap(), 2);
    assert_eq!(call(m.clone()).await, 2);
    assert_eq!(runs(&calls), 2);
}

#[cache_result(ttl = 1, stale_ttl = 60, key = "t_stale_err:{x}", skip(calls, failing))]
async fn flaky(calls: &Calls, failing: &AtomicBool, x: u32) -> Result<usize, String> {
    let n = calls.fetch_add(1, Ordering::SeqCst) + 1;
    if failing.load(Ordering::SeqCst) {
        return Err("database down".into());
    }
    Ok(n + x as usize)
}

async fn stale_value_is_served_when_the_refresh_fails(env: Env) {
    let m = &env.manager;
    let calls = Calls::new(0);
    let failing = AtomicBool::new(false);
    m.scope(async {
        assert_eq!(flaky(&calls, &failing, 0).await, Ok(1));
        until_stale(m, "t_stale_err:0").await;
        failing.store(true, Ordering::SeqCst);
        // The refresh fails: the stale value is served instead of the error.
        assert_eq!(flaky(&calls, &failing, 0).await, Ok(1));
        assert_eq!(runs(&calls), 2);
        failing.store(false, Ordering::SeqCst);
        // Once the failed refresh's claim expires, a caller refreshes.
        assert!(
            eventually(Duration::from_secs(5), async || flaky(&calls, &failing, 0)
                .await
                == Ok(3))
            .await
        );
    })
    .await;
}

/// Without `stale_ttl`, an expired value is gone: the call runs.
#[cache_result(ttl = 1, key = "t_no_stale:{x}", skip(calls))]
async fn plain(calls: &Calls, x: u32) -> Result<u32, String> {
    calls.fetch_add(1, Ordering::SeqCst);
    Err(format!("fails {x}"))
}

async fn errors_without_stale_ttl_are_returned(env: Env) {
    let calls = Calls::new(0);
    env.manager
        .scope(async {
            assert!(plain(&calls, 1).await.is_err());
            assert!(plain(&calls, 1).await.is_err());
        })
        .await;
    assert_eq!(runs(&calls), 2);
}

on_every_backend!(
    stale_value_is_served_while_one_caller_refreshes,
    stale_value_is_served_when_the_refresh_fails,
    errors_without_stale_ttl_are_returned,
);

/// Steady load across several expiries: 4 callers (on two managers when
/// on Redis: two processes) every 5 ms for 2.5 s, on a 1 s TTL with a 100 ms
/// computation. Returns how many times the function ran.
async fn steady_load<F, Fut>(managers: [CacheManager; 2], call: F) -> usize
where
    F: Fn(Arc<Calls>) -> Fut + Clone + Send + 'static,
    Fut: std::future::Future<Output = u64> + Send,
{
    let calls = Arc::new(Calls::new(0));
    // Warm up: the one miss.
    managers[0].scope(call(calls.clone())).await;
    let started = Instant::now();
    let mut tasks = tokio::task::JoinSet::new();
    for i in 0..4 {
        let (m, call, calls) = (managers[i % 2].clone(), call.clone(), calls.clone());
        tasks.spawn(async move {
            while started.elapsed() < Duration::from_millis(2500) {
                m.scope(call(calls.clone())).await;
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
        });
    }
    while let Some(r) = tasks.join_next().await {
        r.unwrap();
    }
    runs(&calls)
}

async fn compute(calls: &Calls) -> u64 {
    calls.fetch_add(1, Ordering::SeqCst);
    tokio::time::sleep(Duration::from_millis(100)).await;
    7
}

#[cache_result(ttl = 1, early_refresh = true, key_prefix = "t_early_mem", skip(calls))]
async fn early_memory(calls: Arc<Calls>) -> u64 {
    compute(&calls).await
}

#[cache_result(
    ttl = 1,
    early_refresh = true,
    key_prefix = "t_early_redis",
    skip(calls)
)]
async fn early_redis(calls: Arc<Calls>) -> u64 {
    compute(&calls).await
}

/// The warm-up call misses; after that every value is replaced before it
/// expires (no miss, so no burst of recomputation at expiry), and the
/// function runs a few times per TTL at most, not once per caller. At this
/// load (hundreds of reads a second) XFetch refreshes about 0.4 s before
/// expiry: P(refresh) = exp(-left / (0.1 s * beta)) per read.
fn assert_refreshed_early(m: &CacheManager, prefix: &str, ran: usize) {
    let s = m.stats().prefix(prefix);
    println!("{prefix}: the function ran {ran} times in 2.5 s; {s:?}");
    assert_eq!(
        s.misses, 1,
        "only the warm-up call may miss: {s:?}, ran {ran}"
    );
    assert!(
        (3..=10).contains(&ran),
        "2.5 s on a 1 s TTL: ran {ran} times"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn early_refresh_replaces_values_before_expiry_on_memory() {
    let env = Env::memory();
    let ran = steady_load([env.manager.clone(), env.manager.clone()], early_memory).await;
    assert_refreshed_early(&env.manager, "t_early_mem", ran);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn early_refresh_replaces_values_before_expiry_on_redis() {
    let env = Env::redis();
    let ran = steady_load([env.manager.clone(), env.second_manager()], early_redis).await;
    assert_refreshed_early(&env.manager, "t_early_redis", ran);
}
