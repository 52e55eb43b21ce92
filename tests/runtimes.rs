//! The manager keeps working across Tokio runtimes: runtimes created and
//! dropped one after another (a test binary's `#[tokio::test]`s, a CLI that
//! builds a runtime per job), runtimes alive at the same time, and plain
//! threads with no runtime. "Working" means caching and limiting, not
//! failing open: every test counts the body's runs and the admissions.

mod common;

use std::sync::atomic::{AtomicUsize, Ordering};

use common::Env;
use forge_cache::{CacheManager, RateLimitExceeded, cache_result, rate_limit};
use tokio::runtime::{Builder, Runtime};

type Calls = AtomicUsize;

#[cache_result(ttl = 60, key_prefix = "rt_cached", skip(calls))]
async fn cached(calls: &Calls, x: u32) -> u32 {
    calls.fetch_add(1, Ordering::SeqCst);
    x + 1
}

#[cache_result(ttl = 60, key_prefix = "rt_cached_sync", skip(calls))]
fn cached_sync(calls: &Calls, x: u32) -> u32 {
    calls.fetch_add(1, Ordering::SeqCst);
    x + 1
}

#[derive(Debug)]
struct Limited;

impl From<RateLimitExceeded> for Limited {
    fn from(_: RateLimitExceeded) -> Self {
        Limited
    }
}

#[rate_limit(max_requests = 3, window_seconds = 600, on_error = "allow")]
async fn limited() -> Result<(), Limited> {
    Ok(())
}

/// Runtimes of both flavours, in turn.
fn runtime(i: usize) -> Runtime {
    if i % 2 == 0 {
        Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap()
    } else {
        Builder::new_current_thread().enable_all().build().unwrap()
    }
}

fn a_dropped_runtime_does_not_turn_caching_or_limiting_off(env: Env) {
    let calls = Calls::new(0);
    let mut admitted = 0;
    for i in 0..6 {
        // Each runtime lives for one job, and is dropped before the next.
        let rt = runtime(i);
        rt.block_on(env.manager.scope(async {
            assert_eq!(cached(&calls, 7).await, 8);
            admitted += usize::from(limited().await.is_ok());
        }));
        drop(rt);
        assert!(
            !env.manager.breaker_open(),
            "breaker opened after runtime {i}"
        );
    }
    assert_eq!(
        calls.load(Ordering::SeqCst),
        1,
        "the body ran more than once"
    );
    assert_eq!(admitted, 3, "the limit failed open");
}

fn runtimes_alive_at_the_same_time_share_one_working_manager(env: Env) {
    let calls = Calls::new(0);
    let admitted = AtomicUsize::new(0);
    // The first runtime opens the connection and stays alive while others
    // use the manager; then it is dropped while they go on.
    let first = runtime(0);
    first.block_on(env.manager.scope(async {
        assert_eq!(cached(&calls, 1).await, 2);
    }));
    std::thread::scope(|s| {
        for i in 0..4 {
            let (m, calls, admitted) = (&env.manager, &calls, &admitted);
            s.spawn(move || {
                let rt = runtime(i + 1);
                rt.block_on(m.scope(async {
                    for _ in 0..20 {
                        assert_eq!(cached(calls, 1).await, 2);
                    }
                    if limited().await.is_ok() {
                        admitted.fetch_add(1, Ordering::SeqCst);
                    }
                }));
            });
        }
        drop(first);
    });
    let last = runtime(1);
    last.block_on(env.manager.scope(async {
        assert_eq!(cached(&calls, 1).await, 2);
        if limited().await.is_ok() {
            admitted.fetch_add(1, Ordering::SeqCst);
        }
    }));
    assert_eq!(
        calls.load(Ordering::SeqCst),
        1,
        "the body ran more than once"
    );
    assert_eq!(admitted.load(Ordering::SeqCst), 3, "the limit failed open");
}

fn plain_threads_cache_before_during_and_after_runtimes(env: Env) {
    let calls = Calls::new(0);
    let sync_calls = Calls::new(0);
    let m: &CacheManager = &env.manager;
    // Sync fns from a plain thread, with no runtime anywhere.
    std::thread::scope(|s| {
        s.spawn(|| {
            m.blocking()
                .scope(|| assert_eq!(cached_sync(&sync_calls, 3), 4))
        });
    });
    for i in 0..3 {
        let rt = runtime(i);
        rt.block_on(m.scope(async { assert_eq!(cached(&calls, 3).await, 4) }));
        drop(rt);
        std::thread::scope(|s| {
            s.spawn(|| {
                m.blocking()
                    .scope(|| assert_eq!(cached_sync(&sync_calls, 3), 4))
            });
        });
    }
    assert_eq!(calls.load(Ordering::SeqCst), 1);
    assert_eq!(sync_calls.load(Ordering::SeqCst), 1);
}

on_every_backend_sync!(
    a_dropped_runtime_does_not_turn_caching_or_limiting_off,
    runtimes_alive_at_the_same_time_share_one_working_manager,
    plain_threads_cache_before_during_and_after_runtimes,
);

/// The shape of a user's test binary: each `#[tokio::test]` builds its own
/// runtime and calls `init` (the first one counts); the global manager must
/// keep caching in the second test, after the first test's runtime is gone.
/// Runs in a child process, since the global manager is per process.
#[test]
fn the_second_tokio_test_of_a_binary_still_caches() {
    let server = forge_cache_testkit::RedisServer::start();
    let out = std::process::Command::new(std::env::current_exe().unwrap())
        .args([
            "child_two_tokio_tests",
            "--exact",
            "--ignored",
            "--nocapture",
        ])
        .env("REDIS_CONNECTION_URL", server.url())
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "child failed:\n{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
#[ignore = "run by the_second_tokio_test_of_a_binary_still_caches in a child process"]
fn child_two_tokio_tests() {
    let calls = Calls::new(0);
    let mut admitted = 0;
    for test in 0..2 {
        // What `#[tokio::test]` expands to: a current-thread runtime per test.
        let rt = Builder::new_current_thread().enable_all().build().unwrap();
        rt.block_on(async {
            let settings = forge_cache::RedisSettings::from_env().unwrap();
            let init = forge_cache::init(settings).await;
            assert!(test == 0 || matches!(init, Err(forge_cache::Error::AlreadyInitialized)));
            assert_eq!(cached(&calls, 5).await, 6);
            assert_eq!(cached(&calls, 5).await, 6);
            for _ in 0..2 {
                admitted += usize::from(limited().await.is_ok());
            }
        });
        drop(rt);
    }
    assert_eq!(
        calls.load(Ordering::SeqCst),
        1,
        "the second test ran uncached"
    );
    assert_eq!(admitted, 3, "the limit failed open in the second test");
}
