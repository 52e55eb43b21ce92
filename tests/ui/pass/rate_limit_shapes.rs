//! `#[rate_limit]` on async and sync functions, methods, key templates
//! over pattern arguments and fields of `self`, windows in seconds and
//! with units, and an axum handler whose future stays `Send`.
use axum::Router;
use axum::extract::Path;
use axum::routing::get;
use forge_cache::{RateLimitExceeded, rate_limit};

#[rate_limit(max_requests = 100, window_seconds = 3600)]
async fn get_data() -> Result<String, RateLimitExceeded> {
    Ok("data".into())
}

#[rate_limit(max_requests = 5, window_seconds = 60, key = "{id}", algorithm = "sliding_window", key_prefix = "users", on_error = "deny")]
async fn get_user(Path(id): Path<u64>) -> Result<String, RateLimitExceeded> {
    Ok(id.to_string())
}

#[rate_limit(max_requests = 1, window_seconds = "500ms", key = "{a}-{b}", algorithm = "gcra")]
fn sync_fn(a: u8, b: &str) -> Result<u8, AppError> {
    let _ = b;
    Ok(a)
}

#[derive(Debug)]
struct AppError;

impl From<RateLimitExceeded> for AppError {
    fn from(_: RateLimitExceeded) -> Self {
        AppError
    }
}

struct S {
    name: &'static str,
}

impl S {
    #[rate_limit(max_requests = 1, window_seconds = "1h", key = "{self.name}")]
    async fn method(&self) -> Result<(), RateLimitExceeded> {
        Ok(())
    }
}

fn assert_send<T: Send>(_: T) {}

fn main() {
    assert_send(get_data());
    assert_send(get_user(Path(1)));
    assert_send(S { name: "s" }.method());
    let _ = sync_fn(1, "x");
    let _app: Router = Router::new()
        .route("/data", get(get_data))
        .route("/users/{id}", get(get_user));
}
