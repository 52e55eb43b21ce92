//! Settings: the guide's `REDIS_*` variables, a builder, and `.env` files.

use std::collections::HashMap;
use std::fmt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::cluster_url::{is_cluster_scheme, parse_cluster_url, parse_node_list, redact_nodes};
use crate::error::{Error, Result};
use crate::secret::{Secret, redact_url};

/// Which backend a [`RedisSettings`] selects.
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
}

impl fmt::Display for BackendKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            BackendKind::Memory => "memory",
            BackendKind::Redis => "redis",
            BackendKind::Cluster => "cluster",
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
/// Read from the environment with [`RedisSettings::from_env`] (the guide's
/// variables and defaults), from `.env.<FORGE_ENV>` files with
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
    /// `REDIS_DB` is set, the URL is built from them with the guide's defaults
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

/// Builds [`RedisSettings`] in code. Start with [`RedisSettings::builder`].
///
/// Validation happens in [`build`](Self::build), which names the variable a
/// bad value belongs to.
#[derive(Clone)]
pub struct RedisSettingsBuilder {
    url: Option<Secret>,
    host: String,
    port: u16,
    password: Secret,
    username: Option<String>,
    cluster_nodes: Option<Vec<String>>,
    db: i64,
    pool_size: u32,
    socket_timeout: Duration,
    default_ttl: Duration,
    namespace: Option<String>,
    breaker_threshold: u32,
    breaker_cooldown: Duration,
    memory_max_entries: usize,
    max_value_bytes: usize,
    tls_ca_file: Option<PathBuf>,
    tls_insecure: bool,
}

impl fmt::Debug for RedisSettingsBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RedisSettingsBuilder")
            .field("url", &self.url.as_ref().map(|u| redact_url(u.expose())))
            .field("host", &self.host)
            .field("port", &self.port)
            .field("password", &self.password)
            .finish_non_exhaustive()
    }
}

impl Default for RedisSettingsBuilder {
    fn default() -> Self {
        RedisSettingsBuilder {
            url: None,
            host: "localhost".into(),
            port: 6379,
            password: Secret::default(),
            username: None,
            cluster_nodes: None,
            db: 0,
            pool_size: 10,
            socket_timeout: Duration::from_secs(5),
            default_ttl: Duration::from_secs(3600),
            namespace: None,
            breaker_threshold: 5,
            breaker_cooldown: Duration::from_secs(2),
            memory_max_entries: 100_000,
            max_value_bytes: 8 * 1024 * 1024,
            tls_ca_file: None,
            tls_insecure: false,
        }
    }
}

macro_rules! setter {
    ($(#[$doc:meta])* $name:ident: $ty:ty) => {
        $(#[$doc])*
        pub fn $name(mut self, value: $ty) -> Self {
            self.$name = value;
            self
        }
    };
}

impl RedisSettingsBuilder {
    /// `REDIS_CONNECTION_URL`: `redis://`, `rediss://`, `redis+unix://`,
    /// `redis+cluster://host:port,host:port`, `rediss+cluster://...` or
    /// `memory://`. When set it wins over host, port, password and db.
    pub fn url(mut self, url: impl Into<String>) -> Self {
        self.url = Some(Secret::new(url));
        self.cluster_nodes = None;
        self
    }
    /// `REDIS_HOST` (default `localhost`). Selects Redis over memory.
    pub fn host(mut self, host: impl Into<String>) -> Self {
        self.host = host.into();
        self.url = None;
        self.cluster_nodes = None;
        self
    }
    /// `REDIS_CLUSTER_NODES`: seed nodes (`host:port`) of a Redis Cluster.
    /// Selects the cluster; the password and username apply to every node.
    ///
    /// ```
    /// use forge_cache_runtime::{BackendKind, RedisSettings};
    /// let s = RedisSettings::builder()
    ///     .cluster_nodes(["10.0.0.1:7000", "10.0.0.2:7000"])
    ///     .build()?;
    /// assert_eq!(s.backend_kind(), BackendKind::Cluster);
    /// # Ok::<(), forge_cache_runtime::Error>(())
    /// ```
    pub fn cluster_nodes<I, S>(mut self, nodes: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.cluster_nodes = Some(nodes.into_iter().map(Into::into).collect());
        self.url = None;
        self
    }
    /// `REDIS_PASSWORD` (default empty).
    pub fn password(mut self, password: impl Into<String>) -> Self {
        self.password = Secret::new(password);
        self
    }
    /// `REDIS_USERNAME`: an ACL user (default none).
    pub fn username(mut self, username: impl Into<String>) -> Self {
        self.username = Some(username.into());
        self
    }
    /// `REDIS_NAMESPACE`: prepended to every key, e.g. an app or deploy version.
    pub fn namespace(mut self, namespace: impl Into<String>) -> Self {
        self.namespace = Some(namespace.into());
        self
    }
    setter!(/// `REDIS_PORT` (default 6379).
        port: u16);
    setter!(/// `REDIS_DB` (default 0).
        db: i64);
    setter!(/// `REDIS_POOL_SIZE`: sync pool connections (default 10).
        pool_size: u32);
    setter!(/// `REDIS_SOCKET_TIMEOUT`: connect and response timeout (default 5 s).
        socket_timeout: Duration);
    setter!(/// `REDIS_DEFAULT_TTL`: TTL when `#[cache_result]` has none (default 3600 s).
        default_ttl: Duration);
    setter!(/// `REDIS_BREAKER_THRESHOLD`: consecutive backend failures that open the
        /// circuit breaker (default 5; 0 disables it).
        breaker_threshold: u32);
    setter!(/// `REDIS_BREAKER_COOLDOWN_MS`: how long the open breaker skips the
        /// backend before trying again (default 2000 ms).
        breaker_cooldown: Duration);
    setter!(/// `REDIS_MEMORY_MAX_ENTRIES`: capacity of the in-memory backend
        /// (default 100000); the soonest-expiring entries are evicted first.
        memory_max_entries: usize);
    setter!(/// `REDIS_MAX_VALUE_BYTES`: larger cached values are not stored
        /// (default 8 MiB).
        max_value_bytes: usize);

    /// `REDIS_TLS_CA_FILE`: a PEM file of CA certificates to trust for
    /// `rediss://` instead of the system's roots.
    pub fn tls_ca_file(mut self, path: impl Into<PathBuf>) -> Self {
        self.tls_ca_file = Some(path.into());
        self
    }
    setter!(/// `REDIS_TLS_INSECURE`: skip certificate verification for `rediss://`
        /// (default false). Only for self-signed development setups: it
        /// allows anyone on the path to impersonate the server.
        tls_insecure: bool);

    /// `user:password@` (percent-encoded) for a URL, or empty.
    fn userinfo(&self) -> String {
        match (&self.username, self.password.is_empty()) {
            (None, true) => String::new(),
            (user, _) => format!(
                "{}:{}@",
                percent_encode(user.as_deref().unwrap_or("")),
                percent_encode(self.password.expose())
            ),
        }
    }

    /// Validates and builds the settings. A bad value is an
    /// [`Error::Config`] naming its variable; the password never appears in
    /// it, not even inside another variable's value.
    pub fn build(self) -> Result<RedisSettings> {
        let password = self.password.clone();
        self.validate()
            .map_err(|e| redact_config(e, password.expose()))
    }

    fn validate(self) -> Result<RedisSettings> {
        if self.pool_size == 0 || self.pool_size > 10_000 {
            return Err(Error::config(
                "REDIS_POOL_SIZE",
                self.pool_size.to_string(),
                "a whole number of connections from 1 to 10000",
            ));
        }
        if self.socket_timeout.is_zero() {
            return Err(Error::config(
                "REDIS_SOCKET_TIMEOUT",
                "0",
                "a number of seconds > 0 (decimals allowed, e.g. 0.5)",
            ));
        }
        if self.default_ttl.as_millis() < 1 {
            return Err(Error::config(
                "REDIS_DEFAULT_TTL",
                "0",
                "a whole number of seconds > 0",
            ));
        }
        if self.breaker_cooldown.is_zero() {
            return Err(Error::config(
                "REDIS_BREAKER_COOLDOWN_MS",
                "0",
                "a whole number of milliseconds > 0",
            ));
        }
        if self.memory_max_entries == 0 {
            return Err(Error::config(
                "REDIS_MEMORY_MAX_ENTRIES",
                "0",
                "a whole number of entries > 0",
            ));
        }
        if self.max_value_bytes == 0 {
            return Err(Error::config(
                "REDIS_MAX_VALUE_BYTES",
                "0",
                "a whole number of bytes > 0",
            ));
        }
        if let Some(ns) = &self.namespace {
            if ns.is_empty() || ns.len() > 128 || !ns.bytes().all(is_plain_key_byte) {
                return Err(Error::config(
                    "REDIS_NAMESPACE",
                    ns.clone(),
                    "1 to 128 characters from letters, digits, '.', '-' and '_'",
                ));
            }
        }
        if self.db < 0 {
            return Err(Error::config(
                "REDIS_DB",
                self.db.to_string(),
                "a database number from 0 to 15 (or the server's `databases` - 1)",
            ));
        }
        if self.port == 0 {
            return Err(Error::config(
                "REDIS_PORT",
                "0",
                "a TCP port from 1 to 65535",
            ));
        }
        let url = match self.url {
            Some(url) => url,
            None if self.cluster_nodes.is_some() => {
                let nodes = parse_node_list(self.cluster_nodes.as_deref().unwrap_or_default())?;
                if self.db != 0 {
                    return Err(Error::config(
                        "REDIS_DB",
                        self.db.to_string(),
                        "0 (Redis Cluster has only database 0)",
                    ));
                }
                Secret::new(format!(
                    "redis+cluster://{}{}",
                    self.userinfo(),
                    nodes.join(",")
                ))
            }
            None => {
                if self.host.is_empty() || self.host.contains(['/', '@', ' ', '?', '#']) {
                    return Err(Error::config(
                        "REDIS_HOST",
                        self.host,
                        "a host name or IP address",
                    ));
                }
                let host = if self.host.contains(':') && !self.host.starts_with('[') {
                    format!("[{}]", self.host)
                } else {
                    self.host.clone()
                };
                Secret::new(format!(
                    "redis://{}{host}:{}/{}",
                    self.userinfo(),
                    self.port,
                    self.db
                ))
            }
        };
        let target = parse_target(url.expose())?;
        if let Some(path) = &self.tls_ca_file {
            if !path.is_file() {
                return Err(Error::config(
                    "REDIS_TLS_CA_FILE",
                    path.display().to_string(),
                    "the path of a readable PEM file",
                ));
            }
        }
        Ok(RedisSettings {
            url,
            target,
            pool_size: self.pool_size,
            socket_timeout: self.socket_timeout,
            default_ttl: self.default_ttl,
            namespace: self.namespace,
            breaker_threshold: self.breaker_threshold,
            breaker_cooldown: self.breaker_cooldown,
            memory_max_entries: self.memory_max_entries,
            max_value_bytes: self.max_value_bytes,
            tls_ca_file: self.tls_ca_file,
            tls_insecure: self.tls_insecure,
        })
    }
}

const URL_EXPECTED: &str = "a URL with scheme redis://, rediss://, redis+unix://, redis+cluster://, rediss+cluster:// or memory://, e.g. redis://:password@localhost:6379/0";

fn parse_target(url: &str) -> Result<Target> {
    let bad = || Error::config("REDIS_CONNECTION_URL", redact_url(url), URL_EXPECTED);
    let scheme = url.split_once("://").map(|(s, _)| s).ok_or_else(bad)?;
    match scheme {
        "memory" => {
            if url.len() > "memory://".len() {
                return Err(Error::config(
                    "REDIS_CONNECTION_URL",
                    redact_url(url),
                    "memory:// with nothing after it",
                ));
            }
            Ok(Target::Memory)
        }
        "rediss" if !cfg!(feature = "tls") => Err(Error::config(
            "REDIS_CONNECTION_URL",
            redact_url(url),
            "redis:// or redis+unix:// (rediss:// needs forge-cache's `tls` feature)",
        )),
        "redis" | "rediss" | "redis+unix" | "unix" => {
            use redis::IntoConnectionInfo;
            let info = url.into_connection_info().map_err(|_| bad())?;
            if info.redis_settings().db() < 0 {
                return Err(Error::config(
                    "REDIS_DB",
                    info.redis_settings().db().to_string(),
                    "a database number >= 0",
                ));
            }
            Ok(Target::Redis(Box::new(info)))
        }
        s if is_cluster_scheme(s) => Ok(Target::Cluster(parse_cluster_url(url)?)),
        _ => Err(bad()),
    }
}

/// Bytes allowed unescaped in key parts we generate (namespace, prefixes).
pub(crate) fn is_plain_key_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'.' | b'-' | b'_')
}

fn percent_encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// Hides the password inside a config error's value, wherever it occurs.
fn redact_config(err: Error, password: &str) -> Error {
    match err {
        Error::Config {
            var,
            value,
            expected,
        } if !password.is_empty() && value.contains(password) => Error::Config {
            var,
            value: value.replace(password, "***"),
            expected,
        },
        other => other,
    }
}

fn parse_num<T>(var: &'static str, value: &str, min: T, expected: &'static str) -> Result<T>
where
    T: std::str::FromStr + PartialOrd,
{
    match value.trim().parse::<T>() {
        Ok(v) if v >= min => Ok(v),
        _ => Err(Error::config(var, value, expected)),
    }
}

fn parse_bool(var: &'static str, value: &str) -> Result<bool> {
    match value.trim().to_ascii_lowercase().as_str() {
        "1" | "true" | "yes" | "on" => Ok(true),
        "0" | "false" | "no" | "off" => Ok(false),
        _ => Err(Error::config(
            var,
            value,
            "true or false (also 1/0, yes/no, on/off)",
        )),
    }
}

fn parse_secs(var: &'static str, value: &str) -> Result<Duration> {
    const EXPECTED: &str = "a number of seconds > 0 (decimals allowed, e.g. 0.5)";
    match value.trim().parse::<f64>() {
        Ok(secs) if secs.is_finite() && secs > 0.0 && secs <= 86_400.0 => {
            Ok(Duration::from_secs_f64(secs))
        }
        _ => Err(Error::config(var, value, EXPECTED)),
    }
}

/// Parses `KEY=VALUE` lines: `#` comments, optional `export `, optional
/// single or double quotes around the value.
pub(crate) fn parse_dotenv(text: &str) -> HashMap<String, String> {
    let mut vars = HashMap::new();
    for line in text.lines() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let line = line.strip_prefix("export ").unwrap_or(line);
        let Some((key, value)) = line.split_once('=') else {
            continue;
        };
        let value = value.trim();
        let value = if value.len() >= 2
            && ((value.starts_with('"') && value.ends_with('"'))
                || (value.starts_with('\'') && value.ends_with('\'')))
        {
            &value[1..value.len() - 1]
        } else {
            value.split(" #").next().unwrap_or("").trim_end()
        };
        vars.insert(key.trim().to_owned(), value.to_owned());
    }
    vars
}

#[cfg(test)]
mod tests {
    use super::*;

    fn from(pairs: &[(&str, &str)]) -> Result<RedisSettings> {
        let map: HashMap<String, String> = pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        RedisSettings::from_lookup(|k| map.get(k).cloned())
    }

    fn var_of(err: Error) -> &'static str {
        match err {
            Error::Config { var, .. } => var,
            other => panic!("expected a config error, got {other}"),
        }
    }

    #[test]
    fn empty_environment_selects_memory_with_guide_defaults() {
        let s = from(&[]).unwrap();
        assert_eq!(s.backend_kind(), BackendKind::Memory);
        assert_eq!(s.pool_size(), 10);
        assert_eq!(s.socket_timeout(), Duration::from_secs(5));
        assert_eq!(s.default_ttl(), Duration::from_secs(3600));
    }

    #[test]
    fn host_variables_build_the_url_with_defaults() {
        let s = from(&[("REDIS_HOST", "cache"), ("REDIS_PASSWORD", "p@ss:word")]).unwrap();
        assert_eq!(s.backend_kind(), BackendKind::Redis);
        assert_eq!(s.redacted_url(), "redis://:***@cache:6379/0");
        assert_eq!(s.url.expose(), "redis://:p%40ss%3Aword@cache:6379/0");
    }

    #[test]
    fn connection_url_wins_over_host() {
        let s = from(&[
            ("REDIS_HOST", "other"),
            ("REDIS_CONNECTION_URL", "memory://"),
        ])
        .unwrap();
        assert_eq!(s.backend_kind(), BackendKind::Memory);
    }

    #[test]
    fn bad_values_name_the_variable_and_value() {
        for (var, value) in [
            ("REDIS_PORT", "abc"),
            ("REDIS_PORT", "70000"),
            ("REDIS_DB", "-1"),
            ("REDIS_POOL_SIZE", "0"),
            ("REDIS_SOCKET_TIMEOUT", "never"),
            ("REDIS_DEFAULT_TTL", "0"),
            ("REDIS_CONNECTION_URL", "http://localhost"),
            ("REDIS_CONNECTION_URL", "redis//nope"),
        ] {
            let err = from(&[(var, value)]).unwrap_err();
            let msg = err.to_string();
            assert!(msg.contains(var), "{msg}");
            assert!(msg.contains(value), "{msg}");
            assert!(msg.contains("expected"), "{msg}");
            assert_eq!(var_of(err), var);
        }
    }

    #[test]
    fn bad_url_error_never_contains_the_password() {
        let err = from(&[("REDIS_CONNECTION_URL", "ftp://:hunter2@host")]).unwrap_err();
        assert!(!err.to_string().contains("hunter2"));
        assert!(!format!("{err:?}").contains("hunter2"));
    }

    #[test]
    fn config_errors_never_echo_the_password_even_inside_other_values() {
        // Found by tests/fuzz.rs: a host value that contains the password.
        let err = from(&[
            ("REDIS_HOST", "x/secret-pw"),
            ("REDIS_PASSWORD", "secret-pw"),
        ])
        .unwrap_err();
        assert!(!err.to_string().contains("secret-pw"), "{err}");
        assert_eq!(var_of(err), "REDIS_HOST");
        let err = from(&[("REDIS_DB", "1e309"), ("REDIS_PASSWORD", "1e309")]).unwrap_err();
        assert!(!err.to_string().contains("1e309"), "{err}");
    }

    #[test]
    fn dotenv_parser_handles_comments_quotes_and_export() {
        let vars = parse_dotenv(
            "# c\nexport REDIS_HOST=redis\nREDIS_PASSWORD=\"a b\"\nREDIS_DB=0 # db\n\nBROKEN\n",
        );
        assert_eq!(vars["REDIS_HOST"], "redis");
        assert_eq!(vars["REDIS_PASSWORD"], "a b");
        assert_eq!(vars["REDIS_DB"], "0");
        assert!(!vars.contains_key("BROKEN"));
    }
}
