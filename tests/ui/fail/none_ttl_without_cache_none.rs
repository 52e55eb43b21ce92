use forge_cache::cache_result;

#[cache_result(ttl = 60, none_ttl = 5)]
async fn find(id: u64) -> Option<u64> {
    Some(id)
}

fn main() {}
