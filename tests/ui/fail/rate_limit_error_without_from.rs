use forge_cache::rate_limit;

#[rate_limit(max_requests = 10, window_seconds = 60)]
async fn f() -> Result<u8, String> {
    Ok(1)
}

fn main() {}
