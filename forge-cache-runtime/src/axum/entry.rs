//! The stored form of a cached HTTP response: a small length-prefixed
//! binary record (a body can be any bytes, which JSON would inflate).
//! Decoding checks every length, so a corrupt or foreign value is a miss,
//! never a panic.
//!
//! ```text
//! "FCR1" status:u16 stored_ms:u64 expires_ms:u64 etag_len:u16 etag
//! header_count:u16 (name_len:u16 name value_len:u32 value)* body
//! ```
//! Integers are little-endian.

use ::axum::body::Bytes;
use ::axum::http::{HeaderName, HeaderValue, StatusCode};

const MAGIC: &[u8; 4] = b"FCR1";

/// A cached response.
pub(super) struct Entry {
    pub(super) status: StatusCode,
    pub(super) headers: Vec<(HeaderName, HeaderValue)>,
    pub(super) body: Bytes,
    /// A strong validator, quoted: `"<hex>"`.
    pub(super) etag: String,
    /// When it was stored, for `Age`.
    pub(super) stored_ms: u64,
    /// When it expires, for `Cache-Control: max-age`.
    pub(super) expires_ms: u64,
}

impl Entry {
    pub(super) fn encode(&self) -> Vec<u8> {
        let headers: usize = self
            .headers
            .iter()
            .map(|(n, v)| 6 + n.as_str().len() + v.len())
            .sum();
        let mut out = Vec::with_capacity(30 + self.etag.len() + headers + self.body.len());
        out.extend_from_slice(MAGIC);
        out.extend_from_slice(&self.status.as_u16().to_le_bytes());
        out.extend_from_slice(&self.stored_ms.to_le_bytes());
        out.extend_from_slice(&self.expires_ms.to_le_bytes());
        let etag = &self.etag.as_bytes()[..self.etag.len().min(u16::MAX as usize)];
        out.extend_from_slice(&(etag.len() as u16).to_le_bytes());
        out.extend_from_slice(etag);
        let kept: Vec<_> = self
            .headers
            .iter()
            .filter(|(n, v)| n.as_str().len() <= u16::MAX as usize && v.len() <= u32::MAX as usize)
            .take(u16::MAX as usize)
            .collect();
        out.extend_from_slice(&(kept.len() as u16).to_le_bytes());
        for (name, value) in kept {
            out.extend_from_slice(&(name.as_str().len() as u16).to_le_bytes());
            out.extend_from_slice(name.as_str().as_bytes());
            out.extend_from_slice(&(value.len() as u32).to_le_bytes());
            out.extend_from_slice(value.as_bytes());
        }
        out.extend_from_slice(&self.body);
        out
    }

    /// The entry in `bytes`, or `None` when they are not one.
    pub(super) fn decode(bytes: &[u8]) -> Option<Entry> {
        Self::decode_owned(bytes.to_vec())
    }

    /// [`decode`](Self::decode), keeping `bytes` as the body's storage: a
    /// hit does not copy the body.
    pub(super) fn decode_owned(bytes: Vec<u8>) -> Option<Entry> {
        let total = bytes.len();
        let mut r = Reader(&bytes);
        if r.take(4)? != MAGIC {
            return None;
        }
        let status = StatusCode::from_u16(r.u16()?).ok()?;
        let stored_ms = r.u64()?;
        let expires_ms = r.u64()?;
        let etag_len = r.u16()? as usize;
        let etag = std::str::from_utf8(r.take(etag_len)?).ok()?.to_owned();
        let count = r.u16()?;
        let mut headers = Vec::with_capacity(count as usize);
        for _ in 0..count {
            let n = r.u16()? as usize;
            let name = HeaderName::from_bytes(r.take(n)?).ok()?;
            let v = r.u32()? as usize;
            let value = HeaderValue::from_bytes(r.take(v)?).ok()?;
            headers.push((name, value));
        }
        let body_start = total - r.0.len();
        Some(Entry {
            status,
            headers,
            body: Bytes::from(bytes).slice(body_start..),
            etag,
            stored_ms,
            expires_ms,
        })
    }
}

struct Reader<'a>(&'a [u8]);

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Option<&'a [u8]> {
        if self.0.len() < n {
            return None;
        }
        let (head, rest) = self.0.split_at(n);
        self.0 = rest;
        Some(head)
    }

    fn u16(&mut self) -> Option<u16> {
        Some(u16::from_le_bytes(self.take(2)?.try_into().ok()?))
    }

    fn u32(&mut self) -> Option<u32> {
        Some(u32::from_le_bytes(self.take(4)?.try_into().ok()?))
    }

    fn u64(&mut self) -> Option<u64> {
        Some(u64::from_le_bytes(self.take(8)?.try_into().ok()?))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry() -> Entry {
        Entry {
            status: StatusCode::OK,
            headers: vec![(
                HeaderName::from_static("content-type"),
                HeaderValue::from_static("application/json"),
            )],
            body: Bytes::from_static(b"{\"a\":1}"),
            etag: "\"abc\"".into(),
            stored_ms: 1,
            expires_ms: 2,
        }
    }

    #[test]
    fn entries_round_trip() {
        let e = Entry::decode(&entry().encode()).unwrap();
        assert_eq!(
            (e.status, e.etag.as_str(), &e.body[..]),
            (StatusCode::OK, "\"abc\"", &b"{\"a\":1}"[..])
        );
        assert_eq!(e.headers.len(), 1);
        assert_eq!((e.stored_ms, e.expires_ms), (1, 2));
    }

    #[test]
    fn truncated_or_foreign_bytes_are_not_entries() {
        let bytes = entry().encode();
        for n in 0..bytes.len() - 7 {
            // Cut before the body starts: every prefix fails cleanly.
            assert!(Entry::decode(&bytes[..n]).is_none(), "prefix of {n} bytes");
        }
        assert!(Entry::decode(b"{\"json\":true}").is_none());
    }
}
