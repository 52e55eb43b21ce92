use forge_cache::cache_result;

#[cache_result(ttl = 60, ttl = 120)]
async fn f(x: u8) -> u8 {
    x
}

fn main() {}
