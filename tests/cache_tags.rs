//! Tags: `tags = [...]` and `invalidate_tag`, on every backend, async and
//! sync. An invalidation drops every entry written under the tag, whatever
//! its function and arguments, in one command; a tagged hit stays one round
//! trip.

mod common;

use std::sync::atomic::{AtomicUsize, Ordering};

use common::Env;
use forge_cache::{blocking, cache_result, invalidate_tag};

type Calls = AtomicUsize;

#[cache_result(ttl = 60, key_prefix = "t_tags", tags = ["user:{user_id}", "org:{org_id}"], skip(calls))]
async fn profile(calls: &Calls, user_id: u64, org_id: u64) -> String {
    calls.fetch_add(1, Ordering::SeqCst);
    format!("user {user_id} of {org_id}")
}

#[cache_result(ttl = 60, key_prefix = "t_tags", tags = ["user:{user_id}"], skip(calls))]
async fn orders(calls: &Calls, user_id: u64, page: u32) -> Vec<u32> {
    calls.fetch_add(1, Ordering::SeqCst);
    vec![page; user_id as usize % 3]
}

#[cache_result(ttl = 60, key_prefix = "t_tags", tags = ["products"], stale_ttl = 30, skip(calls))]
async fn catalog(calls: &Calls, page: u32) -> u32 {
    calls.fetch_add(1, Ordering::SeqCst);
    page
}

/// Invalidates its own tag while it computes, as a write elsewhere would.
#[cache_result(ttl = 60, key_prefix = "t_tags", tags = ["race:{id}"], skip(calls))]
async fn racing(calls: &Calls, id: u64) -> usize {
    let n = calls.fetch_add(1, Ordering::SeqCst);
    if n == 0 {
        invalidate_tag(&format!("race:{id}")).await.unwrap();
    }
    n
}

async fn invalidating_a_tag_drops_every_entry_under_it(env: Env) {
    env.manager
        .scope(async {
            let (p, o) = (Calls::new(0), Calls::new(0));
            profile(&p, 1, 7).await;
            profile(&p, 2, 7).await;
            orders(&o, 1, 1).await;
            orders(&o, 1, 2).await;
            assert!(invalidate_tag("user:1").await.unwrap());
            // User 1's entries, of both functions, are gone...
            profile(&p, 1, 7).await;
            orders(&o, 1, 1).await;
            orders(&o, 1, 2).await;
            // ...user 2's are not.
            profile(&p, 2, 7).await;
            assert_eq!((p.load(Ordering::SeqCst), o.load(Ordering::SeqCst)), (3, 4));
            // The other tag of an entry drops it too.
            env.manager.invalidate_tag("org:7").await.unwrap();
            profile(&p, 2, 7).await;
            assert_eq!(p.load(Ordering::SeqCst), 4);
            // Then it is cached again.
            profile(&p, 2, 7).await;
            assert_eq!(p.load(Ordering::SeqCst), 4);
        })
        .await;
}

async fn an_invalidation_during_the_computation_is_not_lost(env: Env) {
    env.manager
        .scope(async {
            let calls = Calls::new(0);
            assert_eq!(racing(&calls, 1).await, 0);
            // The value computed across the invalidation is not served.
            assert_eq!(racing(&calls, 1).await, 1);
            assert_eq!(racing(&calls, 1).await, 1);
        })
        .await;
}

async fn constant_tags_and_stale_ttl_work_together(env: Env) {
    env.manager
        .scope(async {
            let calls = Calls::new(0);
            catalog(&calls, 1).await;
            catalog(&calls, 2).await;
            catalog(&calls, 1).await;
            assert_eq!(calls.load(Ordering::SeqCst), 2);
            invalidate_tag("products").await.unwrap();
            // Invalidated entries are not served stale.
            catalog(&calls, 1).await;
            assert_eq!(calls.load(Ordering::SeqCst), 3);
        })
        .await;
}

on_every_backend!(
    invalidating_a_tag_drops_every_entry_under_it,
    an_invalidation_during_the_computation_is_not_lost,
    constant_tags_and_stale_ttl_work_together,
);

#[cache_result(ttl = 60, key_prefix = "t_tags_sync", tags = ["user:{user_id}"], skip(calls))]
fn settings_sync(calls: &Calls, user_id: u64) -> u64 {
    calls.fetch_add(1, Ordering::SeqCst);
    user_id
}

fn sync_functions_are_tagged_too(env: Env) {
    let calls = Calls::new(0);
    env.manager.blocking().scope(|| {
        settings_sync(&calls, 5);
        settings_sync(&calls, 5);
        assert!(blocking::invalidate_tag("user:5").unwrap());
        settings_sync(&calls, 5);
    });
    assert_eq!(calls.load(Ordering::SeqCst), 2);
}

on_every_backend_sync!(sync_functions_are_tagged_too);

/// Commands the server has processed so far (the `INFO` asking counts too).
async fn commands(env: &Env) -> u64 {
    let mut conn = env.manager.redis().unwrap();
    let info: String = forge_cache::redis::cmd("INFO")
        .arg("stats")
        .query_async(&mut conn)
        .await
        .unwrap();
    info.lines()
        .find_map(|l| l.strip_prefix("total_commands_processed:"))
        .and_then(|n| n.trim().parse().ok())
        .unwrap()
}

#[tokio::test]
async fn a_tagged_hit_is_one_command() {
    let env = Env::redis();
    env.manager
        .scope(async {
            let calls = Calls::new(0);
            profile(&calls, 9, 9).await;
            let before = commands(&env).await;
            for _ in 0..10 {
                profile(&calls, 9, 9).await;
            }
            let after = commands(&env).await;
            assert_eq!(calls.load(Ordering::SeqCst), 1);
            assert_eq!(after - before, 10 + 1, "one MGET per hit, plus one INFO");
        })
        .await;
}
