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
    /// CPU time this process spent per operation (all its threads, user
    /// and system; the Redis server is another process), when the platform
    /// tells (Linux).
    pub cpu_per_op: Option<Duration>,
}

/// CPU time used so far by every thread of this process, in nanoseconds:
/// the sum of `/proc/self/task/*/schedstat` (nanosecond resolution, unlike
/// `/proc/self/stat`'s clock ticks). `None` where that does not exist.
pub fn process_cpu_ns() -> Option<u64> {
    let mut total = 0u64;
    for task in std::fs::read_dir("/proc/self/task").ok()? {
        let path = task.ok()?.path().join("schedstat");
        // A thread may end between the listing and the read.
        let Ok(text) = std::fs::read_to_string(path) else {
            continue;
        };
        total += text.split_whitespace().next()?.parse::<u64>().ok()?;
    }
    Some(total)
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
    let cpu = process_cpu_ns();
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
    sample(all, start.elapsed(), cpu)
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
    // The measuring threads end before the run does, so each one adds up
    // its own CPU time; the rest of the process (forge-cache's I/O thread)
    // is counted from outside.
    let cpu = process_cpu_ns();
    let start = Instant::now();
    let (all, thread_cpu): (Vec<u64>, u64) = std::thread::scope(|s| {
        let handles: Vec<_> = (0..threads)
            .map(|t| {
                let (init, op) = (&init, &op);
                s.spawn(move || {
                    let mut state = init();
                    let mut lat = Vec::with_capacity(per_thread);
                    let cpu = thread_cpu_ns();
                    for i in 0..per_thread {
                        let s = Instant::now();
                        op(&mut state, t * per_thread + i);
                        lat.push(s.elapsed().as_nanos() as u64);
                    }
                    (lat, thread_cpu_ns().unwrap_or(0) - cpu.unwrap_or(0))
                })
            })
            .collect();
        let mut all = Vec::with_capacity(per_thread * threads);
        let mut thread_cpu = 0;
        for h in handles {
            let (lat, cpu) = h.join().expect("benchmark thread panicked");
            all.extend(lat);
            thread_cpu += cpu;
        }
        (all, thread_cpu)
    });
    // Counted as if it had been used before the run, so `sample` adds it.
    sample(
        all,
        start.elapsed(),
        cpu.map(|c| c.saturating_sub(thread_cpu)),
    )
}

/// CPU time used so far by the calling thread, in nanoseconds.
fn thread_cpu_ns() -> Option<u64> {
    let text = std::fs::read_to_string("/proc/thread-self/schedstat").ok()?;
    text.split_whitespace().next()?.parse().ok()
}

/// The sample of a run that took `elapsed` for the latencies in `all` (ns),
/// the process having used `cpu_before` ns of CPU when it started.
fn sample(mut all: Vec<u64>, elapsed: Duration, cpu_before: Option<u64>) -> Sample {
    let cpu_per_op = match (cpu_before, process_cpu_ns()) {
        (Some(before), Some(after)) if !all.is_empty() => Some(Duration::from_nanos(
            after.saturating_sub(before) / all.len() as u64,
        )),
        _ => None,
    };
    all.sort_unstable();
    let pick =
        |q: f64| Duration::from_nanos(all[((all.len() as f64 * q) as usize).min(all.len() - 1)]);
    Sample {
        ops_per_sec: all.len() as f64 / elapsed.as_secs_f64(),
        p50: pick(0.50),
        p99: pick(0.99),
        cpu_per_op,
    }
}

/// The median sample (by throughput) of several rounds, with the median
/// CPU per operation of those rounds (which need not be the same round's).
pub fn median(mut samples: Vec<Sample>) -> Sample {
    let mut cpu: Vec<Duration> = samples.iter().filter_map(|s| s.cpu_per_op).collect();
    cpu.sort_unstable();
    samples.sort_by(|a, b| a.ops_per_sec.total_cmp(&b.ops_per_sec));
    let mut m = samples[samples.len() / 2];
    m.cpu_per_op = cpu.get(cpu.len() / 2).copied();
    m
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

fn cpu(s: &Sample) -> String {
    s.cpu_per_op.map_or_else(|| "—".into(), us)
}

/// Prints the table as Markdown. `ratio` is throughput over the
/// reference's; `CPU ratio` is the reference's client CPU per operation
/// over forge-cache's (1.00x: the same CPU per call; below: more).
pub fn print_table(rows: &[Row]) {
    println!(
        "| workload | tasks | forge-cache ops/s | p50 µs | p99 µs | CPU µs/op | reference | ref ops/s | ref p50 µs | ref p99 µs | ref CPU µs/op | ratio | CPU ratio |"
    );
    println!("|---|---:|---:|---:|---:|---:|---|---:|---:|---:|---:|---:|---:|");
    for r in rows {
        let (rname, rs, ratio, cpu_ratio) = match &r.reference {
            Some((n, s)) => (
                n.as_str(),
                format!(
                    "{:.0} | {} | {} | {}",
                    s.ops_per_sec,
                    us(s.p50),
                    us(s.p99),
                    cpu(s)
                ),
                format!("{:.2}x", r.subject.ops_per_sec / s.ops_per_sec),
                match (s.cpu_per_op, r.subject.cpu_per_op) {
                    (Some(rc), Some(sc)) if !sc.is_zero() => {
                        format!("{:.2}x", rc.as_secs_f64() / sc.as_secs_f64())
                    }
                    _ => "—".into(),
                },
            ),
            None => (
                "—",
                "— | — | — | —".to_string(),
                "—".to_string(),
                "—".to_string(),
            ),
        };
        println!(
            "| {} | {} | {:.0} | {} | {} | {} | {} | {} | {} | {} |",
            r.name,
            r.concurrency,
            r.subject.ops_per_sec,
            us(r.subject.p50),
            us(r.subject.p99),
            cpu(&r.subject),
            rname,
            rs,
            ratio,
            cpu_ratio
        );
    }
}
