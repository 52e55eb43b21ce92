use forge_cache::cache_result;

#[cache_result(ttl = |v: &u64| *v)]
async fn find(id: u64) -> u64 {
    id
}

fn main() {}
