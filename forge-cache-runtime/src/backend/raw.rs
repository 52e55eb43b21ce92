//! The raw async connection handed to callers, for commands forge-cache
//! does not wrap.

use std::sync::Arc;

use redis::aio::ConnectionLike;
use redis::{Cmd, Pipeline, RedisFuture, Value};

use super::cluster::ClusterBackend;
use super::redis::RedisBackend;

/// The manager's async connection, for commands forge-cache does not wrap:
/// use it wherever redis-rs takes an async connection (`query_async`,
/// pipelines, scripts). Cheap to clone.
///
/// Each command goes over the manager's own multiplexed connection (on a
/// Redis Cluster, its cluster connection, which routes by slot and follows
/// `MOVED`/`ASK`), so it works from any Tokio runtime, including one
/// created after the manager, and it reconnects by itself: after the
/// connection broke, the next command opens a new one. The socket timeout
/// bounds each reply.
///
/// ```no_run
/// # async fn f(cache: forge_cache_runtime::CacheManager) -> forge_cache_runtime::Result<()> {
/// let mut conn = cache.redis()?;
/// let n: i64 = redis::cmd("INCR").arg("visits").query_async(&mut conn).await?;
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct AsyncConnection {
    to: To,
    db: i64,
}

#[derive(Clone)]
enum To {
    Redis(Arc<RedisBackend>),
    Cluster(Arc<ClusterBackend>),
}

impl AsyncConnection {
    pub(crate) fn redis(backend: Arc<RedisBackend>, db: i64) -> Self {
        AsyncConnection {
            to: To::Redis(backend),
            db,
        }
    }

    pub(crate) fn cluster(backend: Arc<ClusterBackend>) -> Self {
        AsyncConnection {
            to: To::Cluster(backend),
            db: 0,
        }
    }
}

impl std::fmt::Debug for AsyncConnection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let kind = match self.to {
            To::Redis(_) => "redis",
            To::Cluster(_) => "cluster",
        };
        f.debug_struct("AsyncConnection")
            .field("backend", &kind)
            .field("db", &self.db)
            .finish()
    }
}

impl ConnectionLike for AsyncConnection {
    fn req_packed_command<'a>(&'a mut self, cmd: &'a Cmd) -> RedisFuture<'a, Value> {
        Box::pin(async move {
            match &self.to {
                To::Redis(r) => r.link().packed(cmd).await,
                To::Cluster(c) => c.link().packed(cmd).await,
            }
        })
    }

    fn req_packed_commands<'a>(
        &'a mut self,
        pipeline: &'a Pipeline,
        offset: usize,
        count: usize,
    ) -> RedisFuture<'a, Vec<Value>> {
        Box::pin(async move {
            match &self.to {
                To::Redis(r) => r.link().packed_pipeline(pipeline, offset, count).await,
                To::Cluster(c) => c.link().packed_pipeline(pipeline, offset, count).await,
            }
        })
    }

    fn get_db(&self) -> i64 {
        self.db
    }
}
