//! Stampede options of `#[cache_result]`: `stale_ttl` (serve an expired
//! value for a while, and when the function fails, while one caller
//! refreshes it) and `early_refresh` (probabilistic early recomputation,
//! XFetch: Vattani, Chierichetti, Lowenstein, "Optimal Probabilistic Cache
//! Stampede Prevention", VLDB 2015).
//!
//! XFetch: with `delta` the time the function took last time, `beta`
//! (default 1; larger refreshes earlier) and `time_left` until the value
//! expires, each read recomputes early when
//! `delta * beta * -ln(rand()) >= time_left`, i.e. with probability
//! `exp(-time_left / (delta * beta))`. Reads long before expiry almost never
//! recompute; the closer to expiry and the slower the function, the likelier
//! one reader refreshes first, so the value is replaced before it expires
//! instead of by a burst of misses after.

use std::cell::Cell;
use std::sync::LazyLock;
use std::time::Duration;

use ::redis::Value;

use crate::backend::memory::Txn;
use crate::backend::{Arg, Script};

/// `GET` and `PTTL` of one key in one round trip: `nil` or `{value, pttl}`.
pub(crate) static GET_WITH_PTTL: Script = Script {
    lua: LazyLock::new(|| {
        ::redis::Script::new(
            r"
local v = redis.call('GET', KEYS[1])
if not v then return false end
return {v, redis.call('PTTL', KEYS[1])}",
        )
    }),
    memory: get_with_pttl_in_memory,
};

fn get_with_pttl_in_memory(t: &mut Txn<'_>, keys: &[&str], _: &[Arg<'_>]) -> Value {
    let Some(v) = t.get(keys[0]).map(|v| v.to_bytes()) else {
        return Value::Nil;
    };
    let pttl = t.pttl(keys[0]).map_or(-2, |d| d.as_millis() as i64);
    Value::Array(vec![Value::BulkString(v.to_vec()), Value::Int(pttl)])
}

/// Whether a read with `time_left` until expiry should recompute now
/// (XFetch), given a uniform `r` in `(0, 1]`.
pub(crate) fn xfetch(delta: Duration, beta: f64, time_left: Duration, r: f64) -> bool {
    delta.as_secs_f64() * beta * -r.ln() >= time_left.as_secs_f64()
}

/// A uniform number in `(0, 1]` from a per-thread xorshift generator
/// (seeded from the OS), cheap enough for every read.
pub(crate) fn uniform() -> f64 {
    thread_local! {
        static STATE: Cell<u64> = Cell::new({
            let mut seed = [0u8; 8];
            let _ = getrandom::fill(&mut seed);
            u64::from_le_bytes(seed) | 1
        });
    }
    STATE.with(|s| {
        let mut x = s.get();
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        s.set(x);
        ((x >> 11) as f64 + 1.0) / (1u64 << 53) as f64
    })
}

/// The key that marks "one caller is refreshing this entry", so the other
/// processes keep serving the current value meanwhile. `%` never appears
/// in a key part (it is escaped, and banned in templates), so this cannot
/// be another entry's key.
pub(crate) fn marker_key(key: &str) -> String {
    let mut m = String::with_capacity(key.len() + 9);
    m.push_str(key);
    m.push_str(":%refresh");
    m
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: fn(u64) -> Duration = Duration::from_millis;

    #[test]
    fn xfetch_recomputes_near_expiry_and_rarely_long_before() {
        let runs = |left: u64| {
            (0..10_000)
                .filter(|_| xfetch(MS(100), 1.0, MS(left), uniform()))
                .count()
        };
        // P = exp(-left / (delta * beta)).
        assert!(runs(10_000) == 0, "exp(-100) is practically never");
        let near = runs(100); // exp(-1) = 36.8 %
        assert!((3_000..4_400).contains(&near), "{near}");
        assert!(runs(0) == 10_000, "an expired value always refreshes");
    }

    #[test]
    fn larger_beta_refreshes_earlier() {
        assert!(!xfetch(MS(100), 1.0, MS(500), 0.1));
        assert!(xfetch(MS(100), 3.0, MS(500), 0.1));
    }

    #[test]
    fn uniform_stays_in_range() {
        for _ in 0..100_000 {
            let r = uniform();
            assert!(r > 0.0 && r <= 1.0);
        }
    }
}
