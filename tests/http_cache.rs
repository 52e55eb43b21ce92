//! `ResponseCacheLayer` behind a real axum server on a loopback port, asked
//! by a real HTTP client (the `curl` binary), on every backend: HIT and
//! MISS, ETag and 304, `Vary`, a handler's `no-store`, the client's
//! `no-cache`, HEAD, oversized bodies, and invalidation.

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use axum::Router;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::IntoResponse;
use axum::routing::get;
use common::Env;
use forge_cache::axum::ResponseCacheLayer;

/// What the handlers serve, and how often they ran.
#[derive(Clone, Default)]
struct App {
    runs: Arc<AtomicUsize>,
    version: Arc<AtomicUsize>,
    /// 0: answer; 1: 500; 2: panic; 3: answer too late.
    mode: Arc<AtomicUsize>,
}

async fn flaky(State(app): State<App>) -> impl IntoResponse {
    app.runs.fetch_add(1, Ordering::SeqCst);
    match app.mode.load(Ordering::SeqCst) {
        0 => (
            StatusCode::OK,
            format!("v{}", app.version.load(Ordering::SeqCst)),
        ),
        1 => (StatusCode::INTERNAL_SERVER_ERROR, "down".to_owned()),
        2 => panic!("the handler panics"),
        _ => {
            tokio::time::sleep(Duration::from_secs(5)).await;
            (StatusCode::OK, "late".to_owned())
        }
    }
}

async fn item(State(app): State<App>, Path(id): Path<u64>) -> impl IntoResponse {
    app.runs.fetch_add(1, Ordering::SeqCst);
    let v = app.version.load(Ordering::SeqCst);
    (
        [(header::CONTENT_TYPE, "application/json")],
        format!("{{\"id\":{id},\"v\":{v}}}"),
    )
}

async fn greeting(State(app): State<App>, headers: HeaderMap) -> impl IntoResponse {
    app.runs.fetch_add(1, Ordering::SeqCst);
    let fr = headers
        .get(header::ACCEPT_LANGUAGE)
        .is_some_and(|v| v.as_bytes().starts_with(b"fr"));
    (
        [(header::VARY, "accept-language")],
        if fr { "bonjour" } else { "hello" },
    )
}

async fn secret(State(app): State<App>) -> impl IntoResponse {
    app.runs.fetch_add(1, Ordering::SeqCst);
    ([(header::CACHE_CONTROL, "no-store")], "secret")
}

async fn failing(State(app): State<App>) -> impl IntoResponse {
    app.runs.fetch_add(1, Ordering::SeqCst);
    (StatusCode::INTERNAL_SERVER_ERROR, "down")
}

async fn big(State(app): State<App>) -> String {
    app.runs.fetch_add(1, Ordering::SeqCst);
    "x".repeat(4096)
}

struct Reply {
    status: u16,
    headers: Vec<(String, String)>,
    body: String,
}

impl Reply {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    fn cache(&self) -> &str {
        self.header("x-cache").unwrap_or("none")
    }
}

/// One request with the `curl` binary: `args` go before the URL.
async fn curl(port: u16, path: &str, args: &[&str]) -> Reply {
    let url = format!("http://127.0.0.1:{port}{path}");
    let mut argv: Vec<String> = vec!["-s".into(), "-i".into(), "--max-time".into(), "10".into()];
    argv.extend(args.iter().map(|a| a.to_string()));
    argv.push(url);
    let out = tokio::task::spawn_blocking(move || {
        std::process::Command::new("curl").args(&argv).output()
    })
    .await
    .unwrap()
    .expect("the `curl` binary is required by this test (scripts/test.sh installs it)");
    assert!(out.status.success(), "curl failed: {out:?}");
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    let mut lines = head.lines();
    let status = lines
        .next()
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|s| s.parse().ok())
        .expect("a status line");
    let headers = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(n, v)| (n.trim().to_owned(), v.trim().to_owned()))
        .collect();
    Reply {
        status,
        headers,
        body: body.to_owned(),
    }
}

async fn serve(env: &Env) -> (u16, App, ResponseCacheLayer) {
    let app = App::default();
    let layer = ResponseCacheLayer::new(Duration::from_secs(60))
        .name("t_http")
        .vary(["accept-language"])
        .max_body(1024)
        .manager(env.manager.clone());
    let router = Router::new()
        .route("/items/{id}", get(item))
        .route("/greeting", get(greeting))
        .route("/secret", get(secret))
        .route("/failing", get(failing))
        .route("/big", get(big))
        .layer(layer.clone())
        .with_state(app.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(async move { axum::serve(listener, router).await.unwrap() });
    (port, app, layer)
}

async fn hits_misses_etags_and_304(env: Env) {
    let (port, app, _) = serve(&env).await;
    let first = curl(port, "/items/1", &[]).await;
    assert_eq!((first.status, first.cache()), (200, "MISS"));
    assert_eq!(first.body, "{\"id\":1,\"v\":0}");
    let etag = first.header("etag").expect("an ETag").to_owned();
    assert!(
        first
            .header("cache-control")
            .is_some_and(|c| c.starts_with("max-age="))
    );
    let second = curl(port, "/items/1", &[]).await;
    assert_eq!(
        (second.status, second.cache(), second.body.as_str()),
        (200, "HIT", first.body.as_str())
    );
    assert_eq!(second.header("etag"), Some(etag.as_str()));
    assert!(second.header("age").is_some());
    assert_eq!(app.runs.load(Ordering::SeqCst), 1);
    // A client holding the ETag gets a 304, without a body.
    let inm = format!("If-None-Match: {etag}");
    let revalidated = curl(port, "/items/1", &["-H", &inm]).await;
    assert_eq!((revalidated.status, revalidated.body.as_str()), (304, ""));
    // Another query is another entry.
    assert_eq!(curl(port, "/items/1?page=2", &[]).await.cache(), "MISS");
    // The client's no-cache does not bypass the server cache by default.
    let no_cache = curl(port, "/items/1", &["-H", "Cache-Control: no-cache"]).await;
    assert_eq!(no_cache.cache(), "HIT");
    // An authorized request is not answered from a shared entry, nor stored.
    let authorized = curl(port, "/items/1", &["-H", "Authorization: Bearer ada"]).await;
    assert_eq!((authorized.status, authorized.cache()), (200, "none"));
    // HEAD is answered from the GET entry.
    let head = curl(port, "/items/1", &["-I"]).await;
    assert_eq!(
        (head.status, head.cache(), head.body.as_str()),
        (200, "HIT", "")
    );
    // The query variant and the authorized request ran the handler.
    assert_eq!(app.runs.load(Ordering::SeqCst), 3);
}

async fn vary_no_store_errors_and_big_bodies(env: Env) {
    let (port, app, _) = serve(&env).await;
    let en = curl(port, "/greeting", &["-H", "Accept-Language: en"]).await;
    let fr = curl(port, "/greeting", &["-H", "Accept-Language: fr"]).await;
    assert_eq!((en.body.as_str(), fr.body.as_str()), ("hello", "bonjour"));
    assert_eq!(
        curl(port, "/greeting", &["-H", "Accept-Language: fr"])
            .await
            .cache(),
        "HIT"
    );
    assert_eq!(app.runs.load(Ordering::SeqCst), 2);
    for path in ["/secret", "/failing", "/big"] {
        for _ in 0..2 {
            let r = curl(port, path, &[]).await;
            assert_eq!(r.cache(), "MISS", "{path} is never stored");
        }
    }
    let big = curl(port, "/big", &[]).await;
    assert_eq!(
        big.body.len(),
        4096,
        "an oversized body is passed through whole"
    );
    assert_eq!(app.runs.load(Ordering::SeqCst), 2 + 7);
}

async fn invalidation_changes_the_etag(env: Env) {
    let (port, app, layer) = serve(&env).await;
    let old = curl(port, "/items/7", &[]).await;
    let etag = old.header("etag").unwrap().to_owned();
    app.version.store(1, Ordering::SeqCst);
    assert_eq!(
        curl(port, "/items/7", &[]).await.body,
        old.body,
        "still cached"
    );
    assert!(layer.invalidate("/items/*").await.unwrap() >= 1);
    let inm = format!("If-None-Match: {etag}");
    let fresh = curl(port, "/items/7", &["-H", &inm]).await;
    assert_eq!(
        (fresh.status, fresh.cache()),
        (200, "MISS"),
        "the old ETag no longer matches"
    );
    assert_eq!(fresh.body, "{\"id\":7,\"v\":1}");
    assert_ne!(fresh.header("etag"), Some(etag.as_str()));
    // A miss whose fresh body has the client's ETag is a 304 too.
    let new_etag = fresh.header("etag").unwrap().to_owned();
    layer.invalidate("/items/7").await.unwrap();
    let inm = format!("If-None-Match: {new_etag}");
    let same = curl(port, "/items/7", &["-H", &inm]).await;
    assert_eq!((same.status, same.cache()), (304, "MISS"));
}

async fn stale_if_error_serves_the_old_copy(env: Env) {
    let app = App::default();
    let layer = ResponseCacheLayer::new(Duration::from_secs(1))
        .stale_if_error(Duration::from_secs(60))
        .timeout(Duration::from_millis(300))
        .manager(env.manager.clone());
    let router = Router::new()
        .route("/flaky", get(flaky))
        .layer(layer)
        .with_state(app.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(async move { axum::serve(listener, router).await.unwrap() });
    assert_eq!(curl(port, "/flaky", &[]).await.body, "v0");
    tokio::time::sleep(Duration::from_millis(1100)).await; // past the TTL
    for mode in [1, 2, 3] {
        app.mode.store(mode, Ordering::SeqCst);
        let r = curl(port, "/flaky", &[]).await;
        assert_eq!(
            (r.status, r.cache(), r.body.as_str()),
            (200, "STALE", "v0"),
            "mode {mode}"
        );
    }
    // Once the handler answers again, the entry is refreshed.
    app.mode.store(0, Ordering::SeqCst);
    app.version.store(1, Ordering::SeqCst);
    let r = curl(port, "/flaky", &[]).await;
    assert_eq!((r.cache(), r.body.as_str()), ("MISS", "v1"));
    assert_eq!(curl(port, "/flaky", &[]).await.cache(), "HIT");
}

on_every_backend!(
    hits_misses_etags_and_304,
    vary_no_store_errors_and_big_bodies,
    invalidation_changes_the_etag,
    stale_if_error_serves_the_old_copy,
);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn when_redis_fails_the_handler_simply_runs() {
    let env = Env::redis_with(|b| b.socket_timeout(Duration::from_millis(300)));
    let (port, app, _) = serve(&env).await;
    assert_eq!(curl(port, "/items/1", &[]).await.cache(), "MISS");
    drop(env);
    for _ in 0..2 {
        let r = curl(port, "/items/1", &[]).await;
        assert_eq!((r.status, r.body.as_str()), (200, "{\"id\":1,\"v\":0}"));
    }
    assert_eq!(app.runs.load(Ordering::SeqCst), 3);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_no_cache_refreshes_when_respected() {
    let env = Env::memory();
    let app = App::default();
    let layer = ResponseCacheLayer::new(Duration::from_secs(60))
        .respect_client_no_cache(true)
        .manager(env.manager.clone());
    let router = Router::new()
        .route("/items/{id}", get(item))
        .layer(layer)
        .with_state(app.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(async move { axum::serve(listener, router).await.unwrap() });
    curl(port, "/items/1", &[]).await;
    app.version.store(5, Ordering::SeqCst);
    let r = curl(port, "/items/1", &["-H", "Cache-Control: no-cache"]).await;
    assert_eq!((r.cache(), r.body.as_str()), ("MISS", "{\"id\":1,\"v\":5}"));
    assert_eq!(
        curl(port, "/items/1", &[]).await.body,
        "{\"id\":1,\"v\":5}",
        "and stored"
    );
}
