//! The axum integration through a real server on 127.0.0.1 and raw HTTP/1.1
//! requests: 429s, bodies, every header, client identity behind proxies.

mod common;

use std::net::SocketAddr;
use std::time::Duration;

use axum::Router;
use axum::routing::get;
use common::{Env, eventually};
use forge_cache::axum::{ClientIp, RateLimitLayer, TrustedProxies};
use forge_cache::{Algorithm, CacheManager, Decision, OnError, RateLimit, RateLimitExceeded};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpSocket};

const BODY_429: &str = r#"{"detail":"Rate limit exceeded"}"#;

/// Serves `app` on a free loopback port, recording peer addresses.
async fn serve(app: Router) -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        axum::serve(
            listener,
            app.into_make_service_with_connect_info::<SocketAddr>(),
        )
        .await
        .unwrap()
    });
    addr
}

#[derive(Debug)]
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

    fn num(&self, name: &str) -> u64 {
        self.header(name)
            .unwrap_or_else(|| panic!("no {name} in {self:?}"))
            .parse()
            .unwrap()
    }
}

/// `GET path` from the local address `from` (any 127.0.0.0/8 address works
/// on Linux loopback), with extra request headers.
async fn fetch_from(addr: SocketAddr, from: &str, path: &str, headers: &[(&str, &str)]) -> Reply {
    let socket = TcpSocket::new_v4().unwrap();
    socket
        .bind(SocketAddr::new(from.parse().unwrap(), 0))
        .unwrap();
    let mut stream = socket.connect(addr).await.unwrap();
    let mut request = format!("GET {path} HTTP/1.1\r\nHost: test\r\nConnection: close\r\n");
    for (name, value) in headers {
        request.push_str(&format!("{name}: {value}\r\n"));
    }
    request.push_str("\r\n");
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut raw = Vec::new();
    tokio::time::timeout(Duration::from_secs(10), stream.read_to_end(&mut raw))
        .await
        .expect("response within 10 s")
        .unwrap();
    let raw = String::from_utf8(raw).unwrap();
    let (head, body) = raw.split_once("\r\n\r\n").unwrap();
    let mut lines = head.split("\r\n");
    let status = lines
        .next()
        .unwrap()
        .split(' ')
        .nth(1)
        .unwrap()
        .parse()
        .unwrap();
    let headers: Vec<(String, String)> = lines
        .map(|l| {
            let (n, v) = l.split_once(':').unwrap();
            (n.trim().to_owned(), v.trim().to_owned())
        })
        .collect();
    let chunked = headers
        .iter()
        .any(|(n, v)| n.eq_ignore_ascii_case("transfer-encoding") && v == "chunked");
    let body = if chunked {
        dechunk(body)
    } else {
        body.to_owned()
    };
    Reply {
        status,
        headers,
        body,
    }
}

fn dechunk(mut s: &str) -> String {
    let mut out = String::new();
    while let Some((size, rest)) = s.split_once("\r\n") {
        let n = usize::from_str_radix(size.trim(), 16).unwrap();
        if n == 0 {
            break;
        }
        out.push_str(&rest[..n]);
        s = &rest[n + 2..];
    }
    out
}

async fn fetch(addr: SocketAddr, path: &str) -> Reply {
    fetch_from(addr, "127.0.0.1", path, &[]).await
}

fn limited_router(layer: RateLimitLayer) -> Router {
    Router::new()
        .route(
            "/limited",
            get(|ClientIp(ip): ClientIp| async move { ip.to_string() }),
        )
        .route_layer(layer)
        .route("/free", get(|| async { "free" }))
}

async fn refusal_is_a_429_with_the_body_and_every_header(env: Env) {
    let limit = RateLimit::new(2, Duration::from_secs(2)).with_name("h");
    let addr = serve(limited_router(
        RateLimitLayer::new(limit).manager(env.manager.clone()),
    ))
    .await;

    let first = fetch(addr, "/limited").await;
    assert_eq!(first.status, 200);
    assert_eq!(first.body, "127.0.0.1");
    assert_eq!(first.header("x-ratelimit-limit"), Some("2"));
    assert_eq!(first.header("x-ratelimit-remaining"), Some("1"));
    // The window opens with this request: exactly 2 s to go.
    assert_eq!(first.header("x-ratelimit-reset"), Some("2"));
    assert_eq!(
        first.header("ratelimit-policy"),
        Some(r#""default";q=2;w=2"#)
    );
    assert_eq!(first.header("ratelimit"), Some(r#""default";r=1;t=2"#));
    assert_eq!(first.header("retry-after"), None);

    let second = fetch(addr, "/limited").await;
    assert_eq!(second.status, 200);
    assert_eq!(second.header("x-ratelimit-remaining"), Some("0"));

    let refused = fetch(addr, "/limited").await;
    assert_eq!(refused.status, 429);
    assert_eq!(refused.body, BODY_429);
    assert_eq!(refused.header("content-type"), Some("application/json"));
    assert_eq!(refused.header("x-ratelimit-limit"), Some("2"));
    assert_eq!(refused.header("x-ratelimit-remaining"), Some("0"));
    let reset = refused.num("x-ratelimit-reset");
    assert!((1..=2).contains(&reset), "{reset}");
    // Fixed window: admitted again exactly when the window ends.
    assert_eq!(refused.num("retry-after"), reset);
    assert_eq!(
        refused.header("ratelimit-policy"),
        Some(r#""default";q=2;w=2"#)
    );
    let ratelimit = format!(r#""default";r=0;t={reset}"#);
    assert_eq!(refused.header("ratelimit"), Some(ratelimit.as_str()));

    // Other routes are not limited; the window resets.
    assert_eq!(fetch(addr, "/free").await.header("x-ratelimit-limit"), None);
    assert!(
        eventually(Duration::from_secs(5), async || fetch(addr, "/limited")
            .await
            .status
            == 200)
        .await
    );
}

async fn handlers_can_return_decisions_and_refusals(env: Env) {
    let m = env.manager.clone();
    let limit = RateLimit::new(3, Duration::from_secs(60))
        .with_algorithm(Algorithm::Gcra)
        .with_name("data");
    let handler = move || {
        let (m, limit) = (m.clone(), limit.clone());
        async move {
            let d: Decision = m.check_rate_limit("client", &limit).await.unwrap();
            d.into_result().map(|d| (d, "data"))
        }
    };
    let addr = serve(Router::new().route("/api/data", get(handler))).await;
    let mut seen = vec![];
    for _ in 0..3 {
        let r = fetch(addr, "/api/data").await;
        assert_eq!((r.status, r.body.as_str()), (200, "data"));
        assert_eq!(r.header("ratelimit-policy"), Some(r#""default";q=3;w=60"#));
        seen.push(r.num("x-ratelimit-remaining"));
    }
    assert_eq!(seen, [2, 1, 0]);
    let r = fetch(addr, "/api/data").await;
    assert_eq!((r.status, r.body.as_str()), (429, BODY_429));
    // GCRA: one request comes back every 20 s; the bucket is full in 60 s.
    let retry = r.num("retry-after");
    assert!((19..=20).contains(&retry), "{retry}");
    let reset = r.num("x-ratelimit-reset");
    assert!((59..=60).contains(&reset), "{reset}");
    assert_eq!(
        r.header("ratelimit"),
        Some(format!(r#""default";r=0;t={reset}"#).as_str())
    );
}

async fn spoofed_forwarded_for_from_an_untrusted_peer_is_ignored(env: Env) {
    let layer = RateLimitLayer::new(RateLimit::new(1, Duration::from_secs(60)))
        .manager(env.manager.clone())
        .trusted_proxies(TrustedProxies::new(["127.0.0.2"]).unwrap());
    let addr = serve(limited_router(layer)).await;
    let spoof = |ip| [("X-Forwarded-For", ip)];
    let r = fetch_from(addr, "127.0.0.1", "/limited", &spoof("1.1.1.1")).await;
    assert_eq!((r.status, r.body.as_str()), (200, "127.0.0.1"));
    // A new forged address does not buy a new budget.
    let r = fetch_from(addr, "127.0.0.1", "/limited", &spoof("2.2.2.2")).await;
    assert_eq!(r.status, 429);
    let r = fetch_from(
        addr,
        "127.0.0.1",
        "/limited",
        &[("Forwarded", "for=3.3.3.3")],
    )
    .await;
    assert_eq!(r.status, 429);
}

async fn forwarded_for_from_a_trusted_proxy_is_walked_from_the_right(env: Env) {
    let layer = RateLimitLayer::new(RateLimit::new(1, Duration::from_secs(60)))
        .manager(env.manager.clone())
        .trusted_proxies(TrustedProxies::new(["127.0.0.2", "10.0.0.0/8"]).unwrap());
    let addr = serve(limited_router(layer)).await;
    let proxy = "127.0.0.2";
    let xff = |v| [("X-Forwarded-For", v)];
    // The client forged "9.9.9.9"; the proxy appended the real peer, then an
    // internal hop appended itself.
    let r = fetch_from(
        addr,
        proxy,
        "/limited",
        &xff("9.9.9.9, 203.0.113.5, 10.0.0.7"),
    )
    .await;
    assert_eq!((r.status, r.body.as_str()), (200, "203.0.113.5"));
    let r = fetch_from(addr, proxy, "/limited", &xff("8.8.8.8, 203.0.113.5")).await;
    assert_eq!(r.status, 429, "the same client with another forged prefix");
    let r = fetch_from(addr, proxy, "/limited", &xff("203.0.113.6")).await;
    assert_eq!((r.status, r.body.as_str()), (200, "203.0.113.6"));
    // Without the header the proxy itself is the client.
    let r = fetch_from(addr, proxy, "/limited", &[]).await;
    assert_eq!((r.status, r.body.as_str()), (200, "127.0.0.2"));
}

async fn per_user_keys_come_from_the_request(env: Env) {
    let layer = RateLimitLayer::new(RateLimit::new(1, Duration::from_secs(60)))
        .manager(env.manager.clone())
        .key_by(|req| {
            req.headers
                .get("x-user")
                .and_then(|v| v.to_str().ok())
                .map(str::to_owned)
        });
    let addr = serve(limited_router(layer)).await;
    let user = |u| [("X-User", u)];
    let local = "127.0.0.1";
    assert_eq!(
        fetch_from(addr, local, "/limited", &user("ada"))
            .await
            .status,
        200
    );
    assert_eq!(
        fetch_from(addr, local, "/limited", &user("ada"))
            .await
            .status,
        429
    );
    assert_eq!(
        fetch_from(addr, local, "/limited", &user("bob"))
            .await
            .status,
        200
    );
    // Anonymous: per IP, a counter no user name can reach.
    let sneaky = user("ip:127.0.0.1");
    assert_eq!(
        fetch_from(addr, local, "/limited", &sneaky).await.status,
        200
    );
    assert_eq!(fetch_from(addr, local, "/limited", &[]).await.status, 200);
    assert_eq!(fetch_from(addr, local, "/limited", &[]).await.status, 429);
}

on_every_backend!(
    refusal_is_a_429_with_the_body_and_every_header,
    handlers_can_return_decisions_and_refusals,
    spoofed_forwarded_for_from_an_untrusted_peer_is_ignored,
    forwarded_for_from_a_trusted_proxy_is_walked_from_the_right,
    per_user_keys_come_from_the_request,
);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn layer_follows_on_error_when_redis_is_down() {
    let mut env = Env::redis_with(|b| {
        b.socket_timeout(Duration::from_millis(500))
            .breaker_cooldown(Duration::from_millis(2500))
    });
    let limit = RateLimit::new(1, Duration::from_secs(60));
    let layer = |on_error| {
        RateLimitLayer::new(limit.clone())
            .manager(env.manager.clone())
            .on_error(on_error)
    };
    let app = Router::new()
        .route(
            "/open",
            get(|| async { "open" }).layer(layer(OnError::Allow)),
        )
        .route(
            "/closed",
            get(|| async { "closed" }).layer(layer(OnError::Deny)),
        );
    let addr = serve(app).await;
    assert_eq!(fetch(addr, "/open").await.status, 200);
    assert_eq!(fetch(addr, "/open").await.status, 429);
    env.server().stop();
    let open = fetch(addr, "/open").await;
    assert_eq!((open.status, open.body.as_str()), (200, "open"));
    assert_eq!(
        open.header("x-ratelimit-limit"),
        None,
        "no numbers to report"
    );
    let closed = fetch(addr, "/closed").await;
    assert_eq!((closed.status, closed.body.as_str()), (429, BODY_429));
    assert_eq!(
        closed.header("retry-after"),
        Some("3"),
        "the breaker's cooldown"
    );
}

#[test]
fn refusal_converts_into_application_errors() {
    #[derive(Debug)]
    enum AppError {
        Limited(RateLimitExceeded),
    }
    impl From<RateLimitExceeded> for AppError {
        fn from(e: RateLimitExceeded) -> Self {
            AppError::Limited(e)
        }
    }
    let m = CacheManager::new(forge_cache::RedisSettings::memory()).unwrap();
    let limit = RateLimit::new(0, Duration::from_secs(1));
    let check = || -> Result<(), AppError> {
        m.blocking()
            .check_rate_limit("k", &limit)
            .unwrap()
            .into_result()?;
        Ok(())
    };
    let AppError::Limited(e) = check().unwrap_err();
    assert_eq!(e.to_string(), "Rate limit exceeded");
}
