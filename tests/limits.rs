//! Size limits on every backend: a result over `max_value_bytes` is
//! returned but never stored (and the skip is logged); caller-controlled
//! key-template fields cannot make a key grow without bound.

#[path = "common/capture.rs"]
mod capture;
mod common;

use std::sync::atomic::{AtomicUsize, Ordering};

use common::Env;
use forge_cache::{CacheManager, RedisSettings, cache_result};

type Calls = AtomicUsize;

fn runs(calls: &Calls) -> usize {
    calls.load(Ordering::SeqCst)
}

/// A manager on `env`'s backend with `max_value_bytes = limit`.
fn with_value_limit(env: &Env, limit: usize) -> CacheManager {
    let url = match (&env.server, &env.cluster) {
        (Some(s), _) => s.url(),
        (_, Some(c)) => c.url(),
        _ => "memory://".into(),
    };
    let settings = RedisSettings::builder()
        .url(url)
        .max_value_bytes(limit)
        .build()
        .unwrap();
    CacheManager::new(settings).unwrap()
}

#[cache_result(ttl = 60, key_prefix = "t_size", skip(calls))]
async fn blob(calls: &Calls, len: usize) -> String {
    calls.fetch_add(1, Ordering::SeqCst);
    "x".repeat(len)
}

#[cache_result(ttl = 60, key_prefix = "t_size", skip(calls))]
fn blob_sync(calls: &Calls, len: usize) -> String {
    calls.fetch_add(1, Ordering::SeqCst);
    "y".repeat(len)
}

/// Prevents an oversized result from failing the call, filling Redis, or
/// being skipped silently.
async fn oversized_results_are_returned_but_never_stored(env: Env) {
    capture::install();
    // A limit per backend, so each run finds its own warning.
    let limit = 1024 + usize::from(env.server.is_some()) + 2 * usize::from(env.cluster.is_some());
    let m = with_value_limit(&env, limit);
    let calls = Calls::new(0);
    m.scope(async {
        assert_eq!(blob(&calls, 4096).await.len(), 4096);
        assert_eq!(blob(&calls, 4096).await.len(), 4096);
        assert_eq!(
            runs(&calls),
            2,
            "an oversized result was served from the cache"
        );
        // Under the limit: cached as usual.
        assert_eq!(blob(&calls, 100).await.len(), 100);
        assert_eq!(blob(&calls, 100).await.len(), 100);
        assert_eq!(runs(&calls), 3);
    })
    .await;
    let sync_calls = tokio::task::block_in_place(|| {
        let calls = Calls::new(0);
        m.blocking().scope(|| {
            assert_eq!(blob_sync(&calls, 4096).len(), 4096);
            assert_eq!(blob_sync(&calls, 4096).len(), 4096);
        });
        runs(&calls)
    });
    assert_eq!(sync_calls, 2);
    assert!(m.stats().prefix("t_size").errors >= 3);
    let warned = capture::matching(&[
        "WARN",
        "prefix=\"t_size\"",
        "function=\"blob",
        &format!("exceeds the limit of {limit} bytes"),
    ]);
    assert!(!warned.is_empty(), "no warning for the skipped value");
    assert!(
        warned
            .iter()
            .all(|l| !l.contains("xxxx") && !l.contains("yyyy")),
        "a warning carried the value: {warned:?}"
    );
}

#[cache_result(ttl = 60, key = "t_long:{name}:card", skip(calls))]
async fn card(calls: &Calls, name: &str) -> usize {
    calls.fetch_add(1, Ordering::SeqCst);
    name.len()
}

/// Prevents a caller-supplied template field (a search string, a file name)
/// from producing multi-kilobyte keys, while long fields stay distinct and
/// invalidation still reaches them.
async fn long_template_fields_give_bounded_distinct_keys(env: Env) {
    let m = &env.manager;
    let long_a = "a".repeat(10 * 1024);
    let long_b = format!("{long_a}b");
    let calls = Calls::new(0);
    m.scope(async {
        assert_eq!(card(&calls, &long_a).await, long_a.len());
        assert_eq!(card(&calls, &long_a).await, long_a.len());
        assert_eq!(runs(&calls), 1, "a long field missed every time");
        assert_eq!(card(&calls, &long_b).await, long_b.len());
        assert_eq!(runs(&calls), 2, "two long fields shared an entry");
        assert!(card_invalidate(&long_a).await.unwrap());
        assert_eq!(card(&calls, &long_a).await, long_a.len());
        assert_eq!(runs(&calls), 3);
        assert_eq!(card_invalidate_all().await.unwrap(), 2);
    })
    .await;
    assert!(
        m.get_bytes(&format!("t_long:{long_a}:card"))
            .await
            .unwrap()
            .is_none()
    );
    if let Some(server) = &env.server {
        m.scope(card(&calls, &long_a)).await;
        let keys = server.cli(&["--scan", "--pattern", "t_long:*"]);
        assert_eq!(keys.lines().count(), 1, "{keys}");
        assert!(keys.len() <= "t_long::card".len() + 34, "{keys}");
    }
}

on_every_backend!(
    oversized_results_are_returned_but_never_stored,
    long_template_fields_give_bounded_distinct_keys,
);
