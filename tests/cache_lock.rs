//! `#[cache_result(lock = true)]` on every backend: across processes
//! (independent managers) one caller computes while the others wait,
//! bounded, then read the stored value.

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use common::Env;
use forge_cache::{CacheManager, cache_result};

type Calls = AtomicUsize;

#[cache_result(
    ttl = 60,
    lock = true,
    lock_wait = 10,
    key_prefix = "t_lock",
    skip(calls)
)]
async fn computed_once(calls: Arc<Calls>, x: u32) -> u32 {
    calls.fetch_add(1, Ordering::SeqCst);
    tokio::time::sleep(Duration::from_millis(200)).await;
    x
}

/// Four "processes" (independent managers on one Redis; one store on the
/// in-memory backend) x 250 concurrent cold calls run the function once.
async fn four_managers_cold_calls_run_the_function_once(env: Env) {
    let managers: Vec<CacheManager> = (0..4)
        .map(|i| {
            if i == 0 {
                env.manager.clone()
            } else {
                env.second_manager()
            }
        })
        .collect();
    let calls = Arc::new(Calls::new(0));
    let mut tasks = tokio::task::JoinSet::new();
    for i in 0..1000 {
        let (m, calls) = (managers[i % 4].clone(), calls.clone());
        tasks.spawn(async move { m.scope(computed_once(calls, 7)).await });
    }
    while let Some(r) = tasks.join_next().await {
        assert_eq!(r.unwrap(), 7);
    }
    assert_eq!(calls.load(Ordering::SeqCst), 1);
}

#[cache_result(
    ttl = 60,
    lock = true,
    lock_wait = "100ms",
    key_prefix = "t_lock",
    skip(calls)
)]
async fn slower_than_the_wait(calls: Arc<Calls>, x: u32) -> u32 {
    calls.fetch_add(1, Ordering::SeqCst);
    tokio::time::sleep(Duration::from_millis(1000)).await;
    x
}

/// When the holder computes longer than the wait bound, a waiting process
/// stops waiting and computes itself: two managers, two runs. (Redis only:
/// on the in-memory backend there is one process, and single-flight
/// coalesces the calls.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_wait_is_bounded() {
    let env = Env::redis();
    let calls = Arc::new(Calls::new(0));
    let (a, b) = (env.manager.clone(), env.second_manager());
    let c = calls.clone();
    let first = tokio::spawn(async move { a.scope(slower_than_the_wait(c, 1)).await });
    assert!(
        common::eventually(Duration::from_secs(5), async || calls
            .load(Ordering::SeqCst)
            == 1)
        .await
    );
    assert_eq!(b.scope(slower_than_the_wait(calls.clone(), 1)).await, 1);
    assert_eq!(first.await.unwrap(), 1);
    assert_eq!(calls.load(Ordering::SeqCst), 2);
}

on_every_backend!(four_managers_cold_calls_run_the_function_once);
