//! Expansions resolve their names whatever the caller has in scope: a local
//! `core` module, a `Result` alias, `Option`/`Some` shadowed, user names
//! equal to the generated locals; and they pass strict lints (no unneeded
//! qualification, documented companions).
#![deny(unused_qualifications, missing_docs)]
#![allow(dead_code)]

mod core {}

/// An application-wide alias, as many crates have.
pub type Result<T> = std::result::Result<T, AppError>;

struct Some;

mod forge_cache_shadow {
    //! Shadowing the crate name under another path must not matter either.
    pub mod __private {}
}

use forge_cache::{RateLimitExceeded, cache_result, rate_limit};

/// Async, with a `Result` alias and user arguments named like the
/// generated locals.
#[cache_result(ttl = 60, key_prefix = "hygiene")]
pub async fn lookup(__forge_cache_key: u32, __forge_cache_hasher: u32) -> Result<u32> {
    Ok(__forge_cache_key + __forge_cache_hasher)
}

/// Sync, with a template over an argument named like its local.
#[cache_result(ttl = 60, key = "hygiene:{__forge_key_template}")]
pub fn lookup_sync(__forge_key_template: u32) -> Option<u32> {
    Option::Some(__forge_key_template)
}

/// Every per-call option, with arguments named like the generated locals.
#[cache_result(
    ttl = |_| std::time::Duration::from_secs(5),
    key_prefix = "hygiene",
    tags = ["hygiene:{__forge_cache_tags}"],
    unless = |v| *v == 0,
    force_refresh = __forge_cache_options,
    skip(__forge_cache_options)
)]
pub async fn optioned(__forge_cache_tags: u32, __forge_cache_options: bool) -> Result<u32> {
    Ok(__forge_cache_tags)
}

/// A type with cached methods.
#[derive(serde::Serialize)]
pub struct Repo;

impl Repo {
    /// A cached method, shared by every instance.
    #[cache_result(ttl = 60, key_prefix = "hygiene", skip(self))]
    pub async fn find(&self, id: u32) -> u32 {
        id
    }

    /// A cached method hashing `self`, with an argument named like the
    /// hasher.
    #[cache_result(ttl = 60, key_prefix = "hygiene", include(self))]
    pub fn find_own(&self, __forge_cache_hasher: u32) -> u32 {
        __forge_cache_hasher
    }
}

/// An error type that takes the rate-limit rejection.
#[derive(Debug, PartialEq)]
pub struct AppError;

impl From<RateLimitExceeded> for AppError {
    fn from(_: RateLimitExceeded) -> Self {
        AppError
    }
}

/// Rate-limited, per key, with the `Result` alias in scope and arguments
/// named like the generated locals.
#[rate_limit(
    max_requests = 1,
    window_seconds = 60,
    key = "{__forge_rate_limited}:{__forge_key_template}"
)]
pub async fn limited(
    __forge_rate_limited: u32,
    __forge_key_template: u32,
) -> std::result::Result<u32, AppError> {
    Ok(__forge_rate_limited + __forge_key_template)
}

/// Rate-limited through the alias (the error type comes from it).
#[rate_limit(max_requests = 1, window_seconds = 60)]
pub fn limited_sync() -> Result<u32> {
    Ok(1)
}

#[tokio::test]
async fn expansions_ignore_what_is_in_scope() {
    let m = forge_cache::CacheManager::new(forge_cache::RedisSettings::memory()).unwrap();
    m.scope(async {
        assert_eq!(lookup(1, 2).await, Ok(3));
        assert_eq!(lookup(1, 2).await, Ok(3));
        assert_eq!(Repo.find(4).await, 4);
        assert!(lookup_invalidate(1, 2).await.unwrap());
        assert_eq!(Repo::find_invalidate_all().await.unwrap(), 1);
        assert_eq!(optioned(7, false).await, Ok(7));
        assert_eq!(optioned_refresh(7, true).await, Ok(7));
        assert!(forge_cache::invalidate_tag("hygiene:7").await.unwrap());
    })
    .await;
    m.blocking().scope(|| {
        assert_eq!(lookup_sync(5), Option::Some(5));
        assert!(lookup_sync_invalidate(5).unwrap());
        assert_eq!(Repo.find_own(6), 6);
        assert!(Repo.find_own_invalidate(6).unwrap());
    });
    m.scope(async {
        assert_eq!(limited(1, 2).await, Ok(3));
        assert_eq!(limited(1, 2).await, Err(AppError));
    })
    .await;
    m.blocking().scope(|| {
        assert_eq!(limited_sync(), Ok(1));
        assert!(limited_sync().is_err());
    });
    let _ = Some;
}
