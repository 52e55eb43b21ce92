//! Redis Cluster beyond the behaviour suite (which runs on a cluster too):
//! invalidation across every primary, a slot migration under load, and a
//! primary killed mid-load. Every test starts its own local cluster.

mod common;

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use common::eventually;
use forge_cache::{BackendKind, CacheManager, Error, RedisSettings};
use forge_cache_testkit::RedisCluster;

const MIN: Duration = Duration::from_secs(60);
/// How long a cluster may take to settle after a topology change.
const SETTLE: Duration = Duration::from_secs(30);

fn manager(url: &str) -> CacheManager {
    CacheManager::new(RedisSettings::builder().url(url).build().unwrap()).unwrap()
}

/// Keys per primary, counted on the nodes themselves.
fn dbsize_per_primary(cluster: &RedisCluster) -> Vec<u64> {
    (0..cluster.len())
        .filter(|&i| cluster.is_primary(i))
        .map(|i| cluster.cli(i, &["DBSIZE"]).parse().unwrap())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pattern_invalidation_scans_every_primary() {
    let cluster = RedisCluster::start(3, 0);
    // One seed node is enough: the client discovers the others.
    let settings = RedisSettings::from_lookup(|var| {
        (var == "REDIS_CLUSTER_NODES").then(|| format!("127.0.0.1:{}", cluster.port(1)))
    })
    .unwrap();
    assert_eq!(settings.backend_kind(), BackendKind::Cluster);
    let m = CacheManager::new(settings).unwrap();

    for i in 0..10_000 {
        m.set_bytes(&format!("user:{i}:profile"), b"1", MIN)
            .await
            .unwrap();
    }
    for i in 0..300 {
        m.set_bytes(&format!("keep:{i}"), b"1", MIN).await.unwrap();
    }
    // The keys cover most of the 16384 slots, not a few.
    let slots: std::collections::HashSet<u16> = (0..10_000)
        .map(|i| common::key_slot(&format!("user:{i}:profile")))
        .collect();
    assert!(slots.len() > 8_000, "{} slots", slots.len());
    assert_eq!(
        cluster.slot_of("user:9999:profile"),
        common::key_slot("user:9999:profile")
    );
    let before = dbsize_per_primary(&cluster);
    assert_eq!(before.len(), 3);
    assert!(
        before.iter().all(|&n| n > 3_000),
        "keys are spread over every primary: {before:?}"
    );
    assert_eq!(before.iter().sum::<u64>(), 10_300);

    assert_eq!(m.delete_pattern("user:*:profile").await.unwrap(), 10_000);
    let after = dbsize_per_primary(&cluster);
    assert_eq!(after.iter().sum::<u64>(), 300, "{after:?}");
    assert!(after.iter().all(|&n| n > 0), "{after:?}");

    // The sync form reaches every primary too.
    assert_eq!(m.blocking().delete_pattern("keep:*").unwrap(), 300);
    assert_eq!(dbsize_per_primary(&cluster), vec![0, 0, 0]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn memory_info_and_raw_connections_cover_every_node() {
    let cluster = RedisCluster::start(3, 0);
    let m = manager(&cluster.url());
    m.set("x", &"y", MIN).await.unwrap();

    let info = m.memory_info().await.unwrap();
    assert_eq!(info.nodes.len(), 3);
    let mut ports: Vec<u16> = info
        .nodes
        .iter()
        .map(|n| n.address.rsplit_once(':').unwrap().1.parse().unwrap())
        .collect();
    ports.sort_unstable();
    let mut expected = cluster.ports();
    expected.sort_unstable();
    assert_eq!(ports, expected);
    assert!(info.nodes.iter().all(|n| n.info.used_memory > 0));
    assert_eq!(
        info.used_memory,
        info.nodes.iter().map(|n| n.info.used_memory).sum::<u64>()
    );
    let sync_info = m.blocking().memory_info().unwrap();
    assert_eq!(sync_info.nodes.len(), 3);

    let mut conn = m.redis_cluster().unwrap();
    let n: i64 = redis::cmd("INCR")
        .arg("visits")
        .query_async(&mut conn)
        .await
        .unwrap();
    assert_eq!(n, 1);
    let mut sync = m.blocking().redis_cluster().unwrap();
    let n: i64 = redis::cmd("INCR").arg("visits").query(&mut *sync).unwrap();
    assert_eq!(n, 2);
    assert!(matches!(m.redis(), Err(Error::Unsupported(_))));
    assert!(matches!(m.blocking().redis(), Err(Error::Unsupported(_))));
}

/// Counters shared by the load workers.
#[derive(Default)]
struct Load {
    ops: AtomicU64,
    errors: AtomicU64,
    wrong: AtomicU64,
    first_error: std::sync::Mutex<Option<String>>,
    stop: AtomicBool,
}

impl Load {
    fn error(&self, what: &str, e: &Error) {
        self.errors.fetch_add(1, Ordering::Relaxed);
        self.first_error
            .lock()
            .unwrap()
            .get_or_insert_with(|| format!("{what}: {e}"));
    }
}

/// Writes a new version of each of `keys` and reads it straight back, over
/// and over, until told to stop; then checks every key's final value.
async fn async_worker(m: CacheManager, keys: Vec<String>, load: Arc<Load>) {
    let mut versions: HashMap<String, u64> = HashMap::new();
    while !load.stop.load(Ordering::Relaxed) {
        for key in &keys {
            let v = versions.entry(key.clone()).or_default();
            *v += 1;
            match m.set(key, &(key, *v), MIN).await {
                Ok(()) => {}
                Err(e) => load.error("set", &e),
            }
            match m.get::<(String, u64)>(key).await {
                Ok(got) if got == Some((key.clone(), *v)) => {}
                Ok(got) => {
                    load.wrong.fetch_add(1, Ordering::Relaxed);
                    eprintln!("{key}: wrote version {v}, read {got:?}");
                }
                Err(e) => load.error("get", &e),
            }
            load.ops.fetch_add(2, Ordering::Relaxed);
        }
    }
    for key in &keys {
        let got = m.get::<(String, u64)>(key).await.unwrap();
        assert_eq!(
            got,
            Some((key.clone(), versions[key])),
            "final value of {key}"
        );
    }
}

fn sync_worker(m: CacheManager, keys: Vec<String>, load: Arc<Load>) {
    let mut versions: HashMap<String, u64> = HashMap::new();
    while !load.stop.load(Ordering::Relaxed) {
        for key in &keys {
            let v = versions.entry(key.clone()).or_default();
            *v += 1;
            if let Err(e) = m.blocking().set(key, &(key, *v), MIN) {
                load.error("blocking set", &e);
            }
            match m.blocking().get::<(String, u64)>(key) {
                Ok(got) if got == Some((key.clone(), *v)) => {}
                Ok(_) => {
                    load.wrong.fetch_add(1, Ordering::Relaxed);
                }
                Err(e) => load.error("blocking get", &e),
            }
            load.ops.fetch_add(2, Ordering::Relaxed);
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slot_migration_under_load_surfaces_no_errors() {
    let cluster = Arc::new(RedisCluster::start(3, 0));
    let m = manager(&cluster.url());
    let load = Arc::new(Load::default());

    // Keys in one hot slot (the one we migrate key by key) and keys all
    // over the slot space (some of which `reshard` moves).
    let hot_slot = cluster.slot_of("{hot}");
    let mut tasks = Vec::new();
    for t in 0..4 {
        let mut keys: Vec<String> = (0..10).map(|i| format!("{{hot}}:a{t}:{i}")).collect();
        keys.extend((0..100).map(|i| format!("k:{t}:{i}")));
        tasks.push(tokio::spawn(async_worker(m.clone(), keys, load.clone())));
    }
    let sync_keys: Vec<String> = (0..10)
        .map(|i| format!("{{hot}}:s:{i}"))
        .chain((0..100).map(|i| format!("s:{i}")))
        .collect();
    let sync_thread = {
        let (m, load) = (m.clone(), load.clone());
        std::thread::spawn(move || sync_worker(m, sync_keys, load))
    };
    assert!(
        eventually(Duration::from_secs(10), async || load
            .ops
            .load(Ordering::Relaxed)
            > 2_000)
        .await
    );

    let c = cluster.clone();
    let (moved, target) = tokio::task::spawn_blocking(move || {
        let from = c.owner_of(hot_slot);
        let to = (0..c.len()).find(|&i| i != from).unwrap();
        let moved = c.migrate_slot(hot_slot, to);
        assert!(c.wait_consistent(SETTLE), "cluster did not settle");
        // Then a bulk reshard of 300 slots between two other primaries.
        let (src, dst) = (to, (0..c.len()).find(|&i| i != from && i != to).unwrap());
        let out = c.cluster_cli(&[
            "reshard",
            &format!("127.0.0.1:{}", c.port(src)),
            "--cluster-from",
            &c.node_id(src),
            "--cluster-to",
            &c.node_id(dst),
            "--cluster-slots",
            "300",
            "--cluster-yes",
        ]);
        assert!(c.wait_consistent(SETTLE), "cluster did not settle: {out}");
        (moved, to)
    })
    .await
    .unwrap();
    assert_eq!(cluster.owner_of(hot_slot), target);
    assert!(moved >= 50, "moved {moved} keys of the hot slot");

    // Keep the load on for a while after the topology changed.
    let ops = load.ops.load(Ordering::Relaxed);
    assert!(
        eventually(Duration::from_secs(20), async || load
            .ops
            .load(Ordering::Relaxed)
            > ops + 2_000)
        .await
    );
    load.stop.store(true, Ordering::Relaxed);
    for t in tasks {
        t.await.unwrap();
    }
    sync_thread.join().unwrap();

    assert_eq!(
        load.errors.load(Ordering::Relaxed),
        0,
        "first error: {:?}",
        load.first_error.lock().unwrap()
    );
    assert_eq!(
        load.wrong.load(Ordering::Relaxed),
        0,
        "values read back wrong"
    );
    assert!(load.ops.load(Ordering::Relaxed) > 4_000);
}

/// What `#[cache_result]` does: serve from the cache when it answers, and
/// call the function when it does not (fail-open).
async fn cached(m: &CacheManager, key: &str, compute: impl FnOnce() -> u64) -> u64 {
    if let Ok(Some(v)) = m.get::<u64>(key).await {
        return v;
    }
    let v = compute();
    let _ = m.set(key, &v, MIN).await;
    v
}

fn square_of_key(key: &str) -> u64 {
    let n: u64 = key.rsplit(':').next().unwrap().parse().unwrap();
    n * n
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failover_keeps_answering_and_the_manager_recovers() {
    let mut cluster = RedisCluster::start(3, 1);
    let m = manager(&cluster.url());
    let keys: Vec<String> = (0..300).map(|i| format!("sq:{i}")).collect();
    for k in &keys {
        assert_eq!(cached(&m, k, || square_of_key(k)).await, square_of_key(k));
    }

    let load = Arc::new(Load::default());
    let worker = {
        let (m, keys, load) = (m.clone(), keys.clone(), load.clone());
        tokio::spawn(async move {
            while !load.stop.load(Ordering::Relaxed) {
                for k in &keys {
                    // Every call answers, and correctly, whatever the cluster does.
                    assert_eq!(cached(&m, k, || square_of_key(k)).await, square_of_key(k));
                    load.ops.fetch_add(1, Ordering::Relaxed);
                }
            }
        })
    };
    assert!(
        eventually(Duration::from_secs(10), async || load
            .ops
            .load(Ordering::Relaxed)
            > 1_000)
        .await
    );

    let victim = cluster.owner_of(cluster.slot_of("sq:0"));
    let killed_at = Instant::now();
    cluster.kill_node(victim);
    // A replica takes over (cluster-node-timeout is 1 s in the harness).
    let promoted = tokio::task::block_in_place(|| cluster.wait_primaries(3, SETTLE));
    assert!(promoted, "no replica took over the killed primary");

    // Within a bound, plain set/get succeed again for keys on every primary.
    assert!(
        recovers(&m).await,
        "the async connection did not recover after failover"
    );
    assert!(
        recovers_sync(&m).await,
        "the sync pool did not recover after failover"
    );
    eprintln!(
        "failover: async and sync calls succeed again {:?} after the kill",
        killed_at.elapsed()
    );

    load.stop.store(true, Ordering::Relaxed);
    worker.await.unwrap();
    assert!(m.test_connection().await);
    assert_eq!(m.memory_info().await.unwrap().nodes.len(), 3);
}

/// Whether, within [`SETTLE`], set and get succeed again for keys on every
/// primary (60 keys spread over the slots).
async fn recovers(m: &CacheManager) -> bool {
    eventually(SETTLE, async || {
        for i in 0..60 {
            let k = format!("probe:{i}");
            if m.set(&k, &1u64, MIN).await.is_err() || m.get::<u64>(&k).await.ok() != Some(Some(1))
            {
                return false;
            }
        }
        true
    })
    .await
}

/// Sync form of [`recovers`], polled from a blocking thread.
async fn recovers_sync(m: &CacheManager) -> bool {
    let m = m.clone();
    tokio::task::spawn_blocking(move || {
        let deadline = Instant::now() + SETTLE;
        loop {
            let ok = (0..60).all(|i| {
                let k = format!("probe:{i}");
                m.blocking().set(&k, &2u64, MIN).is_ok()
                    && m.blocking().get::<u64>(&k).ok() == Some(Some(2))
            });
            if ok {
                return true;
            }
            if Instant::now() > deadline {
                return false;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    })
    .await
    .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn whole_cluster_down_fails_fast_and_recovers_when_back() {
    let mut cluster = RedisCluster::start(3, 0);
    let m = manager(&cluster.url());
    m.set("before", &1, MIN).await.unwrap();
    tokio::task::block_in_place(|| m.blocking().set("before", &1, MIN)).unwrap();
    for i in 0..cluster.len() {
        cluster.kill_node(i);
    }
    // Calls fail with an error (which fail-open turns into a call of the
    // function); they do not hang.
    assert!(m.set("down", &1, MIN).await.is_err());
    assert!(m.get::<i32>("before").await.is_err());
    assert!(m.delete_pattern("*").await.is_err());
    assert!(!m.test_connection().await);
    // A manager created while the whole cluster is down.
    let late = manager(&cluster.url());
    assert!(late.get::<i32>("before").await.is_err());
    assert!(!tokio::task::block_in_place(|| late
        .blocking()
        .test_connection()));

    for i in 0..cluster.len() {
        cluster.restart_node(i);
    }
    assert!(tokio::task::block_in_place(|| cluster.wait_ready(SETTLE)));
    for mgr in [&m, &late] {
        assert!(recovers(mgr).await, "async calls did not recover");
        assert!(recovers_sync(mgr).await, "sync calls did not recover");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn frozen_cluster_times_out_as_an_outage_then_recovers() {
    let cluster = RedisCluster::start(3, 0);
    let m = CacheManager::new(
        RedisSettings::builder()
            .url(cluster.url())
            .socket_timeout(Duration::from_millis(500))
            .build()
            .unwrap(),
    )
    .unwrap();
    m.set("k", &1, MIN).await.unwrap();
    cluster.pause();
    let err = m.get::<i32>("k").await.unwrap_err();
    assert!(err.is_outage(), "{err}");
    cluster.resume();
    assert!(recovers(&m).await, "calls did not recover after the stall");
}

#[test]
fn harness_stops_every_node_and_removes_its_files_when_dropped() {
    let cluster = RedisCluster::start(3, 1);
    assert_eq!(cluster.len(), 6);
    assert_eq!((0..6).filter(|&i| cluster.is_primary(i)).count(), 3);
    let dirs: Vec<String> = (0..6)
        .map(|i| {
            let dir = cluster.cli(i, &["CONFIG", "GET", "dir"]);
            dir.lines().nth(1).unwrap().to_owned()
        })
        .collect();
    let ports = cluster.ports();
    drop(cluster);
    for (port, dir) in ports.iter().zip(&dirs) {
        let addr = std::net::SocketAddr::from(([127, 0, 0, 1], *port));
        assert!(
            std::net::TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_err(),
            "node on port {port} still answers"
        );
        assert!(!std::path::Path::new(dir).exists(), "{dir} was left behind");
    }
}
