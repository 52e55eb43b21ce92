//! Keys: the one function that builds every key forge-cache reads, writes or
//! invalidates, the MD5 of a call's arguments, and escaping of
//! caller-controlled key parts.
//!
//! A cached call's key is
//! `[<namespace>:]<key_prefix>:<fn name>:<md5 hex>` where the MD5 is taken over
//! the JSON array of the key arguments, e.g. `["books",2]` for
//! `get_products("books", 2)`. The JSON is streamed into the hasher; no string
//! is built for it.

use std::fmt::{self, Write as _};

use std::io;

use md5::{Digest, Md5};
use serde::Serialize;

/// Builds a full key: the namespace (if any), then `parts`, joined by `:`.
/// Reads, writes and invalidation all go through this function.
///
/// ```
/// use forge_cache_runtime::key::join_key;
/// assert_eq!(join_key(None, &["user", "42", "profile"]), "user:42:profile");
/// assert_eq!(join_key(Some("v2"), &["cache", "f", "ab"]), "v2:cache:f:ab");
/// ```
pub fn join_key(namespace: Option<&str>, parts: &[&str]) -> String {
    let len =
        namespace.map_or(0, |n| n.len() + 1) + parts.iter().map(|p| p.len() + 1).sum::<usize>();
    let mut key = String::with_capacity(len);
    if let Some(ns) = namespace {
        key.push_str(ns);
        key.push(':');
    }
    for (i, part) in parts.iter().enumerate() {
        if i > 0 {
            key.push(':');
        }
        key.push_str(part);
    }
    key
}

/// Streams the JSON form of a call's key arguments into MD5.
///
/// ```
/// use forge_cache_runtime::key::ArgsHasher;
/// let mut h = ArgsHasher::new();
/// h.arg(&"books").unwrap();
/// h.arg(&2).unwrap();
/// // md5 of `["books",2]`
/// assert_eq!(h.finish_hex(), format!("{:x}", md5::Md5::digest(br#"["books",2]"#)));
/// # use md5::Digest;
/// ```
pub struct ArgsHasher {
    md5: Md5,
    first: bool,
}

impl Default for ArgsHasher {
    fn default() -> Self {
        Self::new()
    }
}

struct HashWriter<'a>(&'a mut Md5);

impl io::Write for HashWriter<'_> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.0.update(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl ArgsHasher {
    /// An empty argument list (`[]`).
    pub fn new() -> Self {
        let mut md5 = Md5::new();
        md5.update(b"[");
        ArgsHasher { md5, first: true }
    }

    /// Appends one argument's JSON form.
    pub fn arg<T: Serialize + ?Sized>(&mut self, value: &T) -> Result<(), serde_json::Error> {
        if !self.first {
            self.md5.update(b",");
        }
        self.first = false;
        serde_json::to_writer(HashWriter(&mut self.md5), value)
    }

    /// Appends a type's name (for generic functions, whose instantiations
    /// must not share entries). Not part of the JSON array.
    pub fn type_name(&mut self, name: &str) {
        self.md5.update(b"#");
        self.md5.update(name.as_bytes());
    }

    /// The 32 lowercase hex digits of the digest.
    pub fn finish_hex(self) -> String {
        let mut buf = [0u8; 32];
        hex_digest(&self.finish(), &mut buf).to_owned()
    }

    /// The 16 bytes of the digest.
    pub fn finish(mut self) -> [u8; 16] {
        self.md5.update(b"]");
        self.md5.finalize().into()
    }
}

/// Writes `digest` as 32 lowercase hex digits into `buf`, without allocating.
///
/// ```
/// use forge_cache_runtime::key::hex_digest;
/// let mut buf = [0u8; 32];
/// assert_eq!(hex_digest(&[0xab; 16], &mut buf), "ab".repeat(16));
/// ```
pub fn hex_digest<'b>(digest: &[u8; 16], buf: &'b mut [u8; 32]) -> &'b str {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    for (i, b) in digest.iter().enumerate() {
        buf[2 * i] = HEX[usize::from(b >> 4)];
        buf[2 * i + 1] = HEX[usize::from(b & 0xf)];
    }
    // Only ASCII hex digits were written.
    std::str::from_utf8(buf).unwrap_or_default()
}

/// Writes `value` into `out` as a key component: bytes that could reach
/// another namespace or act as glob syntax (`:` `*` `?` `[` `]` `\` `{` `}`
/// `%`, whitespace and control characters) are percent-encoded, so a
/// caller-controlled value stays one literal component.
///
/// ```
/// use forge_cache_runtime::key::push_component;
/// let mut k = String::from("user:");
/// push_component(&mut k, &"a:*{x}");
/// assert_eq!(k, "user:a%3A%2A%7Bx%7D");
/// ```
pub fn push_component(out: &mut String, value: &dyn fmt::Display) {
    struct Escape<'a>(&'a mut String);
    impl fmt::Write for Escape<'_> {
        fn write_str(&mut self, s: &str) -> fmt::Result {
            for c in s.chars() {
                if needs_escape(c) {
                    let mut buf = [0u8; 4];
                    for b in c.encode_utf8(&mut buf).bytes() {
                        write!(self.0, "%{b:02X}")?;
                    }
                } else {
                    self.0.push(c);
                }
            }
            Ok(())
        }
    }
    let _ = write!(Escape(out), "{value}");
}

/// Escaped components longer than this many bytes are replaced by
/// `h:<md5 hex of the escaped form>` in [`push_bounded_component`].
pub const MAX_COMPONENT_BYTES: usize = 200;

/// [`push_component`], bounded: when the escaped form is longer than
/// [`MAX_COMPONENT_BYTES`], it is replaced by `h:` and the 32 hex digits of
/// its MD5, so a caller-controlled value (a rate-limit key, a key-template
/// field) cannot make a key grow without bound. Escaped components never
/// contain `:`, so a hashed one cannot collide with a short one.
///
/// ```
/// use forge_cache_runtime::key::{MAX_COMPONENT_BYTES, push_bounded_component};
/// let mut k = String::new();
/// push_bounded_component(&mut k, &"ada");
/// assert_eq!(k, "ada");
/// let mut long = String::new();
/// push_bounded_component(&mut long, &"x".repeat(10_000));
/// assert!(long.starts_with("h:") && long.len() == 34);
/// # let _ = MAX_COMPONENT_BYTES;
/// ```
pub fn push_bounded_component(out: &mut String, value: &dyn fmt::Display) {
    let start = out.len();
    push_component(out, value);
    if out.len() - start > MAX_COMPONENT_BYTES {
        let digest: [u8; 16] = Md5::digest(&out.as_bytes()[start..]).into();
        out.truncate(start);
        out.push_str("h:");
        let mut buf = [0u8; 32];
        out.push_str(hex_digest(&digest, &mut buf));
    }
}

fn needs_escape(c: char) -> bool {
    matches!(
        c,
        ':' | '*' | '?' | '[' | ']' | '\\' | '{' | '}' | '%' | '^'
    ) || c.is_whitespace()
        || c.is_control()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn components_cannot_inject_separators_or_globs() {
        let mut out = String::new();
        push_component(&mut out, &"x:*?[a]\\{t}% \n");
        assert!(!out.contains([':', '*', '?', '[', ']', '\\', '{', '}', ' ', '\n']));
        assert_eq!(out, "x%3A%2A%3F%5Ba%5D%5C%7Bt%7D%25%20%0A");
    }

    #[test]
    fn long_components_are_hashed_and_stay_distinct() {
        let (mut a, mut b, mut c) = (String::new(), String::new(), String::new());
        push_bounded_component(&mut a, &"a".repeat(500));
        push_bounded_component(&mut b, &"b".repeat(500));
        assert_ne!(a, b);
        assert_eq!(a.len(), "h:".len() + 32);
        // exactly at the bound: kept as is
        push_bounded_component(&mut c, &"c".repeat(MAX_COMPONENT_BYTES));
        assert_eq!(c, "c".repeat(MAX_COMPONENT_BYTES));
    }

    #[test]
    fn hex_digest_is_stable() {
        let mut h = ArgsHasher::new();
        h.arg("books").unwrap();
        assert_eq!(h.finish_hex(), "0dcd08f7a59377dc163eeecd7dee3863");
    }
}
