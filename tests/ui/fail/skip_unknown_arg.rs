use forge_cache::cache_result;

struct Pool;

#[cache_result(skip(pool))]
async fn f(db: &Pool, id: u8) -> u8 {
    let _ = db;
    id
}

fn main() {}
