//! A small axum service built with the two attributes:
//!
//! - `GET /users/{id}`: a slow lookup cached for a minute under `user:<id>`
//!   (`#[cache_result]` directly on the handler);
//! - `POST /users/{id}/rename`: changes the user and invalidates its entry;
//! - `GET /api/data`: the guide's `@rate_limit(max_requests=5,
//!   window_seconds=60)`, one budget for all callers (`#[rate_limit]`);
//! - `POST /login`: 3 attempts a minute per username (`key = "{creds.username}"`);
//! - `GET /visits`: a tower-sessions session, stored by forge-cache
//!   (`TowerSessionStore`), counting this client's visits;
//! - `GET /products`: the whole HTTP response cached for a minute
//!   (`ResponseCacheLayer`), with an `ETag`, so a client that has it gets a
//!   `304 Not Modified`;
//! - every route: 20 requests per 10 s per client IP (`RateLimitLayer`).
//!
//! Runs on the in-memory backend unless `REDIS_CONNECTION_URL` (or the other
//! `REDIS_*` variables) point at Redis.
//!
//! ```text
//! cargo run --example axum_app -- --demo   # serve on a free port, call itself, exit
//! cargo run --example axum_app             # serve on 127.0.0.1:3000 (PORT overrides)
//! curl -i localhost:3000/users/7
//! curl -i -X POST localhost:3000/users/7/rename -d 'Ada'
//! curl -i localhost:3000/api/data
//! curl -i -X POST localhost:3000/login -H 'content-type: application/json' -d '{"username":"ada","password":"x"}'
//! ```

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use forge_cache::axum::{RateLimitLayer, ResponseCacheLayer, TowerSessionStore};
use forge_cache::{
    Algorithm, RateLimit, RateLimitExceeded, RedisSettings, cache_result, init, rate_limit,
};
use serde::{Deserialize, Serialize};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tower_sessions::{Session, SessionManagerLayer};

/// The "database": user names, and a count of the lookups that reached it.
#[derive(Clone, Default)]
struct Db {
    names: Arc<std::sync::Mutex<std::collections::HashMap<u64, String>>>,
    lookups: Arc<AtomicU64>,
}

impl Db {
    async fn load(&self, id: u64) -> Option<User> {
        self.lookups.fetch_add(1, Ordering::Relaxed);
        tokio::time::sleep(Duration::from_millis(200)).await; // a slow query
        let names = self.names.lock().unwrap();
        let name = names
            .get(&id)
            .cloned()
            .unwrap_or_else(|| format!("user {id}"));
        (id < 1000).then_some(User { id, name })
    }
}

#[derive(Clone, Serialize, Deserialize)]
struct User {
    id: u64,
    name: String,
}

#[derive(Debug)]
enum AppError {
    NotFound,
    RateLimited(RateLimitExceeded),
}

impl From<RateLimitExceeded> for AppError {
    fn from(e: RateLimitExceeded) -> Self {
        AppError::RateLimited(e)
    }
}

impl IntoResponse for AppError {
    fn into_response(self) -> Response {
        match self {
            AppError::NotFound => StatusCode::NOT_FOUND.into_response(),
            // 429 with Retry-After and the X-RateLimit-* headers.
            AppError::RateLimited(e) => e.into_response(),
        }
    }
}

/// Only `Ok` is cached (as the `User` inside the `Json`): a 404 is not, so
/// a user created later is found.
#[cache_result(ttl = 60, key = "user:{id}", skip(db))]
async fn get_user(State(db): State<Db>, Path(id): Path<u64>) -> Result<Json<User>, AppError> {
    db.load(id).await.map(Json).ok_or(AppError::NotFound)
}

async fn rename_user(State(db): State<Db>, Path(id): Path<u64>, name: String) -> StatusCode {
    db.names.lock().unwrap().insert(id, name);
    // Drop the cached entry; a cache failure only delays the change until
    // the TTL, so it is not an error for the client.
    let _ = get_user_invalidate(Path(id)).await;
    StatusCode::NO_CONTENT
}

#[derive(Serialize)]
struct Data {
    data: &'static str,
}

#[rate_limit(max_requests = 5, window_seconds = 60)]
async fn get_data() -> Result<Json<Data>, AppError> {
    Ok(Json(Data { data: "value" }))
}

#[derive(Deserialize)]
struct Login {
    username: String,
    #[allow(dead_code)] // a real service would check it
    password: String,
}

#[rate_limit(
    max_requests = 3,
    window_seconds = 60,
    key = "{creds.username}",
    algorithm = "gcra"
)]
async fn login(Json(creds): Json<Login>) -> Result<String, AppError> {
    Ok(format!("welcome, {}", creds.username))
}

/// Counts this client's visits in its session (kept in Redis, or memory).
async fn visits(session: Session) -> String {
    let n: u64 = session.get("visits").await.ok().flatten().unwrap_or(0) + 1;
    let _ = session.insert("visits", n).await;
    format!("visits={n}")
}

/// A catalogue page: its whole response is cached by the route's layer.
async fn products(State(db): State<Db>) -> Json<Vec<User>> {
    db.lookups.fetch_add(1, Ordering::Relaxed);
    Json(vec![User {
        id: 1,
        name: "a book".into(),
    }])
}

fn app(db: Db) -> Router {
    // Every route: 20 requests per 10 s per client IP, smoothed by GCRA.
    let per_ip = RateLimitLayer::new(
        RateLimit::new(20, Duration::from_secs(10))
            .with_algorithm(Algorithm::Gcra)
            .with_name("per_ip"),
    );
    Router::new()
        .route("/users/{id}", get(get_user))
        .route("/users/{id}/rename", post(rename_user))
        .route("/api/data", get(get_data))
        .route("/login", post(login))
        .route(
            "/visits",
            get(visits)
                .layer(SessionManagerLayer::new(TowerSessionStore::new()).with_secure(false)),
        )
        .route(
            "/products",
            get(products).layer(ResponseCacheLayer::new(Duration::from_secs(60)).name("products")),
        )
        .layer(per_ip)
        .with_state(db)
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
    let db = Db::default();
    let demo = std::env::args().any(|a| a == "--demo");
    let port: u16 = match std::env::var("PORT") {
        Ok(p) => p.parse()?,
        Err(_) if demo => 0,
        Err(_) => 3000,
    };
    let listener = tokio::net::TcpListener::bind(("127.0.0.1", port)).await?;
    let addr = listener.local_addr()?;
    println!("listening on http://{addr}");
    let server = axum::serve(
        listener,
        app(db.clone()).into_make_service_with_connect_info::<SocketAddr>(),
    );
    if !demo {
        server.await?;
        return Ok(());
    }
    tokio::spawn(async move { server.await });
    run_demo(addr, &db).await
}

/// Calls every route and prints what came back.
async fn run_demo(addr: SocketAddr, db: &Db) -> Result<(), Box<dyn std::error::Error>> {
    // Start from a cold cache and fresh budgets, whatever an earlier run left.
    let cache = forge_cache::current();
    get_user_invalidate(Path(7)).await.ok();
    cache.delete_pattern("rate_limit:*").await.ok();
    cache.delete_pattern("products:*").await.ok();

    for _ in 0..2 {
        let (status, body) = call(addr, "GET", "/users/7", "").await?;
        let lookups = db.lookups.load(Ordering::Relaxed);
        println!("GET /users/7 -> {status} {body}  (database lookups so far: {lookups})");
    }
    let (status, _) = call(addr, "POST", "/users/7/rename", "Ada").await?;
    println!("POST /users/7/rename -> {status}");
    let (status, body) = call(addr, "GET", "/users/7", "").await?;
    println!("GET /users/7 -> {status} {body}  (after invalidation)");

    // The response cache: a 200 with an ETag, then a 304 for the client
    // that sends it back.
    let (status, body) = call(addr, "GET", "/products", "").await?;
    let etag = body
        .split("etag: ")
        .nth(1)
        .and_then(|rest| rest.split_whitespace().next())
        .unwrap_or_default()
        .to_owned();
    println!("GET /products -> {status} (etag {etag})");
    let (status, _) = call_with(
        addr,
        "GET",
        "/products",
        "",
        &format!("if-none-match: {etag}\r\n"),
    )
    .await?;
    println!("GET /products with If-None-Match -> {status} (not modified)");

    // A session: the cookie of the first answer brings the second visit.
    let (_, first) = call(addr, "GET", "/visits", "").await?;
    let cookie = first
        .split("set-cookie: ")
        .nth(1)
        .and_then(|c| c.split(';').next())
        .unwrap_or_default()
        .to_owned();
    let (_, second) =
        call_with(addr, "GET", "/visits", "", &format!("cookie: {cookie}\r\n")).await?;
    println!(
        "GET /visits -> {}, then with its cookie -> {}",
        first.split_whitespace().next().unwrap_or_default(),
        second.split_whitespace().next().unwrap_or_default()
    );

    for _ in 0..6 {
        let (status, body) = call(addr, "GET", "/api/data", "").await?;
        println!("GET /api/data -> {status} {body}");
    }
    let creds = r#"{"username":"ada","password":"x"}"#;
    for _ in 0..4 {
        let (status, body) = call(addr, "POST", "/login", creds).await?;
        println!("POST /login (ada) -> {status} {body}");
    }
    Ok(())
}

/// A minimal HTTP/1.1 client, so the demo needs no extra dependency.
async fn call(
    addr: SocketAddr,
    method: &str,
    path: &str,
    body: &str,
) -> std::io::Result<(u16, String)> {
    call_with(addr, method, path, body, "").await
}

/// [`call`] with extra header lines (each ending in `\r\n`). For
/// `/products`, the body shown is followed by the response's ETag.
async fn call_with(
    addr: SocketAddr,
    method: &str,
    path: &str,
    body: &str,
    headers: &str,
) -> std::io::Result<(u16, String)> {
    let mut stream = tokio::net::TcpStream::connect(addr).await?;
    let request = format!(
        "{method} {path} HTTP/1.1\r\nhost: {addr}\r\nconnection: close\r\n\
         content-type: application/json\r\n{headers}content-length: {}\r\n\r\n{body}",
        body.len()
    );
    stream.write_all(request.as_bytes()).await?;
    let mut response = String::new();
    stream.read_to_string(&mut response).await?;
    let status = response
        .get(9..12)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    let (head, body) = response.split_once("\r\n\r\n").unwrap_or((&response, ""));
    // Show when to come back, as a client would read it.
    let retry_after = head
        .lines()
        .find_map(|l| l.strip_prefix("retry-after: "))
        .map_or(String::new(), |s| format!(" (retry-after: {s} s)"));
    let etag = head
        .lines()
        .find_map(|l| l.strip_prefix("etag: "))
        .map_or(String::new(), |e| format!(" etag: {e}"));
    let cookie = head
        .lines()
        .find_map(|l| l.strip_prefix("set-cookie: "))
        .map_or(String::new(), |c| format!(" set-cookie: {c}"));
    Ok((status, format!("{body}{retry_after}{etag}{cookie}")))
}
