use forge_cache::cache_result;

#[cache_result(ttl = 60, skip(self))]
async fn f(id: u8) -> u8 {
    id
}

fn main() {}
