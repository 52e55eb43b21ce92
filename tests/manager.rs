//! The manager's operations (the guide's `redis_manager`), async and sync,
//! on every backend.

mod common;

use std::time::Duration;

use common::{Env, eventually};
use serde::{Deserialize, Serialize};

#[derive(Debug, PartialEq, Serialize, Deserialize)]
struct User {
    id: u64,
    name: String,
}

const MIN: Duration = Duration::from_secs(60);

async fn set_get_delete_round_trip(env: Env) {
    let m = &env.manager;
    let user = User {
        id: 7,
        name: "Ada".into(),
    };
    m.set("user:7", &user, MIN).await.unwrap();
    assert_eq!(m.get::<User>("user:7").await.unwrap(), Some(user));
    assert!(m.delete("user:7").await.unwrap());
    assert!(!m.delete("user:7").await.unwrap());
    assert_eq!(m.get::<User>("user:7").await.unwrap(), None);
}

async fn falsy_values_are_values_not_misses(env: Env) {
    let m = &env.manager;
    m.set("zero", &0, MIN).await.unwrap();
    m.set("empty", &"", MIN).await.unwrap();
    m.set("list", &Vec::<u8>::new(), MIN).await.unwrap();
    m.set("no", &false, MIN).await.unwrap();
    m.set("null", &Option::<u8>::None, MIN).await.unwrap();
    assert_eq!(m.get::<i32>("zero").await.unwrap(), Some(0));
    assert_eq!(m.get::<String>("empty").await.unwrap(), Some(String::new()));
    assert_eq!(m.get::<Vec<u8>>("list").await.unwrap(), Some(vec![]));
    assert_eq!(m.get::<bool>("no").await.unwrap(), Some(false));
    assert_eq!(m.get::<Option<u8>>("null").await.unwrap(), Some(None));
}

async fn values_are_stored_as_json(env: Env) {
    let m = &env.manager;
    m.set(
        "json",
        &User {
            id: 1,
            name: "x".into(),
        },
        MIN,
    )
    .await
    .unwrap();
    let raw = m.get_bytes("json").await.unwrap().unwrap();
    assert_eq!(raw, br#"{"id":1,"name":"x"}"#);
}

async fn ttl_is_set_and_entries_expire(env: Env) {
    let m = &env.manager;
    m.set("short", &1, Duration::from_millis(150))
        .await
        .unwrap();
    let ttl = m
        .ttl("short")
        .await
        .unwrap()
        .expect("key exists with a TTL");
    assert!(
        ttl <= Duration::from_millis(150) && ttl > Duration::ZERO,
        "{ttl:?}"
    );
    assert!(
        eventually(Duration::from_secs(3), async || m
            .get::<i32>("short")
            .await
            .unwrap()
            .is_none())
        .await
    );
    assert_eq!(m.ttl("short").await.unwrap(), None);
}

async fn expire_changes_the_ttl_of_existing_keys_only(env: Env) {
    let m = &env.manager;
    m.set("k", &1, MIN).await.unwrap();
    assert!(m.expire("k", Duration::from_secs(5)).await.unwrap());
    assert!(m.ttl("k").await.unwrap().unwrap() <= Duration::from_secs(5));
    assert!(!m.expire("missing", Duration::from_secs(5)).await.unwrap());
}

async fn set_nx_stores_only_when_absent(env: Env) {
    let m = &env.manager;
    assert!(m.set_nx("nx", &"first", MIN).await.unwrap());
    assert!(!m.set_nx("nx", &"second", MIN).await.unwrap());
    assert_eq!(
        m.get::<String>("nx").await.unwrap().as_deref(),
        Some("first")
    );
    assert!(m.ttl("nx").await.unwrap().is_some());
}

async fn pattern_delete_removes_ten_thousand_keys_and_nothing_else(env: Env) {
    let m = &env.manager;
    for i in 0..10_000 {
        m.set_bytes(&format!("user:{i}:profile"), b"1", MIN)
            .await
            .unwrap();
    }
    for k in [
        "users:1",
        "user",
        "other:user:1:x",
        "user*",
        "user:[x]",
        "us\\er:1",
    ] {
        m.set_bytes(k, b"keep", MIN).await.unwrap();
    }
    assert_eq!(m.delete_pattern("user:*:profile").await.unwrap(), 10_000);
    for k in [
        "users:1",
        "user",
        "other:user:1:x",
        "user*",
        "user:[x]",
        "us\\er:1",
    ] {
        assert!(m.get_bytes(k).await.unwrap().is_some(), "{k} was deleted");
    }
    assert_eq!(m.delete_pattern("user:*:profile").await.unwrap(), 0);
}

async fn pattern_delete_treats_escaped_glob_characters_literally(env: Env) {
    let m = &env.manager;
    m.set_bytes("tag:a*b:1", b"1", MIN).await.unwrap();
    m.set_bytes("tag:axb:1", b"1", MIN).await.unwrap();
    m.set_bytes("tag:[q]:1", b"1", MIN).await.unwrap();
    m.set_bytes("tag:q:1", b"1", MIN).await.unwrap();
    m.set_bytes("tag:?\\:1", b"1", MIN).await.unwrap();
    let esc = forge_cache::glob::escape;
    assert_eq!(
        m.delete_pattern(&format!("tag:{}:*", esc("a*b")))
            .await
            .unwrap(),
        1
    );
    assert_eq!(
        m.delete_pattern(&format!("tag:{}:*", esc("[q]")))
            .await
            .unwrap(),
        1
    );
    assert_eq!(
        m.delete_pattern(&format!("tag:{}:*", esc("?\\")))
            .await
            .unwrap(),
        1
    );
    assert!(m.get_bytes("tag:axb:1").await.unwrap().is_some());
    assert!(m.get_bytes("tag:q:1").await.unwrap().is_some());
}

async fn namespace_prefixes_every_key_including_patterns(_env: Env) {
    let m = forge_cache::CacheManager::new(
        forge_cache::RedisSettings::builder()
            .url("memory://")
            .namespace("v2")
            .build()
            .unwrap(),
    )
    .unwrap();
    m.set("a:1", &1, MIN).await.unwrap();
    assert_eq!(m.full_key("a:1"), "v2:a:1");
    assert_eq!(m.delete_pattern("a:*").await.unwrap(), 1);
}

async fn ping_and_connection_test_succeed(env: Env) {
    let m = &env.manager;
    assert!(m.ping().await.is_ok());
    assert!(m.test_connection().await);
}

async fn memory_info_reports_guide_fields(env: Env) {
    let m = &env.manager;
    m.set("x", &"y", MIN).await.unwrap();
    let info = m.memory_info().await.unwrap();
    assert!(info.used_memory > 0);
    assert!(!info.used_memory_human.is_empty());
    assert!(!info.used_memory_peak_human.is_empty());
    assert!(info.mem_fragmentation_ratio > 0.0);
}

async fn counters_always_have_a_ttl(env: Env) {
    let m = &env.manager;
    assert_eq!(m.incr("hits", 1, MIN).await.unwrap(), 1);
    assert_eq!(m.incr("hits", 5, MIN).await.unwrap(), 6);
    assert!(m.ttl("hits").await.unwrap().is_some());
    // A counter whose TTL ran out starts again with a fresh TTL.
    m.incr("brief", 1, Duration::from_millis(50)).await.unwrap();
    assert!(
        eventually(Duration::from_secs(3), async || m
            .ttl("brief")
            .await
            .unwrap()
            .is_none())
        .await
    );
    assert_eq!(m.incr("brief", 1, MIN).await.unwrap(), 1);
    assert!(m.ttl("brief").await.unwrap().unwrap() > Duration::from_secs(30));
    assert_eq!(m.blocking().incr("hits", 1, MIN).unwrap(), 7);
}

on_every_backend!(
    counters_always_have_a_ttl,
    set_get_delete_round_trip,
    falsy_values_are_values_not_misses,
    values_are_stored_as_json,
    ttl_is_set_and_entries_expire,
    expire_changes_the_ttl_of_existing_keys_only,
    set_nx_stores_only_when_absent,
    pattern_delete_removes_ten_thousand_keys_and_nothing_else,
    pattern_delete_treats_escaped_glob_characters_literally,
    namespace_prefixes_every_key_including_patterns,
    ping_and_connection_test_succeed,
    memory_info_reports_guide_fields,
);

fn sync_operations_round_trip(env: Env) {
    let m = env.manager.blocking();
    m.set(
        "s",
        &User {
            id: 2,
            name: "B".into(),
        },
        MIN,
    )
    .unwrap();
    assert_eq!(m.get::<User>("s").unwrap().unwrap().id, 2);
    assert!(m.set_nx("s2", &0, MIN).unwrap());
    assert!(!m.set_nx("s2", &0, MIN).unwrap());
    assert!(m.ttl("s").unwrap().is_some());
    assert!(m.expire("s", Duration::from_secs(9)).unwrap());
    for i in 0..100 {
        m.set_bytes(&format!("p:{i}"), b"1", MIN).unwrap();
    }
    assert_eq!(m.delete_pattern("p:*").unwrap(), 100);
    assert!(m.delete("s").unwrap());
    assert!(m.test_connection());
    assert!(m.memory_info().unwrap().used_memory > 0);
}

fn sync_and_async_see_the_same_data(env: Env) {
    let m = env.manager.clone();
    m.blocking().set("shared", &"from sync", MIN).unwrap();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let got = rt.block_on(async { m.get::<String>("shared").await.unwrap() });
    assert_eq!(got.as_deref(), Some("from sync"));
}

on_every_backend_sync!(sync_operations_round_trip, sync_and_async_see_the_same_data);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn raw_client_runs_other_commands_on_redis() {
    let env = Env::redis();
    let mut conn = env.manager.redis().unwrap();
    let n: i64 = ::redis::cmd("INCR")
        .arg("visits")
        .query_async(&mut conn)
        .await
        .unwrap();
    assert_eq!(n, 1);
    let mut sync = env.manager.blocking().redis().unwrap();
    let n: i64 = ::redis::cmd("INCR")
        .arg("visits")
        .query(&mut *sync)
        .unwrap();
    assert_eq!(n, 2);
    assert!(Env::memory().manager.redis().is_err());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reconnects_after_redis_restarts_on_the_same_port() {
    let mut env = Env::redis();
    let m = env.manager.clone();
    m.set("before", &1, MIN).await.unwrap();
    env.server().restart();
    // The first calls after the restart may fail while the connection is
    // re-established; within a bound, calls succeed again on their own.
    let ok = eventually(Duration::from_secs(10), async || {
        m.set("after", &2, MIN).await.is_ok()
    })
    .await;
    assert!(ok, "the manager did not reconnect");
    assert_eq!(m.get::<i32>("after").await.unwrap(), Some(2));
    let sync_ok = (0..50).any(|_| {
        let ok = m.blocking().set("after_sync", &3, MIN).is_ok();
        if !ok {
            std::thread::sleep(Duration::from_millis(100));
        }
        ok
    });
    assert!(sync_ok, "the sync pool did not reconnect");
}

#[test]
fn the_in_memory_backend_reports_its_entry_count_and_peak() {
    let env = Env::memory();
    let m = env.manager.blocking();
    m.set("a", &1, MIN).unwrap();
    m.set("b", &2, MIN).unwrap();
    let info = m.memory_info().unwrap();
    assert_eq!(info.keys, Some(2));
    assert!(info.used_memory_peak >= info.used_memory);
    m.delete("a").unwrap();
    let after = m.memory_info().unwrap();
    assert_eq!(after.keys, Some(1));
    assert_eq!(after.used_memory_peak, info.used_memory_peak);
}
