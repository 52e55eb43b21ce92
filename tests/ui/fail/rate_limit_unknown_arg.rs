use forge_cache::{RateLimitExceeded, rate_limit};

#[rate_limit(max_request = 10, window_seconds = 60)]
async fn f() -> Result<(), RateLimitExceeded> {
    Ok(())
}

fn main() {}
