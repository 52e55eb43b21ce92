use forge_cache::cache_result;

#[cache_result(ttl = 60, tags = "user:{user_id}")]
async fn profile(user_id: u64) -> String {
    format!("{user_id}")
}

fn main() {}
