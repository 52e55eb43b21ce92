//! Settings: the `REDIS_*` variables, a builder, and `.env` files.

use std::collections::HashMap;
use std::fmt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::cluster_url::{is_cluster_scheme, parse_cluster_url, parse_node_list, redact_nodes};
use crate::error::{Error, Result};
use crate::format::{Codec, Format};
use crate::secret::{Secret, redact_url};

/// What `REDIS_CACHE_FORMAT` accepts, for its error.
const FORMATS_ACCEPTED: &str =
    "json, msgpack (with the `msgpack` feature) or postcard (with the `postcard` feature)";

mod builder;
mod parse;
#[cfg(test)]
pub(crate) mod tests;

pub use builder::RedisSettingsBuilder;
use parse::*;
pub(crate) use parse::{is_plain_key_byte, parse_dotenv};

/// Which backend a [`RedisSettings`] selects
/// ([`RedisSettings::backend_kind`]: never `Disabled`), or a manager talks to
/// ([`CacheManager::backend_kind`](crate::CacheManager::backend_kind)).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum BackendKind {
    /// The embedded in-memory backend (`memory://`): one process only.
    Memory,
    /// A single Redis server (`redis://`, `rediss://`, `redis+unix://`).
    Redis,
    /// A Redis Cluster (`redis+cluster://`, `rediss+cluster://` or
    /// `REDIS_CLUSTER_NODES`).
    Cluster,
    /// None: the process-wide manager found an invalid setting in the
    /// environment, so caching and rate limiting are off (see
    /// [`CacheManager::disabled_reason`](crate::CacheManager::disabled_reason)).
    Disabled,
}

impl fmt::Display for BackendKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            BackendKind::Memory => "memory",
            BackendKind::Redis => "redis",
            BackendKind::Cluster => "cluster",
            BackendKind::Disabled => "disabled",
        })
    }
}

/// The resolved connection target.
#[derive(Clone)]
pub(crate) enum Target {
    Memory,
    Redis(Box<redis::ConnectionInfo>),
    /// The seed nodes of a Redis Cluster (one or more).
    Cluster(Vec<redis::ConnectionInfo>),
}

/// Configuration for forge-cache.
///
/// Read from the environment with [`RedisSettings::from_env`] (the
/// `REDIS_*` variables and their defaults), from `.env.<FORGE_ENV>` files with
/// [`RedisSettings::from_env_files`], or built in code with
/// [`RedisSettings::builder`].
///
/// `Debug` never shows the password:
///
/// ```
/// use forge_cache_runtime::RedisSettings;
/// let s = RedisSettings::builder()
///     .url("redis://:s3cret@localhost:6379/0")
///     .build()?;
/// assert!(!format!("{s:?}").contains("s3cret"));
/// # Ok::<(), forge_cache_runtime::Error>(())
/// ```
#[derive(Clone)]
pub struct RedisSettings {
    pub(crate) url: Secret,
    pub(crate) target: Target,
    pub(crate) pool_size: u32,
    pub(crate) socket_timeout: Duration,
    pub(crate) default_ttl: Duration,
    pub(crate) namespace: Option<String>,
    pub(crate) breaker_threshold: u32,
    pub(crate) breaker_cooldown: Duration,
    pub(crate) memory_max_entries: usize,
    pub(crate) max_value_bytes: usize,
    pub(crate) tls_ca_file: Option<PathBuf>,
    pub(crate) tls_insecure: bool,
    pub(crate) format: Format,
    pub(crate) compress_above: Option<usize>,
}

impl fmt::Debug for RedisSettings {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RedisSettings")
            .field("url", &redact_url(self.url.expose()))
            .field("pool_size", &self.pool_size)
            .field("socket_timeout", &self.socket_timeout)
            .field("default_ttl", &self.default_ttl)
            .field("namespace", &self.namespace)
            .field("breaker_threshold", &self.breaker_threshold)
            .field("breaker_cooldown", &self.breaker_cooldown)
            .field("memory_max_entries", &self.memory_max_entries)
            .field("max_value_bytes", &self.max_value_bytes)
            .field("tls_ca_file", &self.tls_ca_file)
            .field("tls_insecure", &self.tls_insecure)
            .field("format", &self.format)
            .field("compress_above", &self.compress_above)
            .finish()
    }
}

impl Default for RedisSettings {
    /// The in-memory backend with every other setting at its default.
    fn default() -> Self {
        RedisSettings::memory()
    }
}

impl RedisSettings {
    /// Settings for the embedded in-memory backend, all else default.
    ///
    /// ```
    /// use forge_cache_runtime::{BackendKind, RedisSettings};
    /// assert_eq!(RedisSettings::memory().backend_kind(), BackendKind::Memory);
    /// ```
    pub fn memory() -> Self {
        RedisSettingsBuilder::default()
            .url("memory://")
            .build()
            .expect("defaults are valid")
    }

    /// A builder starting from the defaults.
    ///
    /// ```
    /// use std::time::Duration;
    /// use forge_cache_runtime::RedisSettings;
    /// let s = RedisSettings::builder()
    ///     .host("cache.internal")
    ///     .port(6380)
    ///     .default_ttl(Duration::from_secs(60))
    ///     .build()?;
    /// assert_eq!(s.default_ttl(), Duration::from_secs(60));
    /// # Ok::<(), forge_cache_runtime::Error>(())
    /// ```
    pub fn builder() -> RedisSettingsBuilder {
        RedisSettingsBuilder::default()
    }

    /// Reads the settings from the process environment.
    ///
    /// `REDIS_CONNECTION_URL` wins when set (a `redis+cluster://` URL
    /// selects a Redis Cluster). Otherwise `REDIS_CLUSTER_NODES`
    /// (`host:port,host:port`), when set, selects a cluster, with
    /// `REDIS_PASSWORD` and `REDIS_USERNAME` applied to every node; setting
    /// both it and `REDIS_CONNECTION_URL` is an error. Otherwise, when any of
    /// `REDIS_HOST`, `REDIS_PORT`, `REDIS_PASSWORD`, `REDIS_USERNAME` or
    /// `REDIS_DB` is set, the URL is built from them with the defaults
    /// (`localhost`, `6379`, no password, db `0`). When none is set, the
    /// in-memory backend is used.
    ///
    /// ```
    /// use forge_cache_runtime::RedisSettings;
    /// let settings = RedisSettings::from_env()?;
    /// # Ok::<(), forge_cache_runtime::Error>(())
    /// ```
    pub fn from_env() -> Result<Self> {
        Self::from_lookup(|name| std::env::var(name).ok())
    }

    /// Like [`from_env`](Self::from_env), but first reads `.env.<FORGE_ENV>`
    /// (for example `.env.development` when `FORGE_ENV=development`) from
    /// `dir`. Variables already set in the environment win over the file. When
    /// `FORGE_ENV` is unset, `.env` is read if it exists.
    ///
    /// ```
    /// use forge_cache_runtime::RedisSettings;
    /// let settings = RedisSettings::from_env_files(".")?;
    /// # Ok::<(), forge_cache_runtime::Error>(())
    /// ```
    pub fn from_env_files(dir: impl AsRef<Path>) -> Result<Self> {
        let file = match std::env::var("FORGE_ENV") {
            Ok(env) if !env.is_empty() => {
                if !env
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
                {
                    return Err(Error::config(
                        "FORGE_ENV",
                        env,
                        "a name of letters, digits, '-' or '_' (e.g. development, production)",
                    ));
                }
                format!(".env.{env}")
            }
            _ => ".env".to_owned(),
        };
        let path = dir.as_ref().join(&file);
        let vars = match std::fs::read_to_string(&path) {
            Ok(text) => parse_dotenv(&text),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => HashMap::new(),
            Err(_) => {
                return Err(Error::config(
                    "FORGE_ENV",
                    path.display().to_string(),
                    "a readable env file",
                ));
            }
        };
        Self::from_lookup(|name| std::env::var(name).ok().or_else(|| vars.get(name).cloned()))
    }

    /// Reads the settings through `lookup`, which maps a variable name to its
    /// value. [`from_env`](Self::from_env) is `from_lookup` over the process
    /// environment; tests can pass a map instead.
    ///
    /// ```
    /// use forge_cache_runtime::{Error, RedisSettings};
    /// let err = RedisSettings::from_lookup(|k| (k == "REDIS_DB").then(|| "-1".into())).unwrap_err();
    /// assert!(matches!(err, Error::Config { var: "REDIS_DB", .. }));
    /// ```
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Result<Self> {
        let password = lookup("REDIS_PASSWORD").unwrap_or_default();
        Self::from_lookup_inner(lookup).map_err(|e| redact_config(e, &password))
    }

    fn from_lookup_inner(lookup: impl Fn(&str) -> Option<String>) -> Result<Self> {
        let mut b = RedisSettingsBuilder::default();
        let get = |name: &str| lookup(name).filter(|v| !v.trim().is_empty());
        let cluster_nodes = get("REDIS_CLUSTER_NODES");
        if let Some(url) = get("REDIS_CONNECTION_URL") {
            if let Some(nodes) = cluster_nodes {
                return Err(Error::config(
                    "REDIS_CLUSTER_NODES",
                    redact_nodes(&nodes),
                    "REDIS_CONNECTION_URL to be unset when REDIS_CLUSTER_NODES is set (or put the nodes in a redis+cluster:// URL)",
                ));
            }
            b = b.url(url.trim());
        } else {
            let host = get("REDIS_HOST");
            let port = get("REDIS_PORT");
            let password = lookup("REDIS_PASSWORD").filter(|v| !v.is_empty());
            let username = get("REDIS_USERNAME");
            let db = get("REDIS_DB");
            if host.is_some()
                || cluster_nodes.is_some()
                || port.is_some()
                || password.is_some()
                || username.is_some()
                || db.is_some()
            {
                b = match &cluster_nodes {
                    Some(nodes) => b.cluster_nodes(nodes.split(',')),
                    None => b.host(host.as_deref().unwrap_or("localhost").trim()),
                };
                if let Some(port) = port {
                    b = b.port(parse_num::<u16>(
                        "REDIS_PORT",
                        &port,
                        1,
                        "a TCP port from 1 to 65535",
                    )?);
                }
                if let Some(db) = db {
                    b = b.db(parse_num::<i64>(
                        "REDIS_DB",
                        &db,
                        0,
                        "a database number from 0 to 15 (or the server's `databases` - 1)",
                    )?);
                }
                if let Some(p) = password {
                    b = b.password(p);
                }
                if let Some(u) = username {
                    b = b.username(u.trim());
                }
            } else {
                b = b.url("memory://");
            }
        }
        if let Some(v) = get("REDIS_POOL_SIZE") {
            b = b.pool_size(parse_num(
                "REDIS_POOL_SIZE",
                &v,
                1,
                "a whole number of connections from 1 to 10000",
            )?);
        }
        if let Some(v) = get("REDIS_SOCKET_TIMEOUT") {
            let secs = parse_secs("REDIS_SOCKET_TIMEOUT", &v)?;
            b = b.socket_timeout(secs);
        }
        if let Some(v) = get("REDIS_DEFAULT_TTL") {
            let secs: u64 = parse_num("REDIS_DEFAULT_TTL", &v, 1, "a whole number of seconds > 0")?;
            b = b.default_ttl(Duration::from_secs(secs));
        }
        if let Some(v) = get("REDIS_NAMESPACE") {
            b = b.namespace(v.trim());
        }
        if let Some(v) = get("REDIS_BREAKER_THRESHOLD") {
            b = b.breaker_threshold(parse_num(
                "REDIS_BREAKER_THRESHOLD",
                &v,
                0,
                "a whole number of consecutive failures (0 disables the breaker)",
            )?);
        }
        if let Some(v) = get("REDIS_BREAKER_COOLDOWN_MS") {
            b = b.breaker_cooldown(Duration::from_millis(parse_num(
                "REDIS_BREAKER_COOLDOWN_MS",
                &v,
                1,
                "a whole number of milliseconds > 0",
            )?));
        }
        if let Some(v) = get("REDIS_MEMORY_MAX_ENTRIES") {
            b = b.memory_max_entries(parse_num(
                "REDIS_MEMORY_MAX_ENTRIES",
                &v,
                1,
                "a whole number of entries > 0",
            )?);
        }
        if let Some(v) = get("REDIS_TLS_CA_FILE") {
            b = b.tls_ca_file(v.trim());
        }
        if let Some(v) = get("REDIS_TLS_INSECURE") {
            b = b.tls_insecure(parse_bool("REDIS_TLS_INSECURE", &v)?);
        }
        if let Some(v) = get("REDIS_CACHE_FORMAT") {
            let name = v.trim().to_ascii_lowercase();
            b =
                b.format(Format::parse(&name).ok_or_else(|| {
                    Error::config("REDIS_CACHE_FORMAT", v.clone(), FORMATS_ACCEPTED)
                })?);
        }
        if let Some(v) = get("REDIS_COMPRESS_ABOVE") {
            b = b.compress_above(Some(parse_num(
                "REDIS_COMPRESS_ABOVE",
                &v,
                0,
                "a whole number of bytes (values larger than it are compressed with zstd)",
            )?));
        }
        if let Some(v) = get("REDIS_MAX_VALUE_BYTES") {
            b = b.max_value_bytes(parse_num(
                "REDIS_MAX_VALUE_BYTES",
                &v,
                1,
                "a whole number of bytes > 0",
            )?);
        }
        b.build()
    }

    /// The backend these settings select.
    pub fn backend_kind(&self) -> BackendKind {
        match self.target {
            Target::Memory => BackendKind::Memory,
            Target::Redis(_) => BackendKind::Redis,
            Target::Cluster(_) => BackendKind::Cluster,
        }
    }

    /// `REDIS_DEFAULT_TTL`: the TTL of `#[cache_result]` without `ttl`.
    pub fn default_ttl(&self) -> Duration {
        self.default_ttl
    }

    /// `REDIS_CACHE_FORMAT`: the format of cached values for functions
    /// without `format = "..."` (default JSON).
    pub fn format(&self) -> Format {
        self.format
    }

    /// The codec of cached values in `format` (or the default format).
    pub(crate) fn codec(&self, format: Option<Format>) -> Codec {
        Codec {
            format: format.unwrap_or(self.format),
            compress_above: self.compress_above,
            max_bytes: self.max_value_bytes,
        }
    }

    /// `REDIS_SOCKET_TIMEOUT`: connect and response timeout.
    pub fn socket_timeout(&self) -> Duration {
        self.socket_timeout
    }

    /// `REDIS_POOL_SIZE`: connections in the sync pool.
    pub fn pool_size(&self) -> u32 {
        self.pool_size
    }

    /// `REDIS_NAMESPACE`: prepended (with `:`) to every key, if set.
    pub fn namespace(&self) -> Option<&str> {
        self.namespace.as_deref()
    }

    /// The connection URL with any password replaced by `***`.
    pub fn redacted_url(&self) -> String {
        redact_url(self.url.expose())
    }
}
