//! Settings: parsing, validation and redaction.

use super::*;

/// Settings from `pairs` as if they were the environment.
pub(crate) fn from(pairs: &[(&str, &str)]) -> Result<RedisSettings> {
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
