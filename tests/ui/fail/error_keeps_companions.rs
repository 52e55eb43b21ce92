//! With an error in the attribute, the function and its companions still
//! exist: the attribute's error is the only one.
use forge_cache::cache_result;

struct Pool;

#[cache_result(tll = 60, skip(db))]
async fn get_user(db: &Pool, id: u64) -> Option<String> {
    let _ = db;
    Some(id.to_string())
}

#[cache_result(ttl = 60, key = "user:{id}", lock_wait_ms = 100)]
fn get_user_sync(db: &Pool, id: u64) -> Option<String> {
    let _ = db;
    Some(id.to_string())
}

async fn caller() -> forge_cache::Result<()> {
    let _ = get_user(&Pool, 1).await;
    get_user_invalidate(1).await?;
    get_user_invalidate_all().await?;
    let _ = get_user_sync(&Pool, 1);
    get_user_sync_invalidate(1)?;
    get_user_sync_invalidate_all()?;
    Ok(())
}

fn main() {
    let _ = caller();
}
