use forge_cache::cache_result;

#[cache_result(cache_none = true)]
async fn f(id: u8) -> Result<u8, String> {
    Ok(id)
}

fn main() {}
