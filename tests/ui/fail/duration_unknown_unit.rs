use forge_cache::cache_result;

#[cache_result(ttl = "5min")]
async fn f(x: u8) -> u8 {
    x
}

fn main() {}
