//! The quickstart: a slow function, then the same call served from the cache.
//!
//! Runs on the in-memory backend when no Redis is configured; set
//! `REDIS_CONNECTION_URL=redis://localhost:6379/0` to use Redis, or
//! `REDIS_CLUSTER_NODES=127.0.0.1:7000,127.0.0.1:7001` to use a Redis
//! Cluster (see docs/cluster.md).
//!
//! ```text
//! cargo run --example quickstart
//! ```

use std::time::{Duration, Instant};

use forge_cache::{RedisSettings, cache_result, init};

/// A slow database query, cached for 60 s under `products:get_products:<md5>`.
#[cache_result(ttl = 60, key_prefix = "products")]
async fn get_products(category: &str) -> Vec<String> {
    tokio::time::sleep(Duration::from_millis(300)).await;
    vec![format!("{category}-1"), format!("{category}-2")]
}

#[tokio::main]
async fn main() -> Result<(), forge_cache::Error> {
    let settings = RedisSettings::from_env()?;
    println!(
        "backend: {} ({})",
        settings.backend_kind(),
        settings.redacted_url()
    );
    let cache = init(settings).await?;
    // Start from a cold cache, whatever an earlier run left behind.
    get_products_invalidate("books").await.ok();

    for attempt in 1..=2 {
        let start = Instant::now();
        let products = get_products("books").await;
        println!("call {attempt}: {products:?} in {:?}", start.elapsed());
    }
    let stats = cache.stats().prefix("products");
    println!(
        "products: {} hit(s), {} miss(es), {} store(s)",
        stats.hits, stats.misses, stats.stores
    );
    get_products_invalidate("books").await?;
    Ok(())
}
