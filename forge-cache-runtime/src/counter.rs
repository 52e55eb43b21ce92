//! Counters that always expire: `INCRBY` and, when the key has no TTL
//! (it was just created, or a TTL was lost), `PEXPIRE`, in one script.
//!
//! A bare `INCR` after reading the counter is not enough: when
//! the key expires between the two calls, `INCR` creates a counter with no
//! TTL that never goes away. This script cannot leave one behind.

use std::sync::LazyLock;
use std::time::Duration;

use redis::Value;

use crate::backend::memory::{self, Txn};
use crate::backend::{Arg, Op, Script, reply};
use crate::block::Manager;
use crate::drive::{Async, Drive, block_now};
use crate::error::Result;
use crate::manager::CacheManager;

static INCR_WITH_TTL: Script = Script {
    lua: LazyLock::new(|| {
        redis::Script::new(
            r"
local n = redis.call('INCRBY', KEYS[1], ARGV[1])
if redis.call('PTTL', KEYS[1]) < 0 then
  redis.call('PEXPIRE', KEYS[1], ARGV[2])
end
return n",
        )
    }),
    memory: incr_in_memory,
};

fn incr_in_memory(t: &mut Txn<'_>, keys: &[&str], args: &[Arg<'_>]) -> Value {
    let (key, by, ttl_ms) = (keys[0], args[0].int(), args[1].int());
    let (current, ttl) = match t.get(key) {
        Some(v) => match v.as_int() {
            Some(n) => (n, t.pttl(key)),
            None => return Value::Nil,
        },
        None => (0, None),
    };
    let n = current.saturating_add(by);
    let ttl = ttl.unwrap_or(Duration::from_millis(ttl_ms.max(1) as u64));
    t.set(key, memory::Value::Int(n), ttl);
    Value::Int(n)
}

/// `incr`, written once for both drivers.
async fn incr<D: Drive>(d: &D, key: &str, by: i64, ttl: Duration) -> Result<i64> {
    let key = d.manager().full_key(key);
    let args = [Arg::Int(by), Arg::Int(ttl_ms(ttl))];
    reply(d.exec(Op::Script(&INCR_WITH_TTL, &[&key], &args)).await?)
}

impl CacheManager {
    /// Adds `by` to the integer counter at `key` and returns the new value.
    /// A new counter (or one that somehow lost its TTL) gets `ttl`; an
    /// existing counter keeps its remaining TTL. One atomic round trip.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")] async fn main() -> forge_cache_runtime::Result<()> {
    /// use std::time::Duration;
    /// let cache = forge_cache_runtime::CacheManager::new(Default::default())?;
    /// assert_eq!(cache.incr("visits", 1, Duration::from_secs(60)).await?, 1);
    /// assert_eq!(cache.incr("visits", 2, Duration::from_secs(60)).await?, 3);
    /// assert!(cache.ttl("visits").await?.is_some());
    /// # Ok(()) }
    /// ```
    pub async fn incr(&self, key: &str, by: i64, ttl: Duration) -> Result<i64> {
        incr(&Async(self), key, by, ttl).await
    }
}

impl Manager<'_> {
    /// Blocking form of [`CacheManager::incr`].
    ///
    /// ```
    /// # let cache = forge_cache_runtime::CacheManager::new(forge_cache_runtime::RedisSettings::memory())?;
    /// use std::time::Duration;
    /// assert_eq!(cache.blocking().incr("visits", 1, Duration::from_secs(60))?, 1);
    /// # Ok::<(), forge_cache_runtime::Error>(())
    /// ```
    pub fn incr(&self, key: &str, by: i64, ttl: Duration) -> Result<i64> {
        block_now(incr(&self.drive(), key, by, ttl))
    }
}

fn ttl_ms(ttl: Duration) -> i64 {
    (ttl.as_millis() as i64).max(1)
}
