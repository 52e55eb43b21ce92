//! Measurement helpers for the benchmark suite: a counting allocator,
//! concurrent latency sampling, and the report table.

use std::alloc::{GlobalAlloc, Layout, System};
use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// A global allocator that counts allocations.
pub struct CountingAlloc;

static ALLOCS: AtomicU64 = AtomicU64::new(0);

unsafe impl GlobalAlloc for CountingAlloc {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        ALLOCS.fetch_add(1, Ordering::Relaxed);
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        unsafe { System.dealloc(ptr, layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        ALLOCS.fetch_add(1, Ordering::Relaxed);
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

/// Allocations so far (with [`CountingAlloc`] installed).
pub fn allocations() -> u64 {
    ALLOCS.load(Ordering::Relaxed)
}

/// One measurement.
#[derive(Clone, Copy, Debug)]
pub struct Sample {
    /// Operations per second over the whole run.
    pub ops_per_sec: f64,
    /// Median latency.
    pub p50: Duration,
    /// 99th percentile latency.
    pub p99: Duration,
}

/// Runs `ops` operations split over `concurrency` tasks, each calling
/// `op(i)` sequentially, and samples every operation's latency.
pub async fn measure<F, Fut>(concurrency: usize, ops: usize, op: F) -> Sample
where
    F: Fn(usize) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = ()> + Send,
{
    measure_in(None, concurrency, ops, op).await
}

/// [`measure`], with each task running inside `manager`'s
/// [`scope`](forge_cache::CacheManager::scope) (once per task, not per
/// call), as if `manager` were the one `forge_cache::init` configured.
pub async fn measure_in<F, Fut>(
    manager: Option<forge_cache::CacheManager>,
    concurrency: usize,
    ops: usize,
    op: F,
) -> Sample
where
    F: Fn(usize) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = ()> + Send,
{
    let op = Arc::new(op);
    let per_task = ops / concurrency;
    let start = Instant::now();
    let mut tasks = Vec::with_capacity(concurrency);
    for t in 0..concurrency {
        let op = op.clone();
        let task = async move {
            let mut lat = Vec::with_capacity(per_task);
            for i in 0..per_task {
                let s = Instant::now();
                op(t * per_task + i).await;
                lat.push(s.elapsed().as_nanos() as u64);
            }
            lat
        };
        tasks.push(match &manager {
            Some(m) => {
                let m = m.clone();
                tokio::spawn(async move { m.scope(task).await })
            }
            None => tokio::spawn(task),
        });
    }
    let mut all = Vec::with_capacity(per_task * concurrency);
    for t in tasks {
        all.extend(t.await.expect("benchmark task panicked"));
    }
    sample(all, start.elapsed())
}

/// Runs `ops` operations split over `threads` plain threads (no runtime),
/// each calling `op(i)` sequentially with its own per-thread state from
/// `init`, and samples every operation's latency.
pub fn measure_threads<S, I, F>(threads: usize, ops: usize, init: I, op: F) -> Sample
where
    I: Fn() -> S + Sync,
    F: Fn(&mut S, usize) + Sync,
{
    let per_thread = ops / threads;
    let start = Instant::now();
    let all: Vec<u64> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..threads)
            .map(|t| {
                let (init, op) = (&init, &op);
                s.spawn(move || {
                    let mut state = init();
                    let mut lat = Vec::with_capacity(per_thread);
                    for i in 0..per_thread {
                        let s = Instant::now();
                        op(&mut state, t * per_thread + i);
                        lat.push(s.elapsed().as_nanos() as u64);
                    }
                    lat
                })
            })
            .collect();
        handles
            .into_iter()
            .flat_map(|h| h.join().expect("benchmark thread panicked"))
            .collect()
    });
    sample(all, start.elapsed())
}

/// The sample of a run that took `elapsed` for the latencies in `all` (ns).
fn sample(mut all: Vec<u64>, elapsed: Duration) -> Sample {
    all.sort_unstable();
    let pick =
        |q: f64| Duration::from_nanos(all[((all.len() as f64 * q) as usize).min(all.len() - 1)]);
    Sample {
        ops_per_sec: all.len() as f64 / elapsed.as_secs_f64(),
        p50: pick(0.50),
        p99: pick(0.99),
    }
}

/// The median sample (by throughput) of several rounds.
pub fn median(mut samples: Vec<Sample>) -> Sample {
    samples.sort_by(|a, b| a.ops_per_sec.total_cmp(&b.ops_per_sec));
    samples[samples.len() / 2]
}

/// One row of the report: a subject measured against its reference.
pub struct Row {
    /// Workload name.
    pub name: String,
    /// Concurrency (tasks).
    pub concurrency: usize,
    /// forge-cache.
    pub subject: Sample,
    /// What it is compared with, in the same run.
    pub reference: Option<(String, Sample)>,
}

fn us(d: Duration) -> String {
    format!("{:.1}", d.as_nanos() as f64 / 1000.0)
}

/// Prints the table as Markdown.
pub fn print_table(rows: &[Row]) {
    println!(
        "| workload | tasks | forge-cache ops/s | p50 µs | p99 µs | reference | ref ops/s | ref p50 µs | ref p99 µs | ratio |"
    );
    println!("|---|---:|---:|---:|---:|---|---:|---:|---:|---:|");
    for r in rows {
        let (rname, rs, ratio) = match &r.reference {
            Some((n, s)) => (
                n.as_str(),
                format!("{:.0} | {} | {}", s.ops_per_sec, us(s.p50), us(s.p99)),
                format!("{:.2}x", r.subject.ops_per_sec / s.ops_per_sec),
            ),
            None => ("—", "— | — | —".to_string(), "—".to_string()),
        };
        println!(
            "| {} | {} | {:.0} | {} | {} | {} | {} | {} |",
            r.name,
            r.concurrency,
            r.subject.ops_per_sec,
            us(r.subject.p50),
            us(r.subject.p99),
            rname,
            rs,
            ratio
        );
    }
}
