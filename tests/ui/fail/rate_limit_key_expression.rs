use forge_cache::{RateLimitExceeded, rate_limit};

struct Login {
    username: String,
}

#[rate_limit(max_requests = 5, window_seconds = 60, key = creds.username)]
async fn login(creds: Login) -> Result<String, RateLimitExceeded> {
    Ok(creds.username)
}

fn main() {}
