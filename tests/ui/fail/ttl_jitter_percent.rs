use forge_cache::cache_result;

#[cache_result(ttl = 60, ttl_jitter = "150%")]
async fn find(id: u64) -> u64 {
    id
}

fn main() {}
