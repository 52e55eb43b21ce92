//! Rate-limit checks against a Redis this benchmark starts, compared in the
//! same run with one raw redis-rs `INCR` per call (the cheapest possible
//! round trip) and with the guide's `GET`-then-`INCR` limiter, and on the
//! in-memory backend. 16 tasks share one multiplexed connection.
//!
//! ```text
//! cargo bench --bench rate_limit
//! ```

use std::time::{Duration, Instant};

use forge_cache::{Algorithm, CacheManager, RateLimit, RedisSettings};
use forge_cache_testkit::RedisServer;

const CALLS: usize = 20_000;
const TASKS: usize = 16;
const DAY: Duration = Duration::from_secs(24 * 3600);

/// Runs `op` `CALLS` times on `tasks` tasks; returns calls/s.
async fn run<F, Fut>(tasks: usize, op: &F) -> f64
where
    F: Fn(usize) -> Fut + Clone + Send + 'static,
    Fut: Future<Output = ()> + Send,
{
    let start = Instant::now();
    let mut set = tokio::task::JoinSet::new();
    for t in 0..tasks {
        let op = op.clone();
        set.spawn(async move {
            for i in 0..CALLS / tasks {
                op(t * CALLS + i).await;
            }
        });
    }
    set.join_all().await;
    CALLS as f64 / start.elapsed().as_secs_f64()
}

/// (µs per call from one task, calls/s from `TASKS` tasks).
async fn throughput<F, Fut>(op: F) -> (f64, f64)
where
    F: Fn(usize) -> Fut + Clone + Send + 'static,
    Fut: Future<Output = ()> + Send,
{
    let sequential = run(1, &op).await;
    (1e6 / sequential, run(TASKS, &op).await)
}

fn report(name: &str, (us, rate): (f64, f64), base: Option<(f64, f64)>) {
    let ratio = base.map_or(String::new(), |(bus, brate)| {
        format!(
            "  latency {:.2}x, throughput {:.2}x raw INCR",
            us / bus,
            rate / brate
        )
    });
    println!("{name:<24} {us:>7.1} µs/call {rate:>10.0} calls/s{ratio}");
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let server = RedisServer::start();
    let redis =
        CacheManager::new(RedisSettings::builder().url(server.url()).build().unwrap()).unwrap();
    let memory = CacheManager::new(RedisSettings::memory()).unwrap();
    let conn = redis.redis().unwrap();

    let raw = throughput(move |i| {
        let mut conn = conn.clone();
        async move {
            let _: i64 = redis::cmd("INCR")
                .arg(format!("raw:{}", i % 1000))
                .query_async(&mut conn)
                .await
                .unwrap();
        }
    })
    .await;
    report("raw redis-rs INCR", raw, None);

    // The guide's limiter: GET, then SET or INCR (two round trips, racy).
    let conn = redis.redis().unwrap();
    let guide = throughput(move |i| {
        let mut conn = conn.clone();
        async move {
            let key = format!("guide:{}", i % 1000);
            let current: Option<i64> = redis::cmd("GET")
                .arg(&key)
                .query_async(&mut conn)
                .await
                .unwrap();
            let mut cmd = match current {
                None => redis::cmd("SET"),
                Some(_) => redis::cmd("INCR"),
            };
            cmd.arg(&key);
            if current.is_none() {
                cmd.arg(1).arg("EX").arg(86400);
            }
            let _: redis::Value = cmd.query_async(&mut conn).await.unwrap();
        }
    })
    .await;
    report("guide GET+INCR", guide, Some(raw));

    for algorithm in [
        Algorithm::FixedWindow,
        Algorithm::SlidingWindow,
        Algorithm::Gcra,
    ] {
        let limit = RateLimit::new(1 << 24, DAY).with_algorithm(algorithm);
        for (backend, m) in [("redis", &redis), ("memory", &memory)] {
            let (m, limit) = (m.clone(), limit.clone());
            let rate = throughput(move |i| {
                let (m, limit) = (m.clone(), limit.clone());
                async move {
                    assert!(m.check_rate_limit(i % 1000, &limit).await.unwrap().allowed);
                }
            })
            .await;
            let name = format!("{algorithm:?} ({backend})");
            report(&name, rate, (backend == "redis").then_some(raw));
        }
    }
    let stats = server.cli(&["INFO", "commandstats"]);
    for line in stats.lines().filter(|l| l.starts_with("cmdstat_")) {
        println!("server: {line}");
    }
}
