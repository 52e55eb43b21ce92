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

use forge_cache::{RedisSettings, init};

async fn slow_product_lookup(category: &str) -> Vec<String> {
    tokio::time::sleep(Duration::from_millis(300)).await; // a slow database query
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

    for attempt in 1..=2 {
        let start = Instant::now();
        let products = match cache
            .get::<Vec<String>>("products:books")
            .await
            .ok()
            .flatten()
        {
            Some(hit) => hit,
            None => {
                let fresh = slow_product_lookup("books").await;
                let _ = cache
                    .set("products:books", &fresh, Duration::from_secs(60))
                    .await;
                fresh
            }
        };
        println!("call {attempt}: {products:?} in {:?}", start.elapsed());
    }
    cache.delete("products:books").await?;
    Ok(())
}
