use forge_cache::cache_result;

#[cache_result(ttl = "1.5s")]
async fn f(x: u8) -> u8 {
    x
}

fn main() {}
