use forge_cache::cache_result;

#[cache_result(ttl = 60, format = "xml")]
async fn profile(id: u64) -> String {
    format!("{id}")
}

fn main() {}
