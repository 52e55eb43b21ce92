use forge_cache::cache_result;

#[cache_result(key_prefix = "my products")]
async fn f(x: u8) -> u8 {
    x
}

fn main() {}
