//! The process-wide manager: init once, and what happens before init.
//!
//! Environment variables are per process, so cases that need a particular
//! environment run this test binary again as a child with that environment.

use std::process::Command;

fn run_child(test: &str, env: &[(&str, &str)]) -> std::process::Output {
    let mut cmd = Command::new(std::env::current_exe().unwrap());
    cmd.args([test, "--exact", "--ignored", "--nocapture"]);
    for var in [
        "REDIS_CONNECTION_URL",
        "REDIS_HOST",
        "REDIS_PORT",
        "REDIS_PASSWORD",
        "REDIS_DB",
        "REDIS_USERNAME",
    ] {
        cmd.env_remove(var);
    }
    cmd.envs(env.iter().copied());
    let out = cmd.output().unwrap();
    assert!(
        out.status.success(),
        "child {test} failed:\n{}",
        String::from_utf8_lossy(&out.stdout)
    );
    out
}

#[test]
fn use_before_init_configures_from_an_empty_environment_as_memory() {
    run_child("child_use_before_init_is_memory", &[]);
}

#[test]
#[ignore = "run by use_before_init_configures_from_an_empty_environment_as_memory in a child process"]
fn child_use_before_init_is_memory() {
    let m = forge_cache::global();
    assert_eq!(m.backend_kind(), forge_cache::BackendKind::Memory);
    m.blocking()
        .set("k", &1, std::time::Duration::from_secs(5))
        .unwrap();
    // The lazy configuration counts as the first init.
    assert!(matches!(
        forge_cache::blocking::init(forge_cache::RedisSettings::memory()),
        Err(forge_cache::Error::AlreadyInitialized)
    ));
}

#[test]
fn invalid_environment_disables_the_cache_instead_of_panicking() {
    let out = run_child(
        "child_invalid_environment_is_disabled",
        &[("REDIS_PORT", "abc"), ("REDIS_PASSWORD", "hunter2-secret")],
    );
    assert!(!String::from_utf8_lossy(&out.stdout).contains("hunter2-secret"));
    assert!(!String::from_utf8_lossy(&out.stderr).contains("hunter2-secret"));
}

#[test]
fn a_bad_setting_without_init_is_reported_on_stderr_without_a_subscriber() {
    let out = run_child(
        "child_invalid_environment_is_disabled",
        &[("REDIS_PORT", "abc")],
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    let lines: Vec<_> = stderr
        .lines()
        .filter(|l| l.starts_with("forge-cache:"))
        .collect();
    assert_eq!(lines.len(), 1, "expected one line, got:\n{stderr}");
    assert!(lines[0].contains("OFF"), "{}", lines[0]);
    assert!(lines[0].contains(r#"REDIS_PORT="abc""#), "{}", lines[0]);
}

#[forge_cache::cache_result(ttl = 60, key_prefix = "global_disabled")]
fn disabled_cached(x: u32) -> u32 {
    x
}

#[test]
#[ignore = "run by invalid_environment_disables_the_cache_instead_of_panicking in a child process"]
fn child_invalid_environment_is_disabled() {
    let m = forge_cache::global();
    assert_eq!(m.backend_kind(), forge_cache::BackendKind::Disabled);
    assert!(m.disabled_reason().unwrap().contains("REDIS_PORT"));
    // More calls than the breaker's threshold: errors keep naming the
    // setting rather than turning into "circuit breaker open".
    for _ in 0..20 {
        assert_eq!(disabled_cached(1), 1);
        let err = m.blocking().get::<i32>("k").unwrap_err();
        assert!(matches!(err, forge_cache::Error::Disabled(_)), "{err}");
        assert!(err.to_string().contains("REDIS_PORT"), "{err}");
        assert!(err.is_outage());
    }
    let err = disabled_cached_invalidate(1).unwrap_err();
    assert!(err.to_string().contains(r#"REDIS_PORT="abc""#), "{err}");
    assert!(!m.breaker_open());
    assert!(!m.blocking().test_connection());
    let health = m.blocking().health();
    assert!(health.error.unwrap().contains("REDIS_PORT"));
}

#[test]
fn second_init_is_an_error_and_changes_nothing() {
    run_child("child_second_init", &[]);
}

#[test]
#[ignore = "run by second_init_is_an_error_and_changes_nothing in a child process"]
fn child_second_init() {
    let first = forge_cache::blocking::init(
        forge_cache::RedisSettings::builder()
            .url("memory://")
            .namespace("first")
            .build()
            .unwrap(),
    )
    .unwrap();
    let again = forge_cache::blocking::init(forge_cache::RedisSettings::memory());
    assert!(matches!(again, Err(forge_cache::Error::AlreadyInitialized)));
    assert_eq!(first.settings().namespace(), Some("first"));
    assert_eq!(forge_cache::global().settings().namespace(), Some("first"));
}
