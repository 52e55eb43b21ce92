//! The headers of cached responses: `Cache-Control` directives, `ETag`
//! and `If-None-Match`, which headers are stored, and the response built
//! from an entry (`304`, `Age`, `X-Cache`).

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use ::axum::body::Body;
use ::axum::http::header::{AGE, CACHE_CONTROL, CONTENT_LENGTH, ETAG, IF_NONE_MATCH, SET_COOKIE};
use ::axum::http::request::Parts;
use ::axum::http::{HeaderMap, HeaderName, HeaderValue, Method, StatusCode};
use ::axum::response::Response;
use md5::{Digest, Md5};

use super::entry::Entry;
use crate::key::hex_digest;

/// `X-Cache: HIT`, `MISS` or `STALE` on every response that went through
/// the cache.
pub const X_CACHE: HeaderName = HeaderName::from_static("x-cache");

/// The `Cache-Control` directives of `headers`, lowercased, without values.
pub(super) fn directives(headers: &HeaderMap) -> Vec<String> {
    headers
        .get_all(CACHE_CONTROL)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(|d| d.trim().to_ascii_lowercase())
        .collect()
}

/// `max-age` (or `s-maxage`, which wins) of a response's `Cache-Control`.
pub(super) fn max_age(directives: &[String]) -> Option<Duration> {
    let find = |name: &str| {
        directives.iter().find_map(|d| {
            let (k, v) = d.split_once('=')?;
            (k.trim() == name).then(|| v.trim().trim_matches('"').parse::<u64>().ok())?
        })
    };
    find("s-maxage")
        .or_else(|| find("max-age"))
        .map(Duration::from_secs)
}

pub(super) fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

/// A strong ETag over the body.
pub(super) fn etag_of(body: &[u8]) -> String {
    let digest: [u8; 16] = Md5::digest(body).into();
    let mut buf = [0u8; 32];
    format!("\"{}\"", hex_digest(&digest, &mut buf))
}

/// Whether `If-None-Match` names `etag` (or is `*`). Weak comparison, as
/// RFC 9110 requires for `If-None-Match`.
pub(super) fn none_match(headers: &HeaderMap, etag: &str) -> bool {
    let bare = |t: &str| t.trim().trim_start_matches("W/").to_owned();
    let etag = bare(etag);
    headers
        .get_all(IF_NONE_MATCH)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .any(|t| t.trim() == "*" || bare(t) == etag)
}

/// Headers never stored: hop-by-hop ones (RFC 9110 section 7.6.1) and
/// those this layer sets itself.
pub(super) fn stored_header(name: &HeaderName, cache_set_cookie: bool) -> bool {
    !matches!(
        name.as_str(),
        "connection"
            | "keep-alive"
            | "proxy-authenticate"
            | "proxy-authorization"
            | "proxy-connection"
            | "te"
            | "trailer"
            | "transfer-encoding"
            | "upgrade"
            | "age"
            | "x-cache"
            | "content-length"
    ) && (cache_set_cookie || *name != SET_COOKIE)
}

/// The response to send for `entry`: `304` when `If-None-Match` matches,
/// no body for `HEAD`.
pub(super) fn respond(entry: &Entry, req: &Parts, hit: bool, ttl_left: Duration) -> Response {
    let not_modified = none_match(&req.headers, &entry.etag);
    let mut response = if not_modified {
        let mut r = Response::new(Body::empty());
        *r.status_mut() = StatusCode::NOT_MODIFIED;
        // RFC 9110 section 15.4.5: the headers a 200 would have carried
        // that describe caching.
        for (name, value) in &entry.headers {
            if matches!(
                name.as_str(),
                "cache-control" | "content-location" | "date" | "expires" | "vary"
            ) {
                r.headers_mut().append(name.clone(), value.clone());
            }
        }
        r
    } else {
        let body = if req.method == Method::HEAD {
            Body::empty()
        } else {
            Body::from(entry.body.clone())
        };
        let mut r = Response::new(body);
        *r.status_mut() = entry.status;
        for (name, value) in &entry.headers {
            r.headers_mut().append(name.clone(), value.clone());
        }
        if req.method == Method::HEAD || entry.body.is_empty() {
            r.headers_mut()
                .insert(CONTENT_LENGTH, HeaderValue::from(entry.body.len()));
        }
        r
    };
    let h = response.headers_mut();
    if let Ok(v) = HeaderValue::from_str(&entry.etag) {
        h.insert(ETAG, v);
    }
    if !entry.headers.iter().any(|(n, _)| *n == CACHE_CONTROL) {
        let secs = ttl_left.as_secs();
        if let Ok(v) = HeaderValue::from_str(&format!("max-age={secs}")) {
            h.insert(CACHE_CONTROL, v);
        }
    }
    let age = now_ms().saturating_sub(entry.stored_ms) / 1000;
    h.insert(AGE, HeaderValue::from(age));
    h.insert(
        X_CACHE,
        HeaderValue::from_static(if hit { "HIT" } else { "MISS" }),
    );
    response
}

#[cfg(test)]
mod tests {
    use ::axum::http::Request;

    use super::*;

    fn headers(pairs: &[(&str, &str)]) -> HeaderMap {
        let mut b = Request::builder();
        for (k, v) in pairs {
            b = b.header(*k, *v);
        }
        b.body(()).unwrap().into_parts().0.headers
    }

    #[test]
    fn if_none_match_compares_weakly_and_accepts_lists() {
        let h = headers(&[("if-none-match", "\"x\", W/\"abc\"")]);
        assert!(none_match(&h, "\"abc\""));
        assert!(!none_match(&h, "\"abd\""));
        assert!(none_match(&headers(&[("if-none-match", "*")]), "\"q\""));
    }

    #[test]
    fn max_age_prefers_s_maxage() {
        let d = |s: &str| {
            s.split(',')
                .map(|x| x.trim().to_owned())
                .collect::<Vec<_>>()
        };
        assert_eq!(
            max_age(&d("public, max-age=10")),
            Some(Duration::from_secs(10))
        );
        assert_eq!(
            max_age(&d("max-age=10, s-maxage=3")),
            Some(Duration::from_secs(3))
        );
        assert_eq!(max_age(&d("no-cache")), None);
    }
}
