//! `forge_cache::testing`: isolated managers, the disabled scope and the
//! recording of hits and misses. These helpers are for tests of code that
//! uses forge-cache; they run on the in-memory backend by design, and the
//! recording is checked on Redis too.

mod common;

use std::sync::atomic::{AtomicUsize, Ordering};

use common::Env;
use forge_cache::{RateLimitExceeded, cache_result, rate_limit, testing};

#[cache_result(ttl = 60, key_prefix = "t_testing", skip(calls))]
async fn profile(calls: &AtomicUsize, id: u64) -> u64 {
    calls.fetch_add(1, Ordering::SeqCst);
    id
}

#[cache_result(ttl = 60, key_prefix = "t_testing_sync", skip(calls))]
fn profile_sync(calls: &AtomicUsize, id: u64) -> u64 {
    calls.fetch_add(1, Ordering::SeqCst);
    id
}

#[rate_limit(max_requests = 1, window_seconds = 60, key_prefix = "t_testing")]
async fn once() -> Result<(), RateLimitExceeded> {
    Ok(())
}

#[tokio::test]
async fn isolated_managers_share_no_entries() {
    let calls = AtomicUsize::new(0);
    testing::isolated(async { profile(&calls, 1).await }).await;
    testing::isolated(async { profile(&calls, 1).await }).await;
    assert_eq!(calls.load(Ordering::SeqCst), 2);
    testing::isolated_blocking(|| profile_sync(&calls, 1));
    testing::isolated_blocking(|| profile_sync(&calls, 1));
    assert_eq!(calls.load(Ordering::SeqCst), 4);
}

#[tokio::test]
async fn disabled_turns_caching_and_rate_limits_off() {
    testing::isolated(async {
        let calls = AtomicUsize::new(0);
        testing::disabled(async {
            for _ in 0..3 {
                profile(&calls, 2).await;
                once().await.expect("rate limits are off");
            }
        })
        .await;
        assert_eq!(calls.load(Ordering::SeqCst), 3);
        // Nothing was counted: the budget is whole outside the scope.
        once().await.unwrap();
        assert!(once().await.is_err());
    })
    .await;
    testing::isolated_blocking(|| {
        let calls = AtomicUsize::new(0);
        testing::disabled_blocking(|| {
            profile_sync(&calls, 2);
            profile_sync(&calls, 2);
        });
        assert_eq!(calls.load(Ordering::SeqCst), 2);
    });
}

async fn recording_counts_the_calls_of_its_scope_only(env: Env) {
    env.manager
        .scope(async {
            let calls = AtomicUsize::new(0);
            profile(&calls, 3).await; // before the recording
            let ((), seen) = testing::record(async {
                profile(&calls, 3).await;
                profile(&calls, 4).await;
                profile(&calls, 4).await;
            })
            .await;
            let c = seen.function("profile");
            assert_eq!((c.hits, c.misses, c.stores), (2, 1, 1));
            assert_eq!(seen.prefix("t_testing").hits, 2);
            assert_eq!(seen.function("profile_sync").hits, 0);
        })
        .await;
}

on_every_backend!(recording_counts_the_calls_of_its_scope_only);

#[test]
fn recording_works_for_sync_functions() {
    testing::isolated_blocking(|| {
        let calls = AtomicUsize::new(0);
        let (_, seen) = testing::record_blocking(|| {
            profile_sync(&calls, 5);
            profile_sync(&calls, 5);
        });
        let c = seen.function("profile_sync");
        assert_eq!((c.hits, c.misses), (1, 1));
    });
}
