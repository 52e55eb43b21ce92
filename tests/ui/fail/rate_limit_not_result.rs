use forge_cache::rate_limit;

#[rate_limit(max_requests = 10, window_seconds = 60)]
async fn f() -> u8 {
    1
}

fn main() {}
