//! `#[cache_result]` on every backend: hits and misses, TTLs, what is
//! cached, the shapes of functions it accepts, keys, invalidation, failure
//! handling and single-flight.

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use common::{Env, eventually};
use forge_cache::{CacheManager, RedisSettings, cache_result};
use serde::Serialize;

/// Each function counts its runs in a skipped argument, so the memory and
/// Redis runs of one test (which share the functions) count separately.
type Calls = AtomicUsize;

fn runs(calls: &Calls) -> usize {
    calls.load(Ordering::SeqCst)
}

#[cache_result(ttl = 60, key_prefix = "t_basic", skip(calls))]
async fn double(calls: &Calls, x: u32) -> u32 {
    calls.fetch_add(1, Ordering::SeqCst);
    x * 2
}

async fn second_call_is_a_hit(env: Env) {
    env.manager
        .scope(async {
            let calls = Calls::new(0);
            assert_eq!(double(&calls, 21).await, 42);
            assert_eq!(double(&calls, 21).await, 42);
            assert_eq!(runs(&calls), 1);
            assert_eq!(double(&calls, 1).await, 2);
            assert_eq!(runs(&calls), 2);
        })
        .await;
}

#[cache_result(ttl = 1, key_prefix = "t_ttl", skip(calls))]
async fn short_lived(calls: &Calls, x: u32) -> u32 {
    calls.fetch_add(1, Ordering::SeqCst);
    x
}

#[cache_result(ttl = "800ms", key = "t_ttl_ms:{x}", skip(calls))]
async fn very_short_lived(calls: &Calls, x: u32) -> u32 {
    calls.fetch_add(1, Ordering::SeqCst);
    x
}

async fn entries_expire_after_ttl(env: Env) {
    env.manager
        .scope(async {
            let (calls, ms_calls) = (Calls::new(0), Calls::new(0));
            for _ in 0..2 {
                short_lived(&calls, 1).await;
                very_short_lived(&ms_calls, 1).await;
            }
            assert_eq!((runs(&calls), runs(&ms_calls)), (1, 1));
            // `"800ms"` is stored as 800 ms (`PX`), not rounded to seconds.
            let ttl = env.manager.ttl("t_ttl_ms:1").await.unwrap();
            assert!(
                ttl.is_none_or(|t| t <= Duration::from_millis(800)),
                "{ttl:?}"
            );
            assert!(
                eventually(Duration::from_secs(5), async || {
                    short_lived(&calls, 1).await;
                    very_short_lived(&ms_calls, 1).await;
                    runs(&calls) == 2 && runs(&ms_calls) >= 2
                })
                .await,
                "the entries should expire after their 1 s and 800 ms TTLs"
            );
        })
        .await;
}

#[cache_result(ttl = 60, key_prefix = "t_falsy", skip(calls))]
async fn zero(calls: &Calls) -> i64 {
    calls.fetch_add(1, Ordering::SeqCst);
    0
}

#[cache_result(ttl = 60, key_prefix = "t_falsy", skip(calls))]
async fn empty_string(calls: &Calls) -> String {
    calls.fetch_add(1, Ordering::SeqCst);
    String::new()
}

#[cache_result(ttl = 60, key_prefix = "t_falsy", skip(calls))]
async fn empty_list(calls: &Calls) -> Vec<u8> {
    calls.fetch_add(1, Ordering::SeqCst);
    vec![]
}

#[cache_result(ttl = 60, key_prefix = "t_falsy", skip(calls))]
fn falsy_sync(calls: &Calls) -> bool {
    calls.fetch_add(1, Ordering::SeqCst);
    false
}

async fn falsy_values_are_hits(env: Env) {
    env.manager
        .scope(async {
            let calls = Calls::new(0);
            for _ in 0..2 {
                assert_eq!(zero(&calls).await, 0);
                assert_eq!(empty_string(&calls).await, "");
                assert_eq!(empty_list(&calls).await, Vec::<u8>::new());
            }
            assert_eq!(runs(&calls), 3);
        })
        .await;
    let calls = Calls::new(0);
    env.manager.blocking().scope(|| {
        assert!(!falsy_sync(&calls));
        assert!(!falsy_sync(&calls));
    });
    assert_eq!(runs(&calls), 1);
}

#[derive(Debug, PartialEq)]
struct NotSerializable;

#[cache_result(ttl = 60, key_prefix = "t_policy", skip(calls))]
async fn fails(calls: &Calls, x: u32) -> Result<u32, NotSerializable> {
    calls.fetch_add(1, Ordering::SeqCst);
    if x == 0 { Err(NotSerializable) } else { Ok(x) }
}

#[cache_result(ttl = 60, key_prefix = "t_policy", skip(calls))]
async fn find(calls: &Calls, x: u32) -> Option<u32> {
    calls.fetch_add(1, Ordering::SeqCst);
    (x != 0).then_some(x)
}

#[cache_result(ttl = 60, key_prefix = "t_policy", skip(calls), cache_none = true)]
async fn find_negative(calls: &Calls, x: u32) -> Option<u32> {
    calls.fetch_add(1, Ordering::SeqCst);
    (x != 0).then_some(x)
}

type Answer = Result<u32, String>;

/// An alias hides the shape: `returns = "result"` restores it.
#[cache_result(ttl = 60, key_prefix = "t_policy", skip(calls), returns = "result")]
async fn aliased(calls: &Calls, x: u32) -> Answer {
    calls.fetch_add(1, Ordering::SeqCst);
    if x == 0 { Err("zero".into()) } else { Ok(x) }
}

async fn err_and_none_are_not_cached(env: Env) {
    env.manager
        .scope(async {
            let calls = Calls::new(0);
            assert_eq!(fails(&calls, 0).await, Err(NotSerializable));
            assert_eq!(fails(&calls, 0).await, Err(NotSerializable));
            assert_eq!(runs(&calls), 2);
            assert_eq!(fails(&calls, 5).await, Ok(5));
            assert_eq!(fails(&calls, 5).await, Ok(5));
            assert_eq!(runs(&calls), 3);

            let calls = Calls::new(0);
            assert_eq!(find(&calls, 0).await, None);
            assert_eq!(find(&calls, 0).await, None);
            assert_eq!(runs(&calls), 2);
            assert_eq!(find(&calls, 3).await, Some(3));
            assert_eq!(find(&calls, 3).await, Some(3));
            assert_eq!(runs(&calls), 3);

            let calls = Calls::new(0);
            assert_eq!(aliased(&calls, 0).await, Err("zero".into()));
            assert_eq!(aliased(&calls, 0).await, Err("zero".into()));
            assert_eq!(runs(&calls), 2);
        })
        .await;
}

async fn cache_none_caches_none(env: Env) {
    env.manager
        .scope(async {
            let calls = Calls::new(0);
            assert_eq!(find_negative(&calls, 0).await, None);
            assert_eq!(find_negative(&calls, 0).await, None);
            assert_eq!(runs(&calls), 1);
        })
        .await;
}

#[derive(Serialize)]
struct Repo {
    name: String,
    #[serde(skip)]
    calls: Calls,
}

impl Repo {
    fn new(name: &str) -> Self {
        Repo {
            name: name.into(),
            calls: Calls::new(0),
        }
    }

    /// `self` hashed into the key.
    #[cache_result(ttl = 60, key_prefix = "t_method", include(self))]
    async fn lookup(&self, id: u32) -> String {
        self.calls.fetch_add(1, Ordering::SeqCst);
        format!("{}-{id}", self.name)
    }

    /// A field of `self` in the key.
    #[cache_result(ttl = 60, key = "t_method:{self.name}:{id}")]
    async fn per_repo(&self, id: u32) -> String {
        self.calls.fetch_add(1, Ordering::SeqCst);
        format!("{}-{id}", self.name)
    }

    #[cache_result(ttl = 60, key_prefix = "t_method", include(self))]
    fn lookup_sync(&self, id: u32) -> String {
        self.calls.fetch_add(1, Ordering::SeqCst);
        format!("{}-{id}", self.name)
    }

    /// Shared by every instance, on purpose.
    #[cache_result(ttl = 60, key_prefix = "t_method", skip(self))]
    async fn shared(&self, id: u32) -> u32 {
        self.calls.fetch_add(1, Ordering::SeqCst);
        id + 1
    }
}

/// Prevents a method's cached entries from leaking from one instance to
/// another (a tenant's repository answering with another tenant's data):
/// `include(self)` and `{self.field}` key each instance apart, in the
/// method and in its `_invalidate`; only an explicit `skip(self)` shares.
async fn methods_on_two_instances_do_not_share_entries(env: Env) {
    let (a, b) = (Repo::new("a"), Repo::new("b"));
    let all_runs = || runs(&a.calls) + runs(&b.calls);
    env.manager
        .scope(async {
            assert_eq!(a.lookup(1).await, "a-1");
            assert_eq!(b.lookup(1).await, "b-1");
            assert_eq!(a.lookup(1).await, "a-1");
            assert_eq!((runs(&a.calls), runs(&b.calls)), (1, 1));
            assert!(a.lookup_invalidate(1).await.unwrap());
            assert!(!a.lookup_invalidate(1).await.unwrap());
            assert_eq!(
                b.lookup(1).await,
                "b-1",
                "b's entry survives a's invalidation"
            );
            assert_eq!(all_runs(), 2);

            assert_eq!(a.per_repo(1).await, "a-1");
            assert_eq!(b.per_repo(1).await, "b-1");
            assert_eq!(a.per_repo(1).await, "a-1");
            assert_eq!(all_runs(), 4);
            assert!(
                env.manager
                    .get_bytes("t_method:a:1")
                    .await
                    .unwrap()
                    .is_some()
            );
            assert!(a.per_repo_invalidate(1).await.unwrap());
            assert!(!a.per_repo_invalidate(1).await.unwrap());
            assert!(b.per_repo_invalidate(1).await.unwrap());

            assert_eq!(a.shared(1).await, 2);
            assert_eq!(b.shared(1).await, 2);
            assert_eq!(all_runs(), 5, "skip(self) shares one entry");
            assert!(Repo::shared_invalidate(1).await.unwrap());
        })
        .await;
    env.manager.blocking().scope(|| {
        assert_eq!(a.lookup_sync(1), "a-1");
        assert_eq!(b.lookup_sync(1), "b-1");
        assert_eq!(b.lookup_sync(1), "b-1");
        assert!(a.lookup_sync_invalidate(1).unwrap());
    });
    assert_eq!(all_runs(), 7);
}

#[cache_result(ttl = 60, key_prefix = "t_generic", skip(calls))]
async fn default_of<T: Default + Serialize + serde::de::DeserializeOwned>(
    calls: &Calls,
    tag: u8,
) -> T {
    calls.fetch_add(1, Ordering::SeqCst);
    let _ = tag;
    T::default()
}

async fn generic_instantiations_do_not_share_entries(env: Env) {
    env.manager
        .scope(async {
            let calls = Calls::new(0);
            assert_eq!(default_of::<u8>(&calls, 1).await, 0);
            assert_eq!(default_of::<String>(&calls, 1).await, "");
            assert_eq!(default_of::<Vec<u8>>(&calls, 1).await, Vec::<u8>::new());
            assert_eq!(runs(&calls), 3);
            assert_eq!(default_of::<u8>(&calls, 1).await, 0);
            assert_eq!(default_of::<String>(&calls, 1).await, "");
            assert_eq!(runs(&calls), 3);
        })
        .await;
}

#[derive(Serialize)]
struct Query {
    id: u32,
    tags: Vec<String>,
}

/// An extractor-like newtype, destructured in the argument list.
struct Path<T>(T);

#[cache_result(ttl = 60, key_prefix = "t_args", skip(calls))]
async fn shapes(
    calls: &Calls,
    name: &str,
    q: &Query,
    limit: Option<&u32>,
    Path(id): Path<u64>,
) -> String {
    calls.fetch_add(1, Ordering::SeqCst);
    format!("{name}:{}:{}:{limit:?}:{id}", q.id, q.tags.len())
}

async fn reference_and_pattern_args_are_keys(env: Env) {
    env.manager
        .scope(async {
            let calls = Calls::new(0);
            let q = Query {
                id: 1,
                tags: vec!["x".into()],
            };
            let first = shapes(&calls, "n", &q, Some(&3), Path(9)).await;
            assert_eq!(first, "n:1:1:Some(3):9");
            assert_eq!(shapes(&calls, "n", &q, Some(&3), Path(9)).await, first);
            assert_eq!(runs(&calls), 1);
            shapes(&calls, "n", &q, Some(&3), Path(10)).await;
            shapes(&calls, "n", &q, None, Path(9)).await;
            shapes(&calls, "m", &q, Some(&3), Path(9)).await;
            assert_eq!(runs(&calls), 4);
            assert!(shapes_invalidate("n", &q, Some(&3), Path(9)).await.unwrap());
        })
        .await;
}

/// A handle that is not part of the key (and need not be serializable).
struct Pool(&'static str);

#[cache_result(ttl = 60, key_prefix = "t_skip", skip(calls, pool))]
async fn via_pool(calls: &Calls, pool: &Pool, id: u32) -> String {
    calls.fetch_add(1, Ordering::SeqCst);
    format!("{}:{id}", pool.0)
}

async fn skipped_args_are_not_keys(env: Env) {
    env.manager
        .scope(async {
            let calls = Calls::new(0);
            assert_eq!(via_pool(&calls, &Pool("a"), 1).await, "a:1");
            assert_eq!(via_pool(&calls, &Pool("b"), 1).await, "a:1");
            assert_eq!(runs(&calls), 1);
        })
        .await;
}

#[derive(Serialize)]
struct Who {
    id: u64,
}

#[cache_result(ttl = 60, key = "t_tpl:{user_id}:profile", skip(calls))]
async fn profile(calls: &Calls, user_id: &str) -> String {
    calls.fetch_add(1, Ordering::SeqCst);
    format!("profile of {user_id}")
}

#[cache_result(ttl = 60, key = "t_tpl:{who.id}:orders:{page}")]
async fn orders(who: &Who, page: u32, unused: NotSerializable) -> Vec<u32> {
    let _ = unused;
    vec![who.id as u32, page]
}

async fn key_templates_render_readable_keys(env: Env) {
    let m = &env.manager;
    m.scope(async {
        let calls = Calls::new(0);
        profile(&calls, "42").await;
        assert!(m.get_bytes("t_tpl:42:profile").await.unwrap().is_some());
        // Values are escaped: they cannot add segments or glob syntax.
        profile(&calls, "a:b *").await;
        assert!(
            m.get_bytes("t_tpl:a%3Ab%20%2A:profile")
                .await
                .unwrap()
                .is_some()
        );
        orders(&Who { id: 42 }, 2, NotSerializable).await;
        assert_eq!(
            m.get::<Vec<u32>>("t_tpl:42:orders:2").await.unwrap(),
            Some(vec![42, 2])
        );
        // The readable keys are reachable by pattern invalidation.
        assert_eq!(m.delete_pattern("t_tpl:42:*").await.unwrap(), 2);
        profile(&calls, "42").await;
        assert_eq!(runs(&calls), 3);
        assert_eq!(profile_invalidate_all().await.unwrap(), 2);
    })
    .await;
}

#[cache_result(ttl = 60, key_prefix = "t_same")]
async fn first_fn(x: u32) -> String {
    format!("first {x}")
}

#[cache_result(ttl = 60, key_prefix = "t_same")]
async fn second_fn(x: u32) -> String {
    format!("second {x}")
}

async fn functions_with_the_same_args_do_not_collide(env: Env) {
    env.manager
        .scope(async {
            for _ in 0..2 {
                assert_eq!(first_fn(1).await, "first 1");
                assert_eq!(second_fn(1).await, "second 1");
            }
        })
        .await;
}

#[cache_result(ttl = 60, key_prefix = "t_inval", skip(calls))]
async fn stock(calls: &Calls, sku: &str) -> u32 {
    calls.fetch_add(1, Ordering::SeqCst);
    sku.len() as u32
}

#[cache_result(ttl = 60, key_prefix = "t_inval", skip(calls))]
fn stock_sync(calls: &Calls, sku: &str) -> u32 {
    calls.fetch_add(1, Ordering::SeqCst);
    sku.len() as u32
}

async fn invalidate_one_and_all(env: Env) {
    env.manager
        .scope(async {
            let calls = Calls::new(0);
            for sku in ["a", "bb", "ccc"] {
                stock(&calls, sku).await;
            }
            assert!(stock_invalidate("a").await.unwrap());
            assert!(!stock_invalidate("a").await.unwrap());
            stock(&calls, "a").await;
            stock(&calls, "bb").await;
            assert_eq!(runs(&calls), 4);
            assert_eq!(stock_invalidate_all().await.unwrap(), 3);
            stock(&calls, "bb").await;
            assert_eq!(runs(&calls), 5);
        })
        .await;
    let calls = Calls::new(0);
    env.manager.blocking().scope(|| {
        stock_sync(&calls, "a");
        assert!(stock_sync_invalidate("a").unwrap());
        stock_sync(&calls, "a");
        stock_sync(&calls, "b");
        assert_eq!(stock_sync_invalidate_all().unwrap(), 2);
    });
    assert_eq!(runs(&calls), 3);
}

#[cache_result(ttl = 60, key = "t_corrupt:{id}", skip(calls))]
async fn decodes(calls: &Calls, id: u32) -> Vec<u32> {
    calls.fetch_add(1, Ordering::SeqCst);
    vec![id]
}

async fn corrupt_value_is_recomputed_and_overwritten(env: Env) {
    let m = &env.manager;
    m.scope(async {
        let calls = Calls::new(0);
        m.set_bytes("t_corrupt:1", b"{not json", Duration::from_secs(60))
            .await
            .unwrap();
        assert_eq!(decodes(&calls, 1).await, vec![1]);
        assert_eq!(m.get_bytes("t_corrupt:1").await.unwrap().unwrap(), b"[1]");
        // A value of another type (the function's type changed) too.
        m.set("t_corrupt:2", &"a string", Duration::from_secs(60))
            .await
            .unwrap();
        assert_eq!(decodes(&calls, 2).await, vec![2]);
        assert_eq!(decodes(&calls, 2).await, vec![2]);
        assert_eq!(runs(&calls), 2);
    })
    .await;
}

#[cache_result(ttl = 60, key_prefix = "t_flight", skip(calls))]
async fn slow_cold(calls: Arc<Calls>, x: u32) -> u32 {
    calls.fetch_add(1, Ordering::SeqCst);
    tokio::time::sleep(Duration::from_millis(100)).await;
    x
}

async fn concurrent_cold_calls_run_the_function_once(env: Env) {
    let calls = Arc::new(Calls::new(0));
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..1000 {
        let (m, calls) = (env.manager.clone(), calls.clone());
        tasks.spawn(async move { m.scope(slow_cold(calls, 7)).await });
    }
    while let Some(r) = tasks.join_next().await {
        assert_eq!(r.unwrap(), 7);
    }
    assert_eq!(runs(&calls), 1);
}

#[cache_result(ttl = 60, key_prefix = "t_flight", skip(calls))]
async fn first_call_hangs(calls: Arc<Calls>, x: u32) -> u32 {
    if calls.fetch_add(1, Ordering::SeqCst) == 0 {
        std::future::pending::<()>().await;
    }
    x
}

async fn cancelled_leader_does_not_wedge_the_key(env: Env) {
    let calls = Arc::new(Calls::new(0));
    let m = env.manager.clone();
    let c = calls.clone();
    let leader = tokio::spawn(async move { m.scope(first_call_hangs(c, 1)).await });
    assert!(eventually(Duration::from_secs(5), async || runs(&calls) == 1).await);
    let m = env.manager.clone();
    let c = calls.clone();
    let waiter = tokio::spawn(async move { m.scope(first_call_hangs(c, 1)).await });
    leader.abort();
    let answered = tokio::time::timeout(Duration::from_secs(30), waiter).await;
    assert_eq!(answered.expect("the waiter must not wedge").unwrap(), 1);
    assert_eq!(runs(&calls), 2);
}

on_every_backend!(
    second_call_is_a_hit,
    entries_expire_after_ttl,
    falsy_values_are_hits,
    err_and_none_are_not_cached,
    cache_none_caches_none,
    methods_on_two_instances_do_not_share_entries,
    generic_instantiations_do_not_share_entries,
    reference_and_pattern_args_are_keys,
    skipped_args_are_not_keys,
    key_templates_render_readable_keys,
    functions_with_the_same_args_do_not_collide,
    invalidate_one_and_all,
    corrupt_value_is_recomputed_and_overwritten,
    concurrent_cold_calls_run_the_function_once,
    cancelled_leader_does_not_wedge_the_key,
);

#[cache_result(ttl = 60, key_prefix = "t_flight_sync", skip(calls))]
fn slow_cold_sync(calls: &Calls, x: u32) -> u32 {
    calls.fetch_add(1, Ordering::SeqCst);
    std::thread::sleep(Duration::from_millis(100));
    x
}

fn concurrent_cold_sync_calls_run_the_function_once(env: Env) {
    let calls = Calls::new(0);
    std::thread::scope(|s| {
        let threads: Vec<_> = (0..16)
            .map(|_| s.spawn(|| env.manager.blocking().scope(|| slow_cold_sync(&calls, 7))))
            .collect();
        for t in threads {
            assert_eq!(t.join().unwrap(), 7);
        }
    });
    assert_eq!(runs(&calls), 1);
}

on_every_backend_sync!(concurrent_cold_sync_calls_run_the_function_once);

#[cache_result(ttl = 60, key_prefix = "t_outage", skip(calls))]
async fn during_outage(calls: &Calls, x: u32) -> u32 {
    calls.fetch_add(1, Ordering::SeqCst);
    x
}

#[cache_result(ttl = 60, key_prefix = "t_outage", skip(calls))]
fn during_outage_sync(calls: &Calls, x: u32) -> u32 {
    calls.fetch_add(1, Ordering::SeqCst);
    x
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_stopped_mid_test_fails_open_then_breaker_skips_it() {
    let mut env = Env::redis_with(|b| {
        b.socket_timeout(Duration::from_millis(500))
            .breaker_threshold(3)
            .breaker_cooldown(Duration::from_secs(60))
    });
    let m = env.manager.clone();
    let calls = Calls::new(0);
    m.scope(async {
        assert_eq!(during_outage(&calls, 1).await, 1);
        assert_eq!(during_outage(&calls, 1).await, 1);
        assert_eq!(runs(&calls), 1);
    })
    .await;
    env.server().stop();
    m.scope(async {
        // Every call still answers, by running the function.
        for i in 0..3 {
            assert_eq!(during_outage(&calls, 1).await, 1, "call {i}");
        }
        assert!(m.breaker_open(), "3 consecutive failures open the breaker");
        // With the breaker open, calls skip the backend.
        assert_eq!(during_outage(&calls, 2).await, 2);
    })
    .await;
    assert_eq!(runs(&calls), 5);
    let sync_calls = Calls::new(0);
    let m2 = m.clone();
    tokio::task::spawn_blocking(move || {
        m2.blocking()
            .scope(|| assert_eq!(during_outage_sync(&sync_calls, 3), 3));
        assert_eq!(runs(&sync_calls), 1);
    })
    .await
    .unwrap();
    assert!(m.breaker_open());
}

#[cache_result(ttl = 60, key_prefix = "t_stats_only")]
async fn counted(x: u32) -> u32 {
    x
}

#[tokio::test]
async fn stats_count_hits_misses_and_stores_per_prefix() {
    let m = CacheManager::new(RedisSettings::memory()).unwrap();
    m.scope(async {
        counted(1).await;
        counted(1).await;
        counted(2).await;
    })
    .await;
    let s = m.stats().prefix("t_stats_only");
    assert_eq!((s.hits, s.misses, s.stores, s.errors), (1, 2, 2, 0));
}
