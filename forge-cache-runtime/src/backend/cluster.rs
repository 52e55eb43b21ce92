//! The Redis Cluster backend: redis-rs's cluster connection (it routes each
//! command to the slot's primary, follows `MOVED`/`ASK`, refreshes the slot
//! map and reconnects) for async calls, and a pool of sync cluster
//! connections, both with the socket timeout and a bounded number of retries.

use std::sync::Arc;
use std::time::Duration;

use redis::cluster::{ClusterClient, ClusterClientBuilder, ClusterConfig};
use redis::cluster_async::ClusterConnection;
use redis::cluster_routing::{MultipleNodeRoutingInfo, RoutingInfo, SingleNodeRoutingInfo};
use redis::{Cmd, ErrorKind, RedisResult, ServerErrorKind, Value};

use super::link::{Connect, Link};
use super::pool::{ClusterSyncConnection, Pool};
use super::{Op, Script};
use crate::error::Result;
use crate::settings::RedisSettings;

/// Attempts per command beyond the first (redirections count as one each).
const RETRIES: u32 = 4;
/// Bounds of the randomised wait between retries, in milliseconds.
const RETRY_WAIT_MS: (u64, u64) = (10, 500);
/// Further attempts, after redis-rs's own, for a command that keeps being
/// redirected during a slot migration.
const REDIRECT_ATTEMPTS: usize = 4;

/// Runs `op` on the cluster: redis-rs routes it by its key's slot and
/// follows `MOVED` and `ASK`.
///
/// One gap is closed here. redis-rs answers `ASK` by writing `ASKING` and
/// then the command as two requests on the node's multiplexed connection;
/// another task's command can slip in between and consume the one-shot
/// `ASKING`, so under load a command can bounce between the two nodes of a
/// migrating slot until its retries run out and the `ASK` (or `MOVED`)
/// reaches us. We then send the command to the node the redirection names,
/// after `MOVED` as it is and after `ASK` with `ASKING` in one pipeline (one
/// write, which nothing can split), a bounded number of times.
pub(crate) async fn run(conn: &mut ClusterConnection, op: Op<'_>) -> RedisResult<Value> {
    match op {
        Op::Primaries => return primaries(conn.route_command(Cmd::ping(), all_primaries()).await?),
        Op::InfoMemory => return conn.route_command(op.cmd(), all_primaries()).await,
        _ => {}
    }
    if let Some(node) = op.node() {
        return conn.route_command(op.cmd(), by_address(node)?).await;
    }
    let script = match op {
        Op::Script(script, ..) => Some(script),
        _ => None,
    };
    let cmd = op.cmd();
    let mut result = query(conn, &cmd, script, To::Slot).await;
    for _ in 0..REDIRECT_ATTEMPTS {
        let to = match &result {
            Err(e) => match (e.kind(), e.redirect_node().and_then(|(n, _)| node_route(n))) {
                (ErrorKind::Server(ServerErrorKind::Ask), Some(node)) => To::Asking(node),
                (ErrorKind::Server(ServerErrorKind::Moved), Some(node)) => To::Node(node),
                _ => break,
            },
            Ok(_) => break,
        };
        tracing::debug!(target: "forge_cache", "redirection outlived redis-rs retries; resending to the named node");
        result = query(conn, &cmd, script, to).await;
    }
    result
}

/// Where [`send`] sends a command.
#[derive(Clone)]
enum To {
    /// To the primary of its key's slot (redis-rs routing).
    Slot,
    /// To this node.
    Node(SingleNodeRoutingInfo),
    /// To this node, right after `ASKING`.
    Asking(SingleNodeRoutingInfo),
}

/// Sends `cmd`; loads the script on every node and retries once after
/// `NOSCRIPT`.
async fn query(
    conn: &mut ClusterConnection,
    cmd: &Cmd,
    script: Option<&Script>,
    to: To,
) -> RedisResult<Value> {
    let first = send(conn, cmd, to.clone()).await;
    match (first, script) {
        (Err(e), Some(script)) if e.kind() == ErrorKind::Server(ServerErrorKind::NoScript) => {
            script.lua.load_async(conn).await?;
            send(conn, cmd, to).await
        }
        (result, _) => result,
    }
}

async fn send(conn: &mut ClusterConnection, cmd: &Cmd, to: To) -> RedisResult<Value> {
    let route = match to {
        To::Slot => return cmd.query_async(conn).await,
        To::Node(node) => {
            return conn
                .route_command(cmd.clone(), RoutingInfo::SingleNode(node))
                .await;
        }
        To::Asking(node) => node,
    };
    let mut pipe = redis::pipe();
    pipe.cmd("ASKING").add_command(cmd.clone());
    // Skip the reply to ASKING, keep the command's.
    let mut replies = conn.route_pipeline(pipe, 1, 1, route).await?;
    replies
        .pop()
        .ok_or_else(|| (ErrorKind::Client, "empty reply to ASKING pipeline").into())
        .and_then(Value::extract_error)
}

/// Applies `REDIS_TLS_CA_FILE` and `REDIS_TLS_INSECURE` to a
/// `rediss+cluster://` client: they hold for every node, including those
/// the client learns from the cluster.
#[cfg(feature = "tls")]
fn with_tls(
    builder: ClusterClientBuilder,
    settings: &RedisSettings,
    tls: bool,
) -> Result<ClusterClientBuilder> {
    let builder = match super::redis::tls_certificates(settings, tls)? {
        Some(certs) => builder.certs(certs),
        None => builder,
    };
    Ok(if tls && settings.tls_insecure {
        builder.tls(redis::TlsMode::Insecure)
    } else {
        builder
    })
}

#[cfg(not(feature = "tls"))]
fn with_tls(
    builder: ClusterClientBuilder,
    _settings: &RedisSettings,
    _tls: bool,
) -> Result<ClusterClientBuilder> {
    Ok(builder)
}

pub(crate) struct ClusterBackend {
    link: Link<Cluster>,
    pool: Arc<Pool<redis::cluster::ClusterConnection>>,
}

/// Opens the async cluster connection, with the socket timeout on connect
/// and on every reply.
pub(crate) struct Cluster {
    client: ClusterClient,
    timeout: Duration,
}

impl Connect for Cluster {
    type Conn = ClusterConnection;
    // Retries and redirections chain several replies: one bound for all.
    const BOUNDS_REPLIES: bool = false;

    fn open(&self) -> impl Future<Output = RedisResult<ClusterConnection>> + Send + 'static {
        let client = self.client.clone();
        let config = ClusterConfig::new()
            .set_connection_timeout(self.timeout)
            .set_response_timeout(self.timeout);
        async move { client.get_async_connection_with_config(config).await }
    }

    fn run<'a>(
        conn: &'a mut ClusterConnection,
        op: Op<'a>,
    ) -> impl Future<Output = RedisResult<Value>> + Send + 'a {
        run(conn, op)
    }
}

impl ClusterBackend {
    pub(crate) fn new(nodes: Vec<redis::ConnectionInfo>, settings: &RedisSettings) -> Result<Self> {
        let timeout = settings.socket_timeout;
        let tls = nodes
            .first()
            .is_some_and(|n| matches!(n.addr(), redis::ConnectionAddr::TcpTls { .. }));
        let builder = ClusterClient::builder(nodes)
            .connection_timeout(timeout)
            .response_timeout(timeout)
            .retries(RETRIES)
            .min_retry_wait(RETRY_WAIT_MS.0)
            .max_retry_wait(RETRY_WAIT_MS.1);
        let client = with_tls(builder, settings, tls)?.build()?;
        let opener = client.clone();
        let pool = Pool::new(
            move || {
                let config = ClusterConfig::new()
                    .set_connection_timeout(timeout)
                    .set_response_timeout(timeout);
                let conn = opener.get_connection_with_config(config)?;
                conn.set_write_timeout(Some(timeout))?;
                Ok(conn)
            },
            settings.pool_size,
            timeout,
        );
        Ok(ClusterBackend {
            link: Link::new(Cluster { client, timeout }, timeout),
            pool: Arc::new(pool),
        })
    }

    /// The link, for the raw connection.
    pub(crate) fn link(&self) -> &Link<Cluster> {
        &self.link
    }

    /// Runs `op` on the cluster, bounded by the socket timeout.
    pub(crate) async fn exec(&self, op: Op<'_>) -> Result<Value> {
        self.link.exec(op).await
    }

    /// A blocking connection for the caller ([`ClusterSyncConnection`]).
    pub(crate) fn lend_blocking(&self) -> Result<ClusterSyncConnection> {
        self.pool.lend_out()
    }

    /// Runs `op` on a pooled blocking cluster connection.
    pub(crate) fn exec_blocking(&self, op: Op<'_>) -> Result<Value> {
        self.pool.exec(op, run_blocking)
    }
}

/// Blocking form of [`run`]: redis-rs routes by slot (and splits a
/// multi-key `UNLINK` by slot); node-addressed ops go to their node.
fn run_blocking(conn: &mut redis::cluster::ClusterConnection, op: Op<'_>) -> RedisResult<Value> {
    match op {
        Op::Primaries => return primaries(conn.route_command(&Cmd::ping(), all_primaries())?),
        Op::InfoMemory => return conn.route_command(&op.cmd(), all_primaries()),
        _ => {}
    }
    if let Some(node) = op.node() {
        return conn.route_command(&op.cmd(), by_address(node)?);
    }
    super::run_blocking(conn, op)
}

/// The reply of [`Op::Primaries`], from a `PING` to every primary: their
/// addresses. Any primary's error fails the whole.
fn primaries(value: Value) -> RedisResult<Value> {
    let Value::Map(pairs) = value else {
        return Err((ErrorKind::Client, "expected one reply per primary").into());
    };
    let mut nodes = Vec::with_capacity(pairs.len());
    for (node, reply) in pairs {
        if let Value::ServerError(e) = reply {
            return Err(e.into());
        }
        nodes.push(node);
    }
    Ok(Value::Array(nodes))
}

/// Sends a command to every primary and returns each one's reply.
fn all_primaries() -> RoutingInfo {
    RoutingInfo::MultiNode((MultipleNodeRoutingInfo::AllMasters, None))
}

/// Routing to one node given as `host:port`.
fn by_address(node: &str) -> RedisResult<RoutingInfo> {
    node_route(node)
        .map(RoutingInfo::SingleNode)
        .ok_or_else(|| {
            redis::RedisError::from((
                ErrorKind::Client,
                "bad cluster node address",
                node.to_owned(),
            ))
        })
}

fn node_route(node: &str) -> Option<SingleNodeRoutingInfo> {
    let (host, port) = node.rsplit_once(':')?;
    Some(SingleNodeRoutingInfo::ByAddress {
        host: host.to_owned(),
        port: port.parse().ok()?,
    })
}

#[cfg(test)]
mod tests {
    use std::sync::{Arc, LazyLock};

    use forge_cache_testkit::RedisCluster;

    use super::*;
    use crate::backend::memory::{self, Txn};
    use crate::backend::{Arg, Backend};
    use crate::cluster_url::parse_cluster_url;

    /// Adds ARGV[1] to both keys (which share a hash tag); returns the sum.
    static ADD_BOTH: Script = Script {
        lua: LazyLock::new(|| {
            redis::Script::new(
                "local a = redis.call('INCRBY', KEYS[1], ARGV[1]) \
                 redis.call('PEXPIRE', KEYS[1], 60000) \
                 local b = redis.call('INCRBY', KEYS[2], ARGV[1]) \
                 redis.call('PEXPIRE', KEYS[2], 60000) \
                 return a + b",
            )
        }),
        memory: add_both_in_memory,
    };

    fn add_both_in_memory(t: &mut Txn<'_>, keys: &[&str], args: &[Arg<'_>]) -> Value {
        let mut sum = 0;
        for k in keys {
            let v = t.get(k).and_then(memory::Value::as_int).unwrap_or(0) + args[0].int();
            t.set(k, memory::Value::Int(v), Duration::from_secs(60));
            sum += v;
        }
        Value::Int(sum)
    }

    fn backend(cluster: &RedisCluster) -> Backend {
        let nodes = parse_cluster_url(&cluster.url()).unwrap();
        Backend::Cluster(Arc::new(
            ClusterBackend::new(
                nodes,
                &RedisSettings::builder().url(cluster.url()).build().unwrap(),
            )
            .unwrap(),
        ))
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn scripts_run_on_their_slot_and_reload_after_noscript_everywhere() {
        let cluster = RedisCluster::start(3, 0);
        let b = backend(&cluster);
        let keys: Vec<[String; 2]> = (0..30)
            .map(|i| [format!("{{t{i}}}:a"), format!("{{t{i}}}:b")])
            .collect();
        let run = async |round: i64| {
            for [x, y] in &keys {
                let op = Op::Script(&ADD_BOTH, &[x, y], &[Arg::Int(3)]);
                assert_eq!(b.exec(op).await.unwrap(), Value::Int(6 * round));
            }
        };
        run(1).await;
        // Forget the script on every node: each call meets NOSCRIPT once.
        for i in 0..cluster.len() {
            assert_eq!(cluster.cli(i, &["SCRIPT", "FLUSH"]), "OK");
        }
        run(2).await;
        for i in 0..cluster.len() {
            cluster.cli(i, &["SCRIPT", "FLUSH"]);
        }
        let b2 = b.clone();
        let keys2 = keys.clone();
        tokio::task::spawn_blocking(move || {
            for [x, y] in &keys2 {
                let op = Op::Script(&ADD_BOTH, &[x, y], &[Arg::Bytes(b"3")]);
                assert_eq!(b2.exec_blocking(op).unwrap(), Value::Int(18));
            }
        })
        .await
        .unwrap();
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn keys_in_different_slots_fail_with_an_error_not_a_panic() {
        let cluster = RedisCluster::start(3, 0);
        let b = backend(&cluster);
        let op = Op::Script(&ADD_BOTH, &["a", "b"], &[Arg::Int(1)]);
        let err = b.exec(op).await.unwrap_err();
        assert!(
            crate::error::Chain(&err)
                .to_string()
                .to_lowercase()
                .contains("crossslot"),
            "{err}"
        );
    }
}
