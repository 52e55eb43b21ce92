use forge_cache::cache_result;

#[cache_result(ttl = 60, unless = |v| v.is_empty())]
async fn warm(id: u64) {
    let _ = id;
}

fn main() {}
