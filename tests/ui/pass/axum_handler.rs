//! A cached axum handler is still a handler, and its future is `Send`.
use axum::Router;
use axum::extract::{Path, State};
use axum::routing::get;
use forge_cache::cache_result;
use serde::{Deserialize, Serialize};

#[derive(Clone)]
struct Db;

#[derive(Serialize, Deserialize)]
struct User {
    id: u64,
}

#[derive(Debug)]
struct AppError;

impl axum::response::IntoResponse for AppError {
    fn into_response(self) -> axum::response::Response {
        axum::http::StatusCode::INTERNAL_SERVER_ERROR.into_response()
    }
}

impl axum::response::IntoResponse for User {
    fn into_response(self) -> axum::response::Response {
        axum::Json(self).into_response()
    }
}

// `axum::Json<T>` is not `Serialize`: return a type that is, and that
// implements `IntoResponse`.
#[cache_result(ttl = 60, key = "user:{id}", skip(db))]
async fn get_user(State(db): State<Db>, Path(id): Path<u64>) -> Result<User, AppError> {
    let _ = db;
    Ok(User { id })
}

fn assert_send<T: Send>(_: T) {}

fn main() {
    assert_send(get_user(State(Db), Path(1)));
    let _app: Router = Router::new().route("/users/{id}", get(get_user)).with_state(Db);
}
