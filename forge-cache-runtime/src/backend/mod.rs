//! Backends: what the manager talks to. Every operation is described once
//! as an [`Op`], which knows its Redis command and its in-memory meaning, so
//! every backend and both drivers (async and blocking) share one
//! definition. This module is the only one that knows which backends exist:
//! adding one touches [`Backend`] and its match sites here, nothing else.

pub(crate) mod cluster;
mod io;
mod link;
pub(crate) mod memory;
pub(crate) mod pool;
pub(crate) mod raw;
pub(crate) mod redis;

use std::sync::Arc;
use std::time::Duration;

use ::redis::{Cmd, RedisResult, ScriptInvocation, Value};

use crate::error::{Error, Result};
use crate::settings::{RedisSettings, Target};
use memory::{MemoryStore, Txn};
use pool::{ClusterSyncConnection, SyncConnection};
use raw::AsyncConnection;

/// A Lua script with its in-memory twin. The Lua side runs by SHA
/// (`EVALSHA`), and is loaded again transparently after `NOSCRIPT`.
pub(crate) struct Script {
    pub(crate) lua: std::sync::LazyLock<::redis::Script>,
    /// Runs the same logic on the in-memory store, atomically over the keys
    /// (which must share a hash tag).
    pub(crate) memory: fn(&mut Txn<'_>, &[&str], &[Arg<'_>]) -> Value,
}

/// A script argument.
#[derive(Clone, Copy, Debug)]
pub(crate) enum Arg<'a> {
    Int(i64),
    Bytes(&'a [u8]),
}

impl Arg<'_> {
    pub(crate) fn int(&self) -> i64 {
        match self {
            Arg::Int(i) => *i,
            Arg::Bytes(b) => std::str::from_utf8(b)
                .ok()
                .and_then(|s| s.parse().ok())
                .unwrap_or(0),
        }
    }

    pub(crate) fn bytes(&self) -> Vec<u8> {
        match self {
            Arg::Int(i) => i.to_string().into_bytes(),
            Arg::Bytes(b) => b.to_vec(),
        }
    }
}

impl ::redis::ToRedisArgs for Arg<'_> {
    fn write_redis_args<W: ?Sized + ::redis::RedisWrite>(&self, out: &mut W) {
        match self {
            Arg::Int(i) => i.write_redis_args(out),
            Arg::Bytes(b) => b.write_redis_args(out),
        }
    }
}

/// One backend operation.
#[derive(Clone, Copy)]
pub(crate) enum Op<'a> {
    Get(&'a str),
    /// `MGET`: on a cluster, split by slot and sent to the nodes at once.
    MGet(&'a [&'a str]),
    Set(&'a str, &'a [u8], Duration),
    SetNx(&'a str, &'a [u8], Duration),
    Del(&'a str),
    Pttl(&'a str),
    Expire(&'a str, Duration),
    Ping,
    Script(&'static Script, &'a [&'a str], &'a [Arg<'a>]),
    /// The nodes that hold keys, one name each (`""` on a single server):
    /// the targets of [`Op::Scan`].
    Primaries,
    /// `SCAN cursor MATCH pattern COUNT n` on one node of [`Op::Primaries`].
    Scan(&'a str, u64, &'a str),
    /// `UNLINK` of several keys (split by slot on a cluster).
    Unlink(&'a [Vec<u8>]),
    /// `INFO memory`: its text on a single server; on a cluster, sent to
    /// every primary at once, a map of node address to text.
    InfoMemory,
}

fn millis(ttl: Duration) -> u64 {
    u64::try_from(ttl.as_millis()).unwrap_or(u64::MAX).max(1)
}

impl Op<'_> {
    /// Whether sending it twice has the effect of sending it once (so it
    /// may be sent again after its connection broke).
    pub(crate) fn is_idempotent(&self) -> bool {
        !matches!(self, Op::SetNx(..) | Op::Script(..))
    }

    /// The node an op names, if it is sent to one node of
    /// [`Op::Primaries`] rather than routed by key.
    pub(crate) fn node(&self) -> Option<&str> {
        match *self {
            Op::Scan(node, ..) => Some(node),
            _ => None,
        }
    }

    fn cmd(&self) -> Cmd {
        let mut c;
        match *self {
            Op::Get(k) => {
                c = ::redis::cmd("GET");
                c.arg(k);
            }
            Op::MGet(keys) => {
                c = ::redis::cmd("MGET");
                c.arg(keys);
            }
            Op::Set(k, v, ttl) => {
                c = ::redis::cmd("SET");
                c.arg(k).arg(v).arg("PX").arg(millis(ttl));
            }
            Op::SetNx(k, v, ttl) => {
                c = ::redis::cmd("SET");
                c.arg(k).arg(v).arg("NX").arg("PX").arg(millis(ttl));
            }
            Op::Del(k) => {
                c = ::redis::cmd("UNLINK");
                c.arg(k);
            }
            Op::Pttl(k) => {
                c = ::redis::cmd("PTTL");
                c.arg(k);
            }
            Op::Expire(k, ttl) => {
                c = ::redis::cmd("PEXPIRE");
                c.arg(k).arg(millis(ttl));
            }
            Op::Ping | Op::Primaries => c = ::redis::cmd("PING"),
            Op::Scan(_, cursor, pattern) => {
                c = ::redis::cmd("SCAN");
                c.arg(cursor)
                    .arg("MATCH")
                    .arg(pattern)
                    .arg("COUNT")
                    .arg(SCAN_BATCH);
            }
            Op::Unlink(keys) => {
                c = ::redis::cmd("UNLINK");
                c.arg(keys);
            }
            Op::InfoMemory => {
                c = ::redis::cmd("INFO");
                c.arg("memory");
            }
            Op::Script(script, keys, args) => {
                c = ::redis::cmd("EVALSHA");
                c.arg(script.lua.get_hash()).arg(keys.len());
                for k in keys {
                    c.arg(*k);
                }
                for a in args {
                    c.arg(a);
                }
            }
        }
        c
    }

    fn on_memory(&self, m: &MemoryStore) -> Value {
        match *self {
            Op::Get(k) => m
                .get(k)
                .map_or(Value::Nil, |b| Value::BulkString(b.to_vec())),
            Op::MGet(keys) => Value::Array(
                keys.iter()
                    .map(|k| {
                        m.get(k)
                            .map_or(Value::Nil, |b| Value::BulkString(b.to_vec()))
                    })
                    .collect(),
            ),
            Op::Set(k, v, ttl) => {
                m.set(k, memory::Value::Bytes(Arc::from(v)), ttl);
                Value::Okay
            }
            Op::SetNx(k, v, ttl) => {
                if m.set_nx(k, memory::Value::Bytes(Arc::from(v)), ttl) {
                    Value::Okay
                } else {
                    Value::Nil
                }
            }
            Op::Del(k) => Value::Int(m.del(k).into()),
            Op::Pttl(k) => Value::Int(m.pttl(k).map_or(-2, |d| d.as_millis() as i64)),
            Op::Expire(k, ttl) => Value::Int(m.expire(k, ttl).into()),
            Op::Ping => Value::SimpleString("PONG".into()),
            Op::Script(script, keys, args) => {
                let first = keys.first().copied().unwrap_or("");
                m.txn(first, |t| (script.memory)(t, keys, args))
            }
            Op::Primaries => single_node(),
            Op::Scan(_, _, pattern) => Value::Array(vec![
                Value::BulkString(b"0".to_vec()),
                Value::Array(
                    m.keys_matching(pattern)
                        .into_iter()
                        .map(|k| Value::BulkString(k.as_bytes().to_vec()))
                        .collect(),
                ),
            ]),
            Op::Unlink(keys) => Value::Int(
                keys.iter()
                    .filter(|k| std::str::from_utf8(k).is_ok_and(|k| m.del(k)))
                    .count() as i64,
            ),
            Op::InfoMemory => Value::BulkString(m.info_memory().into_bytes()),
        }
    }
}

/// Keys per `SCAN` step, and so per `UNLINK` batch, in pattern deletion.
pub(crate) const SCAN_BATCH: usize = 500;

/// The reply of [`Op::Primaries`] on a single server: one unnamed node.
fn single_node() -> Value {
    Value::Array(vec![Value::BulkString(Vec::new())])
}

/// The backend a manager talks to.
#[derive(Clone)]
pub(crate) enum Backend {
    Memory(Arc<MemoryStore>),
    Redis(Arc<redis::RedisBackend>),
    Cluster(Arc<cluster::ClusterBackend>),
    /// The configuration was invalid; every operation fails like an outage.
    Disabled(Arc<str>),
}

impl Backend {
    /// The backend `settings` name. Nothing connects yet. This is the only
    /// place that maps settings to a backend.
    pub(crate) fn new(settings: &RedisSettings) -> Result<Self> {
        Ok(match &settings.target {
            Target::Memory => {
                tracing::info!(
                    target: "forge_cache",
                    max_entries = settings.memory_max_entries,
                    "using the in-memory backend: entries live in this process only and are not shared with other processes"
                );
                Backend::Memory(Arc::new(MemoryStore::new(settings.memory_max_entries)))
            }
            Target::Redis(info) => Backend::Redis(Arc::new(redis::RedisBackend::new(
                (**info).clone(),
                settings,
            )?)),
            Target::Cluster(nodes) => Backend::Cluster(Arc::new(cluster::ClusterBackend::new(
                nodes.clone(),
                settings,
            )?)),
        })
    }

    /// Why the backend is disabled, if it is.
    pub(crate) fn disabled_reason(&self) -> Option<&str> {
        match self {
            Backend::Disabled(why) => Some(why),
            _ => None,
        }
    }

    /// Whether operations complete in this process without I/O.
    pub(crate) fn is_local(&self) -> bool {
        matches!(self, Backend::Memory(_))
    }

    /// Runs `op` on the async connection, on the caller's runtime.
    pub(crate) async fn exec(&self, op: Op<'_>) -> Result<Value> {
        match self {
            Backend::Memory(m) => Ok(op.on_memory(m)),
            Backend::Redis(r) => r.exec(op).await,
            Backend::Cluster(c) => c.exec(op).await,
            Backend::Disabled(why) => Err(Error::Disabled(why.to_string())),
        }
    }

    /// Runs `op` on a pooled blocking connection, on this thread.
    pub(crate) fn exec_blocking(&self, op: Op<'_>) -> Result<Value> {
        match self {
            Backend::Memory(m) => Ok(op.on_memory(m)),
            Backend::Redis(r) => r.exec_blocking(op),
            Backend::Cluster(c) => c.exec_blocking(op),
            Backend::Disabled(why) => Err(Error::Disabled(why.to_string())),
        }
    }

    /// The raw async connection: single-server (`cluster == false`) or
    /// cluster.
    pub(crate) fn raw(&self, cluster: bool) -> Result<AsyncConnection> {
        match (self, cluster) {
            (Backend::Redis(r), false) => Ok(AsyncConnection::redis(r.clone(), r.db())),
            (Backend::Cluster(c), true) => Ok(AsyncConnection::cluster(c.clone())),
            _ => Err(unsupported(cluster)),
        }
    }

    /// A raw blocking single-server connection, lent by the pool.
    pub(crate) fn raw_blocking(&self) -> Result<SyncConnection> {
        match self {
            Backend::Redis(r) => r.lend_blocking(),
            _ => Err(unsupported(false)),
        }
    }

    /// A raw blocking cluster connection, lent by the pool.
    pub(crate) fn raw_cluster_blocking(&self) -> Result<ClusterSyncConnection> {
        match self {
            Backend::Cluster(c) => c.lend_blocking(),
            _ => Err(unsupported(true)),
        }
    }
}

fn unsupported(cluster: bool) -> Error {
    Error::Unsupported(if cluster {
        "a Redis Cluster connection (this manager is not on a cluster)"
    } else {
        "a single-server Redis connection (this manager is not on a single Redis server; on a cluster use redis_cluster)"
    })
}

/// Runs `op` on a single-server or cluster connection. On a cluster the
/// command (or `EVALSHA`, by its first key) goes to the slot's primary, and
/// `SCRIPT LOAD` after `NOSCRIPT` goes to every node.
pub(crate) async fn run_async(
    conn: &mut impl ::redis::aio::ConnectionLike,
    op: Op<'_>,
) -> RedisResult<Value> {
    match op {
        Op::Script(script, keys, args) => invocation(script, keys, args).invoke_async(conn).await,
        Op::Primaries => Ok(single_node()),
        op => op.cmd().query_async(conn).await,
    }
}

/// Blocking form of [`run_async`].
pub(crate) fn run_blocking(
    conn: &mut dyn ::redis::ConnectionLike,
    op: Op<'_>,
) -> RedisResult<Value> {
    match op {
        Op::Script(script, keys, args) => invocation(script, keys, args).invoke(conn),
        Op::Primaries => Ok(single_node()),
        op => op.cmd().query(conn),
    }
}

fn invocation<'s>(script: &'s Script, keys: &[&str], args: &[Arg<'_>]) -> ScriptInvocation<'s> {
    let mut inv = script.lua.prepare_invoke();
    for k in keys {
        inv.key(*k);
    }
    for a in args {
        inv.arg(a);
    }
    inv
}

/// Converts a reply into `T`. A reply of another type is a protocol error
/// naming `T` only: redis-rs's conversion error quotes the reply, which can
/// be stored data (a session, a value).
pub(crate) fn reply<T: ::redis::FromRedisValue>(v: Value) -> Result<T> {
    ::redis::from_redis_value(v).map_err(|_| {
        Error::Protocol(format!(
            "reply not convertible to {}",
            std::any::type_name::<T>()
        ))
    })
}
