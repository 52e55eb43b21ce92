//! Distributed locks (the guide's "Distributed Locks"), on every backend:
//! mutual exclusion, owner-only release and extension, bounded waits, the
//! TTL as the backstop for crashed holders, fencing tokens, and the guide's
//! `acquire_lock` / `release_lock` shapes.

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use common::{Env, eventually};
use forge_cache::Error;

const MIN: Duration = Duration::from_secs(60);
/// A generous bound for waits that should end quickly.
const BOUND: Duration = Duration::from_secs(10);

async fn only_one_of_fifty_concurrent_acquirers_holds_the_lock(env: Env) {
    let managers = [env.manager.clone(), env.second_manager()];
    let holders = Arc::new(AtomicUsize::new(0));
    let most = Arc::new(AtomicUsize::new(0));
    let done = Arc::new(AtomicUsize::new(0));
    let mut tasks = Vec::new();
    for i in 0..50 {
        let m = managers[i % 2].clone();
        let (holders, most, done) = (holders.clone(), most.clone(), done.clone());
        tasks.push(tokio::spawn(async move {
            let guard = m.lock("contended", MIN, MIN).await.unwrap();
            let now = holders.fetch_add(1, Ordering::SeqCst) + 1;
            most.fetch_max(now, Ordering::SeqCst);
            // Some work in the critical section, so overlaps would show.
            tokio::time::sleep(Duration::from_millis(1)).await;
            holders.fetch_sub(1, Ordering::SeqCst);
            assert!(guard.release().await.unwrap());
            done.fetch_add(1, Ordering::SeqCst);
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    assert_eq!(most.load(Ordering::SeqCst), 1, "two holders at once");
    assert_eq!(done.load(Ordering::SeqCst), 50);
}

async fn expired_holder_cannot_release_or_extend_the_next_holders_lock(env: Env) {
    let m = &env.manager;
    let stale = m
        .try_lock("job", Duration::from_millis(100))
        .await
        .unwrap()
        .unwrap();
    // The TTL runs out while the first holder is still "working".
    let next = env.second_manager().lock("job", MIN, BOUND).await.unwrap();
    assert!(!stale.extend(MIN).await.unwrap());
    assert!(!stale.release().await.unwrap());
    assert!(
        m.try_lock("job", MIN).await.unwrap().is_none(),
        "the stale holder freed the next holder's lock"
    );
    assert!(next.release().await.unwrap());
}

async fn wait_times_out_at_its_bound_with_lock_timeout(env: Env) {
    let m = &env.manager;
    let held = m.try_lock("busy", MIN).await.unwrap().unwrap();
    let other = env.second_manager();
    for wait in [Duration::ZERO, Duration::from_millis(100)] {
        match other.lock("busy", MIN, wait).await {
            Err(Error::LockTimeout { name, waited }) => {
                assert_eq!(name, "busy");
                assert_eq!(waited, wait);
            }
            r => panic!("expected LockTimeout, got {r:?}"),
        }
    }
    held.release().await.unwrap();
}

async fn leaked_guard_blocks_others_only_until_its_ttl(env: Env) {
    let m = &env.manager;
    let crashed = m
        .try_lock("leaky", Duration::from_millis(300))
        .await
        .unwrap()
        .unwrap();
    std::mem::forget(crashed); // a holder that dies without releasing
    let other = env.second_manager();
    assert!(other.try_lock("leaky", MIN).await.unwrap().is_none());
    let got = other.lock("leaky", MIN, BOUND).await;
    assert!(got.is_ok(), "the TTL did not free the lock: {got:?}");
}

async fn fencing_tokens_strictly_increase(env: Env) {
    let managers = [env.manager.clone(), env.second_manager()];
    let mut last = 0;
    for i in 0..20 {
        let m = &managers[i % 2];
        let guard = m
            .lock("fenced", Duration::from_millis(50), BOUND)
            .await
            .unwrap();
        assert!(guard.fencing_token() > last, "token {i} did not increase");
        last = guard.fencing_token();
        if i % 3 == 0 {
            std::mem::forget(guard); // some holders expire instead of releasing
        } else {
            guard.release().await.unwrap();
        }
    }
}

async fn fencing_token_still_increases_after_the_counter_is_lost(env: Env) {
    let m = &env.manager;
    let first = m.try_lock("fenced", MIN).await.unwrap().unwrap();
    let t1 = first.fencing_token();
    first.release().await.unwrap();
    // As after an eviction, a failover, or 7 idle days.
    assert!(m.delete("lock:{fenced}:fence").await.unwrap());
    let second = m.try_lock("fenced", MIN).await.unwrap().unwrap();
    assert!(second.fencing_token() > t1);
}

async fn dropped_guard_releases_the_lock_in_the_background(env: Env) {
    let m = &env.manager;
    drop(m.try_lock("dropped", MIN).await.unwrap().unwrap());
    let free = eventually(BOUND, async || {
        m.try_lock("dropped", MIN).await.unwrap().is_some()
    })
    .await;
    assert!(free, "a dropped guard kept its lock");
}

async fn with_lock_keeps_the_lock_past_its_ttl_while_work_runs(env: Env) {
    let m = &env.manager;
    let other = env.second_manager();
    let ttl = Duration::from_millis(600);
    let blocked = m
        .with_lock("long", ttl, BOUND, |fence| async move {
            assert!(fence > 0);
            let mut blocked = 0;
            // Work that outlives the TTL twice over.
            for _ in 0..12 {
                tokio::time::sleep(Duration::from_millis(100)).await;
                if other.try_lock("long", MIN).await.unwrap().is_none() {
                    blocked += 1;
                }
            }
            blocked
        })
        .await
        .unwrap();
    assert_eq!(blocked, 12, "the lock lapsed while its work ran");
    assert!(m.try_lock("long", MIN).await.unwrap().is_some());
}

async fn with_lock_times_out_without_running_the_work(env: Env) {
    let m = &env.manager;
    let _held = m.try_lock("taken", MIN).await.unwrap().unwrap();
    let ran = AtomicUsize::new(0);
    let r = env
        .second_manager()
        .with_lock("taken", MIN, Duration::from_millis(50), |_| async {
            ran.fetch_add(1, Ordering::SeqCst);
        })
        .await;
    assert!(matches!(r, Err(Error::LockTimeout { .. })), "{r:?}");
    assert_eq!(ran.load(Ordering::SeqCst), 0);
}

async fn cancelled_with_lock_releases_the_lock(env: Env) {
    let m = env.manager.clone();
    let (started, mut is_started) = tokio::sync::watch::channel(false);
    let task = tokio::spawn(async move {
        m.with_lock("cancelled", MIN, BOUND, |_| async move {
            started.send(true).unwrap();
            std::future::pending::<()>().await
        })
        .await
    });
    is_started.wait_for(|s| *s).await.unwrap();
    task.abort();
    let m = &env.manager;
    let free = eventually(BOUND, async || {
        m.try_lock("cancelled", MIN).await.unwrap().is_some()
    })
    .await;
    assert!(free, "a cancelled with_lock kept its lock");
}

async fn with_lock_that_lost_its_lock_leaves_the_next_holder_alone(env: Env) {
    let m = &env.manager;
    let other = env.second_manager();
    let ttl = Duration::from_millis(300);
    let next = m
        .with_lock("lost", ttl, BOUND, |_| async {
            // As if the lock expired during a long pause of this holder.
            assert!(m.delete("lock:{lost}").await.unwrap());
            let next = other.try_lock("lost", MIN).await.unwrap().unwrap();
            // Work on past a watchdog tick: it must not extend `next`.
            tokio::time::sleep(ttl).await;
            next
        })
        .await
        .unwrap();
    // with_lock's own release did not free the next holder's lock either.
    assert!(m.try_lock("lost", MIN).await.unwrap().is_none());
    let left = m.ttl("lock:{lost}").await.unwrap().unwrap();
    assert!(left > Duration::from_secs(30), "TTL changed to {left:?}");
    assert!(next.release().await.unwrap());
}

async fn guide_acquire_and_release_are_owner_safe(env: Env) {
    let m = &env.manager;
    // The guide's shape.
    assert!(m.acquire_lock("payment:1", MIN).await.unwrap());
    assert!(!m.acquire_lock("payment:1", MIN).await.unwrap());
    assert!(m.release_lock("payment:1").await.unwrap());
    assert!(!m.release_lock("payment:1").await.unwrap());
    assert!(!m.release_lock("never-taken").await.unwrap());

    // The guide's bug: a holder whose lock expired deleted the next
    // holder's lock. Here its release finds the lock is not its own.
    assert!(
        m.acquire_lock("payment:2", Duration::from_millis(100))
            .await
            .unwrap()
    );
    let next = env
        .second_manager()
        .lock("payment:2", MIN, BOUND)
        .await
        .unwrap();
    assert!(!m.release_lock("payment:2").await.unwrap());
    assert!(m.try_lock("payment:2", MIN).await.unwrap().is_none());
    assert!(next.release().await.unwrap());

    // Another process cannot release this manager's lock by name.
    if env.server.is_some() {
        let other = env.second_manager();
        assert!(m.acquire_lock("payment:3", MIN).await.unwrap());
        assert!(!other.acquire_lock("payment:3", MIN).await.unwrap());
        assert!(!other.release_lock("payment:3").await.unwrap());
        assert!(other.try_lock("payment:3", MIN).await.unwrap().is_none());
        assert!(m.release_lock("payment:3").await.unwrap());
    }
}

async fn lock_keys_are_escaped_hash_tagged_and_expire(env: Env) {
    let m = &env.manager;
    let guard = m.try_lock("a:*{b}", MIN).await.unwrap().unwrap();
    let lock_ttl = m.ttl("lock:{a%3A%2A%7Bb%7D}").await.unwrap().unwrap();
    assert!(lock_ttl <= MIN && lock_ttl > Duration::ZERO);
    let fence_ttl = m.ttl("lock:{a%3A%2A%7Bb%7D}:fence").await.unwrap().unwrap();
    assert!(
        fence_ttl > Duration::from_secs(6 * 24 * 3600),
        "{fence_ttl:?}"
    );
    // The name cannot reach other locks' keys.
    assert!(m.try_lock("a", MIN).await.unwrap().is_some());
    assert!(matches!(
        m.try_lock("", MIN).await,
        Err(Error::InvalidName { .. })
    ));
    guard.release().await.unwrap();
}

on_every_backend!(
    only_one_of_fifty_concurrent_acquirers_holds_the_lock,
    expired_holder_cannot_release_or_extend_the_next_holders_lock,
    wait_times_out_at_its_bound_with_lock_timeout,
    leaked_guard_blocks_others_only_until_its_ttl,
    fencing_tokens_strictly_increase,
    fencing_token_still_increases_after_the_counter_is_lost,
    dropped_guard_releases_the_lock_in_the_background,
    with_lock_keeps_the_lock_past_its_ttl_while_work_runs,
    with_lock_times_out_without_running_the_work,
    cancelled_with_lock_releases_the_lock,
    with_lock_that_lost_its_lock_leaves_the_next_holder_alone,
    guide_acquire_and_release_are_owner_safe,
    lock_keys_are_escaped_hash_tagged_and_expire,
);

fn only_one_thread_holds_a_sync_lock(env: Env) {
    let managers = [env.manager.clone(), env.second_manager()];
    let holders = AtomicUsize::new(0);
    let most = AtomicUsize::new(0);
    std::thread::scope(|s| {
        for i in 0..10 {
            let m = &managers[i % 2];
            let (holders, most) = (&holders, &most);
            s.spawn(move || {
                for _ in 0..3 {
                    let guard = m.blocking().lock("threads", MIN, MIN).unwrap();
                    let now = holders.fetch_add(1, Ordering::SeqCst) + 1;
                    most.fetch_max(now, Ordering::SeqCst);
                    std::thread::sleep(Duration::from_millis(1));
                    holders.fetch_sub(1, Ordering::SeqCst);
                    assert!(guard.release().unwrap());
                }
            });
        }
    });
    assert_eq!(most.load(Ordering::SeqCst), 1, "two holders at once");
}

fn sync_lock_is_owner_safe_and_released_on_drop(env: Env) {
    let m = env.manager.blocking();
    let stale = m
        .try_lock("sync", Duration::from_millis(100))
        .unwrap()
        .unwrap();
    let next = m.lock("sync", MIN, BOUND).unwrap();
    assert!(next.fencing_token() > stale.fencing_token());
    assert!(!stale.extend(MIN).unwrap());
    assert!(!stale.release().unwrap());
    assert!(m.try_lock("sync", MIN).unwrap().is_none());
    drop(next); // released synchronously
    assert!(m.try_lock("sync", MIN).unwrap().is_some());
    assert!(matches!(
        m.lock("sync-held", MIN, BOUND).and_then(|_held| m.lock(
            "sync-held",
            MIN,
            Duration::from_millis(30)
        )),
        Err(Error::LockTimeout { .. })
    ));
}

fn sync_with_lock_keeps_the_lock_while_work_runs(env: Env) {
    let m = env.manager.blocking();
    let other = env.second_manager();
    let ttl = Duration::from_millis(600);
    let blocked = m
        .with_lock("sync-long", ttl, BOUND, |fence| {
            assert!(fence > 0);
            (0..12)
                .filter(|_| {
                    std::thread::sleep(Duration::from_millis(100));
                    other
                        .blocking()
                        .try_lock("sync-long", MIN)
                        .unwrap()
                        .is_none()
                })
                .count()
        })
        .unwrap();
    assert_eq!(blocked, 12, "the lock lapsed while its work ran");
    assert!(m.try_lock("sync-long", MIN).unwrap().is_some());
}

fn sync_guide_acquire_and_release(env: Env) {
    let m = env.manager.blocking();
    assert!(m.acquire_lock("guide", MIN).unwrap());
    assert!(!m.acquire_lock("guide", MIN).unwrap());
    assert!(m.release_lock("guide").unwrap());
    assert!(!m.release_lock("guide").unwrap());
}

fn panicking_sync_work_releases_the_lock(env: Env) {
    let m = env.manager.blocking();
    let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        m.with_lock("panics", MIN, BOUND, |_| panic!("work failed"))
    }));
    assert!(r.is_err());
    assert!(m.try_lock("panics", MIN).unwrap().is_some());
}

on_every_backend_sync!(
    only_one_thread_holds_a_sync_lock,
    sync_lock_is_owner_safe_and_released_on_drop,
    sync_with_lock_keeps_the_lock_while_work_runs,
    sync_guide_acquire_and_release,
    panicking_sync_work_releases_the_lock,
);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lock_scripts_reload_after_script_flush() {
    let env = Env::redis();
    let m = &env.manager;
    m.try_lock("flushed", MIN)
        .await
        .unwrap()
        .unwrap()
        .release()
        .await
        .unwrap();
    env.server.as_ref().unwrap().cli(&["SCRIPT", "FLUSH"]);
    let guard = m.try_lock("flushed", MIN).await.unwrap().unwrap();
    env.server.as_ref().unwrap().cli(&["SCRIPT", "FLUSH"]);
    assert!(guard.extend(MIN).await.unwrap());
    env.server.as_ref().unwrap().cli(&["SCRIPT", "FLUSH"]);
    assert!(guard.release().await.unwrap());
    env.server.as_ref().unwrap().cli(&["SCRIPT", "FLUSH"]);
    assert!(m.blocking().acquire_lock("flushed", MIN).unwrap());
    env.server.as_ref().unwrap().cli(&["SCRIPT", "FLUSH"]);
    assert!(m.blocking().release_lock("flushed").unwrap());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lock_keys_carry_the_namespace() {
    let env = Env::redis_with(|b| b.namespace("app"));
    let guard = env.manager.try_lock("ns", MIN).await.unwrap().unwrap();
    let mut raw = env.manager.redis().unwrap();
    let n: i64 = ::redis::cmd("EXISTS")
        .arg("app:lock:{ns}")
        .arg("app:lock:{ns}:fence")
        .query_async(&mut raw)
        .await
        .unwrap();
    assert_eq!(n, 2);
    guard.release().await.unwrap();
}
