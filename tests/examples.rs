//! Every example runs to completion: on the in-memory backend (what the
//! README's first command does on a fresh machine), on a real Redis, and
//! on a real Redis Cluster. `cargo test` builds the examples before it runs
//! the tests, so their binaries are next to this one.

use std::path::PathBuf;
use std::process::{Command, Output};

use forge_cache_testkit::{RedisCluster, RedisServer};

/// Where cargo put the example binary `name`.
fn example(name: &str) -> PathBuf {
    let deps = std::env::current_exe().expect("test binary path");
    let path = deps
        .parent()
        .and_then(|d| d.parent())
        .expect("target/<profile>/deps")
        .join("examples")
        .join(name);
    assert!(
        path.exists(),
        "{} is missing: run the tests with `cargo test`, which builds the examples",
        path.display()
    );
    path
}

/// Runs example `name` (with `args`) against `url` (`None`: no Redis
/// configured at all) and returns its standard output.
fn run(name: &str, args: &[&str], url: Option<&str>) -> String {
    let mut cmd = Command::new(example(name));
    cmd.args(args);
    for (var, _) in std::env::vars() {
        if var.starts_with("REDIS_") || var == "FORGE_ENV" || var == "PORT" {
            cmd.env_remove(var);
        }
    }
    if let Some(url) = url {
        cmd.env("REDIS_CONNECTION_URL", url);
    }
    let Output {
        status,
        stdout,
        stderr,
    } = cmd.output().expect("run the example");
    let stdout = String::from_utf8_lossy(&stdout).into_owned();
    assert!(
        status.success(),
        "example {name} failed ({status}):\n{stdout}\n{}",
        String::from_utf8_lossy(&stderr)
    );
    stdout
}

fn check_quickstart(out: &str) {
    assert!(
        out.contains("products: 1 hit(s), 1 miss(es), 1 store(s)"),
        "{out}"
    );
    assert_eq!(out.matches("report sent").count(), 3, "{out}");
    assert_eq!(out.matches("refused:").count(), 1, "{out}");
}

fn check_axum_app(out: &str) {
    assert!(out.contains("(database lookups so far: 1)\nGET /users/7 -> 200 {\"id\":7,\"name\":\"user 7\"}  (database lookups so far: 1)"), "{out}");
    assert!(
        out.contains(r#"{"id":7,"name":"Ada"}  (after invalidation)"#),
        "{out}"
    );
    // A tower-sessions session kept by forge-cache.
    assert!(
        out.contains("GET /visits -> visits=1, then with its cookie -> visits=2"),
        "{out}"
    );
    // The response cache: a 200 with an ETag, then a 304.
    assert!(out.contains("GET /products -> 200 (etag \""), "{out}");
    assert!(
        out.contains("GET /products with If-None-Match -> 304"),
        "{out}"
    );
    assert_eq!(out.matches("GET /api/data -> 200").count(), 5, "{out}");
    assert_eq!(out.matches("GET /api/data -> 429").count(), 1, "{out}");
    assert_eq!(out.matches("POST /login (ada) -> 429").count(), 1, "{out}");
}

fn check_locks_and_sessions(out: &str) {
    // Each worker either charged the order or was told to come back.
    let charged = out.matches("charged order 42").count();
    let busy = out.matches("payment busy").count();
    assert!(charged >= 1 && charged + busy == 4, "{out}");
    assert!(
        out.contains("guide-style lock taken; released: true"),
        "{out}"
    );
    assert!(out.contains("session: Some(Session { user_id: 7"), "{out}");
    assert!(out.contains("after logout: None"), "{out}");
}

/// Runs every example against `url` and checks what it printed.
fn run_all(url: Option<&str>, backend: &str) {
    let out = run("quickstart", &[], url);
    assert!(out.contains(&format!("backend: {backend}")), "{out}");
    check_quickstart(&out);
    check_axum_app(&run("axum_app", &["--demo"], url));
    check_locks_and_sessions(&run("locks_and_sessions", &[], url));
}

#[test]
fn examples_run_on_the_in_memory_backend_when_no_redis_is_configured() {
    run_all(None, "memory");
}

#[test]
fn examples_run_on_redis() {
    let server = RedisServer::start();
    run_all(Some(&server.url()), "redis");
}

#[test]
fn examples_run_on_a_redis_cluster() {
    let cluster = RedisCluster::start(3, 0);
    run_all(Some(&cluster.url()), "cluster");
}
