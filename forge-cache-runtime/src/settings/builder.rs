//! [`RedisSettingsBuilder`]: settings in code, validated by `build`.

use super::*;

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
    format: Format,
    compress_above: Option<usize>,
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
            format: Format::Json,
            compress_above: None,
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
    setter!(/// `REDIS_CACHE_FORMAT`: the format of cached values for functions
        /// without `format = "..."` (default [`Format::Json`]). A binary format
        /// needs its feature.
        format: Format);
    setter!(/// `REDIS_COMPRESS_ABOVE`: cached values larger than this many bytes
        /// are compressed with zstd (default: never). Needs the `zstd` feature.
        compress_above: Option<usize>);

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
        if !self.format.available() {
            return Err(Error::config(
                "REDIS_CACHE_FORMAT",
                self.format.name(),
                super::FORMATS_ACCEPTED,
            ));
        }
        if let (Some(above), false) = (self.compress_above, cfg!(feature = "zstd")) {
            return Err(Error::config(
                "REDIS_COMPRESS_ABOVE",
                above.to_string(),
                "no value in this build: compression needs the `zstd` feature of forge-cache",
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
            format: self.format,
            compress_above: self.compress_above,
        })
    }
}
