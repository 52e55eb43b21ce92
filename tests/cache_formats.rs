//! Formats and compression of cached values, on every backend: MessagePack
//! and postcard round-trip, a value says its format (a reader configured
//! differently takes it as a miss, never as garbage), and zstd compresses
//! values above the threshold. Needs the `msgpack`, `postcard` and `zstd`
//! features (the test suite runs with `--all-features`).
#![cfg(all(feature = "msgpack", feature = "postcard", feature = "zstd"))]

mod common;

use std::sync::atomic::{AtomicUsize, Ordering};

use common::Env;
use forge_cache::{CacheManager, RedisSettings, cache_result};
use serde::{Deserialize, Serialize};

type Calls = AtomicUsize;

#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
struct Order {
    id: u64,
    lines: Vec<String>,
    note: Option<String>,
}

fn order(id: u64, lines: usize) -> Order {
    Order {
        id,
        lines: (0..lines)
            .map(|i| format!("line {i} of order {id}"))
            .collect(),
        note: None,
    }
}

#[cache_result(ttl = 60, key = "t_fmt:msgpack:{id}", format = "msgpack", skip(calls))]
async fn as_msgpack(calls: &Calls, id: u64, lines: usize) -> Order {
    calls.fetch_add(1, Ordering::SeqCst);
    order(id, lines)
}

#[cache_result(ttl = 60, key = "t_fmt:postcard:{id}", format = "postcard", tags = ["order:{id}"], early_refresh = true, skip(calls))]
async fn as_postcard(calls: &Calls, id: u64, lines: usize) -> Order {
    calls.fetch_add(1, Ordering::SeqCst);
    order(id, lines)
}

/// Two deploys reading one key with different formats.
#[cache_result(ttl = 60, key = "t_fmt:shared:{id}", skip(calls))]
async fn shared_json(calls: &Calls, id: u64) -> u64 {
    calls.fetch_add(1, Ordering::SeqCst);
    id
}

#[cache_result(ttl = 60, key = "t_fmt:shared:{id}", format = "msgpack", skip(calls))]
async fn shared_msgpack(calls: &Calls, id: u64) -> u64 {
    calls.fetch_add(1, Ordering::SeqCst);
    id + 1
}

async fn raw(manager: &CacheManager, key: &str) -> Vec<u8> {
    manager.get_bytes(key).await.unwrap().expect("stored")
}

async fn binary_formats_round_trip_with_a_header(env: Env) {
    env.manager
        .scope(async {
            let calls = Calls::new(0);
            for _ in 0..2 {
                assert_eq!(as_msgpack(&calls, 1, 3).await, order(1, 3));
                assert_eq!(as_postcard(&calls, 2, 3).await, order(2, 3));
            }
            assert_eq!(calls.load(Ordering::SeqCst), 2);
            assert_eq!(&raw(&env.manager, "t_fmt:msgpack:1").await[..3], b"\xffm-");
            assert_eq!(&raw(&env.manager, "t_fmt:postcard:2").await[..3], b"\xffp-");
        })
        .await;
}

async fn a_reader_of_another_format_takes_the_value_as_a_miss(env: Env) {
    env.manager
        .scope(async {
            let calls = Calls::new(0);
            assert_eq!(shared_json(&calls, 5).await, 5);
            // JSON in the key: the MessagePack reader recomputes...
            assert_eq!(shared_msgpack(&calls, 5).await, 6);
            // ...and overwrites it, which the JSON reader now misses.
            assert_eq!(shared_json(&calls, 5).await, 5);
            assert_eq!(calls.load(Ordering::SeqCst), 3);
        })
        .await;
}

on_every_backend!(
    binary_formats_round_trip_with_a_header,
    a_reader_of_another_format_takes_the_value_as_a_miss,
);

/// With `REDIS_COMPRESS_ABOVE=256`: large values are compressed, small ones
/// are not, and both read back.
async fn compression(manager: CacheManager) {
    manager
        .scope(async {
            let calls = Calls::new(0);
            for _ in 0..2 {
                assert_eq!(as_msgpack(&calls, 10, 200).await, order(10, 200));
                assert_eq!(as_msgpack(&calls, 11, 1).await, order(11, 1));
                assert_eq!(shared_json(&calls, 12).await, 12);
            }
            assert_eq!(calls.load(Ordering::SeqCst), 3);
            let big = raw(&manager, "t_fmt:msgpack:10").await;
            assert_eq!(&big[..3], b"\xffmz");
            assert!(
                big.len() < 2_000,
                "200 similar lines compress: {}",
                big.len()
            );
            assert_eq!(&raw(&manager, "t_fmt:msgpack:11").await[..3], b"\xffm-");
            assert_eq!(raw(&manager, "t_fmt:shared:12").await, b"12");
        })
        .await;
}

fn compressing(b: forge_cache::RedisSettingsBuilder) -> forge_cache::RedisSettingsBuilder {
    b.compress_above(Some(256))
}

#[tokio::test]
async fn large_values_are_compressed_in_memory() {
    let settings = compressing(RedisSettings::builder().url("memory://"))
        .build()
        .unwrap();
    compression(CacheManager::new(settings).unwrap()).await;
}

#[tokio::test]
async fn large_values_are_compressed_on_redis() {
    let env = Env::redis_with(compressing);
    compression(env.manager.clone()).await;
}

#[tokio::test]
async fn large_values_are_compressed_on_a_cluster() {
    let env = Env::cluster_with(compressing);
    compression(env.manager.clone()).await;
}

#[cache_result(ttl = 60, key = "t_fmt_sync:{id}", format = "postcard", skip(calls))]
fn as_postcard_sync(calls: &Calls, id: u64) -> Vec<u64> {
    calls.fetch_add(1, Ordering::SeqCst);
    vec![id; 3]
}

fn sync_functions_take_a_format_too(env: Env) {
    let calls = Calls::new(0);
    env.manager.blocking().scope(|| {
        assert_eq!(as_postcard_sync(&calls, 4), vec![4; 3]);
        assert_eq!(as_postcard_sync(&calls, 4), vec![4; 3]);
    });
    assert_eq!(calls.load(Ordering::SeqCst), 1);
}

on_every_backend_sync!(sync_functions_take_a_format_too);

#[test]
fn settings_name_the_variable_and_what_is_accepted() {
    let e = RedisSettings::from_lookup(|k| (k == "REDIS_CACHE_FORMAT").then(|| "yaml".to_owned()))
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("REDIS_CACHE_FORMAT") && e.contains("yaml") && e.contains("msgpack"),
        "{e}"
    );
}
