//! The quickstart: a slow function cached with `#[cache_result]`, and a
//! `#[rate_limit]`ed one refusing calls over its budget.
//!
//! Runs on the in-memory backend when no Redis is configured; set
//! `REDIS_CONNECTION_URL=redis://localhost:6379/0` to use Redis, or
//! `REDIS_CLUSTER_NODES=127.0.0.1:7000,127.0.0.1:7001` to use a Redis
//! Cluster. The library's `tracing` events (hits, misses, stores, errors)
//! are printed at debug level.
//!
//! ```text
//! cargo run --example quickstart
//! ```

use std::time::{Duration, Instant};

use forge_cache::{RateLimitExceeded, RedisSettings, cache_result, init, rate_limit};

/// A slow database query, cached for 60 s under `products:get_products:<md5>`.
#[cache_result(ttl = 60, key_prefix = "products")]
async fn get_products(category: &str) -> Vec<String> {
    tokio::time::sleep(Duration::from_millis(300)).await;
    vec![format!("{category}-1"), format!("{category}-2")]
}

/// Three reports a minute, whoever asks (the guide's `@rate_limit`).
#[rate_limit(max_requests = 3, window_seconds = 60)]
async fn send_report(to: &str) -> Result<String, RateLimitExceeded> {
    Ok(format!("report sent to {to}"))
}

#[tokio::main]
async fn main() -> Result<(), forge_cache::Error> {
    tracing_subscriber::fmt()
        .with_max_level(tracing_subscriber::filter::LevelFilter::DEBUG)
        .with_target(false)
        .init();
    let settings = RedisSettings::from_env()?;
    println!(
        "backend: {} ({})",
        settings.backend_kind(),
        settings.redacted_url()
    );
    let cache = init(settings).await?;
    // Start from a cold cache and a fresh budget, whatever an earlier run
    // left behind.
    get_products_invalidate("books").await.ok();
    cache.delete_pattern("rate_limit:*").await.ok();

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

    for _ in 0..4 {
        match send_report("ops@example.com").await {
            Ok(sent) => println!("{sent}"),
            Err(refused) => println!("refused: {refused}"),
        }
    }
    get_products_invalidate("books").await?;
    Ok(())
}
