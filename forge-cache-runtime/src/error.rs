//! The error type shared by every fallible operation.

use std::time::Duration;

/// Everything that can go wrong in forge-cache.
///
/// Errors never contain a password: connection URLs are redacted before they
/// are stored in an error, and Redis errors are carried as the server's reply.
///
/// An error's message does not repeat its [`source`](std::error::Error::source),
/// so a report that walks the chain (anyhow's `{:#}`, `tracing-error`, or a
/// loop over `source()`) prints each cause once.
///
/// ```
/// use forge_cache_runtime::{Error, RedisSettings};
///
/// let err = RedisSettings::from_lookup(|var| (var == "REDIS_PORT").then(|| "abc".into()))
///     .unwrap_err();
/// assert!(matches!(err, Error::Config { var: "REDIS_PORT", .. }));
/// assert_eq!(
///     err.to_string(),
///     r#"invalid setting REDIS_PORT="abc": expected a TCP port from 1 to 65535"#
/// );
/// ```
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A setting has a value that is not accepted.
    #[error("invalid setting {var}={value:?}: expected {expected}")]
    Config {
        /// The environment variable (or builder field named after it).
        var: &'static str,
        /// The value that was given (redacted when it could hold a password).
        value: String,
        /// What is accepted.
        expected: &'static str,
    },
    /// The backend answered with an error or could not be reached; the
    /// source is redis-rs's error.
    #[error("redis error")]
    Redis(#[from] redis::RedisError),
    /// An operation did not finish within its bound.
    #[error("operation timed out after {0:?}")]
    Timeout(Duration),
    /// The circuit breaker is open after repeated failures; calls skip the
    /// backend until the cooldown ends.
    #[error("circuit breaker open: backend skipped after repeated failures")]
    CircuitOpen,
    /// `init` was called a second time, or after the first lazy use.
    #[error("forge-cache is already initialized; init may be called once, before first use")]
    AlreadyInitialized,
    /// The process-wide manager is disabled because the environment holds
    /// an invalid setting; the text names the setting, its value (redacted
    /// where it could hold a password) and what is accepted.
    #[error("forge-cache is disabled by an invalid configuration: {0}")]
    Disabled(String),
    /// A value could not be turned into JSON; the source is serde's error.
    #[error("could not encode value as JSON")]
    Encode(#[source] serde_json::Error),
    /// A stored value could not be read back as the expected type. The
    /// message gives serde's error category and position only, never its
    /// text, which can quote the stored value (this error is logged);
    /// [`source()`](std::error::Error::source) has serde's full error.
    #[error(
        "could not decode stored value: {} at line {} column {}",
        decode_kind(.0),
        .0.line(),
        .0.column()
    )]
    Decode(#[source] serde_json::Error),
    /// A value exceeded the configured maximum size.
    #[error("value of {size} bytes exceeds the limit of {limit} bytes")]
    TooLarge {
        /// The encoded size.
        size: usize,
        /// The configured limit.
        limit: usize,
    },
    /// The operation is not available on this backend.
    #[error("not supported by this backend: {0}")]
    Unsupported(&'static str),
    /// [`CacheManager::lock`](crate::CacheManager::lock) waited its whole
    /// bound and another holder still had the lock.
    #[error("lock {name:?} not acquired within {waited:?}: another holder has it")]
    LockTimeout {
        /// The lock's name, as given.
        name: String,
        /// The wait bound that ran out.
        waited: Duration,
    },
    /// A lock name or session id that cannot be used (the value itself is
    /// not repeated: a session id is a secret).
    #[error("invalid {what}: {reason}")]
    InvalidName {
        /// What was being named, e.g. `"lock name"` or `"session id"`.
        what: &'static str,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// A session key holds data that is not a valid session of the expected
    /// type (tampered with, or written by other code). Treat it as no
    /// session: delete it and start a new one.
    ///
    /// The message does not quote the data (it may hold secrets); the
    /// source error has serde's details.
    #[error("stored session data is corrupt or of another type")]
    CorruptSession(#[source] serde_json::Error),
    /// The operating system's random number generator failed.
    #[error("random number generator failed: {0}")]
    Random(String),
    /// A cached value could not be encoded in, or decoded from, a binary
    /// format (`msgpack`, `postcard`) or its compression. The message never
    /// quotes the value; [`source()`](std::error::Error::source) has the
    /// codec's own error, which can.
    #[error("could not {op} a cached value as {format}")]
    Codec {
        /// `"encode"`, `"decode"`, `"compress"` or `"decompress"`.
        op: &'static str,
        /// The format, e.g. `"msgpack"`.
        format: &'static str,
        /// The codec's error.
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    /// A stored value is in another format (or compression) than this
    /// reader is configured for: it is a miss, and is overwritten.
    #[error("the stored value is not {expected} (written with another format or compression)")]
    OtherFormat {
        /// What this reader expected, e.g. `"msgpack"`.
        expected: &'static str,
    },
    /// An unexpected reply shape from the backend.
    #[error("unexpected reply from backend: {0}")]
    Protocol(String),
}

impl Error {
    /// Whether this error means the backend is unreachable or failing, as
    /// opposed to a reply about the data. The circuit breaker counts only
    /// these. On a Redis Cluster that includes a cluster that is down or
    /// failing over (`CLUSTERDOWN`, `MASTERDOWN`, `TRYAGAIN`, `LOADING`,
    /// `READONLY`, redirections that outlived the retries, no node to send
    /// to).
    pub fn is_outage(&self) -> bool {
        use redis::{ErrorKind, ServerErrorKind as S};
        match self {
            Error::Redis(r) => {
                r.is_io_error()
                    || r.is_timeout()
                    || r.is_connection_dropped()
                    || r.is_connection_refusal()
                    || matches!(
                        r.kind(),
                        ErrorKind::ClusterConnectionNotFound
                            | ErrorKind::Server(
                                S::ClusterDown
                                    | S::MasterDown
                                    | S::TryAgain
                                    | S::BusyLoading
                                    | S::ReadOnly
                                    | S::Moved
                                    | S::Ask
                            )
                    )
            }
            Error::Timeout(_) | Error::Disabled(_) | Error::CircuitOpen => true,
            _ => false,
        }
    }

    pub(crate) fn config(
        var: &'static str,
        value: impl Into<String>,
        expected: &'static str,
    ) -> Self {
        Error::Config {
            var,
            value: value.into(),
            expected,
        }
    }
}

/// Displays an error with what of its source is safe to log, `outer:
/// inner`, for log lines and reports that are plain strings. Only a Redis
/// error's source is shown, once (its own message already includes its
/// cause); serde's errors (the sources of `Decode`, `Encode` and
/// `CorruptSession`) can quote the data.
pub(crate) struct Chain<'a>(pub(crate) &'a Error);

impl std::fmt::Display for Chain<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.0 {
            Error::Redis(redis) => write!(f, "{}: {redis}", self.0),
            other => write!(f, "{other}"),
        }
    }
}

/// `Result` with [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// What kind of decode failure `e` is, in words that never quote the input.
fn decode_kind(e: &serde_json::Error) -> &'static str {
    use serde_json::error::Category;
    match e.classify() {
        Category::Io => "I/O error",
        Category::Syntax => "not valid JSON",
        Category::Data => "JSON of another type or shape",
        Category::Eof => "truncated JSON",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use redis::{ErrorKind, RedisError, ServerErrorKind};

    fn redis_error(kind: ErrorKind) -> Error {
        Error::Redis(RedisError::from((kind, "test")))
    }

    #[test]
    fn an_unavailable_cluster_is_an_outage_but_a_bad_request_is_not() {
        for kind in [
            ServerErrorKind::ClusterDown,
            ServerErrorKind::MasterDown,
            ServerErrorKind::TryAgain,
            ServerErrorKind::ReadOnly,
        ] {
            assert!(redis_error(ErrorKind::Server(kind)).is_outage(), "{kind:?}");
        }
        assert!(redis_error(ErrorKind::ClusterConnectionNotFound).is_outage());
        assert!(!redis_error(ErrorKind::Server(ServerErrorKind::CrossSlot)).is_outage());
        assert!(!redis_error(ErrorKind::Server(ServerErrorKind::ResponseError)).is_outage());
    }

    #[test]
    fn a_message_does_not_repeat_its_source() {
        use std::error::Error as _;
        let redis = Error::Redis(RedisError::from((ErrorKind::Client, "boom")));
        let encode = Error::Encode(serde_json::from_str::<u8>("x").unwrap_err());
        for e in [redis, encode] {
            let source = e.source().expect("has a source").to_string();
            assert!(!e.to_string().contains(&source), "{e} repeats {source}");
        }
    }

    #[test]
    fn a_logged_chain_follows_redis_errors_but_never_serde_errors() {
        let redis = Error::Redis(RedisError::from((ErrorKind::Client, "boom")));
        assert!(Chain(&redis).to_string().starts_with("redis error: boom"));
        let e = serde_json::from_slice::<u64>(br#""s3cret""#).unwrap_err();
        assert!(!Chain(&Error::Decode(e)).to_string().contains("s3cret"));
    }

    #[test]
    fn decode_errors_never_quote_the_stored_value() {
        let e = serde_json::from_slice::<u64>(br#""s3cret""#).unwrap_err();
        let text = Error::Decode(e).to_string();
        assert!(!text.contains("s3cret"), "{text}");
        assert!(text.contains("another type"), "{text}");
    }
}
