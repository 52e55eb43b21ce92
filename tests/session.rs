//! Typed sessions (the guide's "Session Storage"), on every backend: round
//! trip, sliding expiry, deletion, tampered data, id format and escaping.

mod common;

use std::time::Duration;

use common::Env;
use forge_cache::{DEFAULT_SESSION_TTL, Error, SessionStore};
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct Session {
    user_id: u64,
    cart: Vec<String>,
}

fn alice() -> Session {
    Session {
        user_id: 7,
        cart: vec!["book".into()],
    }
}

const MIN: Duration = Duration::from_secs(60);

async fn session_round_trip(env: Env) {
    let sessions: SessionStore<Session> = env.manager.sessions();
    assert_eq!(sessions.ttl(), DEFAULT_SESSION_TTL);
    let id = sessions.create(&alice()).await.unwrap();
    assert_eq!(sessions.get(&id).await.unwrap(), Some(alice()));
    let raw = env
        .manager
        .get_bytes(&format!("session:{id}"))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(raw, br#"{"user_id":7,"cart":["book"]}"#, "stored as JSON");
    let ttl = env.manager.ttl(&format!("session:{id}")).await.unwrap();
    assert!(ttl.unwrap() > DEFAULT_SESSION_TTL - MIN, "{ttl:?}");

    let mut changed = alice();
    changed.cart.push("pen".into());
    assert!(sessions.update(&id, &changed).await.unwrap());
    assert_eq!(sessions.get_and_touch(&id).await.unwrap(), Some(changed));
    assert_eq!(sessions.get("unknown").await.unwrap(), None);
}

async fn update_does_not_revive_a_missing_session(env: Env) {
    let sessions = env.manager.sessions::<Session>();
    assert!(!sessions.update("gone", &alice()).await.unwrap());
    assert_eq!(sessions.get("gone").await.unwrap(), None);
    assert!(!sessions.touch("gone").await.unwrap());
    assert_eq!(sessions.get_and_touch("gone").await.unwrap(), None);
}

async fn touch_extends_the_ttl(env: Env) {
    let m = &env.manager;
    let sessions = m.sessions::<Session>().with_ttl(Duration::from_secs(3600));
    let id = sessions.create(&alice()).await.unwrap();
    let key = format!("session:{id}");
    m.expire(&key, Duration::from_secs(5)).await.unwrap();
    assert!(sessions.touch(&id).await.unwrap());
    let ttl = m.ttl(&key).await.unwrap().unwrap();
    assert!(ttl > Duration::from_secs(3000), "{ttl:?}");

    m.expire(&key, Duration::from_secs(5)).await.unwrap();
    assert!(sessions.get_and_touch(&id).await.unwrap().is_some());
    let ttl = m.ttl(&key).await.unwrap().unwrap();
    assert!(ttl > Duration::from_secs(3000), "get_and_touch: {ttl:?}");

    m.expire(&key, Duration::from_secs(5)).await.unwrap();
    assert!(sessions.update(&id, &alice()).await.unwrap());
    let ttl = m.ttl(&key).await.unwrap().unwrap();
    assert!(ttl > Duration::from_secs(3000), "update: {ttl:?}");

    m.expire(&key, Duration::from_secs(5)).await.unwrap();
    sessions.get(&id).await.unwrap();
    let ttl = m.ttl(&key).await.unwrap().unwrap();
    assert!(ttl <= Duration::from_secs(5), "get must not slide: {ttl:?}");
}

async fn delete_ends_the_session(env: Env) {
    let sessions = env.manager.sessions::<Session>();
    let id = sessions.create(&alice()).await.unwrap();
    assert!(sessions.delete(&id).await.unwrap());
    assert!(!sessions.delete(&id).await.unwrap());
    assert_eq!(sessions.get(&id).await.unwrap(), None);
}

async fn tampered_session_data_is_an_error_not_a_panic(env: Env) {
    let m = &env.manager;
    let sessions = m.sessions::<Session>();
    let id = sessions.create(&alice()).await.unwrap();
    let key = format!("session:{id}");
    for garbage in [&b"\xff\xfe\x00garbage"[..], br#"{"user_id":"admin"}"#, b""] {
        m.set_bytes(&key, garbage, MIN).await.unwrap();
        let got = sessions.get(&id).await;
        assert!(matches!(got, Err(Error::CorruptSession(_))), "{got:?}");
        let got = sessions.get_and_touch(&id).await;
        assert!(matches!(got, Err(Error::CorruptSession(_))), "{got:?}");
        assert!(
            !got.unwrap_err().to_string().contains(&id),
            "errors must not reveal session ids"
        );
    }
    // The documented recovery: drop it and start over.
    assert!(sessions.delete(&id).await.unwrap());
    let fresh = sessions.create(&alice()).await.unwrap();
    assert_eq!(sessions.get(&fresh).await.unwrap(), Some(alice()));
}

async fn generated_ids_are_128_bit_url_safe_and_unique(env: Env) {
    let sessions = env.manager.sessions::<u8>();
    let mut ids = std::collections::HashSet::new();
    for _ in 0..200 {
        let id = sessions.create(&1).await.unwrap();
        assert_eq!(id.len(), 22, "{id}");
        assert!(
            id.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_'),
            "{id}"
        );
        assert!(ids.insert(id));
    }
}

async fn guide_user_id_sessions_work_and_cannot_reach_other_keys(env: Env) {
    let m = &env.manager;
    let sessions = m.sessions::<Session>();
    // The guide's `session:{user_id}`.
    sessions.create_with_id(42, &alice()).await.unwrap();
    assert_eq!(m.get::<Session>("session:42").await.unwrap(), Some(alice()));
    assert_eq!(sessions.get(42).await.unwrap(), Some(alice()));

    // An id from a request cannot name another key.
    m.set("secret", &"x", MIN).await.unwrap();
    m.set("session:a:b", &alice(), MIN).await.unwrap();
    assert_eq!(sessions.get("a:b").await.unwrap(), None);
    sessions.create_with_id("*", &alice()).await.unwrap();
    assert!(!sessions.delete("?").await.unwrap());
    assert!(sessions.delete("*").await.unwrap());
    assert_eq!(
        m.get::<String>("secret").await.unwrap().as_deref(),
        Some("x")
    );
    assert!(m.get_bytes("session:a:b").await.unwrap().is_some());
    assert!(matches!(
        sessions.get("").await,
        Err(Error::InvalidName { .. })
    ));
}

on_every_backend!(
    session_round_trip,
    update_does_not_revive_a_missing_session,
    touch_extends_the_ttl,
    delete_ends_the_session,
    tampered_session_data_is_an_error_not_a_panic,
    generated_ids_are_128_bit_url_safe_and_unique,
    guide_user_id_sessions_work_and_cannot_reach_other_keys,
);

fn sync_session_round_trip(env: Env) {
    let m = &env.manager;
    let sessions = SessionStore::<Session>::new(m.clone()).with_ttl(Duration::from_secs(3600));
    let id = sessions.blocking().create(&alice()).unwrap();
    assert_eq!(sessions.blocking().get(&id).unwrap(), Some(alice()));
    let key = format!("session:{id}");
    m.blocking().expire(&key, Duration::from_secs(5)).unwrap();
    assert!(sessions.blocking().touch(&id).unwrap());
    assert!(m.blocking().ttl(&key).unwrap().unwrap() > Duration::from_secs(3000));
    assert!(sessions.blocking().update(&id, &alice()).unwrap());
    assert_eq!(
        sessions.blocking().get_and_touch(&id).unwrap(),
        Some(alice())
    );
    m.blocking().set_bytes(&key, b"{not json", MIN).unwrap();
    assert!(matches!(
        sessions.blocking().get(&id),
        Err(Error::CorruptSession(_))
    ));
    assert!(sessions.blocking().delete(&id).unwrap());
    sessions.blocking().create_with_id("u1", &alice()).unwrap();
    assert_eq!(sessions.blocking().get("u1").unwrap(), Some(alice()));
}

on_every_backend_sync!(sync_session_round_trip);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn session_scripts_reload_after_script_flush() {
    let env = Env::redis();
    let sessions = env.manager.sessions::<Session>();
    let id = sessions.create(&alice()).await.unwrap();
    assert!(sessions.update(&id, &alice()).await.unwrap());
    env.server.as_ref().unwrap().cli(&["SCRIPT", "FLUSH"]);
    assert!(sessions.update(&id, &alice()).await.unwrap());
    env.server.as_ref().unwrap().cli(&["SCRIPT", "FLUSH"]);
    assert!(sessions.blocking().get_and_touch(&id).unwrap().is_some());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn session_keys_carry_the_namespace() {
    let env = Env::redis_with(|b| b.namespace("app"));
    let sessions = env.manager.sessions::<Session>();
    let id = sessions.create(&alice()).await.unwrap();
    assert!(sessions.update(&id, &alice()).await.unwrap());
    let mut raw = env.manager.redis().unwrap();
    let n: i64 = ::redis::cmd("EXISTS")
        .arg(format!("app:session:{id}"))
        .query_async(&mut raw)
        .await
        .unwrap();
    assert_eq!(n, 1);
}
