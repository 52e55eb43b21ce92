//! A real local Redis Cluster: several `redis-server --cluster-enabled yes`
//! processes on free loopback ports, joined by `redis-cli --cluster create`.

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::{RedisServer, free_port, redis_cli};

/// How long the cluster may take to reach `cluster_state:ok` everywhere.
const READY_TIMEOUT: Duration = Duration::from_secs(30);

/// A Redis Cluster of `redis-server` child processes on 127.0.0.1.
///
/// Every node is stopped by its PID, and its temporary directory removed,
/// when the cluster is dropped. Nodes run with `cluster-node-timeout 1000`
/// so that a replica takes over a killed primary within a few seconds.
///
/// ```no_run
/// use forge_cache_testkit::RedisCluster;
/// let cluster = RedisCluster::start(3, 0);
/// assert!(cluster.url().starts_with("redis+cluster://127.0.0.1:"));
/// assert_eq!(cluster.cli(0, &["PING"]), "PONG");
/// ```
pub struct RedisCluster {
    nodes: Vec<RedisServer>,
    /// Each node's TLS port, for a cluster from [`start_tls`](Self::start_tls).
    tls_ports: Vec<u16>,
}

impl RedisCluster {
    /// Starts `primaries` primaries (at least 3) with `replicas_per_primary`
    /// replicas each, creates the cluster, and waits (bounded) until every
    /// node reports `cluster_state:ok` and every replica is in sync.
    ///
    /// Panics with the reason when the cluster cannot be created.
    pub fn start(primaries: usize, replicas_per_primary: usize) -> Self {
        let nodes = (0..primaries * (1 + replicas_per_primary))
            .map(|_| start_node(&[]))
            .collect();
        Self::create(nodes, Vec::new(), primaries, replicas_per_primary)
    }

    /// Starts a cluster of `primaries` primaries whose nodes also listen with
    /// TLS (certificates from `certs`, clients not asked for one) and talk
    /// TLS to each other on the cluster bus (`tls-cluster yes`). A TLS client
    /// learns the nodes' TLS ports from the cluster; the plain ports stay
    /// open for [`cli`](Self::cli) and readiness checks.
    ///
    /// ```no_run
    /// use forge_cache_testkit::{RedisCluster, TestCerts};
    /// let certs = TestCerts::generate();
    /// let cluster = RedisCluster::start_tls(3, &certs);
    /// assert!(cluster.tls_url().starts_with("rediss+cluster://127.0.0.1:"));
    /// ```
    pub fn start_tls(primaries: usize, certs: &crate::TestCerts) -> Self {
        let mut nodes = Vec::new();
        let mut tls_ports = Vec::new();
        for _ in 0..primaries {
            let tls_port = free_port();
            let mut args = certs.server_args(tls_port);
            args.extend(["--tls-cluster", "yes", "--tls-replication", "yes"].map(String::from));
            nodes.push(start_node(
                &args.iter().map(String::as_str).collect::<Vec<_>>(),
            ));
            tls_ports.push(tls_port);
        }
        Self::create(nodes, tls_ports, primaries, 0)
    }

    /// `rediss+cluster://127.0.0.1:<tls port>,...` for a cluster from
    /// [`start_tls`](Self::start_tls).
    pub fn tls_url(&self) -> String {
        assert!(
            !self.tls_ports.is_empty(),
            "tls_url needs RedisCluster::start_tls"
        );
        let nodes: Vec<String> = self
            .tls_ports
            .iter()
            .map(|p| format!("127.0.0.1:{p}"))
            .collect();
        format!("rediss+cluster://{}", nodes.join(","))
    }

    fn create(
        nodes: Vec<RedisServer>,
        tls_ports: Vec<u16>,
        primaries: usize,
        replicas_per_primary: usize,
    ) -> Self {
        assert!(primaries >= 3, "a Redis Cluster needs at least 3 primaries");
        let cluster = RedisCluster { nodes, tls_ports };
        let addrs: Vec<String> = cluster
            .nodes
            .iter()
            .map(|n| format!("127.0.0.1:{}", n.port()))
            .collect();
        let replicas = replicas_per_primary.to_string();
        let out = Command::new("redis-cli")
            .args(["--cluster", "create"])
            .args(&addrs)
            .args(["--cluster-replicas", &replicas, "--cluster-yes"])
            .stdin(Stdio::null())
            .output()
            .expect("redis-cli is installed with redis-server");
        assert!(
            out.status.success(),
            "redis-cli --cluster create failed: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(
            cluster.wait_ready(READY_TIMEOUT),
            "the cluster did not reach cluster_state:ok within {READY_TIMEOUT:?}"
        );
        cluster
    }

    /// `redis+cluster://127.0.0.1:<port>,127.0.0.1:<port>,...` listing every
    /// node (so that any live node can serve as the seed).
    pub fn url(&self) -> String {
        format!("redis+cluster://{}", self.node_list())
    }

    /// `127.0.0.1:<port>,127.0.0.1:<port>,...`, as `REDIS_CLUSTER_NODES` takes it.
    pub fn node_list(&self) -> String {
        self.nodes
            .iter()
            .map(|n| format!("127.0.0.1:{}", n.port()))
            .collect::<Vec<_>>()
            .join(",")
    }

    /// How many nodes (primaries and replicas) were started.
    pub fn len(&self) -> usize {
        self.nodes.len()
    }

    /// Whether the cluster has no nodes (never true for a started cluster).
    pub fn is_empty(&self) -> bool {
        self.nodes.is_empty()
    }

    /// The port of node `i`.
    pub fn port(&self, i: usize) -> u16 {
        self.nodes[i].port()
    }

    /// The ports of all nodes, in start order.
    pub fn ports(&self) -> Vec<u16> {
        self.nodes.iter().map(RedisServer::port).collect()
    }

    /// Whether node `i` is running (it has not been killed).
    pub fn is_alive(&self, i: usize) -> bool {
        self.nodes[i].pid().is_some()
    }

    /// Runs `redis-cli` against node `i` and returns its output.
    pub fn cli(&self, i: usize, args: &[&str]) -> String {
        self.nodes[i].cli(args)
    }

    /// Runs `redis-cli --cluster <args>` (e.g. `reshard`, `check`) and
    /// returns its output. Name nodes as `127.0.0.1:<port>`.
    pub fn cluster_cli(&self, args: &[&str]) -> String {
        let mut all = vec!["--cluster"];
        all.extend_from_slice(args);
        redis_cli(&all)
    }

    /// Kills node `i` with SIGKILL, by PID.
    pub fn kill_node(&mut self, i: usize) {
        self.nodes[i].stop();
    }

    /// Starts killed node `i` again on the same port and directory; it reads
    /// its `nodes.conf` and rejoins the cluster with its old role and slots
    /// (its data is gone: nodes run without persistence).
    pub fn restart_node(&mut self, i: usize) {
        self.nodes[i].restart();
    }

    /// Freezes every running node with SIGSTOP (connections stay open,
    /// nothing answers), as a whole-cluster stall.
    pub fn pause(&self) {
        self.nodes.iter().for_each(RedisServer::pause);
    }

    /// Resumes every node paused by [`pause`](Self::pause).
    pub fn resume(&self) {
        self.nodes.iter().for_each(RedisServer::resume);
    }

    /// Whether node `i` is a running primary (`ROLE` says `master`).
    pub fn is_primary(&self, i: usize) -> bool {
        self.is_alive(i) && self.cli(i, &["ROLE"]).lines().next() == Some("master")
    }

    /// The node ID of node `i` (`CLUSTER MYID`).
    pub fn node_id(&self, i: usize) -> String {
        self.cli(i, &["CLUSTER", "MYID"])
    }

    /// The hash slot of `key` (`CLUSTER KEYSLOT`).
    pub fn slot_of(&self, key: &str) -> u16 {
        let n = self.any_alive();
        self.cli(n, &["CLUSTER", "KEYSLOT", key])
            .parse()
            .expect("CLUSTER KEYSLOT returns a number")
    }

    /// The index of the primary that owns `slot`, as a live node sees it.
    pub fn owner_of(&self, slot: u16) -> usize {
        let nodes = self.cli(self.any_alive(), &["CLUSTER", "NODES"]);
        for line in nodes.lines() {
            let fields: Vec<&str> = line.split_whitespace().collect();
            if fields.len() < 8 || !fields[2].contains("master") || fields[2].contains("fail") {
                continue;
            }
            let owns = fields[8..].iter().any(|range| {
                if range.starts_with('[') {
                    return false;
                }
                let (lo, hi) = range.split_once('-').unwrap_or((range, range));
                matches!((lo.parse::<u16>(), hi.parse::<u16>()), (Ok(lo), Ok(hi)) if (lo..=hi).contains(&slot))
            });
            if owns {
                let port: u16 = fields[1]
                    .split(['@', ','])
                    .next()
                    .and_then(|a| a.rsplit_once(':'))
                    .and_then(|(_, p)| p.parse().ok())
                    .expect("CLUSTER NODES lists ip:port@bus");
                return self
                    .nodes
                    .iter()
                    .position(|n| n.port() == port)
                    .expect("the owner is one of our nodes");
            }
        }
        panic!("no primary owns slot {slot}:\n{nodes}");
    }

    /// Moves `slot` to primary `to` the way `redis-cli --cluster reshard`
    /// does, one key per `MIGRATE`, so that clients running meanwhile meet
    /// both `ASK` (keys half moved) and `MOVED` (after the hand-over)
    /// redirections. Returns how many keys were moved.
    pub fn migrate_slot(&self, slot: u16, to: usize) -> usize {
        let from = self.begin_migration(slot, to);
        let moved = self.migrate_keys(slot, from, to, usize::MAX);
        self.finish_migration(slot, to);
        moved
    }

    /// The first step of [`migrate_slot`](Self::migrate_slot): marks `slot`
    /// importing on `to` and migrating on its owner, which it returns. From
    /// here until [`finish_migration`](Self::finish_migration) the owner
    /// answers `ASK` for keys it no longer (or never) had.
    pub fn begin_migration(&self, slot: u16, to: usize) -> usize {
        let from = self.owner_of(slot);
        assert_ne!(from, to, "slot {slot} already lives on node {to}");
        let slot_s = slot.to_string();
        let (from_id, to_id) = (self.node_id(from), self.node_id(to));
        ok(self.cli(to, &["CLUSTER", "SETSLOT", &slot_s, "IMPORTING", &from_id]));
        ok(self.cli(from, &["CLUSTER", "SETSLOT", &slot_s, "MIGRATING", &to_id]));
        from
    }

    /// Moves at most `max` keys of `slot` from node `from` to node `to`, one
    /// `MIGRATE` each, during a migration begun with
    /// [`begin_migration`](Self::begin_migration). Returns how many it moved
    /// (fewer than `max` once the slot is empty on `from`).
    pub fn migrate_keys(&self, slot: u16, from: usize, to: usize, max: usize) -> usize {
        let slot_s = slot.to_string();
        let to_port = self.port(to).to_string();
        let mut moved = 0;
        while moved < max {
            let keys = self.cli(from, &["CLUSTER", "GETKEYSINSLOT", &slot_s, "1"]);
            let Some(key) = keys.lines().next().filter(|k| !k.is_empty()) else {
                break;
            };
            let out = self.cli(
                from,
                &[
                    "MIGRATE",
                    "127.0.0.1",
                    &to_port,
                    key,
                    "0",
                    "5000",
                    "REPLACE",
                ],
            );
            // NOKEY: the key expired or was deleted between the two commands.
            assert!(out == "OK" || out == "NOKEY", "MIGRATE failed: {out}");
            moved += 1;
        }
        moved
    }

    /// The last step of [`migrate_slot`](Self::migrate_slot): assigns `slot`
    /// to `to` on every primary (clients now get `MOVED`).
    pub fn finish_migration(&self, slot: u16, to: usize) {
        let (slot_s, to_id) = (slot.to_string(), self.node_id(to));
        for i in (0..self.nodes.len()).filter(|&i| self.is_primary(i)) {
            ok(self.cli(i, &["CLUSTER", "SETSLOT", &slot_s, "NODE", &to_id]));
        }
    }

    /// Waits until `count` running nodes are primaries and the cluster is
    /// ready (see [`wait_ready`](Self::wait_ready)), e.g. until a replica
    /// has taken over a killed primary; false after `within`.
    pub fn wait_primaries(&self, count: usize, within: Duration) -> bool {
        let deadline = Instant::now() + within;
        loop {
            let primaries = (0..self.len()).filter(|&i| self.is_primary(i)).count();
            if primaries == count && self.wait_ready(Duration::ZERO) {
                return true;
            }
            if Instant::now() > deadline {
                return false;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Waits until every running node reports `cluster_state:ok` and every
    /// running replica has its link to its primary up; false after `within`.
    pub fn wait_ready(&self, within: Duration) -> bool {
        let deadline = Instant::now() + within;
        loop {
            let ready = (0..self.nodes.len())
                .filter(|&i| self.is_alive(i))
                .all(|i| {
                    self.cli(i, &["CLUSTER", "INFO"])
                        .contains("cluster_state:ok")
                        && {
                            let repl = self.cli(i, &["INFO", "replication"]);
                            repl.contains("role:master") || repl.contains("master_link_status:up")
                        }
                });
            if ready {
                return true;
            }
            if Instant::now() > deadline {
                return false;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Waits until `redis-cli --cluster check` finds every node agreeing on
    /// the slot configuration and all 16384 slots covered (as `reshard`
    /// requires before it starts); false after `within`.
    pub fn wait_consistent(&self, within: Duration) -> bool {
        let deadline = Instant::now() + within;
        loop {
            let seed = format!("127.0.0.1:{}", self.port(self.any_alive()));
            let out = self.cluster_cli(&["check", &seed]);
            if out.contains("[OK] All nodes agree about slots configuration.")
                && out.contains("[OK] All 16384 slots covered.")
                && !out.contains("[WARNING]")
            {
                return true;
            }
            if Instant::now() > deadline {
                return false;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    fn any_alive(&self) -> usize {
        (0..self.nodes.len())
            .find(|&i| self.is_alive(i))
            .expect("every node of the cluster was killed")
    }
}

/// Checks the reply of a cluster setup command.
fn ok(out: String) {
    assert_eq!(out, "OK", "cluster setup command failed");
}

/// Starts one cluster-enabled node, with its cluster bus on a second free
/// port (the default, port + 10000, may be taken or out of range).
fn start_node(extra: &[&str]) -> RedisServer {
    let mut last_err = String::new();
    for _ in 0..5 {
        let bus = free_port().to_string();
        let args = [
            "--cluster-enabled",
            "yes",
            // Relative to the node's own temporary `--dir`.
            "--cluster-config-file",
            "nodes.conf",
            "--cluster-node-timeout",
            "1000",
            "--cluster-port",
            &bus,
        ];
        match RedisServer::try_start_with(&[&args[..], extra].concat()) {
            Ok(node) => return node,
            Err(e) => last_err = e,
        }
    }
    panic!("could not start a cluster node: {last_err}");
}
