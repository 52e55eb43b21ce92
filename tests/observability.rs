//! What forge-cache logs never contains a cached value, a rate-limit caller
//! key or a password, on every backend and through failures. A capturing
//! `tracing` subscriber (tests/common/capture.rs) records every event at
//! every level, with all its fields.

#[path = "common/capture.rs"]
mod capture;
mod common;

use std::time::Duration;

use common::Env;
use forge_cache::{
    CacheManager, RateLimit, RateLimitExceeded, RedisSettings, cache_result, rate_limit,
};
use forge_cache_testkit::RedisServer;

const MIN: Duration = Duration::from_secs(60);

/// A distinct secret per backend (the subscriber is shared by the parallel
/// tests of this binary).
fn secret(env: &Env, what: &str) -> String {
    let backend = match (&env.server, &env.cluster) {
        (Some(_), _) => "redis",
        (_, Some(_)) => "cluster",
        _ => "memory",
    };
    format!("{what}-{backend}-5ecret")
}

fn assert_not_logged(secret: &str) {
    let leaks = capture::matching(&[secret]);
    assert!(leaks.is_empty(), "{secret} was logged: {leaks:#?}");
}

#[cache_result(ttl = 60, key = "obs:{who}:profile")]
async fn profile(who: &str, data: &str) -> String {
    format!("profile of {who}: {data}")
}

#[cache_result(ttl = 60, key = "obs:{who}:count")]
async fn count(who: &str) -> u64 {
    who.len() as u64
}

#[cache_result(
    ttl = 60,
    key = "obs:{who}:stale",
    stale_ttl = 60,
    early_refresh = true
)]
async fn refreshed(who: &str, data: &str) -> String {
    data.to_owned()
}

#[cache_result(ttl = 60, key = "obs:{who}:locked", lock = true, lock_wait = 1)]
async fn locked(who: &str) -> usize {
    who.len()
}

#[rate_limit(
    max_requests = 1,
    window_seconds = 60,
    key = "{who}",
    key_prefix = "obs_rl"
)]
async fn login(who: &str) -> Result<(), RateLimitExceeded> {
    let _ = who;
    Ok(())
}

/// Prevents values (a hit, a store, a refresh, a value that no longer
/// decodes after a schema change) and caller data in keys (rate-limit keys,
/// key-template fields seen in lock names) from reaching the logs.
async fn values_and_caller_keys_are_never_logged(env: Env) {
    capture::install();
    let value = secret(&env, "value");
    let caller = secret(&env, "caller");
    let m = &env.manager;
    m.scope(async {
        for _ in 0..2 {
            assert!(profile("ada", &value).await.ends_with(&value));
            assert!(refreshed("ada", &value).await.ends_with(&value));
        }
        // A schema change: a string where a number is expected now.
        m.set("obs:bob:count", &value, MIN).await.unwrap();
        assert_eq!(count("bob").await, 3);
        assert!(login(&caller).await.is_ok());
        assert!(login(&caller).await.is_err());
        assert_eq!(locked(&caller).await, caller.len());
    })
    .await;
    let checked = RateLimit::new(0, MIN).with_prefix("obs_direct");
    assert!(!m.check_rate_limit(&caller, &checked).await.unwrap().allowed);
    assert!(
        !capture::matching(&[
            "no longer decodes",
            "function=\"count\"",
            "JSON of another type"
        ])
        .is_empty(),
        "the decode failure was not logged"
    );
    assert!(!capture::matching(&["rate limit exceeded", "obs_rl"]).is_empty());
    assert!(!capture::matching(&["lock acquired", "obs:locked:"]).is_empty());
    assert_not_logged(&value);
    assert_not_logged(&caller);
}

/// Prevents a password from reaching the logs when authentication fails,
/// when the backend goes away mid-use, and when rate limits fall back on
/// their `on_error` policy.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn passwords_are_never_logged() {
    capture::install();
    let password = "obs-pa55word-never-logged";
    let wrong = "obs-wr0ng-password-never-logged";
    let mut server = RedisServer::start_with(&["--requirepass", password]);
    let settings = |pw: &str| {
        RedisSettings::builder()
            .url(format!("redis://:{pw}@127.0.0.1:{}/0", server.port()))
            .socket_timeout(Duration::from_millis(500))
            .build()
            .unwrap()
    };
    let right = CacheManager::new(settings(password)).unwrap();
    let bad = CacheManager::new(settings(wrong)).unwrap();
    // Startup against a server that refuses the password: logged, redacted.
    // (The global manager is used by no other test of this binary.)
    forge_cache::init(settings(wrong)).await.unwrap();
    assert!(!capture::matching(&["not reachable at startup", "***"]).is_empty());
    for m in [&right, &bad] {
        m.scope(async {
            assert!(profile("eve", "x").await.starts_with("profile of eve"));
            assert!(login("eve").await.is_ok());
        })
        .await;
        let _ = m.health().await;
    }
    assert!(
        !capture::matching(&["WARN", "cache read failed", "prefix=\"obs\""]).is_empty(),
        "the wrong password caused no warning"
    );
    server.stop();
    right
        .scope(async {
            assert!(profile("eve", "y").await.starts_with("profile of eve"));
            assert!(login("mallory").await.is_ok());
        })
        .await;
    assert_not_logged(password);
    assert_not_logged(wrong);
}

on_every_backend!(values_and_caller_keys_are_never_logged);
