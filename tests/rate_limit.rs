//! Rate limiting: exactness under concurrency, TTLs, windows, retry times,
//! backend failures, hostile keys and script reloads, on every backend.

mod common;

use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use common::{Env, eventually};
// The per-site check that `#[rate_limit]` expands to, tested directly.
use forge_cache::__private::{RateSite, blocking, rate_limit_check};
use forge_cache::{Algorithm, CacheManager, Decision, OnError, RateLimit};

const ALGORITHMS: [Algorithm; 3] = [
    Algorithm::FixedWindow,
    Algorithm::SlidingWindow,
    Algorithm::Gcra,
];

/// Long enough that no refill or clock-aligned window edge falls inside a test.
const LONG: Duration = Duration::from_secs(30 * 24 * 3600);

fn limit(max: u64, window: Duration, algorithm: Algorithm) -> RateLimit {
    RateLimit::new(max, window)
        .with_algorithm(algorithm)
        .with_name(format!("{algorithm:?}"))
}

async fn check(m: &CacheManager, key: &str, limit: &RateLimit) -> Decision {
    m.check_rate_limit(key, limit).await.unwrap()
}

/// Checks until refused (at most `max_requests + 1` times); returns how many
/// were admitted and the refusal.
async fn exhaust(m: &CacheManager, key: &str, limit: &RateLimit) -> (u64, Decision) {
    for admitted in 0..=limit.max_requests {
        let d = check(m, key, limit).await;
        if !d.allowed {
            return (admitted, d);
        }
    }
    panic!(
        "{:?}: more than {} admitted",
        limit.algorithm, limit.max_requests
    );
}

/// Runs `tasks` × `calls` checks on `managers` (round robin) and counts the
/// admitted ones.
async fn admitted_concurrently(
    managers: &[CacheManager],
    tasks: usize,
    calls: usize,
    limit: &RateLimit,
) -> u64 {
    let limit = Arc::new(limit.clone());
    let mut set = tokio::task::JoinSet::new();
    for t in 0..tasks {
        let m = managers[t % managers.len()].clone();
        let limit = limit.clone();
        set.spawn(async move {
            let mut n = 0u64;
            for _ in 0..calls {
                n += u64::from(check(&m, "shared", &limit).await.allowed);
            }
            n
        });
    }
    set.join_all().await.into_iter().sum()
}

async fn concurrent_checks_admit_exactly_the_limit(env: Env) {
    for algorithm in ALGORITHMS {
        let l = limit(1000, LONG, algorithm);
        let admitted = admitted_concurrently(std::slice::from_ref(&env.manager), 16, 500, &l).await;
        assert_eq!(admitted, 1000, "{algorithm:?}");
    }
}

async fn two_managers_sharing_a_backend_admit_exactly_the_limit(env: Env) {
    let managers = [env.manager.clone(), env.second_manager()];
    for algorithm in ALGORITHMS {
        let l = limit(1000, LONG, algorithm).with_prefix("two");
        let admitted = admitted_concurrently(&managers, 16, 500, &l).await;
        assert_eq!(admitted, 1000, "{algorithm:?}");
    }
}

/// `PTTL` of `key` (without namespace): -2 absent, -1 persistent.
async fn pttl(env: &Env, key: &str) -> i64 {
    match &env.server {
        Some(_) => {
            let mut conn = env.manager.redis().unwrap();
            ::redis::cmd("PTTL")
                .arg(key)
                .query_async(&mut conn)
                .await
                .unwrap()
        }
        None => env
            .manager
            .ttl(key)
            .await
            .unwrap()
            .map_or(-2, |d| d.as_millis() as i64),
    }
}

async fn every_check_leaves_a_ttl_even_across_window_rollovers(env: Env) {
    for algorithm in ALGORITHMS {
        let l = limit(5, Duration::from_millis(300), algorithm);
        let key = l.key_for("burst");
        let deadline = Instant::now() + Duration::from_secs(10);
        let (mut refusals, mut rollovers) = (0, 0);
        let mut was_refused = false;
        while rollovers < 3 && Instant::now() < deadline {
            let at = Instant::now();
            let d = check(&env.manager, "burst", &l).await;
            let ttl = pttl(&env, &key).await;
            assert_ne!(ttl, -1, "{algorithm:?}: key written without a TTL");
            if ttl <= 0 {
                // Gone already: only allowed once the decision's reset passed
                // (within 2 ms: `pttl` here rounds down to the millisecond,
                // the decision's reset rounds up).
                assert!(
                    at.elapsed() + Duration::from_millis(2) >= d.reset_after,
                    "{algorithm:?}: key vanished {:?} into a reset of {:?}",
                    at.elapsed(),
                    d.reset_after
                );
            }
            if d.allowed && was_refused {
                rollovers += 1;
            }
            was_refused = !d.allowed;
            refusals += u32::from(!d.allowed);
        }
        assert!(rollovers >= 3, "{algorithm:?}: windows did not roll over");
        assert!(refusals > 0, "{algorithm:?}");
    }
}

async fn retry_after_is_long_enough(env: Env) {
    for algorithm in ALGORITHMS {
        let l = limit(3, Duration::from_millis(400), algorithm);
        let (admitted, refused) = exhaust(&env.manager, "r", &l).await;
        assert_eq!(admitted, 3, "{algorithm:?}");
        assert!(refused.retry_after > Duration::ZERO, "{algorithm:?}");
        assert!(refused.retry_after <= 2 * l.window, "{algorithm:?}");
        assert_eq!(refused.remaining, 0);
        tokio::time::sleep(refused.retry_after).await;
        assert!(check(&env.manager, "r", &l).await.allowed, "{algorithm:?}");
    }
}

async fn full_quota_is_back_after_reset_after(env: Env) {
    for algorithm in ALGORITHMS {
        let l = limit(3, Duration::from_millis(400), algorithm);
        let (_, refused) = exhaust(&env.manager, "w", &l).await;
        tokio::time::sleep(refused.reset_after).await;
        let d = check(&env.manager, "w", &l).await;
        assert!(d.allowed, "{algorithm:?}");
        assert_eq!(d.remaining, 2, "{algorithm:?}: quota not fully back");
    }
}

async fn decisions_count_down_the_same_on_every_backend(env: Env) {
    for algorithm in ALGORITHMS {
        let l = limit(4, LONG, algorithm);
        let mut remaining = vec![];
        for _ in 0..5 {
            let d = check(&env.manager, "count", &l).await;
            assert_eq!(d.limit, 4);
            assert_eq!(d.window, LONG);
            assert_eq!(d.allowed, d.retry_after.is_zero(), "{algorithm:?}");
            assert!(d.reset_after > Duration::ZERO && d.reset_after <= 2 * LONG);
            remaining.push((d.allowed, d.remaining));
        }
        let expected = [(true, 3), (true, 2), (true, 1), (true, 0), (false, 0)];
        assert_eq!(remaining, expected, "{algorithm:?}");
    }
}

async fn zero_max_requests_refuses_everything(env: Env) {
    let l = RateLimit::new(0, Duration::from_secs(5));
    let d = check(&env.manager, "z", &l).await;
    assert!(!d.allowed);
    assert_eq!(d.retry_after, Duration::from_secs(5));
}

fn millis_since_epoch() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_millis() as u64
}

/// Fixed window: a burst at the end of one window and another at the start
/// of the next admit twice the limit in much less than a window.
async fn fixed_window_admits_a_double_burst_at_a_window_edge(env: Env) {
    let m = &env.manager;
    let l = limit(5, Duration::from_secs(2), Algorithm::FixedWindow);
    let first = check(m, "edge", &l).await;
    assert!(first.allowed);
    tokio::time::sleep(first.reset_after.saturating_sub(Duration::from_millis(800))).await;
    let (late, refused) = exhaust(m, "edge", &l).await;
    assert_eq!(late, 4);
    assert!(refused.retry_after <= Duration::from_millis(800));
    assert!(
        eventually(Duration::from_secs(3), async || check(m, "edge", &l)
            .await
            .allowed)
        .await
    );
    let (early, _) = exhaust(m, "edge", &l).await;
    // 4 late in the first window, 1 + 4 early in the next: 9 admitted, 4 of
    // them in the last 800 ms of a window and 5 right after it.
    assert_eq!(late + 1 + early, 9);
}

/// Sliding window: the same two bursts around a (clock-aligned) edge admit
/// only what the weighted count frees, not a second full burst.
async fn sliding_window_admits_no_second_burst_at_a_window_edge(env: Env) {
    let m = &env.manager;
    let n = 10;
    let window_ms = 2000;
    let l = limit(
        n,
        Duration::from_millis(window_ms),
        Algorithm::SlidingWindow,
    );
    let to_edge = |now: u64| window_ms - now % window_ms;
    if to_edge(millis_since_epoch()) < 1000 {
        tokio::time::sleep(Duration::from_millis(to_edge(millis_since_epoch()) + 20)).await;
    }
    // ~600 ms before the edge: a full burst.
    tokio::time::sleep(Duration::from_millis(
        to_edge(millis_since_epoch()).saturating_sub(600),
    ))
    .await;
    let (before, _) = exhaust(m, "edge", &l).await;
    assert_eq!(before, n);
    // Just after the edge: the previous window still weighs almost fully.
    tokio::time::sleep(Duration::from_millis(to_edge(millis_since_epoch()) + 20)).await;
    let (after, _) = exhaust(m, "edge", &l).await;
    let past_edge = millis_since_epoch() % window_ms;
    // Admitted while prev × (1 − e/W) + cur < n, so at most n × e / W.
    assert!(
        after <= n * past_edge / window_ms,
        "{after} admitted {past_edge} ms past the edge"
    );
    assert!(after < n, "a second full burst was admitted");
}

/// GCRA's `retry_after` follows from the other fields exactly, and matches
/// the time observed between calls to within a millisecond.
async fn gcra_retry_after_is_exact(env: Env) {
    let m = &env.manager;
    let l = limit(4, Duration::from_secs(4), Algorithm::Gcra);
    let interval = Duration::from_secs(1);
    let first = check(m, "g", &l).await;
    assert!(first.allowed);
    assert_eq!(
        first.reset_after, interval,
        "one request costs one interval"
    );
    let mut last = first;
    let mut last_started = Instant::now();
    for _ in 0..3 {
        last_started = Instant::now();
        last = check(m, "g", &l).await;
        assert!(last.allowed);
    }
    let refused = check(m, "g", &l).await;
    let between = last_started.elapsed();
    assert!(!refused.allowed);
    // Refused: the bucket holds (reset_after) worth of requests, and one
    // more fits once it drains to capacity − interval.
    assert_eq!(refused.retry_after, refused.reset_after - 3 * interval);
    let ms = Duration::from_millis(1);
    assert!(refused.reset_after <= last.reset_after);
    assert!(refused.reset_after + between + ms >= last.reset_after);
    tokio::time::sleep(refused.retry_after).await;
    let next = check(m, "g", &l).await;
    assert!(next.allowed, "refused after waiting retry_after");
    assert_eq!(next.remaining, 0, "exactly one request came back");
}

async fn hostile_keys_stay_isolated(env: Env) {
    let m = &env.manager;
    let big_a = "a".repeat(10 * 1024);
    let mut big_b = big_a.clone();
    big_b.push('b');
    let keys = [
        "*", "**", ":", "::", "a:b", "a", "a*", "{", "}", "{a}", "}{", "?", "[a]", "\\", "%2A",
        "h:0", " ", "\n", "", &big_a, &big_b,
    ];
    let l = limit(1, LONG, Algorithm::FixedWindow);
    let mut full = std::collections::HashSet::new();
    for k in keys {
        let key = l.key_for(k);
        assert!(key.len() < 260, "{} bytes", key.len());
        assert_eq!(key.matches('{').count(), 1, "{key}");
        assert!(full.insert(key));
    }
    for k in keys {
        assert!(
            check(m, k, &l).await.allowed,
            "{k:.20?} was limited by another key"
        );
    }
    for k in keys {
        assert!(!check(m, k, &l).await.allowed, "{k:.20?} not counted");
    }
    assert!(m.delete_pattern("rate_limit:*").await.unwrap() >= keys.len() as u64);
}

async fn call_sites_use_the_scoped_manager(env: Env) {
    static SITE: RateSite = RateSite::new(
        "rate_limit",
        "tests::rate_limit::login",
        2,
        Duration::from_secs(60),
        Algorithm::FixedWindow,
        OnError::Allow,
    );
    let m = &env.manager;
    let check = || rate_limit_check(&SITE, Some(&"ada"));
    assert!(m.scope(check()).await.is_ok());
    assert!(m.scope(check()).await.is_ok());
    let refused = m.scope(check()).await.unwrap_err();
    assert_eq!((refused.limit, refused.remaining), (2, 0));
    assert!(!refused.backend_unavailable);
    assert!(refused.retry_after > Duration::ZERO);
    assert_eq!(refused.window, Duration::from_secs(60));
    assert!(m.scope(rate_limit_check(&SITE, Some(&"bob"))).await.is_ok());
    let key = "rate_limit:{tests.rate_limit.login:ada}";
    assert!(m.ttl(key).await.unwrap().is_some(), "{key} not written");
}

on_every_backend!(
    concurrent_checks_admit_exactly_the_limit,
    two_managers_sharing_a_backend_admit_exactly_the_limit,
    every_check_leaves_a_ttl_even_across_window_rollovers,
    retry_after_is_long_enough,
    full_quota_is_back_after_reset_after,
    decisions_count_down_the_same_on_every_backend,
    zero_max_requests_refuses_everything,
    fixed_window_admits_a_double_burst_at_a_window_edge,
    sliding_window_admits_no_second_burst_at_a_window_edge,
    gcra_retry_after_is_exact,
    hostile_keys_stay_isolated,
    call_sites_use_the_scoped_manager,
);

fn sync_checks_admit_exactly_the_limit(env: Env) {
    static SITE: RateSite = RateSite::new(
        "rate_limit",
        "tests::sync_site",
        3,
        Duration::from_secs(60),
        Algorithm::Gcra,
        OnError::Allow,
    );
    for algorithm in ALGORITHMS {
        let l = limit(3, LONG, algorithm);
        let admitted = (0..5)
            .filter(|_| {
                env.manager
                    .blocking()
                    .check_rate_limit(9, &l)
                    .unwrap()
                    .allowed
            })
            .count();
        assert_eq!(admitted, 3, "{algorithm:?}");
    }
    let admitted = env.manager.blocking().scope(|| {
        (0..5)
            .filter(|_| blocking::rate_limit_check(&SITE, None).is_ok())
            .count()
    });
    assert_eq!(admitted, 3);
}

on_every_backend_sync!(sync_checks_admit_exactly_the_limit);

// ----- Redis only -------------------------------------------------------------

fn commandstat(server: &forge_cache_testkit::RedisServer, name: &str) -> u64 {
    let stats = server.cli(&["INFO", "commandstats"]);
    stats
        .lines()
        .find_map(|l| l.strip_prefix(&format!("cmdstat_{name}:calls=")))
        .and_then(|rest| rest.split(',').next())
        .and_then(|n| n.parse().ok())
        .unwrap_or(0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scripts_are_reloaded_after_script_flush() {
    let env = Env::redis();
    let server = env.server.as_ref().unwrap();
    for algorithm in ALGORITHMS {
        let l = limit(3, LONG, algorithm);
        assert_eq!(check(&env.manager, "f", &l).await.remaining, 2);
        assert_eq!(server.cli(&["SCRIPT", "FLUSH"]), "OK");
        let loads = commandstat(server, "script|load");
        assert_eq!(check(&env.manager, "f", &l).await.remaining, 1);
        assert_eq!(
            commandstat(server, "script|load"),
            loads + 1,
            "{algorithm:?}"
        );
        assert_eq!(server.cli(&["SCRIPT", "FLUSH"]), "OK");
        let d = env.manager.blocking().check_rate_limit("f", &l).unwrap();
        assert_eq!((d.allowed, d.remaining), (true, 0), "{algorithm:?}");
    }
    assert_eq!(commandstat(server, "eval"), 0, "scripts run by SHA only");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lost_ttl_is_put_back() {
    let env = Env::redis();
    let server = env.server.as_ref().unwrap();
    for algorithm in ALGORITHMS {
        let l = limit(2, LONG, algorithm);
        let key = l.key_for("p");
        assert!(check(&env.manager, "p", &l).await.allowed);
        // On the admitted path, then on the refused one.
        for allowed in [true, false] {
            assert_eq!(server.cli(&["PERSIST", &key]), "1");
            assert_eq!(pttl(&env, &key).await, -1);
            let d = check(&env.manager, "p", &l).await;
            assert_eq!(d.allowed, allowed);
            assert!(pttl(&env, &key).await > 0, "{algorithm:?}: {d:?}");
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keys_carry_the_namespace() {
    let env = Env::redis_with(|b| b.namespace("tenant1"));
    let l = RateLimit::new(1, LONG).with_name("ns");
    check(&env.manager, "u", &l).await;
    let raw = env
        .server
        .as_ref()
        .unwrap()
        .cli(&["PTTL", "tenant1:rate_limit:{ns:u}"]);
    assert!(raw.parse::<i64>().unwrap() > 0, "{raw}");
}

static ALLOW: RateSite = RateSite::new(
    "rate_limit",
    "down::allow",
    1,
    Duration::from_secs(60),
    Algorithm::Gcra,
    OnError::Allow,
);
static DENY: RateSite = RateSite::new(
    "rate_limit",
    "down::deny",
    1,
    Duration::from_secs(60),
    Algorithm::Gcra,
    OnError::Deny,
);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn on_error_policy_applies_when_redis_is_down() {
    let cooldown = Duration::from_millis(1500);
    let mut env = Env::redis_with(|b| {
        b.socket_timeout(Duration::from_millis(500))
            .breaker_cooldown(cooldown)
    });
    let m = env.manager.clone();
    assert!(m.scope(rate_limit_check(&ALLOW, None)).await.is_ok());
    assert!(m.scope(rate_limit_check(&ALLOW, None)).await.is_err());
    env.server().stop();
    for _ in 0..3 {
        // Exhausted before, but the backend cannot say so: admitted.
        assert!(m.scope(rate_limit_check(&ALLOW, None)).await.is_ok());
        let refused = m.scope(rate_limit_check(&DENY, None)).await.unwrap_err();
        assert!(refused.backend_unavailable);
        assert_eq!((refused.limit, refused.remaining), (1, 0));
        assert_eq!(refused.retry_after, cooldown);
    }
    assert!(
        m.blocking()
            .scope(|| blocking::rate_limit_check(&ALLOW, None))
            .is_ok()
    );
    assert!(
        m.blocking()
            .scope(|| blocking::rate_limit_check(&DENY, None))
            .is_err()
    );
    let err = m
        .check_rate_limit("x", &RateLimit::new(1, LONG))
        .await
        .unwrap_err();
    assert!(err.is_outage(), "{err}");
}

/// The key is formatted before the future exists, so a key type that is
/// neither `Send` nor `Sync` cannot make a rate-limited async fn `!Send`.
#[test]
fn call_site_futures_are_send_whatever_the_key_type() {
    struct Local(std::rc::Rc<u32>);
    impl std::fmt::Display for Local {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            write!(f, "local-{}", self.0)
        }
    }
    fn send_static<T: Send + 'static>(t: T) -> T {
        t
    }
    static SITE: RateSite = RateSite::new(
        "rate_limit",
        "send",
        1,
        Duration::from_secs(60),
        Algorithm::FixedWindow,
        OnError::Allow,
    );
    let key = Local(std::rc::Rc::new(7));
    let fut = send_static(rate_limit_check(&SITE, Some(&key)));
    drop(key);
    let m = CacheManager::new(forge_cache::RedisSettings::memory()).unwrap();
    let rt = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    assert!(rt.block_on(m.scope(fut)).is_ok());
    let refused = rt.block_on(m.scope(rate_limit_check(&SITE, Some(&"local-7"))));
    assert!(
        refused.is_err(),
        "the Local key and its text share a counter"
    );
}
