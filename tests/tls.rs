//! `rediss://` against a real TLS-enabled redis-server with a throwaway CA.
#![cfg(feature = "tls")]

mod common;

use std::time::Duration;

use forge_cache::{CacheManager, RedisSettings};
use forge_cache_testkit::{RedisCluster, RedisServer, TestCerts};

fn manager(
    url: String,
    f: impl FnOnce(forge_cache::RedisSettingsBuilder) -> forge_cache::RedisSettingsBuilder,
) -> CacheManager {
    let settings = f(RedisSettings::builder()
        .url(url)
        .socket_timeout(Duration::from_secs(2))
        .breaker_threshold(0))
    .build()
    .unwrap();
    CacheManager::new(settings).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tls_with_the_right_ca_works_async_and_sync() {
    let certs = TestCerts::generate();
    let (_server, port) = RedisServer::start_tls(&certs);
    let m = manager(format!("rediss://localhost:{port}/0"), |b| {
        b.tls_ca_file(certs.ca())
    });
    m.set("k", &"over tls", Duration::from_secs(60))
        .await
        .unwrap();
    assert_eq!(
        m.get::<String>("k").await.unwrap().as_deref(),
        Some("over tls")
    );
    let m2 = m.clone();
    let got = tokio::task::spawn_blocking(move || m2.blocking().get::<String>("k").unwrap())
        .await
        .unwrap();
    assert_eq!(got.as_deref(), Some("over tls"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn verification_is_on_by_default_and_a_wrong_ca_is_a_clear_error() {
    let certs = TestCerts::generate();
    let other = TestCerts::generate();
    let (_server, port) = RedisServer::start_tls(&certs);
    for m in [
        manager(format!("rediss://localhost:{port}/0"), |b| b),
        manager(format!("rediss://localhost:{port}/0"), |b| {
            b.tls_ca_file(other.ca())
        }),
    ] {
        let err = common::report(&m.ping().await.unwrap_err());
        assert!(
            err.to_lowercase().contains("certificate"),
            "unclear error: {err}"
        );
        assert!(m.blocking().ping().is_err());
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn insecure_opt_out_accepts_a_self_signed_server() {
    let certs = TestCerts::generate();
    let (_server, port) = RedisServer::start_tls(&certs);
    let m = manager(format!("rediss://localhost:{port}/0"), |b| {
        b.tls_insecure(true)
    });
    assert!(m.ping().await.is_ok());
}

#[test]
fn tls_settings_come_from_the_environment() {
    let certs = TestCerts::generate();
    let ca = certs.ca().display().to_string();
    let s = RedisSettings::from_lookup(|k| match k {
        "REDIS_CONNECTION_URL" => Some("rediss://localhost:6380/0".into()),
        "REDIS_TLS_CA_FILE" => Some(ca.clone()),
        "REDIS_TLS_INSECURE" => Some("false".into()),
        _ => None,
    });
    assert!(s.is_ok());
    let err = RedisSettings::from_lookup(|k| (k == "REDIS_TLS_INSECURE").then(|| "maybe".into()))
        .unwrap_err();
    assert!(err.to_string().contains("REDIS_TLS_INSECURE"));
    let err = RedisSettings::from_lookup(|k| {
        (k == "REDIS_TLS_CA_FILE").then(|| "/nonexistent.pem".into())
    })
    .unwrap_err();
    assert!(err.to_string().contains("REDIS_TLS_CA_FILE"));
}

/// `rediss+cluster://` with `REDIS_TLS_CA_FILE`: the CA reaches the cluster
/// client, which uses it for every node it learns from the cluster too.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tls_cluster_with_the_right_ca_works_async_and_sync() {
    let certs = TestCerts::generate();
    let cluster = RedisCluster::start_tls(3, &certs);
    let ca = certs.ca().display().to_string();
    let url = cluster.tls_url();
    let settings = RedisSettings::from_lookup(|k| match k {
        "REDIS_CONNECTION_URL" => Some(url.clone()),
        "REDIS_TLS_CA_FILE" => Some(ca.clone()),
        _ => None,
    })
    .unwrap();
    let m = CacheManager::new(settings).unwrap();
    // Keys on every primary.
    for i in 0..30 {
        m.set(&format!("k{i}"), &i, Duration::from_secs(60))
            .await
            .unwrap();
    }
    for i in 0..30 {
        assert_eq!(m.get::<i32>(&format!("k{i}")).await.unwrap(), Some(i));
    }
    assert_eq!(m.memory_info().await.unwrap().nodes.len(), 3);
    let m2 = m.clone();
    let got = tokio::task::spawn_blocking(move || m2.blocking().get::<i32>("k7").unwrap())
        .await
        .unwrap();
    assert_eq!(got, Some(7));
    assert_eq!(m.delete_pattern("k*").await.unwrap(), 30);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tls_cluster_verifies_by_default_and_the_insecure_opt_out_applies() {
    let certs = TestCerts::generate();
    let cluster = RedisCluster::start_tls(3, &certs);
    let strict = manager(cluster.tls_url(), |b| b);
    assert!(strict.ping().await.is_err());
    assert!(!tokio::task::block_in_place(|| strict
        .blocking()
        .test_connection()));
    let insecure = manager(cluster.tls_url(), |b| b.tls_insecure(true));
    assert!(insecure.ping().await.is_ok());
    insecure
        .set("k", &1, Duration::from_secs(60))
        .await
        .unwrap();
}
