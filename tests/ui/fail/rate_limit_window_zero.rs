use forge_cache::{RateLimitExceeded, rate_limit};

#[rate_limit(max_requests = 10, window_seconds = 0)]
async fn f() -> Result<(), RateLimitExceeded> {
    Ok(())
}

fn main() {}
