//! The benchmark suite. Starts its own redis-server on a free loopback port,
//! runs every workload against its reference in the same run (interleaved
//! rounds, median of each), prints one Markdown table, and stops the server.
//!
//! ```text
//! cargo bench -p forge-cache-bench --bench redis
//! ```
//!
//! `BENCH_OPS` sets operations per round (default 20000); `BENCH_ONLY=hit`
//! runs only the workloads whose name contains `hit` (`BENCH_ONLY=format`:
//! the formats table alone).

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use forge_cache::{CacheManager, RedisSettings, cache_result, rate_limit};
use forge_cache_bench::{
    CountingAlloc, Row, Sample, allocations, measure, measure_in, median, print_table,
};
use forge_cache_testkit::RedisServer;
use serde::{Deserialize, Serialize};

#[global_allocator]
static ALLOC: CountingAlloc = CountingAlloc;

const ROUNDS: usize = 5;

/// A ~200-byte JSON value.
#[derive(Clone, Debug, Serialize, Deserialize)]
struct Product {
    id: u64,
    name: String,
    category: String,
    price_cents: u64,
    in_stock: bool,
    tags: Vec<String>,
    description: String,
}

fn product(id: u64) -> Product {
    Product {
        id,
        name: format!("Product number {id}"),
        category: "books".into(),
        price_cents: 1999,
        in_stock: true,
        tags: vec!["paperback".into(), "bestseller".into(), "fiction".into()],
        description: "A reasonably sized description so that the JSON is about two hundred bytes."
            .into(),
    }
}

#[cache_result(ttl = 3600, key_prefix = "bench")]
async fn cached_product(id: u64) -> Product {
    product(id)
}

#[cache_result(ttl = 3600, key_prefix = "bench_tagged", tags = ["product:{id}", "catalog"])]
async fn cached_product_tagged(id: u64) -> Product {
    product(id)
}

#[cache_result(ttl = 3600, key_prefix = "bench_sync")]
fn cached_product_sync(id: u64) -> Product {
    product(id)
}

#[cache_result(ttl = 3600, key_prefix = "bench_miss")]
async fn cached_product_miss(id: u64) -> Product {
    product(id)
}

#[derive(Debug)]
struct Limited;
impl From<forge_cache::RateLimitExceeded> for Limited {
    fn from(_: forge_cache::RateLimitExceeded) -> Self {
        Limited
    }
}

#[rate_limit(max_requests = 1_000_000_000, window_seconds = 3600)]
async fn limited_fixed() -> Result<(), Limited> {
    Ok(())
}

#[rate_limit(
    max_requests = 1_000_000_000,
    window_seconds = 3600,
    algorithm = "sliding_window"
)]
async fn limited_sliding() -> Result<(), Limited> {
    Ok(())
}

#[rate_limit(
    max_requests = 1_000_000_000,
    window_seconds = 3600,
    algorithm = "gcra"
)]
async fn limited_gcra() -> Result<(), Limited> {
    Ok(())
}

/// The peer: the `cached` crate's Redis-backed macro (reads its connection
/// string from `CACHED_REDIS_CONNECTION_STRING`).
#[cached::macros::concurrent_cached(redis = true, ttl_secs = 3600, map_error = |e| format!("{e:?}"))]
async fn cached_crate_product(id: u64) -> Result<Product, String> {
    Ok(product(id))
}

/// The reference of a hit: raw redis-rs `GET` of the ~200 B product and
/// its JSON decode.
async fn raw_get_decode(mut c: redis::aio::MultiplexedConnection) {
    let bytes: Vec<u8> = redis::cmd("GET")
        .arg("raw:product:1")
        .query_async(&mut c)
        .await
        .unwrap();
    std::hint::black_box(serde_json::from_slice::<Product>(&bytes).unwrap());
}

struct Bench {
    ops: usize,
    rows: Vec<Row>,
    /// `BENCH_ONLY`: run only the workloads whose name contains it.
    only: Option<String>,
}

impl Bench {
    /// Measures `subject` and `reference` in alternating rounds and keeps
    /// the median of each.
    async fn pair<S, SF, R, RF>(
        &mut self,
        name: &str,
        concurrency: usize,
        subject: S,
        ref_name: &str,
        reference: R,
    ) where
        S: Fn(usize) -> SF + Send + Sync + Clone + 'static,
        SF: Future<Output = ()> + Send,
        R: Fn(usize) -> RF + Send + Sync + Clone + 'static,
        RF: Future<Output = ()> + Send,
    {
        if self.skips(name) {
            return;
        }
        let (mut s, mut r) = (Vec::new(), Vec::new());
        for _ in 0..ROUNDS {
            r.push(measure(concurrency, self.ops, reference.clone()).await);
            s.push(measure(concurrency, self.ops, subject.clone()).await);
        }
        self.rows.push(Row {
            name: name.into(),
            concurrency,
            subject: median(s),
            reference: Some((ref_name.into(), median(r))),
        });
        eprintln!("done: {name} x{concurrency}");
    }

    /// Measures `subject` alone, each task inside `manager`'s scope.
    async fn alone<S, SF>(
        &mut self,
        name: &str,
        concurrency: usize,
        manager: &CacheManager,
        subject: S,
    ) where
        S: Fn(usize) -> SF + Send + Sync + Clone + 'static,
        SF: Future<Output = ()> + Send,
    {
        if self.skips(name) {
            return;
        }
        let mut s: Vec<Sample> = Vec::new();
        for _ in 0..ROUNDS {
            let m = Some(manager.clone());
            s.push(measure_in(m, concurrency, self.ops, subject.clone()).await);
        }
        self.rows.push(Row {
            name: name.into(),
            concurrency,
            subject: median(s),
            reference: None,
        });
        eprintln!("done: {name} x{concurrency}");
    }

    fn skips(&self, name: &str) -> bool {
        self.only
            .as_deref()
            .is_some_and(|only| !name.contains(only))
    }
}

use std::future::Future;

fn main() {
    let server = RedisServer::start();
    let url = server.url();
    // The `cached` crate reads its connection string from here.
    // SAFETY: single-threaded at this point, before any runtime starts.
    unsafe { std::env::set_var("CACHED_REDIS_CONNECTION_STRING", &url) };
    let ops: usize = std::env::var("BENCH_OPS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(20_000);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let (mut rows, allocs) = rt.block_on(run(&url, ops));
    drop(rt);
    rows.extend(run_sync(&url, ops));
    drop(server);

    println!(
        "\nredis-server {} on 127.0.0.1, {} ops per round, median of {ROUNDS} interleaved rounds\n",
        redis_version(),
        ops
    );
    print_table(&rows);
    if std::env::var("BENCH_ONLY").map_or(true, |o| "format".contains(o.as_str()) || o == "format")
    {
        formats(ops);
    }
    println!();
    for (name, n) in allocs {
        println!("- allocations per call, {name}: {n:.2}");
    }
}

/// Sync rows: a sync `#[cache_result]` hit on plain threads (no runtime)
/// against raw redis-rs sync `GET` + decode, one connection per thread.
fn run_sync(url: &str, ops: usize) -> Vec<Row> {
    let name = "sync cache hit (#[cache_result] on a sync fn)";
    let only = std::env::var("BENCH_ONLY").ok();
    if only.as_deref().is_some_and(|o| !name.contains(o)) {
        return Vec::new();
    }
    let client = redis::Client::open(url).unwrap();
    let mut conn = client.get_connection().unwrap();
    let value = serde_json::to_vec(&product(1)).unwrap();
    let _: () = redis::cmd("SET")
        .arg("raw:sync:product:1")
        .arg(&value)
        .query(&mut conn)
        .unwrap();
    cached_product_sync(1); // stores the entry
    let mut rows = Vec::new();
    for threads in [1, 16] {
        let (mut s, mut r) = (Vec::new(), Vec::new());
        for _ in 0..ROUNDS {
            r.push(forge_cache_bench::measure_threads(
                threads,
                ops,
                || client.get_connection().unwrap(),
                |conn, _| {
                    let bytes: Vec<u8> = redis::cmd("GET")
                        .arg("raw:sync:product:1")
                        .query(conn)
                        .unwrap();
                    std::hint::black_box(serde_json::from_slice::<Product>(&bytes).unwrap());
                },
            ));
            s.push(forge_cache_bench::measure_threads(
                threads,
                ops,
                || (),
                |_, _| {
                    std::hint::black_box(cached_product_sync(1));
                },
            ));
        }
        rows.push(Row {
            name: name.into(),
            concurrency: threads,
            subject: median(s),
            reference: Some(("raw redis-rs sync GET + decode".into(), median(r))),
        });
        eprintln!("done: {name} x{threads}");
    }
    rows
}

fn redis_version() -> String {
    let out = std::process::Command::new("redis-server")
        .arg("--version")
        .output()
        .ok();
    out.map(|o| {
        String::from_utf8_lossy(&o.stdout)
            .split_whitespace()
            .nth(2)
            .unwrap_or("?")
            .trim_start_matches("v=")
            .to_string()
    })
    .unwrap_or_else(|| "?".into())
}

async fn run(url: &str, ops: usize) -> (Vec<Row>, Vec<(&'static str, f64)>) {
    // As many sync connections as the sync rows' reference has (one per
    // thread at 16 threads), so those rows measure the path, not waiting.
    let settings = RedisSettings::builder()
        .url(url)
        .pool_size(16)
        .build()
        .unwrap();
    let manager = forge_cache::init(settings).await.unwrap().clone();
    let client = redis::Client::open(url).unwrap();
    let raw = client.get_multiplexed_async_connection().await.unwrap();

    // Warm the entries the hit workloads read.
    cached_product(1).await;
    let raw_value = serde_json::to_vec(&product(1)).unwrap();
    let mut c = raw.clone();
    let _: () = redis::cmd("SET")
        .arg("raw:product:1")
        .arg(&raw_value)
        .arg("EX")
        .arg(3600)
        .query_async(&mut c)
        .await
        .unwrap();
    cached_crate_product(1).await.unwrap();
    cached_product_tagged(1).await;
    let memory = CacheManager::new(RedisSettings::memory()).unwrap();
    memory.scope(cached_product(1)).await;
    memory.scope(cached_product_tagged(1)).await;

    let mut b = Bench {
        ops,
        rows: Vec::new(),
        only: std::env::var("BENCH_ONLY").ok(),
    };
    let miss_seq = Arc::new(AtomicU64::new(1_000_000));
    for conc in [1usize, 64] {
        let rawc = raw.clone();
        b.pair(
            "cache hit (#[cache_result])",
            conc,
            |_| async {
                std::hint::black_box(cached_product(1).await);
            },
            "raw GET + decode",
            move |_| raw_get_decode(rawc.clone()),
        )
        .await;

        b.pair(
            "tagged cache hit (2 tags)",
            conc,
            |_| async {
                std::hint::black_box(cached_product_tagged(1).await);
            },
            "untagged cache hit",
            |_| async {
                std::hint::black_box(cached_product(1).await);
            },
        )
        .await;

        let (rawc, seq, seq2) = (raw.clone(), miss_seq.clone(), miss_seq.clone());
        b.pair(
            "cache miss (compute + store)",
            conc,
            move |_| {
                let id = seq.fetch_add(1, Ordering::Relaxed);
                async move {
                    std::hint::black_box(cached_product_miss(id).await);
                }
            },
            "raw GET + SET EX",
            move |_| {
                let mut c = rawc.clone();
                let id = seq2.fetch_add(1, Ordering::Relaxed);
                async move {
                    let key = format!("raw:miss:{id}");
                    let got: Option<Vec<u8>> = redis::cmd("GET")
                        .arg(&key)
                        .query_async(&mut c)
                        .await
                        .unwrap();
                    if got.is_none() {
                        let v = serde_json::to_vec(&product(id)).unwrap();
                        let _: () = redis::cmd("SET")
                            .arg(&key)
                            .arg(v)
                            .arg("EX")
                            .arg(3600)
                            .query_async(&mut c)
                            .await
                            .unwrap();
                    }
                }
            },
        )
        .await;

        for (name, which) in [
            ("rate limit fixed_window", 0),
            ("rate limit sliding_window", 1),
            ("rate limit gcra", 2),
        ] {
            let rawc = raw.clone();
            b.pair(
                name,
                conc,
                move |_| async move {
                    let r = match which {
                        0 => limited_fixed().await,
                        1 => limited_sliding().await,
                        _ => limited_gcra().await,
                    };
                    assert!(r.is_ok());
                },
                "raw INCR",
                move |_| {
                    let mut c = rawc.clone();
                    async move {
                        let _: i64 = redis::cmd("INCR")
                            .arg("raw:counter")
                            .query_async(&mut c)
                            .await
                            .unwrap();
                    }
                },
            )
            .await;
        }

        let (m, rawc) = (manager.clone(), raw.clone());
        b.pair(
            "lock acquire + release",
            conc,
            move |i| {
                let m = m.clone();
                async move {
                    let g = m
                        .try_lock(&format!("bench:{i}"), Duration::from_secs(10))
                        .await
                        .unwrap()
                        .unwrap();
                    g.release().await.unwrap();
                }
            },
            "raw SET NX PX + DEL",
            move |i| {
                let mut c = rawc.clone();
                async move {
                    let key = format!("raw:lock:{i}");
                    let _: Option<String> = redis::cmd("SET")
                        .arg(&key)
                        .arg("token")
                        .arg("NX")
                        .arg("PX")
                        .arg(10_000)
                        .query_async(&mut c)
                        .await
                        .unwrap();
                    let _: i64 = redis::cmd("DEL")
                        .arg(&key)
                        .query_async(&mut c)
                        .await
                        .unwrap();
                }
            },
        )
        .await;

        b.pair(
            "cache hit (#[cache_result])",
            conc,
            |_| async {
                std::hint::black_box(cached_product(1).await);
            },
            "cached 4.1 #[concurrent_cached(redis = true)]",
            |_| async {
                std::hint::black_box(cached_crate_product(1).await.unwrap());
            },
        )
        .await;

        // Each task runs in the in-memory manager's scope, as if `init` had
        // configured it (this process's global manager is the Redis one).
        b.alone(
            "in-memory backend hit (#[cache_result])",
            conc,
            &memory,
            |_| async {
                std::hint::black_box(cached_product(1).await);
            },
        )
        .await;
        b.alone(
            "in-memory backend tagged hit (2 tags)",
            conc,
            &memory,
            |_| async {
                std::hint::black_box(cached_product_tagged(1).await);
            },
        )
        .await;
    }

    http_rows(&mut b, &raw).await;

    // Allocations per call, measured on one task after warm-up.
    let mut allocs = Vec::new();
    let n = 10_000u64;
    let before = allocations();
    for _ in 0..n {
        std::hint::black_box(cached_product(1).await);
    }
    allocs.push((
        "cache hit via #[cache_result] (Redis)",
        (allocations() - before) as f64 / n as f64,
    ));
    let mut c = raw.clone();
    let before = allocations();
    for _ in 0..n {
        let bytes: Vec<u8> = redis::cmd("GET")
            .arg("raw:product:1")
            .query_async(&mut c)
            .await
            .unwrap();
        std::hint::black_box(serde_json::from_slice::<Product>(&bytes).unwrap());
    }
    allocs.push((
        "raw redis-rs GET + decode",
        (allocations() - before) as f64 / n as f64,
    ));
    let before = allocations();
    memory
        .scope(async {
            for _ in 0..n {
                std::hint::black_box(cached_product(1).await);
            }
        })
        .await;
    allocs.push((
        "cache hit via #[cache_result] (in-memory)",
        (allocations() - before) as f64 / n as f64,
    ));
    let before = allocations();
    for _ in 0..n {
        std::hint::black_box(cached_product_tagged(1).await);
    }
    allocs.push((
        "tagged cache hit, 2 tags (Redis)",
        (allocations() - before) as f64 / n as f64,
    ));
    let before = allocations();
    for _ in 0..n {
        std::hint::black_box(product(1));
    }
    allocs.push((
        "constructing the Product value itself (floor for any decode)",
        (allocations() - before) as f64 / n as f64,
    ));
    (b.rows, allocs)
}

/// Formats: bytes stored, encode and decode time per value, for a ~200 B
/// and a ~20 kB value, each format against plain JSON (serde_json) in the
/// same run. No server involved: this is the CPU a hit and a miss spend on
/// the value.
fn formats(ops: usize) {
    use forge_cache::__private::{decode_as, encode_as};
    use forge_cache::Format;
    use std::time::Instant;

    let small = product(1);
    let large: Vec<Product> = (0..100).map(product).collect();
    let n = (ops / 10).max(200);
    println!("\nformats: median of {ROUNDS} rounds of {n} encodes and {n} decodes\n");
    println!("| value | format | bytes stored | encode | decode | encode ratio | decode ratio |");
    println!("|---|---|---|---|---|---|---|");
    fn time<F: FnMut()>(n: usize, mut f: F) -> f64 {
        let mut rounds: Vec<f64> = (0..ROUNDS)
            .map(|_| {
                let t = Instant::now();
                for _ in 0..n {
                    f();
                }
                t.elapsed().as_nanos() as f64 / n as f64
            })
            .collect();
        rounds.sort_by(f64::total_cmp);
        rounds[ROUNDS / 2]
    }
    fn row<T: Serialize + serde::de::DeserializeOwned>(label: &str, value: &T, n: usize) {
        let json_enc = time(n, || {
            std::hint::black_box(serde_json::to_vec(value).unwrap());
        });
        let json_bytes = serde_json::to_vec(value).unwrap();
        let json_dec = time(n, || {
            std::hint::black_box(serde_json::from_slice::<T>(&json_bytes).unwrap());
        });
        println!(
            "| {label} | serde_json (reference) | {} | {:.2} µs | {:.2} µs | | |",
            json_bytes.len(),
            json_enc / 1000.0,
            json_dec / 1000.0
        );
        for (name, format, compress) in [
            ("json", Format::Json, None),
            ("msgpack", Format::MessagePack, None),
            ("postcard", Format::Postcard, None),
            ("json + zstd", Format::Json, Some(0)),
            ("msgpack + zstd", Format::MessagePack, Some(0)),
            ("postcard + zstd", Format::Postcard, Some(0)),
        ] {
            let bytes = encode_as(format, compress, value).unwrap();
            let enc = time(n, || {
                std::hint::black_box(encode_as(format, compress, value).unwrap());
            });
            let dec = time(n, || {
                std::hint::black_box(decode_as::<T>(format, &bytes).unwrap());
            });
            println!(
                "| {label} | {name} | {} | {:.2} µs | {:.2} µs | {:.2}x | {:.2}x |",
                bytes.len(),
                enc / 1000.0,
                dec / 1000.0,
                json_enc / enc,
                json_dec / dec
            );
        }
    }
    row("~200 B (one product)", &small, n);
    row("~20 kB (100 products)", &large, n / 10);
    println!("\n(ratios: serde_json time / this time; above 1 is faster than JSON)");
}

/// HTTP rows: a route behind `ResponseCacheLayer` against the same route
/// uncached, and a cached route's hit against raw `GET` + decode, all
/// through the router itself (server time per request; no sockets).
async fn http_rows(b: &mut Bench, raw: &redis::aio::MultiplexedConnection) {
    use axum::Router;
    use axum::body::Body;
    use axum::http::Request;
    use axum::routing::get;
    use forge_cache::axum::ResponseCacheLayer;
    use tower_service::Service;

    /// A catalogue page: 100 products as JSON (~22 kB).
    async fn catalog() -> axum::Json<Vec<Product>> {
        axum::Json((0..100).map(product).collect())
    }
    /// One product as JSON (~200 B).
    async fn one() -> axum::Json<Product> {
        axum::Json(product(1))
    }
    fn req(path: &'static str) -> Request<Body> {
        Request::get(path).body(Body::empty()).unwrap()
    }
    async fn call(router: &Router, path: &'static str) {
        let mut r = router.clone();
        let response = Service::call(&mut r, req(path)).await.unwrap();
        let body = axum::body::to_bytes(response.into_body(), usize::MAX)
            .await
            .unwrap();
        std::hint::black_box(body);
    }
    let plain = Router::new()
        .route("/catalog", get(catalog))
        .route("/one", get(one));
    let cached = plain
        .clone()
        .layer(ResponseCacheLayer::new(Duration::from_secs(3600)).name("bench_route"));
    call(&cached, "/catalog").await;
    call(&cached, "/one").await;
    for conc in [1usize, 64] {
        let (s, r) = (cached.clone(), plain.clone());
        b.pair(
            "route hit, 22 kB page (ResponseCacheLayer)",
            conc,
            move |_| {
                let s = s.clone();
                async move { call(&s, "/catalog").await }
            },
            "same route uncached (serializes 100 products)",
            move |_| {
                let r = r.clone();
                async move { call(&r, "/catalog").await }
            },
        )
        .await;
        let (s, rawc) = (cached.clone(), raw.clone());
        b.pair(
            "route hit, 200 B body (ResponseCacheLayer)",
            conc,
            move |_| {
                let s = s.clone();
                async move { call(&s, "/one").await }
            },
            "raw GET + decode",
            move |_| raw_get_decode(rawc.clone()),
        )
        .await;
    }
}
