//! A string that never shows up in `Debug` or `Display` output.

use std::fmt;

/// A secret string, such as a password or a URL holding one.
///
/// `Debug` and `Display` print `"***"`; use [`Secret::expose`] where the value
/// itself is needed.
///
/// ```
/// use forge_cache_runtime::Secret;
/// let s = Secret::new("hunter2");
/// assert_eq!(format!("{s:?} {s}"), "\"***\" ***");
/// assert_eq!(s.expose(), "hunter2");
/// ```
#[derive(Clone, Default, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    /// Wraps a value.
    pub fn new(value: impl Into<String>) -> Self {
        Secret(value.into())
    }

    /// The value itself. Do not log it.
    pub fn expose(&self) -> &str {
        &self.0
    }

    /// Whether the secret is empty.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("\"***\"")
    }
}

impl fmt::Display for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("***")
    }
}

/// Returns `url` with any password replaced by `***`, for messages.
///
/// ```
/// use forge_cache_runtime::redact_url;
/// assert_eq!(redact_url("redis://:pw@host:6379/0"), "redis://:***@host:6379/0");
/// assert_eq!(redact_url("redis://user:pw@host"), "redis://user:***@host");
/// assert_eq!(redact_url("redis://host"), "redis://host");
/// ```
pub fn redact_url(url: &str) -> String {
    let Some(scheme_end) = url.find("://") else {
        return url.to_owned();
    };
    let rest = &url[scheme_end + 3..];
    let authority_end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let authority = &rest[..authority_end];
    match authority.rfind('@') {
        Some(at) => {
            let userinfo = &authority[..at];
            let user = userinfo.split(':').next().unwrap_or("");
            let redacted = if userinfo.contains(':') {
                format!("{user}:***")
            } else {
                // `redis://password@host` is how some clients spell a bare password.
                "***".to_owned()
            };
            format!("{}://{}@{}", &url[..scheme_end], redacted, &rest[at + 1..])
        }
        None => url.to_owned(),
    }
}
