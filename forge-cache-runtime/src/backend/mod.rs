//! Backends: what the manager talks to. Every operation is described once
//! as an [`Op`], which knows its Redis command and its in-memory meaning, so
//! both backends and both (async and sync) call styles share one definition.

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
use memory::{MemoryStore, Txn};

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
    Set(&'a str, &'a [u8], Duration),
    SetNx(&'a str, &'a [u8], Duration),
    Del(&'a str),
    Pttl(&'a str),
    Expire(&'a str, Duration),
    Ping,
    Script(&'static Script, &'a [&'a str], &'a [Arg<'a>]),
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

    fn cmd(&self) -> Cmd {
        let mut c;
        match *self {
            Op::Get(k) => {
                c = ::redis::cmd("GET");
                c.arg(k);
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
            Op::Ping => c = ::redis::cmd("PING"),
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
        }
    }
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
    pub(crate) async fn exec(&self, op: Op<'_>) -> Result<Value> {
        match self {
            Backend::Memory(m) => Ok(op.on_memory(m)),
            Backend::Redis(r) => r.exec(op).await,
            Backend::Cluster(c) => c.exec(op).await,
            Backend::Disabled(why) => Err(Error::Disabled(why.to_string())),
        }
    }

    pub(crate) fn exec_sync(&self, op: Op<'_>) -> Result<Value> {
        match self {
            Backend::Memory(m) => Ok(op.on_memory(m)),
            Backend::Redis(r) => r.exec_sync(op),
            Backend::Cluster(c) => c.exec_sync(op),
            Backend::Disabled(why) => Err(Error::Disabled(why.to_string())),
        }
    }

    pub(crate) async fn delete_pattern(&self, pattern: &str) -> Result<u64> {
        match self {
            Backend::Memory(m) => Ok(m.delete_pattern(pattern)),
            Backend::Redis(r) => r.delete_pattern(pattern).await,
            Backend::Cluster(c) => c.delete_pattern(pattern).await,
            Backend::Disabled(why) => Err(Error::Disabled(why.to_string())),
        }
    }

    pub(crate) fn delete_pattern_sync(&self, pattern: &str) -> Result<u64> {
        match self {
            Backend::Memory(m) => Ok(m.delete_pattern(pattern)),
            Backend::Redis(r) => r.delete_pattern_sync(pattern),
            Backend::Cluster(c) => c.delete_pattern_sync(pattern),
            Backend::Disabled(why) => Err(Error::Disabled(why.to_string())),
        }
    }
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
        op => op.cmd().query_async(conn).await,
    }
}

/// Sync form of [`run_async`].
pub(crate) fn run_sync(conn: &mut dyn ::redis::ConnectionLike, op: Op<'_>) -> RedisResult<Value> {
    match op {
        Op::Script(script, keys, args) => invocation(script, keys, args).invoke(conn),
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
