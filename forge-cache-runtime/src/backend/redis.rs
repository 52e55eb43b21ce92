//! The Redis backend: one multiplexed async connection, opened on the I/O
//! runtime and again after it breaks, and a pool of sync connections, both
//! with the socket timeout.

use std::sync::Arc;
use std::time::Duration;

use redis::RedisResult;
use redis::aio::MultiplexedConnection;
use redis::{AsyncConnectionConfig, Value};

use super::link::{Connect, Link};
use super::pool::{Pool, SyncConnection};
use super::{Op, run_async, run_blocking};
use crate::error::Result;
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
        crate::error::Error::config(
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

pub(crate) struct RedisBackend {
    db: i64,
    link: Link<Multiplexed>,
    pool: Arc<Pool<redis::Connection>>,
}

/// Opens the multiplexed connection, with the socket timeout on connect
/// and on every reply.
pub(crate) struct Multiplexed {
    client: redis::Client,
    timeout: Duration,
}

impl Connect for Multiplexed {
    type Conn = MultiplexedConnection;
    const BOUNDS_REPLIES: bool = true;

    fn open(&self) -> impl Future<Output = RedisResult<MultiplexedConnection>> + Send + 'static {
        let client = self.client.clone();
        let config = AsyncConnectionConfig::new()
            .set_connection_timeout(Some(self.timeout))
            .set_response_timeout(Some(self.timeout));
        async move {
            client
                .get_multiplexed_async_connection_with_config(&config)
                .await
        }
    }

    fn run<'a>(
        conn: &'a mut MultiplexedConnection,
        op: Op<'a>,
    ) -> impl Future<Output = RedisResult<Value>> + Send + 'a {
        run_async(conn, op)
    }
}

impl RedisBackend {
    pub(crate) fn new(info: redis::ConnectionInfo, settings: &RedisSettings) -> Result<Self> {
        let client = client(info, settings)?;
        let timeout = settings.socket_timeout;
        let opener = client.clone();
        let pool = Pool::new(
            move || {
                let conn = opener.get_connection_with_timeout(timeout)?;
                conn.set_read_timeout(Some(timeout))?;
                conn.set_write_timeout(Some(timeout))?;
                Ok(conn)
            },
            settings.pool_size,
            timeout,
        );
        Ok(RedisBackend {
            db: client.get_connection_info().redis_settings().db(),
            link: Link::new(Multiplexed { client, timeout }, timeout),
            pool: Arc::new(pool),
        })
    }

    /// The database number of the connection.
    pub(crate) fn db(&self) -> i64 {
        self.db
    }

    /// The link, for the raw connection.
    pub(crate) fn link(&self) -> &Link<Multiplexed> {
        &self.link
    }

    /// Runs `op` on the multiplexed connection, bounded by the socket
    /// timeout.
    pub(crate) async fn exec(&self, op: Op<'_>) -> Result<Value> {
        self.link.exec(op).await
    }

    /// A sync connection for the caller ([`SyncConnection`]).
    pub(crate) fn lend_blocking(&self) -> Result<SyncConnection> {
        self.pool.lend_out()
    }

    /// Runs `op` on a pooled blocking connection: an idle one, a new one
    /// (a refused connection fails at once), or the next one returned
    /// within the socket timeout.
    pub(crate) fn exec_blocking(&self, op: Op<'_>) -> Result<Value> {
        self.pool.exec(op, |conn, op| run_blocking(conn, op))
    }
}
