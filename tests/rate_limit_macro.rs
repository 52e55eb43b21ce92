//! `#[rate_limit]` on every backend: the check runs before the body, over
//! the limit the body does not run and the function returns the error; keys
//! separate budgets; sync functions and methods; the backend-failure policy.

mod common;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use common::{Env, eventually};
use forge_cache::{RateLimitExceeded, rate_limit};

#[derive(Debug)]
enum AppError {
    TooMany(RateLimitExceeded),
}

impl From<RateLimitExceeded> for AppError {
    fn from(e: RateLimitExceeded) -> Self {
        AppError::TooMany(e)
    }
}

type Calls = AtomicUsize;

#[rate_limit(max_requests = 3, window_seconds = 60)]
async fn get_data(calls: &Calls) -> Result<u32, AppError> {
    calls.fetch_add(1, Ordering::SeqCst);
    Ok(7)
}

async fn over_the_limit_the_body_does_not_run(env: Env) {
    let calls = Calls::new(0);
    env.manager
        .scope(async {
            for _ in 0..3 {
                assert_eq!(get_data(&calls).await.unwrap(), 7);
            }
            let AppError::TooMany(e) = get_data(&calls).await.unwrap_err();
            assert!(!e.to_string().is_empty());
        })
        .await;
    assert_eq!(calls.load(Ordering::SeqCst), 3);
}

struct Login {
    username: String,
}

struct Json<T>(T);

#[rate_limit(
    max_requests = 2,
    window_seconds = 60,
    key = "{creds.username}",
    algorithm = "gcra"
)]
async fn login(Json(creds): Json<Login>) -> Result<String, AppError> {
    Ok(creds.username)
}

async fn each_key_has_its_own_budget(env: Env) {
    let call = |name: &str| {
        login(Json(Login {
            username: name.into(),
        }))
    };
    env.manager
        .scope(async {
            assert!(call("ada").await.is_ok());
            assert!(call("ada").await.is_ok());
            assert!(call("ada").await.is_err());
            assert_eq!(call("bob").await.unwrap(), "bob");
            // Hostile keys stay one literal key part.
            assert!(call("ada*").await.is_ok());
            assert!(call("x:{y}").await.is_ok());
        })
        .await;
}

#[rate_limit(
    max_requests = 1,
    window_seconds = 60,
    key = "{day}",
    algorithm = "sliding_window"
)]
fn export(day: u32) -> Result<u32, RateLimitExceeded> {
    Ok(day)
}

struct Api;

impl Api {
    #[rate_limit(max_requests = 1, window_seconds = 60, key_prefix = "api")]
    async fn ping(&self) -> Result<(), AppError> {
        Ok(())
    }
}

async fn sync_functions_and_methods_are_limited(env: Env) {
    env.manager.blocking().scope(|| {
        assert_eq!(export(1).unwrap(), 1);
        assert!(export(1).is_err());
        assert_eq!(export(2).unwrap(), 2);
    });
    env.manager
        .scope(async {
            assert!(Api.ping().await.is_ok());
            assert!(Api.ping().await.is_err());
        })
        .await;
}

#[rate_limit(
    max_requests = 1,
    window_seconds = "400ms",
    key = "{tenant}:{user}",
    algorithm = "gcra"
)]
async fn burst(tenant: &str, user: &str) -> Result<(), AppError> {
    let _ = (tenant, user);
    Ok(())
}

/// A key template renders like `#[cache_result]`'s (each placeholder
/// escaped, so `("a:b", "c")` and `("a", "b:c")` are two budgets), a single
/// placeholder keys exactly as the caller key itself, and a window with a
/// unit counts in milliseconds.
async fn key_templates_and_sub_second_windows(env: Env) {
    let m = &env.manager;
    m.scope(async {
        assert!(burst("a:b", "c").await.is_ok());
        let key = "rate_limit:{rate_limit_macro.burst:a%3Ab:c}";
        assert!(m.ttl(key).await.unwrap().is_some(), "{key} not written");
        assert!(burst("a", "b:c").await.is_ok());
        assert!(burst("a", "b:c").await.is_err());
        assert!(
            eventually(Duration::from_secs(3), async || burst("a", "b:c")
                .await
                .is_ok())
            .await,
            "the 400 ms window should roll over"
        );
        let eve = Login {
            username: "eve".into(),
        };
        assert!(login(Json(eve)).await.is_ok());
    })
    .await;
    let key = "rate_limit:{rate_limit_macro.login:eve}";
    assert!(m.ttl(key).await.unwrap().is_some(), "{key} not written");
}

on_every_backend!(
    over_the_limit_the_body_does_not_run,
    each_key_has_its_own_budget,
    sync_functions_and_methods_are_limited,
    key_templates_and_sub_second_windows,
);

#[rate_limit(max_requests = 100, window_seconds = 60, on_error = "allow")]
async fn lenient() -> Result<(), AppError> {
    Ok(())
}

#[rate_limit(max_requests = 100, window_seconds = 60, on_error = "deny")]
async fn strict() -> Result<(), AppError> {
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn backend_failure_follows_on_error() {
    let mut env = Env::redis_with(|b| b.socket_timeout(Duration::from_millis(300)));
    env.server().stop();
    env.manager
        .scope(async {
            assert!(
                lenient().await.is_ok(),
                "on_error = \"allow\" runs the call"
            );
            assert!(strict().await.is_err(), "on_error = \"deny\" rejects it");
        })
        .await;
}
