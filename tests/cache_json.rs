//! `#[cache_result]` on axum handlers that return `Json<T>`,
//! `Result<Json<T>, E>` or `Option<Json<T>>`: the `T` is cached and wrapped
//! again, on every backend, async and sync.

mod common;

use std::sync::atomic::{AtomicUsize, Ordering};

use axum::Json;
use axum::extract::Path;
use common::Env;
use forge_cache::cache_result;
use serde::{Deserialize, Serialize};

static CALLS: AtomicUsize = AtomicUsize::new(0);

#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
struct User {
    id: u64,
    name: String,
}

fn user(id: u64) -> User {
    CALLS.fetch_add(1, Ordering::SeqCst);
    User {
        id,
        name: format!("user {id}"),
    }
}

#[cache_result(ttl = 60, key = "t_json:plain:{id}")]
async fn plain(Path(id): Path<u64>) -> Json<User> {
    Json(user(id))
}

#[cache_result(ttl = 60, key = "t_json:result:{id}")]
async fn result(Path(id): Path<u64>) -> Result<Json<User>, String> {
    if id == 0 {
        Err("no user 0".into())
    } else {
        Ok(Json(user(id)))
    }
}

#[cache_result(ttl = 60, key = "t_json:option:{id}", unless = |u| u.name.is_empty())]
async fn option(Path(id): Path<u64>) -> Option<Json<User>> {
    (id != 0).then(|| Json(user(id)))
}

#[cache_result(ttl = 60, key = "t_json:sync:{id}")]
fn sync_handler(id: u64) -> axum::Json<User> {
    Json(user(id))
}

async fn json_handlers_cache_the_value_inside(env: Env) {
    env.manager
        .scope(async {
            let ((), calls) = forge_cache::testing::record(async {
                for _ in 0..2 {
                    assert_eq!(
                        plain(Path(1)).await.0,
                        User {
                            id: 1,
                            name: "user 1".into()
                        }
                    );
                    assert_eq!(result(Path(2)).await.unwrap().0.id, 2);
                    assert_eq!(option(Path(3)).await.unwrap().0.id, 3);
                    assert!(result(Path(0)).await.is_err());
                    assert!(option(Path(0)).await.is_none());
                }
            })
            .await;
            // One store per key; errors and `None` are not cached.
            let (p, r, o) = (
                calls.function("plain"),
                calls.function("result"),
                calls.function("option"),
            );
            assert_eq!((p.stores, p.hits), (1, 1));
            assert_eq!((r.stores, r.hits, r.misses), (1, 1, 3));
            assert_eq!((o.stores, o.hits, o.misses), (1, 1, 3));
            // What is stored is the plain `T`, readable by any service.
            let stored: User = env.manager.get("t_json:plain:1").await.unwrap().unwrap();
            assert_eq!(stored.name, "user 1");
        })
        .await;
}

on_every_backend!(json_handlers_cache_the_value_inside);

fn sync_json_handlers_too(env: Env) {
    env.manager.blocking().scope(|| {
        assert_eq!(sync_handler(4).0.id, 4);
        assert_eq!(sync_handler(4).0.id, 4);
    });
    let stored: Option<User> = env.manager.blocking().get("t_json:sync:4").unwrap();
    assert_eq!(stored.map(|u| u.id), Some(4));
}

on_every_backend_sync!(sync_json_handlers_too);
