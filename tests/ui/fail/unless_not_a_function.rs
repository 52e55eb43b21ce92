use forge_cache::cache_result;

#[cache_result(ttl = 60, unless = true)]
async fn list(id: u64) -> Vec<u64> {
    vec![id]
}

fn main() {}
