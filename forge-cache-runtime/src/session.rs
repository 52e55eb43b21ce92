//! Typed sessions: JSON values under
//! `[<namespace>:]session:<id>`, 24 hours by default, with sliding expiry.
//!
//! Ids the store makes are 128 random bits as 22 characters of unpadded
//! base64url: unguessable and URL-safe. Ids the caller picks (such as
//! `session:{user_id}`) are escaped with
//! [`push_component`](crate::key::push_component), so an id taken from a
//! request cannot name any key but its own session's.

use std::fmt;
use std::marker::PhantomData;
use std::sync::LazyLock;
use std::time::Duration;

use redis::Value;
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::backend::memory::{self, Txn};
use crate::backend::{Arg, Op, Script, reply};
use crate::drive::{Async, Blocking, Drive, block_now};
use crate::error::{Error, Result};
use crate::key::push_component;
use crate::lock::{arg_duration, millis};
use crate::manager::CacheManager;
use crate::ops;
use crate::random::random_id;

/// The default session lifetime: 24 hours.
///
/// ```
/// assert_eq!(forge_cache_runtime::DEFAULT_SESSION_TTL.as_secs(), 86_400);
/// ```
pub const DEFAULT_SESSION_TTL: Duration = Duration::from_secs(24 * 60 * 60);

/// The longest id accepted from callers, in bytes.
const MAX_ID_BYTES: usize = 256;

/// `SET key value XX PX ttl`: replaces a live session only. 1 if replaced.
static UPDATE: Script = Script {
    lua: LazyLock::new(|| {
        redis::Script::new(
            r"return redis.call('SET', KEYS[1], ARGV[1], 'XX', 'PX', ARGV[2]) and 1 or 0",
        )
    }),
    memory: update_in_memory,
};

/// `GET` and, if the key exists, `PEXPIRE`: a read that slides the expiry.
static GET_AND_TOUCH: Script = Script {
    lua: LazyLock::new(|| {
        redis::Script::new(
            r"
local v = redis.call('GET', KEYS[1])
if v then redis.call('PEXPIRE', KEYS[1], ARGV[1]) end
return v
",
        )
    }),
    memory: get_and_touch_in_memory,
};

fn update_in_memory(t: &mut Txn<'_>, keys: &[&str], args: &[Arg<'_>]) -> Value {
    let (Some(&key), Some(data)) = (keys.first(), args.first()) else {
        return Value::Int(0);
    };
    if t.get(key).is_none() {
        return Value::Int(0);
    }
    t.set(
        key,
        memory::Value::Bytes(data.bytes().into()),
        arg_duration(args.get(1)),
    );
    Value::Int(1)
}

fn get_and_touch_in_memory(t: &mut Txn<'_>, keys: &[&str], args: &[Arg<'_>]) -> Value {
    let Some(&key) = keys.first() else {
        return Value::Nil;
    };
    let Some(data) = t.get(key).map(memory::Value::to_bytes) else {
        return Value::Nil;
    };
    t.expire(key, arg_duration(args.first()));
    Value::BulkString(data.to_vec())
}

/// A typed session store: create, read, update, slide and delete sessions
/// holding a `T`, stored as JSON for [`ttl`](Self::ttl) (24 hours unless set
/// with [`with_ttl`](Self::with_ttl)).
///
/// Data under a session key that is not a valid `T` (tampered with, or
/// written by other code) is never trusted and never panics: reads return
/// [`Error::CorruptSession`]. Treat that as "no session": delete it and
/// start a new one.
///
/// ```
/// # #[tokio::main(flavor = "current_thread")] async fn main() -> forge_cache_runtime::Result<()> {
/// use serde::{Deserialize, Serialize};
/// use forge_cache_runtime::{CacheManager, RedisSettings, SessionStore};
///
/// #[derive(Serialize, Deserialize, PartialEq, Debug)]
/// struct Session { user_id: u64, cart: Vec<String> }
///
/// let cache = CacheManager::new(RedisSettings::memory())?;
/// let sessions: SessionStore<Session> = cache.sessions();
/// let id = sessions.create(&Session { user_id: 7, cart: vec![] }).await?;
/// sessions.update(&id, &Session { user_id: 7, cart: vec!["book".into()] }).await?;
/// assert_eq!(sessions.get(&id).await?.unwrap().cart, ["book"]);
/// assert!(sessions.touch(&id).await?); // another 24 hours
/// assert!(sessions.delete(&id).await?);
/// assert_eq!(sessions.get(&id).await?, None);
/// # Ok(()) }
/// ```
pub struct SessionStore<T> {
    manager: CacheManager,
    ttl: Duration,
    _data: PhantomData<fn() -> T>,
}

impl<T> Clone for SessionStore<T> {
    fn clone(&self) -> Self {
        SessionStore {
            manager: self.manager.clone(),
            ttl: self.ttl,
            _data: PhantomData,
        }
    }
}

impl<T> fmt::Debug for SessionStore<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SessionStore")
            .field("ttl", &self.ttl)
            .field("data", &std::any::type_name::<T>())
            .finish_non_exhaustive()
    }
}

impl CacheManager {
    /// A [`SessionStore`] for `T` on this manager, with the default TTL.
    ///
    /// ```
    /// # let cache = forge_cache_runtime::CacheManager::new(forge_cache_runtime::RedisSettings::memory())?;
    /// let sessions = cache.sessions::<serde_json::Value>();
    /// assert_eq!(sessions.ttl(), forge_cache_runtime::DEFAULT_SESSION_TTL);
    /// # Ok::<(), forge_cache_runtime::Error>(())
    /// ```
    pub fn sessions<T>(&self) -> SessionStore<T> {
        SessionStore {
            manager: self.clone(),
            ttl: DEFAULT_SESSION_TTL,
            _data: PhantomData,
        }
    }
}

/// The key of session `id`: `session:<escaped id>`.
fn session_key(id: &dyn fmt::Display) -> Result<String> {
    let raw = id.to_string();
    let reason = if raw.is_empty() {
        "must not be empty"
    } else if raw.len() > MAX_ID_BYTES {
        "must be at most 256 bytes"
    } else {
        let mut key = String::with_capacity(8 + raw.len());
        key.push_str("session:");
        push_component(&mut key, &raw);
        return Ok(key);
    };
    Err(Error::InvalidName {
        what: "session id",
        reason,
    })
}

fn decode<T: DeserializeOwned>(bytes: Option<Vec<u8>>) -> Result<Option<T>> {
    bytes
        .map(|b| serde_json::from_slice(&b).map_err(Error::CorruptSession))
        .transpose()
}

/// How many fresh ids `create` tries before giving up (a collision of 128
/// random bits does not happen; the bound is there so nothing loops).
const CREATE_ATTEMPTS: usize = 3;

fn ids_exhausted() -> Error {
    Error::Protocol("every freshly generated session id was already taken".into())
}

impl<T: Serialize + DeserializeOwned> SessionStore<T> {
    /// A store on `manager` with the default TTL (24 hours). Same as
    /// [`CacheManager::sessions`].
    ///
    /// ```
    /// # let cache = forge_cache_runtime::CacheManager::new(forge_cache_runtime::RedisSettings::memory())?;
    /// let sessions = forge_cache_runtime::SessionStore::<Vec<String>>::new(cache.clone());
    /// # Ok::<(), forge_cache_runtime::Error>(())
    /// ```
    pub fn new(manager: CacheManager) -> Self {
        manager.sessions()
    }

    /// The same store with sessions living `ttl` after their last write or
    /// touch.
    ///
    /// ```
    /// # let cache = forge_cache_runtime::CacheManager::new(forge_cache_runtime::RedisSettings::memory())?;
    /// use std::time::Duration;
    /// let sessions = cache.sessions::<u64>().with_ttl(Duration::from_secs(1800));
    /// assert_eq!(sessions.ttl(), Duration::from_secs(1800));
    /// # Ok::<(), forge_cache_runtime::Error>(())
    /// ```
    pub fn with_ttl(mut self, ttl: Duration) -> Self {
        self.ttl = ttl;
        self
    }

    /// How long a session lives after its last write or touch.
    ///
    /// ```
    /// # let cache = forge_cache_runtime::CacheManager::new(forge_cache_runtime::RedisSettings::memory())?;
    /// assert_eq!(cache.sessions::<u64>().ttl().as_secs(), 86_400);
    /// # Ok::<(), forge_cache_runtime::Error>(())
    /// ```
    pub fn ttl(&self) -> Duration {
        self.ttl
    }

    /// The blocking view of this store, for sync code:
    /// `sessions.blocking().get(id)`.
    ///
    /// ```
    /// # let cache = forge_cache_runtime::CacheManager::new(forge_cache_runtime::RedisSettings::memory())?;
    /// let sessions = cache.sessions::<u64>();
    /// let id = sessions.blocking().create(&7)?;
    /// assert_eq!(sessions.blocking().get(&id)?, Some(7));
    /// # Ok::<(), forge_cache_runtime::Error>(())
    /// ```
    pub fn blocking(&self) -> BlockingSessions<'_, T> {
        BlockingSessions(self)
    }

    /// Stores `data` under a new random id and returns the id (22 URL-safe
    /// characters, 128 random bits; fit for a cookie).
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")] async fn main() -> forge_cache_runtime::Result<()> {
    /// # let cache = forge_cache_runtime::CacheManager::new(forge_cache_runtime::RedisSettings::memory())?;
    /// let id = cache.sessions::<u64>().create(&7).await?;
    /// assert_eq!(id.len(), 22);
    /// # Ok(()) }
    /// ```
    pub async fn create(&self, data: &T) -> Result<String> {
        create(&Async(&self.manager), self, data).await
    }

    /// Stores `data` under an id the caller chooses, replacing any session
    /// there, e.g. one session per user id (key `session:<user_id>`). The
    /// id is escaped into one key component.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")] async fn main() -> forge_cache_runtime::Result<()> {
    /// # let cache = forge_cache_runtime::CacheManager::new(forge_cache_runtime::RedisSettings::memory())?;
    /// let sessions = cache.sessions::<Vec<String>>();
    /// sessions.create_with_id(42, &vec!["admin".to_string()]).await?;
    /// assert!(cache.get_bytes("session:42").await?.is_some());
    /// # Ok(()) }
    /// ```
    pub async fn create_with_id(&self, id: impl fmt::Display, data: &T) -> Result<()> {
        create_with_id(&Async(&self.manager), self, &id, data).await
    }

    /// The session's data; `Ok(None)` when there is no such session (never
    /// created, expired or deleted). Does not extend it: see
    /// [`get_and_touch`](Self::get_and_touch). Data that is not a valid `T`
    /// is [`Error::CorruptSession`].
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")] async fn main() -> forge_cache_runtime::Result<()> {
    /// # let cache = forge_cache_runtime::CacheManager::new(forge_cache_runtime::RedisSettings::memory())?;
    /// let sessions = cache.sessions::<u64>();
    /// assert_eq!(sessions.get("no-such-id").await?, None);
    /// # Ok(()) }
    /// ```
    pub async fn get(&self, id: impl fmt::Display) -> Result<Option<T>> {
        get(&Async(&self.manager), &id).await
    }

    /// Reads the session and, if it exists, restarts its TTL, in one atomic
    /// step: sliding expiry on every request.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")] async fn main() -> forge_cache_runtime::Result<()> {
    /// # let cache = forge_cache_runtime::CacheManager::new(forge_cache_runtime::RedisSettings::memory())?;
    /// let sessions = cache.sessions::<u64>();
    /// let id = sessions.create(&7).await?;
    /// assert_eq!(sessions.get_and_touch(&id).await?, Some(7));
    /// # Ok(()) }
    /// ```
    pub async fn get_and_touch(&self, id: impl fmt::Display) -> Result<Option<T>> {
        get_and_touch(&Async(&self.manager), self, &id).await
    }

    /// Replaces the data of an existing session and restarts its TTL;
    /// `Ok(false)` (and nothing written) when there is no such session, so
    /// an expired session is not brought back by a late write.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")] async fn main() -> forge_cache_runtime::Result<()> {
    /// # let cache = forge_cache_runtime::CacheManager::new(forge_cache_runtime::RedisSettings::memory())?;
    /// let sessions = cache.sessions::<u64>();
    /// let id = sessions.create(&1).await?;
    /// assert!(sessions.update(&id, &2).await?);
    /// assert!(!sessions.update("expired-or-unknown", &2).await?);
    /// # Ok(()) }
    /// ```
    pub async fn update(&self, id: impl fmt::Display, data: &T) -> Result<bool> {
        update(&Async(&self.manager), self, &id, data).await
    }

    /// Restarts the session's TTL (sliding expiry); `Ok(false)` when there
    /// is no such session.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")] async fn main() -> forge_cache_runtime::Result<()> {
    /// # let cache = forge_cache_runtime::CacheManager::new(forge_cache_runtime::RedisSettings::memory())?;
    /// let sessions = cache.sessions::<u64>();
    /// let id = sessions.create(&1).await?;
    /// assert!(sessions.touch(&id).await?);
    /// # Ok(()) }
    /// ```
    pub async fn touch(&self, id: impl fmt::Display) -> Result<bool> {
        touch(&Async(&self.manager), self, &id).await
    }

    /// Deletes the session (logout); returns whether it existed.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")] async fn main() -> forge_cache_runtime::Result<()> {
    /// # let cache = forge_cache_runtime::CacheManager::new(forge_cache_runtime::RedisSettings::memory())?;
    /// let sessions = cache.sessions::<u64>();
    /// let id = sessions.create(&1).await?;
    /// assert!(sessions.delete(&id).await?);
    /// assert!(!sessions.delete(&id).await?);
    /// # Ok(()) }
    /// ```
    pub async fn delete(&self, id: impl fmt::Display) -> Result<bool> {
        delete(&Async(&self.manager), &id).await
    }
}

/// The blocking view of a [`SessionStore`], from
/// [`SessionStore::blocking`]: the same operations, each the same logic as
/// its async form, blocking the calling thread.
///
/// ```
/// # let cache = forge_cache_runtime::CacheManager::new(forge_cache_runtime::RedisSettings::memory())?;
/// let sessions = cache.sessions::<String>();
/// let sync = sessions.blocking();
/// let id = sync.create(&"ada".to_owned())?;
/// assert!(sync.update(&id, &"grace".to_owned())?);
/// assert_eq!(sync.get_and_touch(&id)?, Some("grace".to_owned()));
/// assert!(sync.delete(&id)?);
/// # Ok::<(), forge_cache_runtime::Error>(())
/// ```
pub struct BlockingSessions<'a, T>(&'a SessionStore<T>);

impl<T> Clone for BlockingSessions<'_, T> {
    fn clone(&self) -> Self {
        *self
    }
}

impl<T> Copy for BlockingSessions<'_, T> {}

impl<T> fmt::Debug for BlockingSessions<'_, T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("blocking::Sessions").field(self.0).finish()
    }
}

impl<T: Serialize + DeserializeOwned> BlockingSessions<'_, T> {
    fn drive(&self) -> Blocking<'_> {
        Blocking(&self.0.manager)
    }

    /// Blocking form of [`SessionStore::create`].
    ///
    /// ```
    /// # let cache = forge_cache_runtime::CacheManager::new(forge_cache_runtime::RedisSettings::memory())?;
    /// let sessions = cache.sessions::<u64>();
    /// let id = sessions.blocking().create(&7)?;
    /// # Ok::<(), forge_cache_runtime::Error>(())
    /// ```
    pub fn create(&self, data: &T) -> Result<String> {
        block_now(create(&self.drive(), self.0, data))
    }

    /// Blocking form of [`SessionStore::create_with_id`].
    ///
    /// ```
    /// # let cache = forge_cache_runtime::CacheManager::new(forge_cache_runtime::RedisSettings::memory())?;
    /// let sessions = cache.sessions::<u64>();
    /// sessions.blocking().create_with_id(42, &7)?;
    /// # Ok::<(), forge_cache_runtime::Error>(())
    /// ```
    pub fn create_with_id(&self, id: impl fmt::Display, data: &T) -> Result<()> {
        block_now(create_with_id(&self.drive(), self.0, &id, data))
    }

    /// Blocking form of [`SessionStore::get`].
    ///
    /// ```
    /// # let cache = forge_cache_runtime::CacheManager::new(forge_cache_runtime::RedisSettings::memory())?;
    /// let sessions = cache.sessions::<u64>();
    /// assert_eq!(sessions.blocking().get("absent")?, None);
    /// # Ok::<(), forge_cache_runtime::Error>(())
    /// ```
    pub fn get(&self, id: impl fmt::Display) -> Result<Option<T>> {
        block_now(get(&self.drive(), &id))
    }

    /// Blocking form of [`SessionStore::get_and_touch`].
    ///
    /// ```
    /// # let cache = forge_cache_runtime::CacheManager::new(forge_cache_runtime::RedisSettings::memory())?;
    /// let sessions = cache.sessions::<u64>();
    /// assert_eq!(sessions.blocking().get_and_touch("absent")?, None);
    /// # Ok::<(), forge_cache_runtime::Error>(())
    /// ```
    pub fn get_and_touch(&self, id: impl fmt::Display) -> Result<Option<T>> {
        block_now(get_and_touch(&self.drive(), self.0, &id))
    }

    /// Blocking form of [`SessionStore::update`].
    ///
    /// ```
    /// # let cache = forge_cache_runtime::CacheManager::new(forge_cache_runtime::RedisSettings::memory())?;
    /// let sessions = cache.sessions::<u64>();
    /// assert!(!sessions.blocking().update("absent", &7)?);
    /// # Ok::<(), forge_cache_runtime::Error>(())
    /// ```
    pub fn update(&self, id: impl fmt::Display, data: &T) -> Result<bool> {
        block_now(update(&self.drive(), self.0, &id, data))
    }

    /// Blocking form of [`SessionStore::touch`].
    ///
    /// ```
    /// # let cache = forge_cache_runtime::CacheManager::new(forge_cache_runtime::RedisSettings::memory())?;
    /// let sessions = cache.sessions::<u64>();
    /// assert!(!sessions.blocking().touch("absent")?);
    /// # Ok::<(), forge_cache_runtime::Error>(())
    /// ```
    pub fn touch(&self, id: impl fmt::Display) -> Result<bool> {
        block_now(touch(&self.drive(), self.0, &id))
    }

    /// Blocking form of [`SessionStore::delete`].
    ///
    /// ```
    /// # let cache = forge_cache_runtime::CacheManager::new(forge_cache_runtime::RedisSettings::memory())?;
    /// let sessions = cache.sessions::<u64>();
    /// assert!(!sessions.blocking().delete("absent")?);
    /// # Ok::<(), forge_cache_runtime::Error>(())
    /// ```
    pub fn delete(&self, id: impl fmt::Display) -> Result<bool> {
        block_now(delete(&self.drive(), &id))
    }
}

// The operations, written once for both drivers.

async fn create<D: Drive, T: Serialize>(
    d: &D,
    store: &SessionStore<T>,
    data: &T,
) -> Result<String> {
    for _ in 0..CREATE_ATTEMPTS {
        let id = random_id()?;
        if ops::set_nx(d, &session_key(&id)?, data, store.ttl).await? {
            return Ok(id);
        }
    }
    Err(ids_exhausted())
}

async fn create_with_id<D: Drive, T: Serialize>(
    d: &D,
    store: &SessionStore<T>,
    id: &dyn fmt::Display,
    data: &T,
) -> Result<()> {
    ops::set(d, &session_key(id)?, data, store.ttl).await
}

async fn get<D: Drive, T: DeserializeOwned>(d: &D, id: &dyn fmt::Display) -> Result<Option<T>> {
    decode(ops::get_bytes(d, &session_key(id)?).await?)
}

async fn get_and_touch<D: Drive, T: DeserializeOwned>(
    d: &D,
    store: &SessionStore<T>,
    id: &dyn fmt::Display,
) -> Result<Option<T>> {
    let key = session_key(id)?;
    let keys = [&*d.manager().full_key(&key)];
    let args = [Arg::Int(millis(store.ttl))];
    let v = d.exec(Op::Script(&GET_AND_TOUCH, &keys, &args)).await?;
    decode(reply(v)?)
}

async fn update<D: Drive, T: Serialize>(
    d: &D,
    store: &SessionStore<T>,
    id: &dyn fmt::Display,
    data: &T,
) -> Result<bool> {
    let key = session_key(id)?;
    let bytes = d.manager().encode_checked(data)?;
    let keys = [&*d.manager().full_key(&key)];
    let args = [Arg::Bytes(&bytes), Arg::Int(millis(store.ttl))];
    let v = d.exec(Op::Script(&UPDATE, &keys, &args)).await?;
    Ok(reply::<i64>(v)? == 1)
}

async fn touch<D: Drive, T>(d: &D, store: &SessionStore<T>, id: &dyn fmt::Display) -> Result<bool> {
    ops::expire(d, &session_key(id)?, store.ttl).await
}

async fn delete<D: Drive>(d: &D, id: &dyn fmt::Display) -> Result<bool> {
    ops::delete(d, &session_key(id)?).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_from_callers_stay_one_escaped_component() {
        assert_eq!(session_key(&42).unwrap(), "session:42");
        assert_eq!(session_key(&"a:*{b}").unwrap(), "session:a%3A%2A%7Bb%7D");
        assert!(matches!(
            session_key(&""),
            Err(Error::InvalidName {
                what: "session id",
                ..
            })
        ));
        assert!(session_key(&"x".repeat(MAX_ID_BYTES + 1)).is_err());
    }
}
