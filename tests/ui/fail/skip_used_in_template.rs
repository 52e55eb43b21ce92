use forge_cache::cache_result;

#[cache_result(key = "user:{id}", skip(id))]
async fn f(id: u8) -> u8 {
    id
}

fn main() {}
