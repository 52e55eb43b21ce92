use forge_cache::cache_result;

#[cache_result(ttl = 60, include(id))]
async fn f(id: u8) -> u8 {
    id
}

fn main() {}
