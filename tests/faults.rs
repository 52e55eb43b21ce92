//! Faults survived: real redis-server processes stopped, paused and
//! restarted by PID; scripts flushed; memory exhausted.

mod common;

use std::time::Duration;

use common::{Env, eventually};

const MIN: Duration = Duration::from_secs(60);
/// Generous bound that only a hang (e.g. waiting for the OS TCP timeout)
/// can exceed; never used to judge speed.
const HANG: Duration = Duration::from_secs(20);

fn fast_timeouts(b: forge_cache::RedisSettingsBuilder) -> forge_cache::RedisSettingsBuilder {
    b.socket_timeout(Duration::from_millis(300))
        .breaker_threshold(0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn paused_server_times_out_at_the_socket_timeout_then_recovers() {
    let env = Env::redis_with(fast_timeouts);
    let m = env.manager.clone();
    m.set("k", &1, MIN).await.unwrap();
    env.server.as_ref().unwrap().pause();

    let r = tokio::time::timeout(HANG, m.get::<i32>("k"))
        .await
        .expect("call hung past the socket timeout");
    let err = r.unwrap_err();
    assert!(err.is_outage(), "{err}");
    let m2 = m.clone();
    let sync = tokio::time::timeout(
        HANG,
        tokio::task::spawn_blocking(move || m2.get_sync::<i32>("k")),
    )
    .await
    .expect("sync call hung past the socket timeout")
    .unwrap();
    assert!(sync.unwrap_err().is_outage());

    env.server.as_ref().unwrap().resume();
    assert!(eventually(HANG, async || m.get::<i32>("k").await.ok() == Some(Some(1))).await);
    let m3 = m.clone();
    let recovered = tokio::task::spawn_blocking(move || {
        (0..100).any(|_| m3.get_sync::<i32>("k").ok() == Some(Some(1)))
    });
    assert!(recovered.await.unwrap());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn breaker_opens_during_an_outage_and_closes_after_recovery() {
    let mut env = Env::redis_with(|b| {
        b.socket_timeout(Duration::from_millis(300))
            .breaker_threshold(3)
            .breaker_cooldown(Duration::from_millis(200))
    });
    let m = env.manager.clone();
    m.set("k", &1, MIN).await.unwrap();
    env.server().stop();
    for _ in 0..3 {
        assert!(m.get::<i32>("k").await.is_err());
    }
    assert!(m.breaker_open());
    assert!(matches!(
        m.get::<i32>("k").await,
        Err(forge_cache::Error::CircuitOpen)
    ));
    let health = m.health().await;
    assert!(
        !health.reachable && health.breaker_open && health.error.is_some(),
        "{health:?}"
    );
    env.server().restart();
    assert!(eventually(HANG, async || m.set("k", &2, MIN).await.is_ok()).await);
    assert!(!m.breaker_open());
    assert!(m.health().await.reachable);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn script_flush_between_calls_is_reloaded_transparently() {
    let env = Env::redis();
    let m = &env.manager;
    assert_eq!(m.incr("c", 1, MIN).await.unwrap(), 1);
    assert_eq!(env.server.as_ref().unwrap().cli(&["SCRIPT", "FLUSH"]), "OK");
    assert_eq!(m.incr("c", 1, MIN).await.unwrap(), 2);
    assert_eq!(env.server.as_ref().unwrap().cli(&["SCRIPT", "FLUSH"]), "OK");
    assert_eq!(m.incr_sync("c", 1, MIN).unwrap(), 3);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn maxmemory_noeviction_fails_writes_without_breaking_reads() {
    let env = Env::redis();
    let m = &env.manager;
    m.set("small", &"kept", MIN).await.unwrap();
    let server = env.server.as_ref().unwrap();
    assert_eq!(
        server.cli(&["CONFIG", "SET", "maxmemory-policy", "noeviction"]),
        "OK"
    );
    assert_eq!(server.cli(&["CONFIG", "SET", "maxmemory", "1"]), "OK");
    let err = m.set("big", &"x".repeat(10_000), MIN).await.unwrap_err();
    assert!(err.to_string().contains("OOM"), "{err}");
    // A full server answers; it is not an outage, so the breaker stays shut.
    assert!(!err.is_outage());
    assert_eq!(
        m.get::<String>("small").await.unwrap().as_deref(),
        Some("kept")
    );
    assert!(!m.breaker_open());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn allkeys_lru_evictions_leave_counters_recreated_with_ttls() {
    let env = Env::redis();
    let m = &env.manager;
    let server = env.server.as_ref().unwrap();
    assert_eq!(
        server.cli(&["CONFIG", "SET", "maxmemory-policy", "allkeys-lru"]),
        "OK"
    );
    assert_eq!(server.cli(&["CONFIG", "SET", "maxmemory", "2mb"]), "OK");
    for i in 0..2_000 {
        // Writes never fail under allkeys-lru; older values disappear.
        m.set(&format!("v:{i}"), &"y".repeat(2_000), MIN)
            .await
            .unwrap();
        let n = m.incr("counter", 1, MIN).await.unwrap();
        assert!(n >= 1);
        assert!(
            m.ttl("counter").await.unwrap().is_some(),
            "counter without TTL after {i} writes"
        );
    }
    let mut survivors = 0;
    for i in 0..2_000 {
        survivors += usize::from(m.get_bytes(&format!("v:{i}")).await.unwrap().is_some());
    }
    assert!(survivors < 2_000, "nothing was evicted");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn garbage_under_a_key_is_a_decode_error_not_a_panic() {
    for env in [Env::memory(), Env::redis()] {
        let m = &env.manager;
        m.set_bytes("g", b"\xff\x00not json", MIN).await.unwrap();
        assert!(matches!(
            m.get::<i32>("g").await,
            Err(forge_cache::Error::Decode(_))
        ));
        m.set("typed", &"a string", MIN).await.unwrap();
        assert!(matches!(
            m.get::<Vec<u64>>("typed").await,
            Err(forge_cache::Error::Decode(_))
        ));
    }
}
