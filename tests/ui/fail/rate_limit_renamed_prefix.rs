use forge_cache::{RateLimitExceeded, rate_limit};

#[rate_limit(max_requests = 10, window_seconds = 60, prefix = "api")]
async fn f() -> Result<(), RateLimitExceeded> {
    Ok(())
}

fn main() {}
