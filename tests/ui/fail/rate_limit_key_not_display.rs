use forge_cache::{RateLimitExceeded, rate_limit};

struct UserId(u64);

#[rate_limit(max_requests = 10, window_seconds = 60, key = "{user}")]
async fn f(user: UserId) -> Result<u64, RateLimitExceeded> {
    Ok(user.0)
}

fn main() {}
