use forge_cache::cache_result;

struct DbError;

#[cache_result(ttl = 60, err_ttl = 5)]
async fn find(id: u64) -> Result<u64, DbError> {
    Ok(id)
}

fn main() {}
