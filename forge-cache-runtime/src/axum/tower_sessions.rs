//! tower-sessions' `SessionStore` over forge-cache (feature
//! `tower-sessions`): [`TowerSessionStore`].

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::time::Duration;

use time::OffsetDateTime;
use tower_sessions_core::session::{Id, Record};
use tower_sessions_core::session_store::{
    Error as StoreError, Result as StoreResult, SessionStore,
};

use crate::manager::CacheManager;

/// A [`tower_sessions_core::SessionStore`] on forge-cache: sessions live
/// in Redis (single server or cluster) or the in-memory backend, one key
/// each, `[namespace:]<prefix>:<id>`. Expiry is the key's TTL, set from
/// the session's expiry date on every save, so Redis removes expired
/// sessions itself: no background deletion task.
///
/// ```
/// use forge_cache_runtime::axum::TowerSessionStore;
/// # fn is_store<S: tower_sessions_core::SessionStore>(s: S) -> S { s }
/// // With tower-sessions: `SessionManagerLayer::new(store)`.
/// let store = TowerSessionStore::new();
/// # let _ = is_store(store);
/// ```
#[derive(Clone)]
pub struct TowerSessionStore {
    manager: Option<CacheManager>,
    prefix: String,
}

impl fmt::Debug for TowerSessionStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TowerSessionStore")
            .field("prefix", &self.prefix)
            .finish_non_exhaustive()
    }
}

impl Default for TowerSessionStore {
    fn default() -> Self {
        Self::new()
    }
}

/// Attempts at a fresh id before `create` gives up (a collision of two
/// random 128-bit ids does not happen; the bound is for a broken RNG).
const CREATE_ATTEMPTS: usize = 8;

impl TowerSessionStore {
    /// Sessions under the prefix `tower_session`, on the current manager.
    pub fn new() -> Self {
        TowerSessionStore {
            manager: None,
            prefix: "tower_session".to_owned(),
        }
    }

    /// Keys under `prefix` instead (escaped like a key part).
    ///
    /// ```
    /// use forge_cache_runtime::axum::TowerSessionStore;
    /// let store = TowerSessionStore::new().prefix("web_session");
    /// # let _ = store;
    /// ```
    pub fn prefix(mut self, prefix: &str) -> Self {
        let mut p = String::new();
        crate::key::push_bounded_component(&mut p, &prefix);
        self.prefix = p;
        self
    }

    /// Stores with `manager` instead of the current one.
    ///
    /// ```
    /// use forge_cache_runtime::{CacheManager, RedisSettings};
    /// use forge_cache_runtime::axum::TowerSessionStore;
    /// let store = TowerSessionStore::new().manager(CacheManager::new(RedisSettings::memory())?);
    /// # Ok::<(), forge_cache_runtime::Error>(())
    /// ```
    pub fn manager(mut self, manager: CacheManager) -> Self {
        self.manager = Some(manager);
        self
    }

    fn cache(&self) -> CacheManager {
        self.manager.clone().unwrap_or_else(crate::global::current)
    }

    fn key(&self, id: &Id) -> String {
        format!("{}:{id}", self.prefix)
    }
}

/// Time left until `record` expires; `None` when it already has.
fn ttl(record: &Record) -> Option<Duration> {
    let left = record.expiry_date - OffsetDateTime::now_utc();
    let ms = left.whole_milliseconds();
    (ms > 0).then(|| Duration::from_millis(u64::try_from(ms).unwrap_or(u64::MAX)))
}

fn backend(e: crate::error::Error) -> StoreError {
    match e {
        crate::error::Error::Encode(_) | crate::error::Error::TooLarge { .. } => {
            StoreError::Encode(e.to_string())
        }
        e => StoreError::Backend(e.to_string()),
    }
}

type Boxed<'a, T> = Pin<Box<dyn Future<Output = StoreResult<T>> + Send + 'a>>;

impl SessionStore for TowerSessionStore {
    fn create<'a, 'b, 'c>(&'a self, record: &'b mut Record) -> Boxed<'c, ()>
    where
        'a: 'c,
        'b: 'c,
        Self: 'c,
    {
        Box::pin(async move {
            let Some(ttl) = ttl(record) else {
                return Ok(());
            };
            let cache = self.cache();
            for _ in 0..CREATE_ATTEMPTS {
                // `SET NX`: an id already taken is never overwritten.
                if cache
                    .set_nx(&self.key(&record.id), &*record, ttl)
                    .await
                    .map_err(backend)?
                {
                    return Ok(());
                }
                record.id = Id::default();
            }
            Err(StoreError::Backend(
                "no free session id after 8 attempts".to_owned(),
            ))
        })
    }

    fn save<'a, 'b, 'c>(&'a self, record: &'b Record) -> Boxed<'c, ()>
    where
        'a: 'c,
        'b: 'c,
        Self: 'c,
    {
        Box::pin(async move {
            let cache = self.cache();
            let key = self.key(&record.id);
            match ttl(record) {
                Some(ttl) => cache.set(&key, record, ttl).await.map_err(backend),
                // Saved already expired: it must not be loadable.
                None => cache.delete(&key).await.map(drop).map_err(backend),
            }
        })
    }

    fn load<'a, 'b, 'c>(&'a self, id: &'b Id) -> Boxed<'c, Option<Record>>
    where
        'a: 'c,
        'b: 'c,
        Self: 'c,
    {
        Box::pin(async move {
            match self.cache().get::<Record>(&self.key(id)).await {
                Ok(r) => Ok(r),
                Err(e @ crate::error::Error::Decode(_)) => Err(StoreError::Decode(e.to_string())),
                Err(e) => Err(backend(e)),
            }
        })
    }

    fn delete<'a, 'b, 'c>(&'a self, id: &'b Id) -> Boxed<'c, ()>
    where
        'a: 'c,
        'b: 'c,
        Self: 'c,
    {
        Box::pin(async move {
            self.cache()
                .delete(&self.key(id))
                .await
                .map(drop)
                .map_err(backend)
        })
    }
}
