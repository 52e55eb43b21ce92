//! A cached function's static description, and the key of one call.

use std::fmt::Display;
use std::time::Duration;

use serde::Serialize;

use super::options::Jitter;
use super::stats::Counters;
use crate::format::{Codec, Format};
use crate::glob;
use crate::key::{ArgsHasher, hex_digest, join_key, push_bounded_component};

/// What `#[cache_result]` knows about one function, as a `static` next to
/// it: its key prefix and name, its TTL, its flags, and its counters.
///
/// ```
/// use std::time::Duration;
/// use forge_cache_runtime::__private::CacheSite;
/// static SITE: CacheSite =
///     CacheSite::new("products", "get_products", Some(Duration::from_secs(1800)), 0, None);
/// assert_eq!(SITE.prefix(), "products");
/// ```
pub struct CacheSite {
    prefix: &'static str,
    name: &'static str,
    ttl: Option<Duration>,
    flags: u8,
    template_pattern: Option<&'static str>,
    stale: Duration,
    beta: f64,
    lock_wait: Option<Duration>,
    version: Option<&'static str>,
    none_ttl: Option<Duration>,
    err_ttl: Option<Duration>,
    jitter: Jitter,
    format: Option<Format>,
    pub(crate) counters: Counters,
}

impl CacheSite {
    /// Flag: store `None` too (`cache_none = true`).
    pub const CACHE_NONE: u8 = 1;

    /// A site. `ttl: None` means the settings' default TTL.
    /// `template_pattern` is the glob matching every key of a key template
    /// (`Some("user:*:profile")`), `None` for hashed keys.
    pub const fn new(
        prefix: &'static str,
        name: &'static str,
        ttl: Option<Duration>,
        flags: u8,
        template_pattern: Option<&'static str>,
    ) -> Self {
        CacheSite {
            prefix,
            name,
            ttl,
            flags,
            template_pattern,
            stale: Duration::ZERO,
            beta: 1.0,
            lock_wait: None,
            version: None,
            none_ttl: None,
            err_ttl: None,
            jitter: Jitter::None,
            format: None,
            counters: Counters::new(),
        }
    }

    /// Flag: probabilistic early recomputation (`early_refresh = true`).
    pub const EARLY_REFRESH: u8 = 2;

    /// Flag: entries record the versions of their tags (`tags = [...]`).
    pub const TAGGED: u8 = 4;

    pub(crate) fn tagged(&self) -> bool {
        self.flags & Self::TAGGED != 0
    }

    /// Whether stored values are wrapped (see `envelope`).
    pub(crate) fn wrapped(&self) -> bool {
        self.flags & (Self::EARLY_REFRESH | Self::TAGGED) != 0
    }

    /// Sets `stale_ttl` (how long an expired value is still served while
    /// one caller refreshes it) and the XFetch `beta`.
    pub const fn refresh(mut self, stale: Duration, beta: f64) -> Self {
        self.stale = stale;
        self.beta = beta;
        self
    }

    /// Sets `lock = true`: on a miss, wait at most `wait` for another
    /// process computing the same key.
    pub const fn lock(mut self, wait: Duration) -> Self {
        self.lock_wait = Some(wait);
        self
    }

    /// `version = N`: the key segment `vN`, between the function's name
    /// and the digest of its arguments, so entries of another version are
    /// never read.
    ///
    /// ```
    /// use forge_cache_runtime::__private::CacheSite;
    /// static SITE: CacheSite = CacheSite::new("users", "profile", None, 0, None).version("v2");
    /// # let _ = &SITE;
    /// ```
    pub const fn version(mut self, segment: &'static str) -> Self {
        self.version = Some(segment);
        self
    }

    /// `none_ttl`: the TTL of a stored `None` (with `cache_none`).
    pub const fn none_ttl(mut self, ttl: Duration) -> Self {
        self.none_ttl = Some(ttl);
        self
    }

    /// `err_ttl`: the TTL of a stored `Err`.
    pub const fn err_ttl(mut self, ttl: Duration) -> Self {
        self.err_ttl = Some(ttl);
        self
    }

    /// `ttl_jitter = "N%"`: take up to `per_mille` thousandths off each TTL.
    pub const fn jitter_per_mille(mut self, per_mille: u16) -> Self {
        self.jitter = Jitter::PerMille(per_mille);
        self
    }

    /// `ttl_jitter = <duration>`: take up to `most` (and at most half) off
    /// each TTL.
    pub const fn jitter_upto(mut self, most: Duration) -> Self {
        self.jitter = Jitter::Upto(most);
        self
    }

    /// `format = "..."`: this function's format, instead of the default.
    pub const fn format(mut self, format: Format) -> Self {
        self.format = Some(format);
        self
    }

    /// How this function's values are written.
    pub(crate) fn codec(&self, settings: &crate::settings::RedisSettings) -> Codec {
        settings.codec(self.format)
    }

    pub(crate) fn ttl_of_none(&self) -> Option<Duration> {
        self.none_ttl
    }

    pub(crate) fn ttl_of_err(&self) -> Option<Duration> {
        self.err_ttl
    }

    pub(crate) fn jitter(&self) -> Jitter {
        self.jitter
    }

    /// The bound of the cross-process wait, when `lock = true`.
    pub(crate) fn lock_wait(&self) -> Option<Duration> {
        self.lock_wait.filter(|w| !w.is_zero())
    }

    pub(crate) fn early_refresh(&self) -> bool {
        self.flags & Self::EARLY_REFRESH != 0
    }

    pub(crate) fn stale(&self) -> Duration {
        self.stale
    }

    pub(crate) fn beta(&self) -> f64 {
        self.beta
    }

    /// Whether reads need the remaining TTL (`stale_ttl`, `early_refresh`).
    pub(crate) fn refreshes(&self) -> bool {
        self.early_refresh() || !self.stale.is_zero()
    }

    /// The key prefix.
    pub fn prefix(&self) -> &'static str {
        self.prefix
    }

    /// The function name.
    pub fn name(&self) -> &'static str {
        self.name
    }

    pub(crate) fn ttl(&self, default: Duration) -> Duration {
        match self.ttl {
            Some(ttl) if !ttl.is_zero() => ttl,
            _ => default,
        }
    }

    pub(crate) fn cache_none(&self) -> bool {
        self.flags & Self::CACHE_NONE != 0
    }

    /// The full key of one call: `[ns:]prefix:name:<md5 hex>` for hashed
    /// keys, `[ns:]<rendered template>` for templates.
    pub(crate) fn key(
        &self,
        namespace: Option<&str>,
        call: CallKey,
    ) -> Result<String, serde_json::Error> {
        match call {
            CallKey::Hashed(digest) => {
                let mut buf = [0u8; 32];
                let hex = hex_digest(&digest, &mut buf);
                Ok(match self.version {
                    None => join_key(namespace, &[self.prefix, self.name, hex]),
                    Some(v) => join_key(namespace, &[self.prefix, self.name, v, hex]),
                })
            }
            CallKey::Rendered(key) => Ok(match namespace {
                None => key,
                Some(_) => join_key(namespace, &[&key]),
            }),
            CallKey::Unkeyable(e) => Err(e),
        }
    }

    /// The glob matching every key of this function (without the
    /// namespace, which the manager adds).
    pub(crate) fn pattern(&self) -> String {
        match self.template_pattern {
            Some(p) => p.to_owned(),
            None => join_key(
                None,
                &[&glob::escape(self.prefix), &glob::escape(self.name), "*"],
            ),
        }
    }
}

/// The key of one call, computed from its arguments before the body runs.
pub enum CallKey {
    /// The MD5 of the key arguments' JSON array.
    Hashed([u8; 16]),
    /// A rendered key template.
    Rendered(String),
    /// An argument could not be serialized: the call runs uncached.
    Unkeyable(serde_json::Error),
}

/// A value that can be part of a cache key: anything `Serialize`.
#[diagnostic::on_unimplemented(
    message = "`{Self}` cannot be part of a cache key: it does not implement `serde::Serialize`",
    label = "this argument is part of the cache key",
    note = "leave the argument out of the key with `skip(...)`, or derive `serde::Serialize` for its type"
)]
pub trait KeyArg {
    #[doc(hidden)]
    fn hash_into(&self, hasher: &mut ArgsHasher) -> Result<(), serde_json::Error>;
}

impl<T: Serialize + ?Sized> KeyArg for T {
    fn hash_into(&self, hasher: &mut ArgsHasher) -> Result<(), serde_json::Error> {
        hasher.arg(self)
    }
}

/// A method's receiver hashed into a cache key (`include(self)`): anything
/// `Serialize`.
#[diagnostic::on_unimplemented(
    message = "`{Self}` cannot be hashed into the cache key: `include(self)` needs `{Self}: serde::Serialize`",
    label = "`include(self)` hashes `self` into the key",
    note = "derive `serde::Serialize` for `{Self}`, name the fields that tell instances apart in a key template (`key = \"...{{self.id}}...\"`), or leave `self` out with `skip(self)` (every instance then shares the entries)"
)]
pub trait KeyReceiver: Serialize {}

impl<T: Serialize + ?Sized> KeyReceiver for T {}

/// Builds a hashed [`CallKey`], one argument at a time.
///
/// ```
/// use forge_cache_runtime::__private::{CallKey, KeyHasher};
/// let mut h = KeyHasher::new();
/// h.arg(&"books");
/// h.arg(&2);
/// assert!(matches!(h.finish(), CallKey::Hashed(_)));
/// ```
pub struct KeyHasher {
    hasher: ArgsHasher,
    error: Option<serde_json::Error>,
}

impl Default for KeyHasher {
    fn default() -> Self {
        Self::new()
    }
}

impl KeyHasher {
    /// No arguments yet.
    pub fn new() -> Self {
        KeyHasher {
            hasher: ArgsHasher::new(),
            error: None,
        }
    }

    /// Adds one key argument.
    #[inline]
    pub fn arg<T: KeyArg + ?Sized>(&mut self, value: &T) {
        if self.error.is_none() {
            self.error = value.hash_into(&mut self.hasher).err();
        }
    }

    /// Adds the method's receiver (`include(self)`), as the first key
    /// argument.
    #[inline]
    pub fn receiver<T: KeyReceiver + ?Sized>(&mut self, value: &T) {
        self.arg(value);
    }

    /// Adds a type's name, so that instantiations of a generic function (or
    /// methods of different types) do not share entries.
    pub fn type_name(&mut self, name: &str) {
        self.hasher.type_name(name);
    }

    /// The call's key.
    pub fn finish(self) -> CallKey {
        match self.error {
            Some(e) => CallKey::Unkeyable(e),
            None => CallKey::Hashed(self.hasher.finish()),
        }
    }
}

/// Renders a key template: literal parts as written, placeholders through
/// [`push_bounded_component`] (escaped, so a value cannot add `:` or glob
/// syntax; replaced by `h:<md5>` when longer than 200 bytes, so a key
/// stays bounded).
///
/// ```
/// use forge_cache_runtime::__private::{CallKey, KeyTemplate};
/// let mut k = KeyTemplate::new(16);
/// k.lit("user:");
/// k.part(&"a:b");
/// k.lit(":profile");
/// assert!(matches!(k.finish(), CallKey::Rendered(s) if s == "user:a%3Ab:profile"));
/// ```
pub struct KeyTemplate(String);

impl KeyTemplate {
    /// An empty key with room for `capacity` bytes.
    pub fn new(capacity: usize) -> Self {
        KeyTemplate(String::with_capacity(capacity))
    }

    /// Appends a literal part of the template.
    #[inline]
    pub fn lit(&mut self, s: &str) {
        self.0.push_str(s);
    }

    /// Appends a placeholder's value.
    #[inline]
    pub fn part<T: Display + ?Sized>(&mut self, value: &T) {
        push_bounded_component(&mut self.0, &value);
    }

    /// The call's key.
    pub fn finish(self) -> CallKey {
        CallKey::Rendered(self.0)
    }

    /// The rendered key.
    pub(crate) fn as_str(&self) -> &str {
        &self.0
    }

    /// The rendered key, owned.
    pub(crate) fn into_string(self) -> String {
        self.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hashed_key_has_prefix_name_and_hex() {
        let site = CacheSite::new("products", "get", None, 0, None);
        let mut h = KeyHasher::new();
        h.arg("books");
        let key = site.key(Some("v2"), h.finish()).unwrap();
        assert_eq!(key, "v2:products:get:0dcd08f7a59377dc163eeecd7dee3863");
        assert_eq!(site.pattern(), "products:get:*");
    }
}
