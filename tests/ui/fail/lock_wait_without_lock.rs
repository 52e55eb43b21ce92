use forge_cache::cache_result;

#[cache_result(ttl = 60, lock_wait = "500ms")]
async fn f(id: u8) -> u8 {
    id
}

fn main() {}
