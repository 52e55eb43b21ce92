//! Tags: `#[cache_result(tags = ["user:{user_id}"])]` and
//! [`invalidate_tag`], which drops every entry written under a tag, whatever
//! its function and arguments, in O(1).
//!
//! Each tag has a version key, `[namespace:]%tag:<tag>`, holding a random
//! version. An entry records the versions of its tags as they were *before*
//! its value was computed; a hit reads the entry and the version keys in one
//! `MGET` (split by slot and sent to the nodes at once on a cluster) and is
//! a hit only when every version still matches. Invalidating a tag deletes
//! its version key: one `UNLINK`, never a `SCAN`, after which no entry
//! recorded under it matches. The next miss writes a new random version
//! (128 bits: an old version never comes back).
//!
//! Because versions are read before the function runs, an invalidation
//! that lands while a value is being computed (from data that may predate
//! the change) makes that value a miss as soon as it is stored: the race
//! of "compute, invalidate, store" cannot leave a stale entry behind.
//!
//! A version key lives at least as long as the longest entry that can
//! record it (the TTL plus `stale_ttl`, and a day at least); a miss extends
//! it. When it expires anyway, its entries turn into misses: never stale.

use std::borrow::Cow;
use std::sync::{Arc, LazyLock};
use std::time::Duration;

use ::redis::Value;

use super::site::KeyTemplate;
use crate::backend::memory::{self, Txn};
use crate::backend::{Arg, Op, Script, reply};
use crate::block::Manager;
use crate::drive::{Async, Blocking, Drive, block_now};
use crate::error::{Error, Result};
use crate::global::current;
use crate::key::join_key;
use crate::manager::CacheManager;

/// The tags of one call, rendered from its arguments as their version keys
/// without the namespace (`%tag:<tag>`).
///
/// ```
/// use forge_cache_runtime::__private::{KeyTemplate, Tags};
/// let mut t = KeyTemplate::new(16);
/// t.lit("%tag:user:");
/// t.part(&42);
/// let mut tags = Tags::with_capacity(1);
/// tags.push(t);
/// # let _ = tags;
/// ```
#[derive(Debug, Default)]
pub struct Tags(pub(crate) Vec<String>);

impl Tags {
    /// No tags.
    pub const NONE: Tags = Tags(Vec::new());

    /// Room for `n` tags.
    pub fn with_capacity(n: usize) -> Self {
        Tags(Vec::with_capacity(n))
    }

    /// Adds a rendered version key (`%tag:<tag>`).
    pub fn push(&mut self, tag: KeyTemplate) {
        self.0.push(tag.into_string());
    }
}

/// A version key lives at least this long.
const MIN_VERSION_TTL: Duration = Duration::from_secs(24 * 3600);

/// The version key of `tag`. `%` never appears in a key part (it is
/// escaped, and banned in templates), so it is no entry's key.
pub(crate) fn version_key(namespace: Option<&str>, tag: &str) -> String {
    join_key(namespace, &["%tag", tag])
}

/// The version keys of a call's tags (borrowed, without a namespace).
pub(crate) fn version_keys<'t>(namespace: Option<&str>, tags: &'t Tags) -> Vec<Cow<'t, str>> {
    tags.0
        .iter()
        .map(|k| match namespace {
            None => Cow::Borrowed(k.as_str()),
            Some(_) => Cow::Owned(join_key(namespace, &[k])),
        })
        .collect()
}

/// How long the version keys of an entry stored for up to `entry_ttl` live.
pub(crate) fn version_ttl(entry_ttl: Duration) -> Duration {
    entry_ttl.max(MIN_VERSION_TTL)
}

/// The current version of one tag, created if absent; its TTL extended to
/// at least `ARGV[2]` ms.
static TAG_VERSION: Script = Script {
    lua: LazyLock::new(|| {
        ::redis::Script::new(
            r"
local v = redis.call('GET', KEYS[1])
if v then
  if redis.call('PTTL', KEYS[1]) < tonumber(ARGV[2]) then
    redis.call('PEXPIRE', KEYS[1], ARGV[2])
  end
  return v
end
redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
return ARGV[1]",
        )
    }),
    memory: tag_version_in_memory,
};

fn tag_version_in_memory(t: &mut Txn<'_>, keys: &[&str], args: &[Arg<'_>]) -> Value {
    let ttl = Duration::from_millis(args[1].int().max(1) as u64);
    if let Some(v) = t.get(keys[0]).map(memory::Value::to_bytes) {
        if t.pttl(keys[0]).is_some_and(|left| left < ttl) {
            t.expire(keys[0], ttl);
        }
        return Value::BulkString(v.to_vec());
    }
    let fresh = args[0].bytes();
    t.set(
        keys[0],
        memory::Value::Bytes(Arc::from(fresh.as_slice())),
        ttl,
    );
    Value::BulkString(fresh)
}

/// The versions of `keys` (version keys) to record in an entry computed
/// now: one script per tag (each on its own slot on a cluster), run on a
/// miss only.
pub(crate) async fn versions<D: Drive>(
    d: &D,
    keys: &[Cow<'_, str>],
    ttl: Duration,
) -> Result<Vec<String>> {
    let ms = i64::try_from(ttl.as_millis()).unwrap_or(i64::MAX);
    let mut out = Vec::with_capacity(keys.len());
    for key in keys {
        let fresh = crate::random::random_id()?;
        let args = [Arg::Bytes(fresh.as_bytes()), Arg::Int(ms)];
        out.push(reply::<String>(
            d.exec(Op::Script(&TAG_VERSION, &[key.as_ref()], &args))
                .await?,
        )?);
    }
    Ok(out)
}

/// Whether an entry recorded under `recorded` is still valid, given the
/// version keys' `current` values (in the same order).
pub(crate) fn valid(recorded: &[String], current: &[Value]) -> bool {
    recorded.len() == current.len()
        && recorded.iter().zip(current).all(|(r, c)| match c {
            Value::BulkString(c) => c.as_slice() == r.as_bytes(),
            _ => false,
        })
}

async fn invalidate_tag_with<D: Drive>(d: &D, tag: &str) -> Result<bool> {
    if tag.is_empty() {
        return Err(Error::InvalidName {
            what: "tag",
            reason: "a tag cannot be empty",
        });
    }
    let key = version_key(d.manager().settings().namespace(), tag);
    crate::ops::delete_full(d, &key).await
}

/// Drops every entry cached under `tag` (as rendered: `tags = ["user:{id}"]`
/// with `id = 42` is the tag `"user:42"`), by the current manager; returns
/// whether the tag had entries that could still be read. O(1): one
/// `UNLINK`, whatever the number of entries. Placeholder values are escaped
/// like key parts: `:` in a value is `%3A`.
///
/// ```
/// # async fn run() -> forge_cache_runtime::Result<()> {
/// forge_cache_runtime::invalidate_tag("user:42").await?;
/// # Ok(()) }
/// ```
pub async fn invalidate_tag(tag: &str) -> Result<bool> {
    current().invalidate_tag(tag).await
}

/// Blocking form of [`invalidate_tag`].
///
/// ```
/// forge_cache_runtime::blocking::invalidate_tag("user:42")?;
/// # Ok::<(), forge_cache_runtime::Error>(())
/// ```
pub fn invalidate_tag_blocking(tag: &str) -> Result<bool> {
    current().blocking().invalidate_tag(tag)
}

impl CacheManager {
    /// Drops every entry cached under `tag` on this manager: see
    /// [`invalidate_tag`](crate::invalidate_tag).
    ///
    /// ```
    /// # async fn run() -> forge_cache_runtime::Result<()> {
    /// let cache = forge_cache_runtime::CacheManager::new(Default::default())?;
    /// cache.invalidate_tag("org:7").await?;
    /// # Ok(()) }
    /// ```
    pub async fn invalidate_tag(&self, tag: &str) -> Result<bool> {
        invalidate_tag_with(&Async(self), tag).await
    }
}

impl Manager<'_> {
    /// Blocking form of [`CacheManager::invalidate_tag`].
    ///
    /// ```
    /// let cache = forge_cache_runtime::CacheManager::new(Default::default())?;
    /// cache.blocking().invalidate_tag("org:7")?;
    /// # Ok::<(), forge_cache_runtime::Error>(())
    /// ```
    pub fn invalidate_tag(&self, tag: &str) -> Result<bool> {
        block_now(invalidate_tag_with(&Blocking(self.manager()), tag))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_entry_is_valid_only_while_every_version_matches() {
        let rec = ["a".to_owned(), "b".to_owned()];
        let bulk = |s: &str| Value::BulkString(s.as_bytes().to_vec());
        assert!(valid(&rec, &[bulk("a"), bulk("b")]));
        assert!(!valid(&rec, &[bulk("a"), Value::Nil]), "an invalidated tag");
        assert!(!valid(&rec, &[bulk("a"), bulk("c")]), "a newer version");
        assert!(!valid(&rec, &[bulk("a")]));
    }

    #[test]
    fn version_keys_cannot_be_entry_keys() {
        assert_eq!(version_key(Some("app"), "user:42"), "app:%tag:user:42");
    }
}
