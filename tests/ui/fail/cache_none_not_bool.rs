use forge_cache::cache_result;

#[cache_result(cache_none = 1)]
async fn f(id: u8) -> Option<u8> {
    Some(id)
}

fn main() {}
