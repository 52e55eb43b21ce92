//! tower-sessions over forge-cache: a real axum server with
//! `SessionManagerLayer` and `TowerSessionStore`, asked by `curl` with a
//! cookie jar, on every backend. Expiry is the key's TTL in Redis.

mod common;

use std::time::Duration;

use axum::Router;
use axum::routing::get;
use common::Env;
use forge_cache::axum::TowerSessionStore;
use tower_sessions::{Expiry, Session, SessionManagerLayer};

async fn visit(session: Session) -> String {
    let n: u64 = session.get("visits").await.unwrap().unwrap_or(0) + 1;
    session.insert("visits", n).await.unwrap();
    format!("visits={n}")
}

async fn logout(session: Session) -> &'static str {
    session.flush().await.unwrap();
    "bye"
}

/// `curl` with a cookie jar: the body.
async fn curl(port: u16, path: &str, jar: &std::path::Path) -> String {
    let url = format!("http://127.0.0.1:{port}{path}");
    let jar = jar.to_owned();
    let out = tokio::task::spawn_blocking(move || {
        std::process::Command::new("curl")
            .args(["-s", "--max-time", "10", "-b"])
            .arg(&jar)
            .arg("-c")
            .arg(&jar)
            .arg(url)
            .output()
    })
    .await
    .unwrap()
    .expect("the `curl` binary is required by this test (scripts/test.sh installs it)");
    assert!(out.status.success(), "curl failed: {out:?}");
    String::from_utf8_lossy(&out.stdout).into_owned()
}

async fn sessions_survive_requests_and_expire_in_redis(env: Env) {
    let store = TowerSessionStore::new()
        .prefix("t_tower")
        .manager(env.manager.clone());
    let layer = SessionManagerLayer::new(store)
        .with_secure(false)
        .with_expiry(Expiry::OnInactivity(time::Duration::minutes(10)));
    let app = Router::new()
        .route("/visit", get(visit))
        .route("/logout", get(logout))
        .layer(layer);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });

    let dir = std::env::temp_dir().join(format!("forge-cache-jar-{}-{port}", std::process::id()));
    let jar = dir.with_extension("txt");
    assert_eq!(curl(port, "/visit", &jar).await, "visits=1");
    assert_eq!(curl(port, "/visit", &jar).await, "visits=2");
    // Another client (no cookies) has its own session.
    let other = dir.with_extension("other.txt");
    assert_eq!(curl(port, "/visit", &other).await, "visits=1");

    // One key per session, with the session's expiry as its TTL.
    let cookie = std::fs::read_to_string(&jar).unwrap();
    let id = cookie
        .lines()
        .filter(|l| !l.starts_with('#') || l.starts_with("#HttpOnly_"))
        .filter_map(|l| l.split('\t').nth(6))
        .next()
        .expect("a session cookie")
        .trim()
        .to_owned();
    let ttl = env.manager.ttl(&format!("t_tower:{id}")).await.unwrap();
    assert!(
        ttl.is_some_and(|t| t > Duration::from_secs(500) && t <= Duration::from_secs(600)),
        "{ttl:?}"
    );
    assert_eq!(curl(port, "/logout", &jar).await, "bye");
    assert_eq!(
        env.manager.ttl(&format!("t_tower:{id}")).await.unwrap(),
        None
    );
    assert_eq!(
        curl(port, "/visit", &jar).await,
        "visits=1",
        "a new session"
    );
    let _ = std::fs::remove_file(&jar);
    let _ = std::fs::remove_file(&other);
}

on_every_backend!(sessions_survive_requests_and_expire_in_redis);
