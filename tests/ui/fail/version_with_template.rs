use forge_cache::cache_result;

#[cache_result(key = "user:{id}", version = 2)]
async fn profile(id: u64) -> String {
    format!("{id}")
}

fn main() {}
