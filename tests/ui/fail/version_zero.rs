use forge_cache::cache_result;

#[cache_result(ttl = 60, version = 0)]
async fn profile(id: u64) -> String {
    format!("{id}")
}

fn main() {}
