//! `version = N` on every backend: a new version never reads the entries
//! of an older one, its keys are pinned, and `<fn>_invalidate_all` covers
//! every version.

mod common;

use std::sync::atomic::{AtomicUsize, Ordering};

use common::Env;

type Calls = AtomicUsize;

/// The function as an old deploy had it: it stored a `String`.
mod old {
    use super::*;
    use forge_cache::cache_result;

    #[cache_result(ttl = 60, key_prefix = "t_version", skip(calls))]
    pub async fn profile(calls: &Calls, id: u64) -> String {
        calls.fetch_add(1, Ordering::SeqCst);
        format!("user {id}")
    }
}

/// The same function after the deploy: it stores a number, under `v2`.
mod new {
    use super::*;
    use forge_cache::cache_result;

    #[cache_result(ttl = 60, key_prefix = "t_version", version = 2, skip(calls))]
    pub async fn profile(calls: &Calls, id: u64) -> u64 {
        calls.fetch_add(1, Ordering::SeqCst);
        id * 10
    }

    #[cache_result(ttl = 60, key_prefix = "t_version_sync", version = 3, skip(calls))]
    pub fn profile_sync(calls: &Calls, id: u64) -> u64 {
        calls.fetch_add(1, Ordering::SeqCst);
        id + 1
    }
}

async fn a_new_version_never_reads_entries_of_an_old_one(env: Env) {
    env.manager
        .scope(async {
            let (old_runs, new_runs) = (Calls::new(0), Calls::new(0));
            assert_eq!(old::profile(&old_runs, 7).await, "user 7");
            assert_eq!(new::profile(&new_runs, 7).await, 70);
            assert_eq!(new::profile(&new_runs, 7).await, 70);
            // Both entries live side by side: the old deploy still hits its own.
            assert_eq!(old::profile(&old_runs, 7).await, "user 7");
            assert_eq!(old_runs.load(Ordering::SeqCst), 1);
            assert_eq!(new_runs.load(Ordering::SeqCst), 1);
        })
        .await;
}

async fn versioned_keys_are_pinned(env: Env) {
    env.manager
        .scope(async {
            let calls = Calls::new(0);
            new::profile(&calls, 7).await;
            // md5("[7]")
            let key = "t_version:profile:v2:9b264f7a3d69a4d3335fb7b43eb133e4";
            let stored = env.manager.get::<u64>(key).await.unwrap();
            let unversioned = env
                .manager
                .get::<u64>("t_version:profile:9b264f7a3d69a4d3335fb7b43eb133e4")
                .await
                .unwrap();
            assert_eq!((stored, unversioned), (Some(70), None));
        })
        .await;
}

async fn invalidate_all_covers_every_version(env: Env) {
    env.manager
        .scope(async {
            let (old_runs, new_runs) = (Calls::new(0), Calls::new(0));
            old::profile(&old_runs, 1).await;
            new::profile(&new_runs, 1).await;
            assert_eq!(new::profile_invalidate_all().await.unwrap(), 2);
            assert!(!new::profile_invalidate(1).await.unwrap());
            old::profile(&old_runs, 1).await;
            assert_eq!(old_runs.load(Ordering::SeqCst), 2);
        })
        .await;
}

on_every_backend!(
    a_new_version_never_reads_entries_of_an_old_one,
    versioned_keys_are_pinned,
    invalidate_all_covers_every_version,
);

fn sync_functions_are_versioned_too(env: Env) {
    let calls = Calls::new(0);
    env.manager.blocking().scope(|| {
        assert_eq!(new::profile_sync(&calls, 1), 2);
        assert_eq!(new::profile_sync(&calls, 1), 2);
    });
    assert_eq!(calls.load(Ordering::SeqCst), 1);
    // md5("[1]")
    let key = "t_version_sync:profile_sync:v3:35dba5d75538a9bbe0b4da4422759a0e";
    assert_eq!(env.manager.blocking().get::<u64>(key).unwrap(), Some(2));
}

on_every_backend_sync!(sync_functions_are_versioned_too);
