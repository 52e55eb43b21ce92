//! Redis Cluster addresses: `redis+cluster://` URLs and `REDIS_CLUSTER_NODES`
//! lists, turned into one [`redis::ConnectionInfo`] per seed node.

use redis::{ConnectionInfo, IntoConnectionInfo};

use crate::error::{Error, Result};
use crate::secret::redact_url;

pub(crate) const CLUSTER_URL_EXPECTED: &str = "redis+cluster://[user:password@]host:port,host:port,... (rediss+cluster:// for TLS), with database 0 only";

pub(crate) const CLUSTER_NODES_EXPECTED: &str =
    "a comma-separated list of host:port seed nodes, e.g. 10.0.0.1:7000,10.0.0.2:7000";

/// Whether `scheme` selects a cluster.
pub(crate) fn is_cluster_scheme(scheme: &str) -> bool {
    matches!(scheme, "redis+cluster" | "rediss+cluster")
}

/// Parses `redis+cluster://[user:password@]host:port,host:port[/0][?query]`
/// (or `rediss+cluster://`) into one connection info per seed node. The
/// credentials, TLS and query apply to every node.
pub(crate) fn parse_cluster_url(url: &str) -> Result<Vec<ConnectionInfo>> {
    let bad = |expected| Error::config("REDIS_CONNECTION_URL", redact_url(url), expected);
    let (scheme, rest) = url
        .split_once("://")
        .ok_or_else(|| bad(CLUSTER_URL_EXPECTED))?;
    let node_scheme = match scheme {
        "redis+cluster" => "redis",
        "rediss+cluster" => "rediss",
        _ => return Err(bad(CLUSTER_URL_EXPECTED)),
    };
    let authority_end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let (authority, tail) = rest.split_at(authority_end);
    let (userinfo, hosts) = match authority.rfind('@') {
        Some(at) => (&authority[..=at], &authority[at + 1..]),
        None => ("", authority),
    };
    let tail = match tail.strip_prefix('/') {
        // A database, if given, must be 0: a cluster has no other.
        Some(path) => {
            let (db, query) = path.split_at(path.find(['?', '#']).unwrap_or(path.len()));
            if !(db.is_empty() || db == "0") {
                return Err(bad("database 0 (Redis Cluster has only database 0)"));
            }
            query
        }
        None => tail,
    };
    let nodes = split_nodes(hosts).ok_or_else(|| bad(CLUSTER_URL_EXPECTED))?;
    nodes
        .iter()
        .map(|(host, port)| {
            format!("{node_scheme}://{userinfo}{host}:{port}/0{tail}")
                .as_str()
                .into_connection_info()
                .map_err(|e| {
                    if node_scheme == "rediss" && e.to_string().contains("TLS") {
                        bad("redis+cluster://: this build of forge-cache has no TLS support")
                    } else {
                        bad(CLUSTER_URL_EXPECTED)
                    }
                })
        })
        .collect()
}

/// Checks a `REDIS_CLUSTER_NODES` list and returns its nodes as `host:port`.
pub(crate) fn parse_node_list<S: AsRef<str>>(nodes: &[S]) -> Result<Vec<String>> {
    let joined = nodes
        .iter()
        .map(AsRef::as_ref)
        .collect::<Vec<_>>()
        .join(",");
    let bad = || {
        Error::config(
            "REDIS_CLUSTER_NODES",
            redact_nodes(&joined),
            CLUSTER_NODES_EXPECTED,
        )
    };
    let parsed = split_nodes(&joined).ok_or_else(bad)?;
    Ok(parsed
        .into_iter()
        .map(|(host, port)| format!("{host}:{port}"))
        .collect())
}

/// Splits `host:port,host:port` (IPv6 as `[::1]:7000`; the port defaults
/// to 6379). `None` when empty or when any entry is malformed.
fn split_nodes(list: &str) -> Option<Vec<(&str, u16)>> {
    let mut out = Vec::new();
    for node in list.split(',').map(str::trim) {
        let (host, port) = match node.rsplit_once(':') {
            Some((host, port)) if !host.contains(':') || host.ends_with(']') => {
                (host, port.parse::<u16>().ok().filter(|&p| p > 0)?)
            }
            _ if node.contains(':') && !node.starts_with('[') => return None,
            _ => (node, 6379),
        };
        let plain = host.trim_start_matches('[').trim_end_matches(']');
        if plain.is_empty()
            || !plain
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'-' | b'_' | b':'))
        {
            return None;
        }
        out.push((host, port));
    }
    Some(out)
}

/// Hides anything that looks like credentials (`user:pass@host`) in a
/// node list before it goes into an error.
pub(crate) fn redact_nodes(list: &str) -> String {
    list.split(',')
        .map(|n| match n.rfind('@') {
            Some(at) => format!("***@{}", &n[at + 1..]),
            None => n.to_owned(),
        })
        .collect::<Vec<_>>()
        .join(",")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::settings::tests::from;
    use crate::settings::{BackendKind, RedisSettings};

    fn config_error(err: Error) -> (&'static str, String, &'static str) {
        match err {
            Error::Config {
                var,
                value,
                expected,
            } => (var, value, expected),
            other => panic!("expected a config error, got {other}"),
        }
    }

    #[test]
    fn cluster_url_lists_every_seed_node() {
        let nodes = parse_cluster_url("redis+cluster://:pw@10.0.0.1:7000,10.0.0.2:7001,[::1]:7002")
            .unwrap();
        assert_eq!(nodes.len(), 3);
        assert_eq!(nodes[1].addr().to_string(), "10.0.0.2:7001");
        assert_eq!(nodes[0].redis_settings().password(), Some("pw"));
        assert_eq!(nodes[2].redis_settings().password(), Some("pw"));
    }

    #[test]
    fn cluster_url_selects_the_cluster_backend() {
        let s = from(&[(
            "REDIS_CONNECTION_URL",
            "redis+cluster://user:secret@a:7000,b:7001/0",
        )])
        .unwrap();
        assert_eq!(s.backend_kind(), BackendKind::Cluster);
        assert_eq!(s.redacted_url(), "redis+cluster://user:***@a:7000,b:7001/0");
        assert!(!format!("{s:?}").contains("secret"));
    }

    #[test]
    fn cluster_nodes_variable_selects_the_cluster_with_credentials() {
        let s = from(&[
            ("REDIS_CLUSTER_NODES", "a:7000, b:7001,c"),
            ("REDIS_PASSWORD", "p@ss"),
            ("REDIS_USERNAME", "app"),
            // REDIS_CLUSTER_NODES wins over the single-server host.
            ("REDIS_HOST", "single"),
        ])
        .unwrap();
        assert_eq!(s.backend_kind(), BackendKind::Cluster);
        assert_eq!(
            s.redacted_url(),
            "redis+cluster://app:***@a:7000,b:7001,c:6379"
        );
        let crate::settings::Target::Cluster(nodes) = &s.target else {
            panic!("not a cluster target");
        };
        assert_eq!(nodes[0].redis_settings().password(), Some("p@ss"));
        assert_eq!(nodes[2].redis_settings().username(), Some("app"));
    }

    #[test]
    fn bad_cluster_values_name_the_variable_value_and_what_is_accepted() {
        for (var, value) in [
            ("REDIS_CLUSTER_NODES", "a:7000,,b:7001"),
            ("REDIS_CLUSTER_NODES", "a:notaport"),
            ("REDIS_CLUSTER_NODES", "a:0"),
            ("REDIS_CLUSTER_NODES", "redis://a:7000"),
            ("REDIS_CLUSTER_NODES", "a b:7000"),
            ("REDIS_CONNECTION_URL", "redis+cluster://"),
            ("REDIS_CONNECTION_URL", "redis+cluster://a:7000,b:x"),
            ("REDIS_CONNECTION_URL", "redis+cluster://a:7000/3"),
        ] {
            let (got_var, got_value, expected) = config_error(from(&[(var, value)]).unwrap_err());
            assert_eq!(got_var, var, "{value}");
            assert_eq!(got_value, value);
            assert!(!expected.is_empty());
        }
    }

    #[test]
    #[cfg(feature = "tls")]
    fn tls_cluster_url_is_accepted_with_tls_support() {
        assert!(from(&[("REDIS_CONNECTION_URL", "rediss+cluster://a:7000,b:7001")]).is_ok());
    }

    #[test]
    #[cfg(not(feature = "tls"))]
    fn tls_cluster_url_without_tls_support_says_so() {
        let (var, _, expected) =
            config_error(from(&[("REDIS_CONNECTION_URL", "rediss+cluster://a:7000")]).unwrap_err());
        assert_eq!(var, "REDIS_CONNECTION_URL");
        assert!(expected.contains("TLS"), "{expected}");
    }

    #[test]
    fn cluster_errors_never_contain_the_password() {
        for (var, value) in [
            ("REDIS_CONNECTION_URL", "redis+cluster://:hunter2@a:7000/5"),
            ("REDIS_CONNECTION_URL", "redis+cluster://:hunter2@a:7000,b:"),
            ("REDIS_CLUSTER_NODES", "user:hunter2@a:7000"),
        ] {
            let err = from(&[(var, value)]).unwrap_err();
            assert!(!err.to_string().contains("hunter2"), "{err}");
            assert!(!format!("{err:?}").contains("hunter2"), "{err:?}");
        }
    }

    #[test]
    fn cluster_has_only_database_zero() {
        let (var, value, _) = config_error(
            from(&[("REDIS_CLUSTER_NODES", "a:7000"), ("REDIS_DB", "2")]).unwrap_err(),
        );
        assert_eq!((var, value.as_str()), ("REDIS_DB", "2"));
        assert!(from(&[("REDIS_CLUSTER_NODES", "a:7000"), ("REDIS_DB", "0")]).is_ok());
    }

    #[test]
    fn cluster_nodes_and_connection_url_together_are_rejected() {
        let (var, _, expected) = config_error(
            from(&[
                ("REDIS_CLUSTER_NODES", "a:7000"),
                ("REDIS_CONNECTION_URL", "redis://localhost:6379/0"),
            ])
            .unwrap_err(),
        );
        assert_eq!(var, "REDIS_CLUSTER_NODES");
        assert!(expected.contains("REDIS_CONNECTION_URL"));
    }

    #[test]
    fn builder_takes_cluster_nodes() {
        let s = RedisSettings::builder()
            .cluster_nodes(["127.0.0.1:7000", "127.0.0.1:7001"])
            .password("pw")
            .build()
            .unwrap();
        assert_eq!(s.backend_kind(), BackendKind::Cluster);
        assert_eq!(
            s.redacted_url(),
            "redis+cluster://:***@127.0.0.1:7000,127.0.0.1:7001"
        );
    }
}
