use forge_cache::cache_result;

#[cache_result(ttl = 60, beta = 2.0)]
async fn f(id: u8) -> u8 {
    id
}

fn main() {}
