//! Property tests (run as ordinary tests): the settings parser and the key
//! builder never panic, and caller-controlled key parts stay literal.

use std::collections::HashMap;

use forge_cache_runtime::glob::{escape, glob_match};
use forge_cache_runtime::key::{ArgsHasher, join_key, push_component};
use forge_cache_runtime::{RedisSettings, redact_url};
use proptest::prelude::*;

const VARS: &[&str] = &[
    "REDIS_CONNECTION_URL",
    "REDIS_HOST",
    "REDIS_PORT",
    "REDIS_PASSWORD",
    "REDIS_USERNAME",
    "REDIS_DB",
    "REDIS_POOL_SIZE",
    "REDIS_SOCKET_TIMEOUT",
    "REDIS_DEFAULT_TTL",
    "REDIS_NAMESPACE",
    "REDIS_BREAKER_THRESHOLD",
    "REDIS_BREAKER_COOLDOWN_MS",
    "REDIS_MEMORY_MAX_ENTRIES",
    "REDIS_MAX_VALUE_BYTES",
    "REDIS_TLS_INSECURE",
];

fn value() -> impl Strategy<Value = String> {
    prop_oneof![
        any::<String>(),
        "[a-z+]{0,12}://[a-z:@/0-9.\\[\\]%#?]{0,40}",
        "-?[0-9]{0,25}(\\.[0-9]{0,5})?",
        Just("redis://:pw@localhost:6379/-1".to_string()),
        Just("1e309".to_string()),
        Just("NaN".to_string()),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, failure_persistence: None, ..ProptestConfig::default() })]

    #[test]
    fn settings_parser_never_panics_and_never_echoes_passwords(
        picks in proptest::collection::vec((0..VARS.len(), value()), 0..6),
    ) {
        let env: HashMap<&str, String> = picks.into_iter().map(|(i, v)| (VARS[i], v)).collect();
        match RedisSettings::from_lookup(|k| env.get(k).cloned()) {
            Ok(s) => { let _ = format!("{s:?}"); }
            Err(e) => {
                let msg = e.to_string();
                prop_assert!(msg.contains("REDIS_"), "{}", msg);
                if let Some(pw) = env.get("REDIS_PASSWORD").filter(|p| p.len() > 3) {
                    prop_assert!(!msg.contains(pw.as_str()));
                }
            }
        }
    }

    #[test]
    fn redacted_urls_do_not_contain_the_password(user in "[a-z]{0,8}", pw in "[A-Z0-9]{6,16}", host in "[a-z]{1,10}") {
        let url = format!("redis://{user}:{pw}@{host}:6379/0");
        prop_assert!(!redact_url(&url).contains(&pw));
    }

    #[test]
    fn key_components_are_literal_and_isolated(value in any::<String>(), other in any::<String>()) {
        let mut part = String::new();
        push_component(&mut part, &value);
        let special = [':', '*', '?', '[', ']', '\\', '{', '}'];
        prop_assert!(!part.contains(special), "{}", part);
        // Escaping is injective: different values never share a key.
        let mut other_part = String::new();
        push_component(&mut other_part, &other);
        prop_assert_eq!(part == other_part, value == other);
        let key = join_key(Some("ns"), &["user", &part, "profile"]);
        prop_assert_eq!(key.split(':').count(), 4);
    }

    #[test]
    fn escaped_globs_match_only_the_literal(literal in any::<String>(), probe in any::<String>()) {
        let pattern = escape(&literal);
        prop_assert!(glob_match(pattern.as_bytes(), literal.as_bytes()));
        prop_assert_eq!(glob_match(pattern.as_bytes(), probe.as_bytes()), probe == literal);
    }

    #[test]
    fn glob_matcher_never_panics(pattern in "[a-c*?\\[\\]^\\\\-]{0,16}", text in "[a-c\\[\\]*]{0,24}") {
        let _ = glob_match(pattern.as_bytes(), text.as_bytes());
    }

    #[test]
    fn args_hasher_accepts_any_json_shape(a in any::<Vec<(String, i64)>>(), b in any::<Option<f64>>()) {
        let mut h = ArgsHasher::new();
        h.arg(&a).unwrap();
        let _ = h.arg(&b);
        prop_assert_eq!(h.finish_hex().len(), 32);
    }
}
