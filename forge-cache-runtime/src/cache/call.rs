//! The functions `#[cache_result]` expands to: read, run on a miss (once per
//! key in this process), store; and the invalidation companions.

use std::future::Future;

use ::redis::Value;

use super::flight::{Join, Leader, State};
use super::policy::Policy;
use super::site::{CacheSite, CallKey};
use super::stats::{Event, count};
use crate::backend::{Op, reply};
use crate::codec::decode;
use crate::error::{Error, Result};
use crate::global::current;
use crate::manager::CacheManager;

/// What a read found.
enum Read<S> {
    Hit(S),
    /// Absent, or present but undecodable (it is overwritten).
    Miss,
    /// The backend failed: run uncached, do not try to store.
    Failed,
}

fn event(site: &'static CacheSite, e: Event, what: &'static str) {
    count(site, e);
    tracing::debug!(target: "forge_cache", prefix = site.prefix(), function = site.name(), "{what}");
}

fn read<S: serde::de::DeserializeOwned>(
    site: &'static CacheSite,
    manager: &CacheManager,
    reply: Result<Value>,
) -> Read<S> {
    match reply {
        Ok(Value::Nil) => {
            event(site, Event::Miss, "cache miss");
            Read::Miss
        }
        Ok(Value::BulkString(bytes)) => match decode(&bytes) {
            Ok(v) => {
                event(site, Event::Hit, "cache hit");
                Read::Hit(v)
            }
            Err(e) => {
                count(site, Event::Error);
                count(site, Event::Miss);
                manager.warn_failure(
                    &format!(
                        "cached value of {}:{} no longer decodes; recomputing and overwriting it",
                        site.prefix(),
                        site.name()
                    ),
                    &e,
                );
                Read::Miss
            }
        },
        Ok(other) => {
            let e = Error::Protocol(format!("GET replied {other:?}"));
            failed(
                site,
                manager,
                "cache read failed; running the function uncached",
                &e,
            );
            Read::Failed
        }
        Err(e) => {
            failed(
                site,
                manager,
                "cache read failed; running the function uncached",
                &e,
            );
            Read::Failed
        }
    }
}

fn failed(site: &'static CacheSite, manager: &CacheManager, what: &str, e: &Error) {
    count(site, Event::Error);
    tracing::debug!(target: "forge_cache", prefix = site.prefix(), function = site.name(), error = %e, "cache error");
    manager.warn_failure(what, e);
}

/// Encodes the cacheable part of `out`, if any.
fn encode<P: Policy<R>, R>(
    site: &'static CacheSite,
    manager: &CacheManager,
    out: &R,
) -> Option<Vec<u8>> {
    let stored = P::cacheable(out, site.cache_none())?;
    match manager.encode_checked(stored) {
        Ok(bytes) => Some(bytes),
        Err(e) => {
            failed(
                site,
                manager,
                "result not cached: it could not be stored",
                &e,
            );
            None
        }
    }
}

fn stored(site: &'static CacheSite, manager: &CacheManager, reply: Result<Value>) {
    match reply {
        Ok(_) => event(site, Event::Store, "cache store"),
        Err(e) => failed(site, manager, "cache write failed", &e),
    }
}

/// What a miss does after the flight: lead (and publish), or run alone
/// because the leader's result was not cacheable.
enum Role<'a> {
    Lead(Leader<'a>),
    Alone,
}

/// After a waiter's flight ends: the leader's value, or what to do next.
enum Waited<S> {
    Value(S),
    Alone,
    Retry,
}

fn waited<S: serde::de::DeserializeOwned>(site: &'static CacheSite, state: State) -> Waited<S> {
    match state {
        State::Done(Some(bytes)) => match decode(&bytes) {
            Ok(v) => {
                event(
                    site,
                    Event::Coalesced,
                    "cache miss served by a concurrent call",
                );
                Waited::Value(v)
            }
            Err(_) => Waited::Alone,
        },
        State::Done(None) => Waited::Alone,
        State::Abandoned | State::Running => Waited::Retry,
    }
}

/// The full key of `call`, or `None` (logged) when an argument did not
/// serialize and the call must run uncached.
fn call_key(site: &'static CacheSite, manager: &CacheManager, call: CallKey) -> Option<String> {
    match site.key(manager.settings().namespace(), call) {
        Ok(k) => Some(k),
        Err(e) => {
            failed(
                site,
                manager,
                "cache key not computable (an argument does not serialize); running uncached",
                &Error::Encode(e),
            );
            None
        }
    }
}

/// After the function ran: encodes its cacheable part, hands it to the
/// waiting callers, and returns the bytes to store (if the backend is up).
fn publish<P: Policy<R>, R>(
    site: &'static CacheSite,
    manager: &CacheManager,
    role: &mut Role<'_>,
    out: &R,
    backend_ok: bool,
) -> Option<Vec<u8>> {
    let bytes = encode::<P, R>(site, manager, out);
    if let Role::Lead(leader) = role {
        leader.finish(bytes.as_deref());
    }
    bytes.filter(|_| backend_ok)
}

/// The body of an async `#[cache_result]` function: serve `call`'s value
/// from the cache, or run `run` and store its cacheable result.
///
/// Fails open: when the backend fails, `run` runs and its result is
/// returned. Concurrent misses of the same key in this process run `run`
/// once (see [the module docs](super)).
pub async fn cached<P, R, F>(site: &'static CacheSite, call: CallKey, run: F) -> R
where
    P: Policy<R>,
    F: Future<Output = R>,
{
    let manager = current();
    let Some(key) = call_key(site, &manager, call) else {
        return run.await;
    };
    let backend_ok = match read::<P::Stored>(site, &manager, manager.exec(Op::Get(&key)).await) {
        Read::Hit(v) => return P::from_stored(v),
        Read::Miss => true,
        Read::Failed => false,
    };
    let role = loop {
        match manager.inner.flights.join(&key) {
            Join::Lead(leader) => break Role::Lead(leader),
            Join::Wait(flight) => match waited(site, flight.wait().await) {
                Waited::Value(v) => return P::from_stored(v),
                Waited::Alone => break Role::Alone,
                Waited::Retry => {}
            },
        }
    };
    let out = run.await;
    let mut role = role;
    if let Some(bytes) = publish::<P, R>(site, &manager, &mut role, &out, backend_ok) {
        let ttl = site.ttl(manager.settings().default_ttl());
        stored(
            site,
            &manager,
            manager.exec(Op::Set(&key, &bytes, ttl)).await,
        );
    }
    // Until here, callers of the same key get the published value.
    drop(role);
    out
}

/// Sync form of [`cached`], for sync functions: uses the sync client.
pub fn cached_sync<P, R, F>(site: &'static CacheSite, call: CallKey, run: F) -> R
where
    P: Policy<R>,
    F: FnOnce() -> R,
{
    let manager = current();
    let Some(key) = call_key(site, &manager, call) else {
        return run();
    };
    let backend_ok = match read::<P::Stored>(site, &manager, manager.exec_sync(Op::Get(&key))) {
        Read::Hit(v) => return P::from_stored(v),
        Read::Miss => true,
        Read::Failed => false,
    };
    let role = loop {
        match manager.inner.flights.join(&key) {
            Join::Lead(leader) => break Role::Lead(leader),
            Join::Wait(flight) => match waited(site, flight.wait_sync()) {
                Waited::Value(v) => return P::from_stored(v),
                Waited::Alone => break Role::Alone,
                Waited::Retry => {}
            },
        }
    };
    let out = run();
    let mut role = role;
    if let Some(bytes) = publish::<P, R>(site, &manager, &mut role, &out, backend_ok) {
        let ttl = site.ttl(manager.settings().default_ttl());
        stored(
            site,
            &manager,
            manager.exec_sync(Op::Set(&key, &bytes, ttl)),
        );
    }
    // Until here, callers of the same key get the published value.
    drop(role);
    out
}

/// Removes one call's entry; returns whether there was one. Behind the
/// generated `<fn>_invalidate`.
pub async fn invalidate(site: &'static CacheSite, call: CallKey) -> Result<bool> {
    let manager = current();
    let key = site
        .key(manager.settings().namespace(), call)
        .map_err(Error::Encode)?;
    Ok(reply::<i64>(manager.exec(Op::Del(&key)).await?)? > 0)
}

/// Sync form of [`invalidate`].
pub fn invalidate_sync(site: &'static CacheSite, call: CallKey) -> Result<bool> {
    let manager = current();
    let key = site
        .key(manager.settings().namespace(), call)
        .map_err(Error::Encode)?;
    Ok(reply::<i64>(manager.exec_sync(Op::Del(&key))?)? > 0)
}

/// Removes every entry of the function; returns how many. Behind the
/// generated `<fn>_invalidate_all`.
pub async fn invalidate_all(site: &'static CacheSite) -> Result<u64> {
    current().delete_pattern(&site.pattern()).await
}

/// Sync form of [`invalidate_all`].
pub fn invalidate_all_sync(site: &'static CacheSite) -> Result<u64> {
    current().delete_pattern_sync(&site.pattern())
}
