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
        tokio::task::spawn_blocking(move || m2.blocking().get::<i32>("k")),
    )
    .await
    .expect("sync call hung past the socket timeout")
    .unwrap();
    assert!(sync.unwrap_err().is_outage());

    env.server.as_ref().unwrap().resume();
    assert!(eventually(HANG, async || m.get::<i32>("k").await.ok() == Some(Some(1))).await);
    let m3 = m.clone();
    let recovered = tokio::task::spawn_blocking(move || {
        (0..100).any(|_| m3.blocking().get::<i32>("k").ok() == Some(Some(1)))
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
    assert_eq!(m.blocking().incr("c", 1, MIN).unwrap(), 3);
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
    assert!(common::report(&err).contains("OOM"), "{err}");
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

// ----- cached functions on a frozen server -----------------------------------

#[forge_cache::cache_result(ttl = 60, key_prefix = "t_paused", skip(calls))]
async fn paused_cached(calls: &std::sync::atomic::AtomicUsize, x: u32) -> u32 {
    calls.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
    x + 1
}

#[forge_cache::cache_result(ttl = 60, key_prefix = "t_paused", skip(calls))]
fn paused_cached_sync(calls: &std::sync::atomic::AtomicUsize, x: u32) -> u32 {
    calls.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
    x + 1
}

/// A SIGSTOPped server keeps its connections open and never answers: a
/// cached call must give up at the socket timeout and run the function,
/// not hang until the OS gives up on TCP.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cached_calls_on_a_paused_server_run_uncached_then_hit_after_resume() {
    cached_calls_while_paused(Env::redis_with(fast_timeouts)).await;
}

/// The same with every node of a Redis Cluster frozen.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cached_calls_on_a_paused_cluster_run_uncached_then_hit_after_resume() {
    cached_calls_while_paused(Env::cluster_with(fast_timeouts)).await;
}

async fn cached_calls_while_paused(env: Env) {
    use std::sync::atomic::{AtomicUsize, Ordering};
    let m = env.manager.clone();
    let calls = AtomicUsize::new(0);
    m.scope(async {
        assert_eq!(paused_cached(&calls, 1).await, 2);
        assert_eq!(paused_cached(&calls, 1).await, 2);
    })
    .await;
    assert_eq!(calls.load(Ordering::SeqCst), 1);
    // The sync pool holds a connection before the pause (a cold pool costs
    // more: connecting counts too).
    tokio::task::block_in_place(|| {
        m.blocking()
            .scope(|| paused_cached_sync(&AtomicUsize::new(0), 4));
    });

    assert!(env.pause_backend());
    let started = std::time::Instant::now();
    let v = tokio::time::timeout(HANG, m.scope(paused_cached(&calls, 1)))
        .await
        .expect("a cached call hung on a paused server");
    let took = started.elapsed();
    assert_eq!(v, 2);
    assert_eq!(calls.load(Ordering::SeqCst), 2, "the function did not run");
    let m2 = m.clone();
    let sync = tokio::task::spawn_blocking(move || {
        let calls = AtomicUsize::new(0);
        let started = std::time::Instant::now();
        let v = m2.blocking().scope(|| paused_cached_sync(&calls, 5));
        (v, calls.into_inner(), started.elapsed())
    });
    let (v, sync_calls, sync_took) = tokio::time::timeout(HANG, sync)
        .await
        .expect("a sync cached call hung on a paused server")
        .unwrap();
    assert_eq!((v, sync_calls), (6, 1));
    eprintln!(
        "paused {} (socket timeout 300 ms): cached call answered in {:.0} ms (async), {:.0} ms (sync)",
        if env.cluster.is_some() {
            "cluster"
        } else {
            "server"
        },
        took.as_secs_f64() * 1e3,
        sync_took.as_secs_f64() * 1e3
    );

    env.resume_backend();
    let before = calls.load(Ordering::SeqCst);
    assert!(
        eventually(HANG, async || {
            m.scope(paused_cached(&calls, 1)).await;
            m.stats().prefix("t_paused").hits >= 2 && calls.load(Ordering::SeqCst) <= before + 1
        })
        .await,
        "hits did not resume after SIGCONT"
    );
}

// ----- Redis killed under load ----------------------------------------------

/// The cached function's own cost during the load test.
const COST: Duration = Duration::from_millis(2);

#[forge_cache::cache_result(ttl = 60, key_prefix = "t_load")]
async fn load_cached(id: u32) -> u32 {
    tokio::time::sleep(COST).await;
    id * 2
}

#[forge_cache::rate_limit(max_requests = 1_000_000_000, window_seconds = 60)]
async fn load_limited() -> Result<(), forge_cache::RateLimitExceeded> {
    Ok(())
}

/// One call of the load: when it started (since the test began) and how
/// long the cached call took.
struct Sample {
    at: Duration,
    took: Duration,
}

fn p99(samples: &[&Sample]) -> Option<Duration> {
    let mut t: Vec<Duration> = samples.iter().map(|s| s.took).collect();
    t.sort_unstable();
    (!t.is_empty()).then(|| t[(t.len() * 99 / 100).min(t.len() - 1)])
}

/// Waits until the load has made `more` further calls (bounded).
async fn calls_made(done: &std::sync::atomic::AtomicUsize, more: usize) {
    use std::sync::atomic::Ordering;
    let target = done.load(Ordering::Relaxed) + more;
    assert!(
        eventually(HANG, async || done.load(Ordering::Relaxed) >= target).await,
        "the load stalled"
    );
}

/// How the server goes away and comes back.
#[derive(Clone, Copy, PartialEq)]
enum Outage {
    /// SIGKILL, then a new process on the same port.
    Kill,
    /// SIGSTOP (connections stay open, nothing answers), then SIGCONT.
    Freeze,
}

/// 64 tasks call a cached and a rate-limited function while the server
/// goes away and comes back. No call fails or panics; the rate limit admits
/// (on_error = allow); hits resume within 10 s. Latencies and the time to
/// recovery are measured and printed (run with `--nocapture`), not asserted.
async fn outage_under_load(outage: Outage) {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
    use std::time::Instant;

    let mut env = Env::redis_with(|b| {
        b.socket_timeout(Duration::from_millis(300))
            .breaker_threshold(5)
            .breaker_cooldown(Duration::from_millis(500))
    });
    let m = env.manager.clone();
    let begin = Instant::now();
    let stop = Arc::new(AtomicBool::new(false));
    let done = Arc::new(AtomicUsize::new(0));
    let tasks: Vec<_> = (0..64u32)
        .map(|t| {
            let (m, stop, done) = (m.clone(), stop.clone(), done.clone());
            tokio::spawn(async move {
                let load = async {
                    let mut samples = Vec::new();
                    let mut i = 0u32;
                    while !stop.load(Ordering::Relaxed) {
                        let id = (t * 7 + i) % 32;
                        i += 1;
                        let at = begin.elapsed();
                        let v = load_cached(id).await;
                        let took = begin.elapsed() - at;
                        assert_eq!(v, id * 2, "a cached call returned a wrong value");
                        // on_error = allow (the default): admitted whatever Redis does.
                        assert!(load_limited().await.is_ok(), "rate limit refused");
                        samples.push(Sample { at, took });
                        done.fetch_add(1, Ordering::Relaxed);
                    }
                    samples
                };
                m.scope(load).await
            })
        })
        .collect();

    calls_made(&done, 5_000).await;
    assert!(m.stats().prefix("t_load").hits > 0);
    let down_at = begin.elapsed();
    match outage {
        Outage::Kill => env.server().stop(),
        Outage::Freeze => assert!(env.pause_backend()),
    }
    assert!(
        eventually(HANG, async || m.breaker_open()).await,
        "the breaker never opened"
    );
    let opened = begin.elapsed();
    // Long enough (about 1.5 s) to span several breaker cooldowns.
    calls_made(&done, 20_000).await;
    let hits_down = m.stats().prefix("t_load").hits;
    let back_at = Instant::now();
    match outage {
        Outage::Kill => tokio::task::block_in_place(|| env.server().restart()),
        Outage::Freeze => env.resume_backend(),
    }
    let back = begin.elapsed();
    let answering = back_at.elapsed();
    let resumed = eventually(Duration::from_secs(10), async || {
        m.stats().prefix("t_load").hits > hits_down
    })
    .await;
    let recovery = back_at.elapsed();
    stop.store(true, Ordering::Relaxed);
    let mut samples = Vec::new();
    for t in tasks {
        // A panic in any task (a wrong value, a refusal) fails the test here.
        samples.extend(t.await.expect("a load task panicked"));
    }
    assert!(
        resumed,
        "hits did not resume within 10 s of the server's return"
    );

    let phase = |from: Duration, to: Duration| -> Vec<&Sample> {
        samples
            .iter()
            .filter(|s| s.at >= from && s.at < to)
            .collect()
    };
    let show = |p: &[&Sample]| match (p99(p), p.iter().map(|s| s.took).max()) {
        (Some(p99), Some(max)) => format!(
            "p99 {:.1} ms, max {:.1} ms ({} calls, {} over 100 ms)",
            p99.as_secs_f64() * 1e3,
            max.as_secs_f64() * 1e3,
            p.len(),
            p.iter()
                .filter(|s| s.took >= Duration::from_millis(100))
                .count()
        ),
        _ => "no calls".into(),
    };
    let (how, returned) = match outage {
        Outage::Kill => ("killed (SIGKILL)", "restarted; it answered PING after"),
        Outage::Freeze => ("frozen (SIGSTOP)", "resumed (SIGCONT) in"),
    };
    eprintln!(
        "Redis {how} under load: 64 tasks, socket timeout 300 ms, breaker 5 failures / 500 ms cooldown, fn cost {} ms\n  \
         before the outage:              {}\n  \
         outage, breaker still shut:     {} ({:.0} ms until it opened)\n  \
         outage, breaker open:           {}\n  \
         server {returned} {:.0} ms; hits resumed {:.0} ms after it came back",
        COST.as_millis(),
        show(&phase(Duration::ZERO, down_at)),
        show(&phase(down_at, opened)),
        (opened - down_at).as_secs_f64() * 1e3,
        show(&phase(opened, back)),
        answering.as_secs_f64() * 1e3,
        recovery.as_secs_f64() * 1e3,
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_killed_under_load_never_fails_a_call_and_recovers_on_its_own() {
    outage_under_load(Outage::Kill).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_frozen_under_load_never_fails_a_call_and_recovers_on_its_own() {
    outage_under_load(Outage::Freeze).await;
}

#[forge_cache::cache_result(ttl = 60, key_prefix = "refused", skip(calls))]
async fn refused_cached(calls: &std::sync::atomic::AtomicUsize, x: u32) -> u32 {
    calls.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
    x
}

#[forge_cache::cache_result(ttl = 60, key_prefix = "refused_sync", skip(calls))]
fn refused_cached_sync(calls: &std::sync::atomic::AtomicUsize, x: u32) -> u32 {
    calls.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
    x
}

/// A manager with the default 5 s socket timeout on a loopback port where
/// nothing listens (a single server, or a cluster seed node): every
/// connection attempt is refused at once.
fn on_a_closed_port(cluster: bool) -> forge_cache::CacheManager {
    let port = forge_cache_testkit::free_port();
    let scheme = if cluster { "redis+cluster" } else { "redis" };
    let settings = forge_cache::RedisSettings::builder()
        .url(format!("{scheme}://127.0.0.1:{port}"))
        .build()
        .unwrap();
    assert_eq!(settings.socket_timeout(), Duration::from_secs(5));
    forge_cache::CacheManager::new(settings).unwrap()
}

/// Bound for a whole sequence of refused calls: far below one socket
/// timeout, which each call used to wait out. Not a speed judgement.
const REFUSALS: Duration = Duration::from_millis(2500);

fn refused_sync(cluster: bool) {
    let m = on_a_closed_port(cluster);
    let calls = std::sync::atomic::AtomicUsize::new(0);
    let start = std::time::Instant::now();
    assert!(!m.blocking().test_connection());
    let first = start.elapsed();
    m.blocking().scope(|| {
        for i in 0..20 {
            assert_eq!(refused_cached_sync(&calls, i), i);
        }
    });
    let all = start.elapsed();
    println!("sync, refused (cluster: {cluster}): first call {first:?}, 21 calls {all:?}");
    assert!(all < REFUSALS, "21 refused sync calls took {all:?}");
    assert_eq!(calls.load(std::sync::atomic::Ordering::SeqCst), 20);
    assert!(m.breaker_open(), "the breaker does not cover sync calls");
}

async fn refused_async(cluster: bool) {
    let m = on_a_closed_port(cluster);
    let calls = std::sync::atomic::AtomicUsize::new(0);
    let start = std::time::Instant::now();
    assert!(!m.test_connection().await);
    let first = start.elapsed();
    m.scope(async {
        for i in 0..20 {
            assert_eq!(refused_cached(&calls, i).await, i);
        }
    })
    .await;
    let all = start.elapsed();
    println!("async, refused (cluster: {cluster}): first call {first:?}, 21 calls {all:?}");
    assert!(all < REFUSALS, "21 refused async calls took {all:?}");
    assert_eq!(calls.load(std::sync::atomic::Ordering::SeqCst), 20);
    assert!(m.breaker_open());
}

#[test]
fn a_refused_connection_does_not_wait_out_the_socket_timeout_on_the_sync_path() {
    refused_sync(false);
}

#[test]
fn a_refused_cluster_connection_does_not_wait_out_the_socket_timeout_on_the_sync_path() {
    refused_sync(true);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refused_connection_does_not_wait_out_the_socket_timeout_on_the_async_path() {
    refused_async(false).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refused_cluster_connection_does_not_wait_out_the_socket_timeout_on_the_async_path() {
    refused_async(true).await;
}
