//! What is stored, and for how long, decided per result: `unless`, a `ttl`
//! computed from the value, `none_ttl`, `err_ttl` and `ttl_jitter`, on every
//! backend, async and sync.

mod common;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use common::Env;
use forge_cache::cache_result;
use serde::{Deserialize, Serialize};

type Calls = AtomicUsize;

#[cache_result(ttl = 60, key = "t_opts:list:{id}", unless = Vec::is_empty, skip(calls))]
async fn list(calls: &Calls, id: u64, len: usize) -> Vec<u64> {
    calls.fetch_add(1, Ordering::SeqCst);
    vec![id; len]
}

#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
struct Token {
    value: String,
    expires_in_secs: u64,
}

#[cache_result(key = "t_opts:token:{user}", ttl = |t: &Token| Duration::from_secs(t.expires_in_secs), skip(calls, lifetime))]
async fn token(calls: &Calls, user: u64, lifetime: u64) -> Result<Token, String> {
    calls.fetch_add(1, Ordering::SeqCst);
    Ok(Token {
        value: format!("t{user}"),
        expires_in_secs: lifetime,
    })
}

#[cache_result(
    ttl = 600,
    key = "t_opts:find:{id}",
    cache_none = true,
    none_ttl = 5,
    skip(calls)
)]
async fn find(calls: &Calls, id: u64) -> Option<u64> {
    calls.fetch_add(1, Ordering::SeqCst);
    (id % 2 == 0).then_some(id)
}

#[cache_result(ttl = 600, key = "t_opts:fetch:{id}", err_ttl = "3s", skip(calls))]
async fn fetch(calls: &Calls, id: u64) -> Result<u64, String> {
    calls.fetch_add(1, Ordering::SeqCst);
    if id == 0 {
        Err("no such item".into())
    } else {
        Ok(id)
    }
}

#[cache_result(ttl = 100, key = "t_opts:spread:{id}", ttl_jitter = "20%")]
async fn spread(id: u64) -> u64 {
    id
}

async fn pttl(env: &Env, key: &str) -> Duration {
    env.manager
        .ttl(key)
        .await
        .unwrap()
        .unwrap_or_else(|| panic!("{key} is not stored"))
}

async fn unless_returns_the_value_but_does_not_store_it(env: Env) {
    env.manager
        .scope(async {
            let calls = Calls::new(0);
            assert_eq!(list(&calls, 1, 0).await, Vec::<u64>::new());
            assert_eq!(list(&calls, 1, 0).await, Vec::<u64>::new());
            assert_eq!(
                calls.load(Ordering::SeqCst),
                2,
                "an empty list is never stored"
            );
            assert_eq!(list(&calls, 2, 2).await, vec![2, 2]);
            assert_eq!(list(&calls, 2, 2).await, vec![2, 2]);
            assert_eq!(calls.load(Ordering::SeqCst), 3);
        })
        .await;
}

async fn a_ttl_computed_from_the_value_is_the_entry_ttl(env: Env) {
    env.manager
        .scope(async {
            let calls = Calls::new(0);
            token(&calls, 1, 40).await.unwrap();
            token(&calls, 1, 40).await.unwrap();
            assert_eq!(calls.load(Ordering::SeqCst), 1);
            let ttl = pttl(&env, "t_opts:token:1").await;
            assert!(
                ttl > Duration::from_secs(35) && ttl <= Duration::from_secs(40),
                "{ttl:?}"
            );
            // A token that is already expired is not stored.
            token(&calls, 2, 0).await.unwrap();
            assert_eq!(env.manager.ttl("t_opts:token:2").await.unwrap(), None);
        })
        .await;
}

async fn none_and_errors_are_stored_under_their_own_ttls(env: Env) {
    env.manager
        .scope(async {
            let calls = Calls::new(0);
            assert_eq!(find(&calls, 1).await, None);
            assert_eq!(find(&calls, 1).await, None);
            assert_eq!(find(&calls, 2).await, Some(2));
            assert_eq!(calls.load(Ordering::SeqCst), 2);
            assert!(pttl(&env, "t_opts:find:1").await <= Duration::from_secs(5));
            assert!(pttl(&env, "t_opts:find:2").await > Duration::from_secs(500));

            let calls = Calls::new(0);
            assert_eq!(fetch(&calls, 0).await, Err("no such item".to_owned()));
            assert_eq!(fetch(&calls, 0).await, Err("no such item".to_owned()));
            assert_eq!(
                calls.load(Ordering::SeqCst),
                1,
                "the error is served from the cache"
            );
            assert!(pttl(&env, "t_opts:fetch:0").await <= Duration::from_secs(3));
            assert_eq!(fetch(&calls, 4).await, Ok(4));
            assert!(pttl(&env, "t_opts:fetch:4").await > Duration::from_secs(500));
        })
        .await;
}

async fn jitter_shortens_ttls_within_its_bound(env: Env) {
    env.manager
        .scope(async {
            let mut seen = Vec::new();
            for id in 0..20 {
                spread(id).await;
                let ttl = pttl(&env, &format!("t_opts:spread:{id}")).await;
                assert!(
                    ttl <= Duration::from_secs(100),
                    "never longer than `ttl`: {ttl:?}"
                );
                assert!(
                    ttl >= Duration::from_secs(79),
                    "at most 20% shorter: {ttl:?}"
                );
                seen.push(ttl.as_secs());
            }
            seen.dedup();
            assert!(
                seen.len() > 1,
                "20 entries written together expire at different times"
            );
        })
        .await;
}

on_every_backend!(
    unless_returns_the_value_but_does_not_store_it,
    a_ttl_computed_from_the_value_is_the_entry_ttl,
    none_and_errors_are_stored_under_their_own_ttls,
    jitter_shortens_ttls_within_its_bound,
);

#[cache_result(ttl = 600, key = "t_opts_sync:load:{id}", err_ttl = 2, unless = |v: &u64| *v == 0, skip(calls))]
fn load(calls: &Calls, id: u64) -> Result<u64, String> {
    calls.fetch_add(1, Ordering::SeqCst);
    if id == 9 { Err("down".into()) } else { Ok(id) }
}

fn sync_functions_take_every_option(env: Env) {
    let calls = Calls::new(0);
    env.manager.blocking().scope(|| {
        for _ in 0..2 {
            assert_eq!(load(&calls, 0), Ok(0));
            assert_eq!(load(&calls, 9), Err("down".to_owned()));
        }
    });
    // 0 ran twice (`unless`), 9 once (its error is cached).
    assert_eq!(calls.load(Ordering::SeqCst), 3);
    let ttl = env.manager.blocking().ttl("t_opts_sync:load:9").unwrap();
    assert!(ttl.is_some_and(|t| t <= Duration::from_secs(2)), "{ttl:?}");
}

on_every_backend_sync!(sync_functions_take_every_option);
