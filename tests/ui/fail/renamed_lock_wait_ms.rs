use forge_cache::cache_result;

#[cache_result(ttl = 60, lock = true, lock_wait_ms = 500)]
async fn f(id: u8) -> u8 {
    id
}

fn main() {}
