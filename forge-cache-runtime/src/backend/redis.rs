//! The Redis backend: one multiplexed, self-reconnecting async connection
//! and a pool of sync connections, both with the socket timeout.

use std::sync::OnceLock;
use std::time::Duration;

use redis::aio::{ConnectionManager, ConnectionManagerConfig};

use crate::error::{Error, Result};
use crate::settings::RedisSettings;

/// Builds the client, applying the TLS settings to `rediss://` targets.
#[cfg(feature = "tls")]
fn client(info: redis::ConnectionInfo, settings: &RedisSettings) -> Result<redis::Client> {
    let info = match info.addr().clone() {
        redis::ConnectionAddr::TcpTls { host, port, .. } if settings.tls_insecure => {
            info.set_addr(redis::ConnectionAddr::TcpTls {
                host,
                port,
                insecure: true,
                tls_params: None,
            })
        }
        _ => info,
    };
    let tls = matches!(info.addr(), redis::ConnectionAddr::TcpTls { .. });
    match tls_certificates(settings, tls)? {
        Some(certs) => Ok(redis::Client::build_with_tls(info, certs)?),
        None => Ok(redis::Client::open(info)?),
    }
}

/// The CA of `REDIS_TLS_CA_FILE` as redis-rs takes it, when set and the
/// target uses TLS; shared by the single-server and the cluster client.
#[cfg(feature = "tls")]
pub(crate) fn tls_certificates(
    settings: &RedisSettings,
    tls: bool,
) -> Result<Option<redis::TlsCertificates>> {
    let Some(path) = settings.tls_ca_file.as_ref().filter(|_| tls) else {
        return Ok(None);
    };
    let pem = std::fs::read(path).map_err(|_| {
        Error::config(
            "REDIS_TLS_CA_FILE",
            path.display().to_string(),
            "the path of a readable PEM file",
        )
    })?;
    Ok(Some(redis::TlsCertificates {
        client_tls: None,
        root_cert: Some(pem),
    }))
}

#[cfg(not(feature = "tls"))]
fn client(info: redis::ConnectionInfo, _settings: &RedisSettings) -> Result<redis::Client> {
    Ok(redis::Client::open(info)?)
}

/// Keys per `SCAN` step and per `UNLINK` batch in pattern deletion.
pub(crate) const SCAN_BATCH: usize = 500;

pub(crate) struct RedisBackend {
    client: redis::Client,
    timeout: Duration,
    pool_size: u32,
    async_conn: OnceLock<ConnectionManager>,
    pool: OnceLock<r2d2::Pool<SyncConnector>>,
}

/// Opens the sync pool's connections, with the socket timeout on connect,
/// read and write. Appears in [`SyncConnection`].
pub struct SyncConnector {
    client: redis::Client,
    timeout: Duration,
}

impl r2d2::ManageConnection for SyncConnector {
    type Connection = redis::Connection;
    type Error = redis::RedisError;

    fn connect(&self) -> Result<redis::Connection, redis::RedisError> {
        let conn = self.client.get_connection_with_timeout(self.timeout)?;
        conn.set_read_timeout(Some(self.timeout))?;
        conn.set_write_timeout(Some(self.timeout))?;
        Ok(conn)
    }

    fn is_valid(&self, conn: &mut redis::Connection) -> Result<(), redis::RedisError> {
        redis::cmd("PING").query::<()>(conn)
    }

    fn has_broken(&self, conn: &mut redis::Connection) -> bool {
        !redis::ConnectionLike::is_open(conn)
    }
}

/// A pooled sync Redis connection, from
/// [`CacheManager::redis_sync`](crate::CacheManager::redis_sync).
pub type SyncConnection = r2d2::PooledConnection<SyncConnector>;

/// Silences r2d2's default error logging: failures reach the caller as
/// errors and are logged once, without connection details.
#[derive(Debug)]
pub(crate) struct QuietErrors;

impl r2d2::HandleError<redis::RedisError> for QuietErrors {
    fn handle_error(&self, _error: redis::RedisError) {}
}

impl RedisBackend {
    pub(crate) fn new(info: redis::ConnectionInfo, settings: &RedisSettings) -> Result<Self> {
        let client = client(info, settings)?;
        let (timeout, pool_size) = (settings.socket_timeout, settings.pool_size);
        Ok(RedisBackend {
            client,
            timeout,
            pool_size,
            async_conn: OnceLock::new(),
            pool: OnceLock::new(),
        })
    }

    /// The multiplexed connection, created on first use from inside the
    /// Tokio runtime that will drive it.
    pub(crate) fn conn(&self) -> Result<ConnectionManager> {
        if let Some(c) = self.async_conn.get() {
            return Ok(c.clone());
        }
        let config = ConnectionManagerConfig::new()
            .set_connection_timeout(Some(self.timeout))
            .set_response_timeout(Some(self.timeout))
            .set_number_of_retries(2)
            .set_min_delay(Duration::from_millis(50))
            .set_max_delay(Duration::from_millis(500));
        let conn = ConnectionManager::new_lazy_with_config(self.client.clone(), config)?;
        Ok(self.async_conn.get_or_init(|| conn).clone())
    }

    /// A pooled sync connection; waits at most the socket timeout for one.
    pub(crate) fn sync_conn(&self) -> Result<r2d2::PooledConnection<SyncConnector>> {
        let pool = self.pool.get_or_init(|| {
            r2d2::Pool::builder()
                .max_size(self.pool_size)
                .min_idle(Some(0))
                .connection_timeout(self.timeout)
                .test_on_check_out(false)
                .error_handler(Box::new(QuietErrors))
                .build_unchecked(SyncConnector {
                    client: self.client.clone(),
                    timeout: self.timeout,
                })
        });
        // Connect once ourselves when the pool is empty so that the caller
        // sees the real error (refused, auth) rather than r2d2's timeout.
        match pool.get_timeout(self.timeout) {
            Ok(c) => Ok(c),
            Err(_) => {
                let probe = SyncConnector {
                    client: self.client.clone(),
                    timeout: self.timeout,
                };
                match r2d2::ManageConnection::connect(&probe) {
                    Err(e) => Err(Error::Redis(e)),
                    Ok(_) => Err(Error::Timeout(self.timeout)),
                }
            }
        }
    }

    pub(crate) fn timeout(&self) -> Duration {
        self.timeout
    }

    /// `SCAN` + `UNLINK` in batches: never `KEYS`, never blocks the server
    /// for long.
    pub(crate) async fn delete_pattern(&self, pattern: &str) -> Result<u64> {
        let mut conn = self.conn()?;
        let mut cursor: u64 = 0;
        let mut deleted = 0u64;
        loop {
            let (next, keys): (u64, Vec<Vec<u8>>) =
                scan_cmd(cursor, pattern).query_async(&mut conn).await?;
            if !keys.is_empty() {
                let n: u64 = redis::cmd("UNLINK")
                    .arg(&keys)
                    .query_async(&mut conn)
                    .await?;
                deleted += n;
            }
            if next == 0 {
                return Ok(deleted);
            }
            cursor = next;
        }
    }

    pub(crate) fn delete_pattern_sync(&self, pattern: &str) -> Result<u64> {
        let mut conn = self.sync_conn()?;
        let mut cursor: u64 = 0;
        let mut deleted = 0u64;
        loop {
            let (next, keys): (u64, Vec<Vec<u8>>) = scan_cmd(cursor, pattern).query(&mut *conn)?;
            if !keys.is_empty() {
                let n: u64 = redis::cmd("UNLINK").arg(&keys).query(&mut *conn)?;
                deleted += n;
            }
            if next == 0 {
                return Ok(deleted);
            }
            cursor = next;
        }
    }
}

/// `SCAN cursor MATCH pattern COUNT SCAN_BATCH`.
pub(crate) fn scan_cmd(cursor: u64, pattern: &str) -> redis::Cmd {
    let mut c = redis::cmd("SCAN");
    c.arg(cursor)
        .arg("MATCH")
        .arg(pattern)
        .arg("COUNT")
        .arg(SCAN_BATCH);
    c
}
