//! Keys of `#[cache_result]` calls are pinned: they must stay the same
//! across processes, restarts and releases, or every deploy empties the
//! cache (and other services reading the keys break).

use std::time::Duration;

use forge_cache::{CacheManager, RedisSettings, cache_result};
use forge_cache_testkit::RedisServer;
use serde::Serialize;

#[cache_result(ttl = 60, key_prefix = "products")]
async fn pinned_products(category: &str, page: u32) -> Vec<String> {
    vec![format!("{category}-{page}")]
}

#[cache_result]
async fn pinned_no_args() -> u8 {
    1
}

#[derive(Serialize)]
struct Filter {
    id: u64,
    tags: Vec<&'static str>,
}

#[cache_result(ttl = 60, key_prefix = "search")]
fn pinned_struct(filter: &Filter, cursor: Option<u32>) -> u8 {
    filter.tags.len() as u8 + cursor.unwrap_or(0) as u8
}

#[cache_result(ttl = 60, key = "user:{user_id}:profile")]
async fn pinned_template(user_id: i64) -> String {
    format!("user {user_id}")
}

/// `md5(r#"["books",2]"#)`, `md5("[]")`, `md5(r#"[{"id":7,"tags":["a","b"]},null]"#)`.
const BOOKS_2: &str = "products:pinned_products:9c1a969804957892c4455e98f74383d5";
const NO_ARGS: &str = "cache:pinned_no_args:d751713988987e9331980363e24189ce";
const STRUCT: &str = "search:pinned_struct:5094089739b11b4db40492002f486336";

async fn keys_of_fixed_inputs_are_pinned(m: &CacheManager) {
    m.scope(async {
        pinned_products("books", 2).await;
        pinned_no_args().await;
        pinned_template(42).await;
    })
    .await;
    m.blocking().scope(|| {
        pinned_struct(
            &Filter {
                id: 7,
                tags: vec!["a", "b"],
            },
            None,
        )
    });
    assert_eq!(
        m.get::<Vec<String>>(BOOKS_2).await.unwrap(),
        Some(vec!["books-2".to_owned()])
    );
    assert_eq!(m.get::<u8>(NO_ARGS).await.unwrap(), Some(1));
    assert_eq!(m.get::<u8>(STRUCT).await.unwrap(), Some(2));
    assert_eq!(
        m.get::<String>("user:42:profile").await.unwrap().as_deref(),
        Some("user 42")
    );
    assert!(m.ttl(BOOKS_2).await.unwrap().unwrap() <= Duration::from_secs(60));
    // `ttl` omitted: the settings' default.
    assert!(m.ttl(NO_ARGS).await.unwrap().unwrap() > Duration::from_secs(60));
}

#[tokio::test]
async fn keys_are_pinned_on_memory() {
    let m = CacheManager::new(RedisSettings::memory()).unwrap();
    keys_of_fixed_inputs_are_pinned(&m).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keys_are_pinned_on_redis() {
    let server = RedisServer::start();
    let m = CacheManager::new(RedisSettings::builder().url(server.url()).build().unwrap()).unwrap();
    keys_of_fixed_inputs_are_pinned(&m).await;
    // The raw key, as another process or language would read it.
    let mut conn = m.redis().unwrap();
    let raw: Vec<u8> = redis::cmd("GET")
        .arg(BOOKS_2)
        .query_async(&mut conn)
        .await
        .unwrap();
    assert_eq!(raw, br#"["books-2"]"#);
}

#[tokio::test]
async fn namespace_is_prepended_to_every_key() {
    let m = CacheManager::new(
        RedisSettings::builder()
            .url("memory://")
            .namespace("v2")
            .build()
            .unwrap(),
    )
    .unwrap();
    m.scope(async {
        pinned_products("books", 2).await;
        pinned_template(42).await;
    })
    .await;
    // `get` adds the namespace itself; the stored keys carry it.
    assert!(m.get_bytes(BOOKS_2).await.unwrap().is_some());
    assert_eq!(m.full_key(BOOKS_2), format!("v2:{BOOKS_2}"));
    assert!(m.get_bytes("user:42:profile").await.unwrap().is_some());
    m.scope(async {
        assert!(pinned_products_invalidate("books", 2).await.unwrap());
        assert_eq!(pinned_template_invalidate_all().await.unwrap(), 1);
    })
    .await;
    assert!(m.get_bytes(BOOKS_2).await.unwrap().is_none());
}
