//! The functions `#[cache_result]` expands to: read, run on a miss (once per
//! key in this process), store; and the invalidation companions.

use std::borrow::Cow;
use std::future::Future;
use std::time::{Duration, Instant};

use ::redis::Value;
use serde::de::DeserializeOwned;

use super::envelope::encode_stored;
use super::options::{Options, decide};
use super::policy::{Output, Policy};
use super::read::{Read, Waited, event, failed, fetch, filled_meanwhile, read, waited};
use super::refresh::marker_key;
use super::site::{CacheSite, CallKey};
use super::stats::Event;
use super::tags::{self, Tags};
use crate::backend::Op;
use crate::drive::{Async, Blocking, Drive, block_now};
use crate::error::{Chain, Error, Result};
use crate::flight::{Flights, Join, Leader};
use crate::global::current;
use crate::key::{hex_digest, join_key};
use crate::lock::Guard;
use crate::manager::CacheManager;
use crate::scope;

/// Encodes the cacheable part of `out` (in an envelope with the compute
/// time for `early_refresh`), with the TTL to store it under, if it is
/// stored at all.
fn encode<P: Policy<R>, R>(
    site: &'static CacheSite,
    manager: &CacheManager,
    opts: &Options<P::Value>,
    versions: &[String],
    out: &R,
    took: Duration,
) -> Option<(Vec<u8>, Duration)> {
    let (stored, ttl) = match decide::<P, R>(site, manager.settings().default_ttl(), opts, out) {
        Ok(decided) => decided,
        Err(why) => {
            tracing::debug!(target: "forge_cache", prefix = site.prefix(), function = site.name(), "{why}");
            return None;
        }
    };
    let took_ms = site.early_refresh().then(|| took.as_millis().max(1) as u64);
    let codec = site.codec(manager.settings());
    match encode_stored(&codec, site.wrapped(), stored, took_ms, versions) {
        Ok(bytes) => Some((bytes, ttl)),
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

/// The marker claimed by the one caller (across processes) that refreshes
/// an entry, deleted once the new value is stored. It lives twice the last
/// compute time, at least a second, at most the TTL: if that caller dies or
/// its function fails, another refreshes after it expires.
fn marker_ttl(site: &CacheSite, manager: &CacheManager, took_ms: u64) -> Duration {
    let ttl = site.ttl(manager.settings().default_ttl());
    Duration::from_millis(took_ms.saturating_mul(2))
        .max(Duration::from_secs(1))
        .min(ttl)
}

fn claimed(reply: Result<Value>) -> bool {
    matches!(reply, Ok(v) if v != Value::Nil)
}

/// After the function ran: encodes its cacheable part, hands it to the
/// waiting callers, and returns the bytes to store and their TTL (if the
/// backend is up).
fn publish<P: Policy<R>, R>(
    site: &'static CacheSite,
    manager: &CacheManager,
    miss: &mut Miss<'_, P::Stored>,
    opts: &Options<P::Value>,
    out: &R,
    took: Duration,
) -> Option<(Vec<u8>, Duration)> {
    let encoded = encode::<P, R>(site, manager, opts, &miss.versions, out, took);
    if let Role::Lead(leader) = &mut miss.role {
        leader.finish(encoded.as_ref().map(|(bytes, _)| bytes.as_slice()));
    }
    encoded.filter(|_| miss.backend_ok)
}

/// With `stale_ttl`: a refresh whose function failed serves the value it
/// was refreshing.
fn keep_stale<P: Policy<R>, R>(
    site: &'static CacheSite,
    out: &R,
    stale: &mut Option<(P::Stored, u64)>,
) -> Option<P::Stored> {
    if matches!(P::output(out), Output::Err) {
        let (v, _) = stale.take()?;
        tracing::debug!(target: "forge_cache", prefix = site.prefix(), function = site.name(), "refresh failed; serving the stale value");
        return Some(v);
    }
    None
}

/// `lock = true`: how long the lock of a computing caller lives. Twice the
/// wait bound (at least a second): a computation that outlives it lets one
/// more process compute.
fn lock_ttl(wait: Duration) -> Duration {
    wait.max(Duration::from_secs(1)) * 2
}

/// After the cross-process lock was taken: the value another process
/// stored meanwhile, if any (also handed to this process's waiters).
/// The leader that should read the key once more before computing: a
/// flight ended between its read and its joining (the ended flight's value
/// may be stored now), the read was a plain miss (not a stale value being
/// refreshed) and no `lock = true` re-read follows anyway. One
/// extra `GET` on such misses only, instead of a second run of the function.
fn reread_leader<'r, 'a>(
    site: &'static CacheSite,
    manager: &CacheManager,
    role: &'r mut Role<'a>,
    key: &str,
    generation: u64,
    plain_miss: bool,
) -> Option<&'r mut Leader<'a>> {
    match role {
        Role::Lead(leader)
            if plain_miss
                && site.lock_wait().is_none()
                && manager.state::<Flights>().generation(key) != generation =>
        {
            Some(leader)
        }
        _ => None,
    }
}

/// The name of the `lock = true` lock of one key: `<prefix>:<fn>:<md5 of
/// the key>`. Lock names are logged; a rendered key template can hold
/// caller data (a user id), its digest cannot.
fn lock_name(site: &'static CacheSite, key: &str) -> String {
    use md5::{Digest, Md5};
    let mut buf = [0u8; 32];
    let hex = hex_digest(&Md5::digest(key.as_bytes()).into(), &mut buf);
    join_key(None, &[site.prefix(), site.name(), hex])
}

fn lock_taken(site: &'static CacheSite, asked: Instant) {
    tracing::debug!(target: "forge_cache", prefix = site.prefix(), function = site.name(),
        waited_ms = asked.elapsed().as_millis() as u64, "cache lock taken");
}

fn lock_failed(site: &'static CacheSite, e: &Error) {
    tracing::debug!(target: "forge_cache", prefix = site.prefix(), function = site.name(), error = %Chain(e),
        "cache lock not taken; computing without it");
}

/// A miss this call computes, and what it must do once the function ran.
struct Miss<'a, S> {
    key: String,
    /// Whether the read reached the backend (a failed one stores nothing).
    backend_ok: bool,
    /// The value being refreshed (`stale_ttl`, `early_refresh`), with the
    /// milliseconds its computation took.
    stale: Option<(S, u64)>,
    /// The refresh marker this call claimed.
    marker: Option<String>,
    role: Role<'a>,
    /// The cross-process lock (`lock = true`).
    guard: Option<Guard>,
    /// The versions of the call's tags, read before the function runs.
    versions: Vec<String>,
}

/// What happens before the function runs.
// Returned once per call and consumed at once: boxing `Miss` would only
// add an allocation to every miss.
#[allow(clippy::large_enum_variant)]
enum Before<'a, S> {
    /// Answer with this value; the function does not run.
    Serve(S),
    /// Run the function, then [`after`].
    Compute(Miss<'a, S>),
    /// Run the function uncached (no key: an argument did not serialize).
    Uncached,
}

/// What the scope and `force_refresh` ask of one call.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Mode {
    Normal,
    /// Inside [`bypass`](crate::bypass): run uncached.
    Bypass,
    /// `<fn>_refresh` or `force_refresh`: skip the read, recompute, store.
    Refresh,
}

fn mode<V>(site: &'static CacheSite, opts: &Options<V>) -> Mode {
    let mode = if scope::has(scope::CACHE_OFF) {
        Mode::Bypass
    } else if opts.force {
        Mode::Refresh
    } else {
        return Mode::Normal;
    };
    tracing::debug!(target: "forge_cache", prefix = site.prefix(), function = site.name(),
        bypass = (mode == Mode::Bypass), "cache read skipped");
    mode
}

// The work is split so that only a thin shell is generic over the
// function's body (`F`, a different type for every cached function):
// `before` is generic over the stored type and the driver alone, `after`
// over the return type and the driver, so their code is shared by every
// function with the same types instead of being compiled again for each
// function. Both are written once; the async and the sync shell drive them
// (`drive`).

/// The body of an async `#[cache_result]` function: serve `call`'s value
/// from the cache, or run `run` and store its cacheable result.
///
/// Fails open: when the backend fails, `run` runs and its result is
/// returned. Concurrent misses of the same key in this process run `run`
/// once; the others get its value (errors are not shared: `E` need not
/// be `Clone`, so after an `Err` each waiting call runs `run` itself).
pub async fn cached<P, R, F>(
    site: &'static CacheSite,
    call: CallKey,
    opts: Options<P::Value>,
    run: F,
) -> R
where
    P: Policy<R>,
    F: Future<Output = R>,
{
    let manager = current();
    let drive = Async(&manager);
    let mode = mode(site, &opts);
    let mut miss = match before::<P::Stored, _>(site, &drive, call, &opts.tags, mode).await {
        Before::Serve(v) => return P::from_stored(v),
        Before::Uncached => None,
        Before::Compute(miss) => Some(miss),
    };
    // One `.await` of the body, whatever happens around it: each one adds
    // code per function.
    let started = Instant::now();
    let out = run.await;
    if let Some(miss) = &mut miss {
        if let Some(v) = after::<P, R, _>(site, &drive, miss, &opts, &out, started.elapsed()).await
        {
            return P::from_stored(v);
        }
    }
    // Until `miss` drops, callers of the same key get the published value.
    out
}

/// Reads the key; on a miss joins the flight (or claims the refresh) and
/// takes the lock, as [`cached`] describes. Written once for both drivers.
async fn before<'a, S: DeserializeOwned, D: Drive>(
    site: &'static CacheSite,
    drive: &'a D,
    call: CallKey,
    tags: &Tags,
    mode: Mode,
) -> Before<'a, S> {
    if mode == Mode::Bypass {
        return Before::Uncached;
    }
    let manager = drive.manager();
    let Some(key) = call_key(site, manager, call) else {
        return Before::Uncached;
    };
    let tag_keys = tags::version_keys(manager.settings().namespace(), tags);
    if mode == Mode::Refresh {
        // Recompute and store, alone: a concurrent flight may have started
        // before the change this refresh is for.
        let (versions, backend_ok) = versions(site, drive, &tag_keys).await;
        return Before::Compute(Miss {
            key,
            backend_ok,
            stale: None,
            marker: None,
            role: Role::Alone,
            guard: None,
            versions,
        });
    }
    let generation = manager.state::<Flights>().generation(&key);
    let codec = site.codec(manager.settings());
    let mut fetched = fetch(site, drive, &key, &tag_keys).await;
    let entry = std::mem::replace(&mut fetched.entry, Ok(Value::Nil));
    let (mut backend_ok, mut stale) = match read::<S>(site, manager, entry, fetched.tags_now()) {
        Read::Hit(v) => return Before::Serve(v),
        Read::Refresh(v, d) => (true, Some((v, d))),
        Read::Miss => (true, None),
        Read::Failed => (false, None),
    };
    let mut marker = None;
    let mut role = if let Some((v, took_ms)) = stale.take() {
        // One refresher; everyone else keeps serving the current value.
        let Join::Lead(leader) = manager.state::<Flights>().join(&key) else {
            return Before::Serve(v);
        };
        let m = marker_key(&key);
        let ttl = marker_ttl(site, manager, took_ms);
        if !claimed(drive.exec(Op::SetNx(&m, b"1", ttl)).await) {
            return Before::Serve(v);
        }
        marker = Some(m);
        stale = Some((v, took_ms));
        Role::Lead(leader)
    } else {
        loop {
            match manager.state::<Flights>().join(&key) {
                Join::Lead(leader) => break Role::Lead(leader),
                Join::Wait(flight) => match waited(site, &codec, drive.wait(&flight).await) {
                    Waited::Value(v) => return Before::Serve(v),
                    Waited::Alone => break Role::Alone,
                    Waited::Retry => {}
                },
            }
        }
    };
    let mut versions = Vec::new();
    if backend_ok {
        (versions, backend_ok) = self::versions(site, drive, &tag_keys).await;
    }
    if let Some(leader) = reread_leader(
        site,
        manager,
        &mut role,
        &key,
        generation,
        backend_ok && stale.is_none(),
    ) {
        let reply = drive.exec(Op::Get(&key)).await;
        if let Some(v) = filled_meanwhile(site, &codec, leader, reply, &versions) {
            return Before::Serve(v);
        }
    }
    let mut guard = None;
    if let (Role::Lead(leader), Some(wait), true) = (&mut role, site.lock_wait(), backend_ok) {
        let asked = Instant::now();
        match crate::lock::lock(drive, &lock_name(site, &key), lock_ttl(wait), wait).await {
            Ok(g) => {
                lock_taken(site, asked);
                // Another process may have stored the value while we waited.
                let reply = drive.exec(Op::Get(&key)).await;
                if let Some(v) = filled_meanwhile(site, &codec, leader, reply, &versions) {
                    crate::lock::unlock(drive, g).await;
                    return Before::Serve(v);
                }
                guard = Some(g);
            }
            Err(e) => lock_failed(site, &e),
        }
    }
    Before::Compute(Miss {
        key,
        backend_ok,
        stale,
        marker,
        role,
        guard,
        versions,
    })
}

/// The versions of the call's tags, for an entry computed now, and whether
/// the entry may be stored (not when they could not be read).
async fn versions<D: Drive>(
    site: &'static CacheSite,
    drive: &D,
    tag_keys: &[Cow<'_, str>],
) -> (Vec<String>, bool) {
    if tag_keys.is_empty() {
        return (Vec::new(), true);
    }
    let manager = drive.manager();
    let ttl = tags::version_ttl(site.ttl(manager.settings().default_ttl()) + site.stale());
    match tags::versions(drive, tag_keys, ttl).await {
        Ok(v) => (v, true),
        Err(e) => {
            failed(
                site,
                manager,
                "tag versions not read; running the function without storing its result",
                &e,
            );
            (Vec::new(), false)
        }
    }
}

/// After the function ran: the stale value to serve instead of a failed
/// refresh, or `None` once the result is published, stored and the lock
/// released.
async fn after<P: Policy<R>, R, D: Drive>(
    site: &'static CacheSite,
    drive: &D,
    miss: &mut Miss<'_, P::Stored>,
    opts: &Options<P::Value>,
    out: &R,
    took: Duration,
) -> Option<P::Stored> {
    let manager = drive.manager();
    crate::telemetry::compute_time(site.prefix(), site.name(), took);
    if let Some(v) = keep_stale::<P, R>(site, out, &mut miss.stale) {
        return Some(v);
    }
    if let Some((bytes, ttl)) = publish::<P, R>(site, manager, miss, opts, out, took) {
        let ttl = ttl + site.stale();
        let key = &miss.key;
        stored(site, manager, drive.exec(Op::Set(key, &bytes, ttl)).await);
        if let Some(m) = &miss.marker {
            // Refreshed: the next refresh may start as soon as it is due.
            let _ = drive.exec(Op::Del(m)).await;
        }
    }
    if let Some(g) = miss.guard.take() {
        crate::lock::unlock(drive, g).await;
    }
    None
}

/// Blocking form of [`cached`], for sync functions: the same path, driven
/// on this thread with the blocking client (the blocking driver).
pub fn cached_blocking<P, R, F>(
    site: &'static CacheSite,
    call: CallKey,
    opts: Options<P::Value>,
    run: F,
) -> R
where
    P: Policy<R>,
    F: FnOnce() -> R,
{
    let manager = current();
    let drive = Blocking(&manager);
    let mode = mode(site, &opts);
    let mut miss = match block_now(before::<P::Stored, _>(site, &drive, call, &opts.tags, mode)) {
        Before::Serve(v) => return P::from_stored(v),
        Before::Uncached => return run(),
        Before::Compute(miss) => miss,
    };
    let started = Instant::now();
    let out = run();
    match block_now(after::<P, R, _>(
        site,
        &drive,
        &mut miss,
        &opts,
        &out,
        started.elapsed(),
    )) {
        Some(v) => P::from_stored(v),
        None => out,
    }
}

/// Removes one call's entry; returns whether there was one. Written once
/// for both drivers.
async fn invalidate_with<D: Drive>(d: &D, site: &'static CacheSite, call: CallKey) -> Result<bool> {
    let key = site
        .key(d.manager().settings().namespace(), call)
        .map_err(Error::Encode)?;
    crate::ops::delete_full(d, &key).await
}

/// Removes one call's entry; returns whether there was one. Behind the
/// generated `<fn>_invalidate`.
pub async fn invalidate(site: &'static CacheSite, call: CallKey) -> Result<bool> {
    invalidate_with(&Async(&current()), site, call).await
}

/// Blocking form of [`invalidate`], behind the `<fn>_invalidate` of a sync
/// function.
pub fn invalidate_blocking(site: &'static CacheSite, call: CallKey) -> Result<bool> {
    block_now(invalidate_with(&Blocking(&current()), site, call))
}

/// Removes every entry of the function; returns how many. Behind the
/// generated `<fn>_invalidate_all`.
pub async fn invalidate_all(site: &'static CacheSite) -> Result<u64> {
    current().delete_pattern(&site.pattern()).await
}

/// Blocking form of [`invalidate_all`].
pub fn invalidate_all_blocking(site: &'static CacheSite) -> Result<u64> {
    current().blocking().delete_pattern(&site.pattern())
}
