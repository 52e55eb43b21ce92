//! The three algorithms, each as a Lua script and its in-memory twin.
//!
//! Every script takes `KEYS[1]` (the limiter key), `ARGV[1]` (max requests,
//! at least 1) and `ARGV[2]` (the window in milliseconds, at least 1), reads
//! the clock once (`TIME` on Redis, the transaction's instant in memory),
//! and returns `{allowed (0|1), remaining, reset_after µs, retry_after µs}`.
//!
//! All arithmetic is on integers below 2^53, so Lua's doubles are exact and
//! the twins (in `i128`) give the same answers. Each algorithm tags its
//! stored value (`<n>`, `s<window>:<cur>:<prev>`, `g<tat>`), so switching a
//! limiter to another algorithm starts it afresh instead of misreading the
//! old value. Every write sets a TTL; a key found without one gets one back.

use std::sync::{Arc, LazyLock};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use redis::Value;

use crate::backend::memory::{self, Txn};
use crate::backend::{Arg, Script};

/// `math.floor` division that stays exact where `a / b` rounds up to an
/// integer.
const IDIV: &str = r"
local function idiv(a, b)
  local q = math.floor(a / b)
  if q * b > a then q = q - 1 end
  return q
end
";

pub(crate) static FIXED_WINDOW: Script = Script {
    lua: LazyLock::new(|| redis::Script::new(FIXED_WINDOW_LUA)),
    memory: fixed_window,
};

pub(crate) static SLIDING_WINDOW: Script = Script {
    lua: LazyLock::new(|| redis::Script::new(&format!("{IDIV}{SLIDING_WINDOW_LUA}"))),
    memory: sliding_window,
};

pub(crate) static GCRA: Script = Script {
    lua: LazyLock::new(|| redis::Script::new(&format!("{IDIV}{GCRA_LUA}"))),
    memory: gcra,
};

// ----- fixed window ---------------------------------------------------------

/// The window opens with the first request (`SET 1 PX window`); later
/// requests `INCR` while below the limit (INCR keeps the TTL).
const FIXED_WINDOW_LUA: &str = r"
local key = KEYS[1]
local limit = tonumber(ARGV[1])
local window = tonumber(ARGV[2])
local count = tonumber(redis.call('GET', key))
if count == nil then
  redis.call('SET', key, 1, 'PX', window)
  return {1, limit - 1, window * 1000, 0}
end
local ttl = redis.call('PTTL', key)
if ttl < 0 then
  redis.call('PEXPIRE', key, window)
  ttl = window
end
if count >= limit then
  return {0, 0, ttl * 1000, ttl * 1000}
end
redis.call('INCR', key)
return {1, limit - count - 1, ttl * 1000, 0}
";

fn fixed_window(t: &mut Txn<'_>, keys: &[&str], args: &[Arg<'_>]) -> Value {
    let (key, limit, window) = params(keys, args);
    let count = t.get(key).and_then(memory::Value::as_int);
    let Some(count) = count.map(i128::from) else {
        t.set(key, memory::Value::Int(1), ms(window));
        return out(true, limit - 1, window * 1000, 0);
    };
    let ttl = t.pttl(key).unwrap_or(ms(window));
    // Rounded up: a caller that waits `retry_after` must find the window
    // over, not a fraction of a millisecond short of it.
    let ttl_ms = ttl.as_nanos().div_ceil(1_000_000) as i128;
    if count >= limit {
        return out(false, 0, ttl_ms * 1000, ttl_ms * 1000);
    }
    t.set(key, memory::Value::Int(count as i64 + 1), ttl);
    out(true, limit - count - 1, ttl_ms * 1000, 0)
}

// ----- sliding window -------------------------------------------------------

/// Windows aligned to the clock (`idx = floor(now / window)`); the value
/// holds the current window's index and the counts of it and the one before.
/// Admitted while `prev × (window − elapsed) + (cur + 1) × window ≤ limit ×
/// window`, i.e. `prev × unelapsed fraction + cur < limit`.
const SLIDING_WINDOW_LUA: &str = r"
local key = KEYS[1]
local limit = tonumber(ARGV[1])
local window = tonumber(ARGV[2])
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + idiv(tonumber(t[2]), 1000)
local idx = idiv(now, window)
local elapsed = now - idx * window
local cur, prev = 0, 0
local stored = redis.call('GET', key)
if stored then
  local w, c, p = string.match(stored, '^s(%d+):(%d+):(%d+)$')
  w = tonumber(w)
  if w == idx then
    cur, prev = tonumber(c), tonumber(p)
  elseif w == idx - 1 then
    prev = tonumber(c)
  end
end
local used = prev * (window - elapsed) + cur * window
if used + window <= limit * window then
  local ttl = 2 * window - elapsed
  redis.call('SET', key, string.format('s%d:%d:%d', idx, cur + 1, prev), 'PX', ttl)
  return {1, idiv(limit * window - used - window, window), ttl * 1000, 0}
end
if stored and redis.call('PTTL', key) < 0 then
  redis.call('PEXPIRE', key, 2 * window - elapsed)
end
local retry
if cur >= limit then
  retry = (window - elapsed) + window - idiv((limit - 1) * window, cur)
else
  retry = (window - elapsed) - idiv((limit - cur - 1) * window, math.max(prev, 1))
end
local reset = window - elapsed
if cur > 0 then reset = reset + window end
return {0, 0, reset * 1000, retry * 1000}
";

fn sliding_window(t: &mut Txn<'_>, keys: &[&str], args: &[Arg<'_>]) -> Value {
    let (key, limit, window) = params(keys, args);
    let now = epoch_micros(t.now()) / 1000;
    let idx = now / window;
    let elapsed = now - idx * window;
    let (mut cur, mut prev) = (0, 0);
    let stored = t.get(key).and_then(|v| parse_sliding(&v.to_bytes()));
    if let Some((w, c, p)) = stored {
        if w == idx {
            (cur, prev) = (c, p);
        } else if w == idx - 1 {
            prev = c;
        }
    }
    let used = prev * (window - elapsed) + cur * window;
    if used + window <= limit * window {
        let ttl = 2 * window - elapsed;
        let value = format!("s{idx}:{}:{prev}", cur + 1);
        t.set(
            key,
            memory::Value::Bytes(Arc::from(value.as_bytes())),
            ms(ttl),
        );
        return out(
            true,
            (limit * window - used - window) / window,
            ttl * 1000,
            0,
        );
    }
    let retry = if cur >= limit {
        (window - elapsed) + window - (limit - 1) * window / cur
    } else {
        (window - elapsed) - (limit - cur - 1) * window / prev.max(1)
    };
    let reset = window - elapsed + if cur > 0 { window } else { 0 };
    out(false, 0, reset * 1000, retry * 1000)
}

fn parse_sliding(v: &[u8]) -> Option<(i128, i128, i128)> {
    let s = std::str::from_utf8(v).ok()?.strip_prefix('s')?;
    let mut it = s.split(':').map(|n| {
        (!n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()))
            .then(|| n.parse::<i128>().ok())
            .flatten()
    });
    let parsed = (it.next()??, it.next()??, it.next()??);
    it.next().is_none().then_some(parsed)
}

// ----- GCRA ------------------------------------------------------------------

/// Generic cell rate algorithm in microseconds. `interval` = window / limit
/// (rounded down, at least 1 µs) is the cost of one request; the stored
/// value is the theoretical arrival time (TAT) of the next request. A request
/// is admitted when `max(tat, now) + interval − now ≤ limit × interval`, so a
/// full bucket takes a burst of exactly `limit`.
const GCRA_LUA: &str = r"
local key = KEYS[1]
local limit = tonumber(ARGV[1])
local window = tonumber(ARGV[2]) * 1000
local interval = math.max(1, idiv(window, limit))
local capacity = interval * limit
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local tat = now
local stored = redis.call('GET', key)
if stored then
  local m = string.match(stored, '^g(%d+)$')
  local v = m and tonumber(m)
  if v and v > now then tat = v end
end
local fill = tat + interval - now
if fill <= capacity then
  redis.call('SET', key, string.format('g%d', now + fill), 'PX', idiv(fill + 999, 1000))
  return {1, idiv(capacity - fill, interval), fill, 0}
end
if stored and redis.call('PTTL', key) < 0 then
  redis.call('PEXPIRE', key, idiv(tat - now + 999, 1000))
end
return {0, 0, tat - now, fill - capacity}
";

fn gcra(t: &mut Txn<'_>, keys: &[&str], args: &[Arg<'_>]) -> Value {
    let (key, limit, window) = params(keys, args);
    let window = window * 1000;
    let interval = (window / limit).max(1);
    let capacity = interval * limit;
    let now = epoch_micros(t.now());
    let stored = t.get(key).and_then(|v| parse_gcra(&v.to_bytes()));
    let tat = stored.filter(|&v| v > now).unwrap_or(now);
    let fill = tat + interval - now;
    if fill <= capacity {
        let value = format!("g{}", now + fill);
        let ttl = Duration::from_millis(((fill + 999) / 1000) as u64);
        t.set(key, memory::Value::Bytes(Arc::from(value.as_bytes())), ttl);
        return out(true, (capacity - fill) / interval, fill, 0);
    }
    out(false, 0, tat - now, fill - capacity)
}

fn parse_gcra(v: &[u8]) -> Option<i128> {
    let digits = std::str::from_utf8(v).ok()?.strip_prefix('g')?;
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    digits.parse().ok()
}

// ----- shared -------------------------------------------------------------

fn params<'k>(keys: &[&'k str], args: &[Arg<'_>]) -> (&'k str, i128, i128) {
    let key = keys.first().copied().unwrap_or_default();
    let arg = |i: usize| i128::from(args.get(i).map_or(1, Arg::int).max(1));
    (key, arg(0), arg(1))
}

fn ms(n: i128) -> Duration {
    Duration::from_millis(n.max(1) as u64)
}

fn out(allowed: bool, remaining: i128, reset_us: i128, retry_us: i128) -> Value {
    Value::Array(
        [i128::from(allowed), remaining, reset_us, retry_us]
            .into_iter()
            .map(|n| Value::Int(n as i64))
            .collect(),
    )
}

/// Microseconds since the Unix epoch at `at`: the wall clock read once per
/// process, advanced by the monotonic clock, so the memory backend's windows
/// line up with Redis's and never run backwards.
fn epoch_micros(at: Instant) -> i128 {
    static BASE: LazyLock<(Instant, i128)> = LazyLock::new(|| {
        let wall = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_micros() as i128);
        (Instant::now(), wall)
    });
    let (base, wall) = *BASE;
    wall + at.saturating_duration_since(base).as_micros() as i128
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stored_values_of_other_algorithms_are_not_misread() {
        assert_eq!(parse_sliding(b"s12:3:4"), Some((12, 3, 4)));
        assert_eq!(parse_sliding(b"g123"), None);
        assert_eq!(parse_sliding(b"s1:2"), None);
        assert_eq!(parse_sliding(b"s1:2:3:4"), None);
        assert_eq!(parse_sliding(b"s1:-2:3"), None);
        assert_eq!(parse_gcra(b"g17"), Some(17));
        assert_eq!(parse_gcra(b"5"), None);
        assert_eq!(parse_gcra(b"g"), None);
    }
}
