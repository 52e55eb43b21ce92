use forge_cache::cache_result;

#[cache_result(returns = "maybe")]
async fn f(id: u8) -> Option<u8> {
    Some(id)
}

fn main() {}
