//! Reading an entry: the one-round-trip fetch (with the versions of its
//! tags), decoding, the tag and TTL checks, and the values a concurrent
//! call or process left.

use std::borrow::Cow;
use std::time::Duration;

use ::redis::Value;
use serde::de::DeserializeOwned;

use super::envelope::{Decoded, decode_stored};
use super::refresh::{GET_WITH_PTTL, uniform, xfetch};
use super::site::CacheSite;
use super::stats::{Event, count};
use super::tags;
use crate::backend::Op;
use crate::drive::Drive;
use crate::error::{Chain, Error, Result};
use crate::flight::{Leader, State};
use crate::format::Codec;
use crate::manager::CacheManager;

/// What a read found.
pub(super) enum Read<S> {
    Hit(S),
    /// A value to serve, but one caller should refresh it: it is stale
    /// (`stale_ttl`), or due for early recomputation (`early_refresh`).
    /// With the milliseconds its computation took.
    Refresh(S, u64),
    /// Absent, or present but undecodable (it is overwritten).
    Miss,
    /// The backend failed: run uncached, do not try to store.
    Failed,
}

pub(super) fn event(site: &'static CacheSite, e: Event, what: &'static str) {
    count(site, e);
    tracing::debug!(target: "forge_cache", prefix = site.prefix(), function = site.name(), "{what}");
}

/// `tags_now`: the current versions of the call's tags, read with the
/// entry (tagged functions only).
pub(super) fn read<S: DeserializeOwned>(
    site: &'static CacheSite,
    manager: &CacheManager,
    reply: Result<Value>,
    tags_now: &[Value],
) -> Read<S> {
    let (bytes, pttl) = match reply {
        Ok(Value::Nil) => {
            event(site, Event::Miss, "cache miss");
            return Read::Miss;
        }
        Ok(Value::BulkString(bytes)) => (bytes, None),
        Ok(Value::Array(mut v)) if v.len() == 2 => match (v.pop(), v.pop()) {
            (Some(Value::Int(pttl)), Some(Value::BulkString(bytes))) => (bytes, Some(pttl)),
            _ => return read_failed(site, manager, "GET with PTTL replied an unexpected shape"),
        },
        // The reply is not quoted: it could be stored data.
        Ok(_) => return read_failed(site, manager, "GET replied an unexpected type"),
        Err(e) => return read_error(site, manager, &e),
    };
    let Decoded {
        value,
        took_ms: delta_ms,
        tags: recorded,
    } = match decode_stored(&site.codec(manager.settings()), &bytes, site.wrapped()) {
        Ok(v) => v,
        Err(e) => {
            count(site, Event::Error);
            count(site, Event::Miss);
            manager.warn_failure_at(
                site.prefix(),
                site.name(),
                "cached value no longer decodes; recomputing and overwriting it",
                &e,
            );
            return Read::Miss;
        }
    };
    if site.tagged() && !tags::valid(&recorded, tags_now) {
        event(site, Event::Miss, "cache miss: a tag was invalidated");
        return Read::Miss;
    }
    event(site, Event::Hit, "cache hit");
    let Some(pttl) = pttl else {
        return Read::Hit(value);
    };
    // Time left before the value turns stale (or expires, without stale_ttl).
    let fresh_ms = pttl - site.stale().as_millis() as i64;
    if fresh_ms <= 0 {
        tracing::debug!(target: "forge_cache", prefix = site.prefix(), function = site.name(), "stale value; refreshing");
        return Read::Refresh(value, delta_ms);
    }
    let left = Duration::from_millis(fresh_ms as u64);
    if site.early_refresh()
        && xfetch(
            Duration::from_millis(delta_ms),
            site.beta(),
            left,
            uniform(),
        )
    {
        tracing::debug!(target: "forge_cache", prefix = site.prefix(), function = site.name(), "early refresh");
        return Read::Refresh(value, delta_ms);
    }
    Read::Hit(value)
}

pub(super) fn read_failed<S>(
    site: &'static CacheSite,
    manager: &CacheManager,
    what: &str,
) -> Read<S> {
    read_error(site, manager, &Error::Protocol(what.to_owned()))
}

pub(super) fn read_error<S>(
    site: &'static CacheSite,
    manager: &CacheManager,
    e: &Error,
) -> Read<S> {
    failed(
        site,
        manager,
        "cache read failed; running the function uncached",
        e,
    );
    Read::Failed
}

pub(super) fn failed(site: &'static CacheSite, manager: &CacheManager, what: &str, e: &Error) {
    count(site, Event::Error);
    tracing::debug!(target: "forge_cache", prefix = site.prefix(), function = site.name(), error = %Chain(e), "cache error");
    manager.warn_failure_at(site.prefix(), site.name(), what, e);
}

/// After a waiter's flight ends: the leader's value, or what to do next.
pub(super) enum Waited<S> {
    Value(S),
    Alone,
    Retry,
}

pub(super) fn waited<S: DeserializeOwned>(
    site: &'static CacheSite,
    codec: &Codec,
    state: State,
) -> Waited<S> {
    match state {
        State::Done(Some(bytes)) => match decode_stored::<S>(codec, &bytes, site.wrapped()) {
            Ok(Decoded { value: v, .. }) => {
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

/// The value another call stored between this leader's read and now (read
/// again in `reply`), also handed to this process's waiters. A tagged entry
/// must have recorded `versions`, those of the call's tags.
pub(super) fn filled_meanwhile<S: DeserializeOwned>(
    site: &'static CacheSite,
    codec: &Codec,
    leader: &mut Leader<'_>,
    reply: Result<Value>,
    versions: &[String],
) -> Option<S> {
    let Ok(Value::BulkString(bytes)) = reply else {
        return None;
    };
    let Decoded { value: v, tags, .. } = decode_stored(codec, &bytes, site.wrapped()).ok()?;
    if tags != versions {
        return None;
    }
    leader.finish(Some(&bytes));
    event(
        site,
        Event::Coalesced,
        "cache filled by another process meanwhile",
    );
    Some(v)
}

/// Reads the entry, with its remaining TTL when the site refreshes, and
/// the current versions of its tags: one `GET`, or one `MGET` of the entry
/// and the version keys. With tags *and* `stale_ttl` or `early_refresh`,
/// two round trips (the TTL script, then the versions).
pub(super) async fn fetch<D: Drive>(
    site: &'static CacheSite,
    drive: &D,
    key: &str,
    tag_keys: &[Cow<'_, str>],
) -> Fetched {
    let failed = |e| Fetched {
        entry: Err(e),
        values: Vec::new(),
        first_tag: 0,
    };
    if tag_keys.is_empty() || site.refreshes() {
        let entry = if site.refreshes() {
            drive.exec(Op::Script(&GET_WITH_PTTL, &[key], &[])).await
        } else {
            drive.exec(Op::Get(key)).await
        };
        if tag_keys.is_empty() {
            return Fetched {
                entry,
                values: Vec::new(),
                first_tag: 0,
            };
        }
        let refs: Vec<&str> = tag_keys.iter().map(AsRef::as_ref).collect();
        return match (entry, drive.exec(Op::MGet(&refs)).await) {
            (Ok(entry), Ok(Value::Array(values))) => Fetched {
                entry: Ok(entry),
                values,
                first_tag: 0,
            },
            (Err(e), _) | (_, Err(e)) => failed(e),
            (Ok(_), Ok(_)) => failed(unexpected("MGET")),
        };
    }
    let mut keys = Vec::with_capacity(tag_keys.len() + 1);
    keys.push(key);
    keys.extend(tag_keys.iter().map(AsRef::as_ref));
    match drive.exec(Op::MGet(&keys)).await {
        Ok(Value::Array(mut values)) if values.len() == keys.len() => Fetched {
            entry: Ok(std::mem::replace(&mut values[0], Value::Nil)),
            values,
            first_tag: 1,
        },
        Ok(_) => failed(unexpected("MGET")),
        Err(e) => failed(e),
    }
}

/// What [`fetch`] read: the entry, and the current versions of the call's
/// tags (`values[first_tag..]`).
pub(super) struct Fetched {
    pub(super) entry: Result<Value>,
    values: Vec<Value>,
    first_tag: usize,
}

impl Fetched {
    pub(super) fn tags_now(&self) -> &[Value] {
        self.values.get(self.first_tag..).unwrap_or(&[])
    }
}

pub(super) fn unexpected(command: &str) -> Error {
    Error::Protocol(format!("{command} replied an unexpected shape"))
}
