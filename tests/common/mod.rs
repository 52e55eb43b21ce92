//! Shared test setup: the same behaviour runs against every backend.
#![allow(dead_code)]

use forge_cache::{CacheManager, RedisSettings};
use forge_cache_testkit::{RedisCluster, RedisServer};

/// A manager on one backend, with the server or cluster it needs (if any).
pub struct Env {
    pub manager: CacheManager,
    pub server: Option<RedisServer>,
    pub cluster: Option<RedisCluster>,
}

impl Env {
    pub fn memory() -> Self {
        Env {
            manager: CacheManager::new(RedisSettings::memory()).unwrap(),
            server: None,
            cluster: None,
        }
    }

    /// A manager on a fresh local Redis Cluster of 3 primaries.
    pub fn cluster() -> Self {
        Self::cluster_with(|b| b)
    }

    pub fn cluster_with(
        f: impl FnOnce(forge_cache::RedisSettingsBuilder) -> forge_cache::RedisSettingsBuilder,
    ) -> Self {
        let cluster = RedisCluster::start(3, 0);
        let settings = f(RedisSettings::builder().url(cluster.url()))
            .build()
            .unwrap();
        Env {
            manager: CacheManager::new(settings).unwrap(),
            server: None,
            cluster: Some(cluster),
        }
    }

    pub fn redis() -> Self {
        Self::redis_with(|b| b)
    }

    pub fn redis_with(
        f: impl FnOnce(forge_cache::RedisSettingsBuilder) -> forge_cache::RedisSettingsBuilder,
    ) -> Self {
        let server = RedisServer::start();
        let settings = f(RedisSettings::builder().url(server.url()))
            .build()
            .unwrap();
        Env {
            manager: CacheManager::new(settings).unwrap(),
            server: Some(server),
            cluster: None,
        }
    }

    /// Another manager (as another process would have) on the same backend.
    pub fn second_manager(&self) -> CacheManager {
        let url = match (&self.server, &self.cluster) {
            (Some(s), _) => s.url(),
            (_, Some(c)) => c.url(),
            _ => return self.manager.clone(),
        };
        CacheManager::new(RedisSettings::builder().url(url).build().unwrap()).unwrap()
    }

    /// Whether the backend is shared by other managers (Redis or a
    /// cluster), as opposed to the in-process memory backend.
    pub fn is_shared(&self) -> bool {
        self.server.is_some() || self.cluster.is_some()
    }

    /// Freezes the shared backend (the server, or every cluster node) with
    /// SIGSTOP, for outage tests that run on every backend; false (and
    /// nothing happens) on the memory backend.
    pub fn pause_backend(&self) -> bool {
        match (&self.server, &self.cluster) {
            (Some(s), _) => s.pause(),
            (_, Some(c)) => c.pause(),
            _ => return false,
        }
        true
    }

    /// Resumes what [`pause_backend`](Self::pause_backend) froze.
    pub fn resume_backend(&self) {
        match (&self.server, &self.cluster) {
            (Some(s), _) => s.resume(),
            (_, Some(c)) => c.resume(),
            _ => {}
        }
    }

    pub fn server(&mut self) -> &mut RedisServer {
        self.server
            .as_mut()
            .expect("this test needs the Redis backend")
    }
}

/// Generates one test per backend (memory, Redis, Redis Cluster) for each
/// named `async fn(Env)`.
#[macro_export]
macro_rules! on_every_backend {
    ($($name:ident),* $(,)?) => {
        mod memory {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    super::$name($crate::common::Env::memory()).await
                }
            )*
        }
        mod redis {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    super::$name($crate::common::Env::redis()).await
                }
            )*
        }
        mod cluster {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    super::$name($crate::common::Env::cluster()).await
                }
            )*
        }
    };
}

/// Like `on_every_backend!`, for sync `fn(Env)` tests.
#[macro_export]
macro_rules! on_every_backend_sync {
    ($($name:ident),* $(,)?) => {
        mod memory_sync {
            $(
                #[test]
                fn $name() {
                    super::$name($crate::common::Env::memory())
                }
            )*
        }
        mod redis_sync {
            $(
                #[test]
                fn $name() {
                    super::$name($crate::common::Env::redis())
                }
            )*
        }
        mod cluster_sync {
            $(
                #[test]
                fn $name() {
                    super::$name($crate::common::Env::cluster())
                }
            )*
        }
    };
}

/// An error and its sources, `outer: inner`, as a report prints them
/// (messages do not repeat their sources).
pub fn report(e: &(dyn std::error::Error + 'static)) -> String {
    let mut text = e.to_string();
    let mut next = e.source();
    while let Some(cause) = next {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        next = cause.source();
    }
    text
}

/// Polls `check` every few milliseconds until it holds or `within` passes.
pub async fn eventually(within: std::time::Duration, mut check: impl AsyncFnMut() -> bool) -> bool {
    let deadline = std::time::Instant::now() + within;
    loop {
        if check().await {
            return true;
        }
        if std::time::Instant::now() > deadline {
            return false;
        }
        tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    }
}

/// The Redis Cluster hash slot of a key without a hash tag: CRC16
/// (XMODEM) mod 16384.
pub fn key_slot(key: &str) -> u16 {
    let mut crc: u16 = 0;
    for &b in key.as_bytes() {
        crc ^= u16::from(b) << 8;
        for _ in 0..8 {
            crc = if crc & 0x8000 != 0 {
                (crc << 1) ^ 0x1021
            } else {
                crc << 1
            };
        }
    }
    crc & 0x3fff
}
