//! The lock's three atomic operations, each one Lua script (run by hash)
//! with its in-memory twin, so both backends behave the same.
//!
//! Keys: `KEYS[1]` is the lock, `KEYS[2]` its fencing counter; both carry
//! the lock name as their hash tag, so on Redis Cluster they live in one
//! slot and one script may touch both.

use std::sync::LazyLock;
use std::sync::atomic::{AtomicI64, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use redis::Value;

use crate::backend::memory::{self, Txn};
use crate::backend::{Arg, Script};

/// `ARGV`: token, lock TTL (ms), fence TTL (ms). Returns the fencing token
/// (> 0) when the lock was free and is now ours, 0 when someone holds it.
///
/// The fencing token is `max(previous + 1, server time in µs)`: it grows by
/// one per acquisition while the counter key lives, and stays above every
/// earlier token even if the counter key expired or was lost (as long as
/// the server clock does not jump back).
///
/// `replicate_commands` lets Redis 3.2 to 4.x write after reading `TIME`
/// (replicating the effects); from Redis 5 it is the default and the call
/// is a no-op.
const ACQUIRE_LUA: &str = r"
redis.replicate_commands()
if not redis.call('SET', KEYS[1], ARGV[1], 'NX', 'PX', ARGV[2]) then
  return 0
end
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local last = tonumber(redis.call('GET', KEYS[2]) or '0') or 0
local fence = math.max(last + 1, now)
redis.call('SET', KEYS[2], string.format('%d', fence), 'PX', ARGV[3])
return fence
";

/// `ARGV`: token. Deletes the lock only if it still holds our token.
/// Returns 1 when released, 0 when it was not ours (any more).
const RELEASE_LUA: &str = r"
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('DEL', KEYS[1])
end
return 0
";

/// `ARGV`: token, TTL (ms). Sets the lock's TTL to the given value, only if
/// it still holds our token. Returns 1 when extended, 0 otherwise.
const EXTEND_LUA: &str = r"
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('PEXPIRE', KEYS[1], ARGV[2])
end
return 0
";

pub(super) static ACQUIRE: Script = Script {
    lua: LazyLock::new(|| redis::Script::new(ACQUIRE_LUA)),
    memory: acquire_in_memory,
};

pub(super) static RELEASE: Script = Script {
    lua: LazyLock::new(|| redis::Script::new(RELEASE_LUA)),
    memory: release_in_memory,
};

pub(super) static EXTEND: Script = Script {
    lua: LazyLock::new(|| redis::Script::new(EXTEND_LUA)),
    memory: extend_in_memory,
};

/// A millisecond TTL argument, as the in-memory twins read it (at least
/// 1 ms, as `PX` and `PEXPIRE` require).
pub(crate) fn arg_duration(arg: Option<&Arg<'_>>) -> Duration {
    Duration::from_millis(arg.map_or(1, Arg::int).max(1) as u64)
}

fn holds(t: &mut Txn<'_>, key: &str, token: Option<&Arg<'_>>) -> bool {
    match (t.get(key), token) {
        (Some(v), Some(token)) => *v.to_bytes() == *token.bytes(),
        _ => false,
    }
}

fn acquire_in_memory(t: &mut Txn<'_>, keys: &[&str], args: &[Arg<'_>]) -> Value {
    let (&[lock, fence_key], [token, ttl, fence_ttl]) = (keys, args) else {
        return Value::Int(0);
    };
    if t.get(lock).is_some() {
        return Value::Int(0);
    }
    t.set(
        lock,
        memory::Value::Bytes(token.bytes().into()),
        arg_duration(Some(ttl)),
    );
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_micros() as i64);
    let last = t
        .get(fence_key)
        .and_then(memory::Value::as_int)
        .unwrap_or(0);
    let fence = next_fence(last.saturating_add(1).max(now));
    t.set(
        fence_key,
        memory::Value::Int(fence),
        arg_duration(Some(fence_ttl)),
    );
    Value::Int(fence)
}

/// The in-memory store lives in this process, so tokens can also be made
/// unique process-wide: two acquisitions within one microsecond after the
/// counter was lost still get distinct, increasing tokens.
fn next_fence(candidate: i64) -> i64 {
    static LAST: AtomicI64 = AtomicI64::new(0);
    let prev = LAST
        .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |last| {
            Some(candidate.max(last.saturating_add(1)))
        })
        .unwrap_or_else(|prev| prev);
    candidate.max(prev.saturating_add(1))
}

fn release_in_memory(t: &mut Txn<'_>, keys: &[&str], args: &[Arg<'_>]) -> Value {
    let Some(&lock) = keys.first() else {
        return Value::Int(0);
    };
    let released = holds(t, lock, args.first()) && t.del(lock);
    Value::Int(released.into())
}

fn extend_in_memory(t: &mut Txn<'_>, keys: &[&str], args: &[Arg<'_>]) -> Value {
    let Some(&lock) = keys.first() else {
        return Value::Int(0);
    };
    let extended = holds(t, lock, args.first()) && t.expire(lock, arg_duration(args.get(1)));
    Value::Int(extended.into())
}
