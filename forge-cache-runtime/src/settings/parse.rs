//! Parsing and validating single values: URLs, numbers, booleans,
//! durations, `.env` files; redaction of the password in errors.

use super::*;

pub(super) const URL_EXPECTED: &str = "a URL with scheme redis://, rediss://, redis+unix://, redis+cluster://, rediss+cluster:// or memory://, e.g. redis://:password@localhost:6379/0";

pub(super) fn parse_target(url: &str) -> Result<Target> {
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

pub(super) fn percent_encode(s: &str) -> String {
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
pub(super) fn redact_config(err: Error, password: &str) -> Error {
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

pub(super) fn parse_num<T>(
    var: &'static str,
    value: &str,
    min: T,
    expected: &'static str,
) -> Result<T>
where
    T: std::str::FromStr + PartialOrd,
{
    match value.trim().parse::<T>() {
        Ok(v) if v >= min => Ok(v),
        _ => Err(Error::config(var, value, expected)),
    }
}

pub(super) fn parse_bool(var: &'static str, value: &str) -> Result<bool> {
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

pub(super) fn parse_secs(var: &'static str, value: &str) -> Result<Duration> {
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
