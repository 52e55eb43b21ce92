//! A small axum service: a cached `/users/{id}`, a rate-limited
//! `/api/data`, and a per-IP limit on everything.
//!
//! Runs on the in-memory backend unless `REDIS_CONNECTION_URL` (or the other
//! `REDIS_*` variables) point at Redis. Listens on 127.0.0.1:3000 (`PORT`
//! overrides the port).
//!
//! ```text
//! cargo run --example axum_app
//! curl -i localhost:3000/users/7
//! curl -i localhost:3000/api/data
//! ```

use std::net::SocketAddr;
use std::time::Duration;

use axum::extract::Path;
use axum::http::HeaderValue;
use axum::response::IntoResponse;
use axum::routing::get;
use axum::{Json, Router};
use forge_cache::axum::RateLimitLayer;
use forge_cache::{Algorithm, RateLimit, RateLimitExceeded, RedisSettings, current, init};
use serde::{Deserialize, Serialize};

#[derive(Clone, Serialize, Deserialize)]
struct User {
    id: u64,
    name: String,
}

/// A slow database lookup, cached for a minute.
async fn get_user(Path(id): Path<u64>) -> impl IntoResponse {
    let cache = current();
    let key = format!("user:{id}");
    // A cache failure is a miss, never an error for the client.
    if let Ok(Some(user)) = cache.get::<User>(&key).await {
        return (cache_header("hit"), Json(user));
    }
    tokio::time::sleep(Duration::from_millis(200)).await; // the database
    let user = User {
        id,
        name: format!("user {id}"),
    };
    let _ = cache.set(&key, &user, Duration::from_secs(60)).await;
    (cache_header("miss"), Json(user))
}

fn cache_header(v: &'static str) -> [(&'static str, HeaderValue); 1] {
    [("x-cache", HeaderValue::from_static(v))]
}

#[derive(Serialize)]
struct Data {
    data: &'static str,
}

/// The guide's `@rate_limit(max_requests=5, window_seconds=60)` on
/// `/api/data`, one budget shared by all callers.
const DATA_LIMIT: RateLimit = RateLimit::new(5, Duration::from_secs(60));

async fn get_data() -> Result<impl IntoResponse, RateLimitExceeded> {
    let decision = match current().check_rate_limit("get_data", &DATA_LIMIT).await {
        Ok(decision) => Some(decision.into_result()?),
        // The backend is down: serve the request (fail open), without headers.
        Err(_) => None,
    };
    Ok((decision, Json(Data { data: "value" })))
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let settings = RedisSettings::from_env()?;
    println!(
        "backend: {} ({})",
        settings.backend_kind(),
        settings.redacted_url()
    );
    init(settings).await?;

    // Every route: 20 requests per 10 s per client IP, smoothed by GCRA.
    let per_ip = RateLimitLayer::new(
        RateLimit::new(20, Duration::from_secs(10))
            .with_algorithm(Algorithm::Gcra)
            .with_name("per_ip"),
    );
    let app = Router::new()
        .route("/users/{id}", get(get_user))
        .route("/api/data", get(get_data))
        .layer(per_ip);

    let port: u16 = std::env::var("PORT").map_or(Ok(3000), |p| p.parse())?;
    let listener = tokio::net::TcpListener::bind(("127.0.0.1", port)).await?;
    println!("listening on http://{}", listener.local_addr()?);
    axum::serve(
        listener,
        app.into_make_service_with_connect_info::<SocketAddr>(),
    )
    .await?;
    Ok(())
}
