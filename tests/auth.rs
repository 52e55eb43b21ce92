//! Authentication: `requirepass` and ACL users. Right credentials work; wrong
//! ones give a clear error that never contains the password.

mod common;

use std::time::Duration;

use forge_cache::{CacheManager, RedisSettings};
use forge_cache_testkit::RedisServer;

const PASSWORD: &str = "correct-horse-battery-staple";

fn manager(settings: forge_cache::RedisSettingsBuilder) -> CacheManager {
    CacheManager::new(
        settings
            .socket_timeout(Duration::from_secs(2))
            .build()
            .unwrap(),
    )
    .unwrap()
}

fn assert_no_secret(text: &str, secret: &str) {
    assert!(!text.contains(secret), "secret leaked into: {text}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn requirepass_right_password_works_from_url_and_variables() {
    let server = RedisServer::start_with(&["--requirepass", PASSWORD]);
    let by_url = manager(
        RedisSettings::builder().url(format!("redis://:{PASSWORD}@127.0.0.1:{}/0", server.port())),
    );
    assert!(by_url.ping().await.is_ok());
    let by_vars = manager(
        RedisSettings::builder()
            .host("127.0.0.1")
            .port(server.port())
            .password(PASSWORD),
    );
    by_vars.set("k", &1, Duration::from_secs(60)).await.unwrap();
    assert_eq!(by_vars.blocking().get::<i32>("k").unwrap(), Some(1));
    for text in [
        format!("{by_url:?}"),
        format!("{:?}", by_vars.settings()),
        by_vars.settings().redacted_url(),
    ] {
        assert_no_secret(&text, PASSWORD);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wrong_password_is_a_clear_error_without_the_password() {
    let server = RedisServer::start_with(&["--requirepass", PASSWORD]);
    let wrong = "wrong-secret-value";
    let m = manager(
        RedisSettings::builder().url(format!("redis://:{wrong}@127.0.0.1:{}/0", server.port())),
    );
    let err = m.ping().await.unwrap_err();
    let (display, debug) = (common::report(&err), format!("{err:?}"));
    assert!(
        display.contains("WRONGPASS") || display.to_lowercase().contains("auth"),
        "unclear: {display}"
    );
    assert_no_secret(&display, wrong);
    assert_no_secret(&debug, wrong);
    let sync_err = m.blocking().ping().unwrap_err();
    assert_no_secret(&common::report(&sync_err), wrong);
    assert_no_secret(&format!("{sync_err:?}"), wrong);
    // No password at all against a protected server.
    let none = manager(RedisSettings::builder().url(server.url()));
    assert!(none.set("k", &1, Duration::from_secs(5)).await.is_err());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn acl_user_with_username_and_password() {
    let server = RedisServer::start();
    assert_eq!(
        server.cli(&[
            "ACL",
            "SETUSER",
            "app",
            "on",
            ">app-secret",
            "~*",
            "&*",
            "+@all"
        ]),
        "OK"
    );
    let by_url = manager(RedisSettings::builder().url(format!(
        "redis://app:app-secret@127.0.0.1:{}/0",
        server.port()
    )));
    by_url
        .set("k", &"v", Duration::from_secs(60))
        .await
        .unwrap();
    let by_vars = RedisSettings::from_lookup(|k| match k {
        "REDIS_HOST" => Some("127.0.0.1".into()),
        "REDIS_PORT" => Some(server.port().to_string()),
        "REDIS_USERNAME" => Some("app".into()),
        "REDIS_PASSWORD" => Some("app-secret".into()),
        _ => None,
    })
    .unwrap();
    assert_no_secret(&format!("{by_vars:?}"), "app-secret");
    let m = CacheManager::new(by_vars).unwrap();
    assert_eq!(m.get::<String>("k").await.unwrap().as_deref(), Some("v"));

    let wrong = manager(RedisSettings::builder().url(format!(
        "redis://app:nope-secret@127.0.0.1:{}/0",
        server.port()
    )));
    let err = wrong.ping().await.unwrap_err();
    assert_no_secret(&format!("{err} {err:?}"), "nope-secret");
}
