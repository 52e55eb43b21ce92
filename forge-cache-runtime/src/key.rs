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
    pub fn finish_hex(mut self) -> String {
        self.md5.update(b"]");
        let digest = self.md5.finalize();
        let mut hex = String::with_capacity(32);
        for b in digest {
            let _ = write!(hex, "{b:02x}");
        }
        hex
    }
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
    fn hex_digest_is_stable() {
        let mut h = ArgsHasher::new();
        h.arg("books").unwrap();
        assert_eq!(h.finish_hex(), "0dcd08f7a59377dc163eeecd7dee3863");
    }
}
