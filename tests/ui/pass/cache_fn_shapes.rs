//! Async, sync, generic, reference, pattern and skipped arguments; every
//! return-type policy; `?` and early `return` in the body.
use forge_cache::cache_result;
use serde::{Deserialize, Serialize};

#[derive(Serialize, Deserialize)]
struct Product {
    id: u64,
}

#[derive(Debug)]
struct DbError;

struct Pool;

struct Path<T>(T);

#[cache_result(ttl = 1800, key_prefix = "products")]
async fn get_products(category: &str) -> Result<Vec<Product>, DbError> {
    if category.is_empty() {
        return Err(DbError);
    }
    let id: u64 = "7".parse().map_err(|_| DbError)?;
    Ok(vec![Product { id }])
}

#[cache_result]
fn daily_stats(day: u32) -> u64 {
    u64::from(day)
}

#[cache_result(ttl = 60, key = "user:{user_id}:profile", skip(db), cache_none = true)]
async fn get_user(db: &Pool, user_id: i64) -> Option<Product> {
    let _ = db;
    (user_id > 0).then_some(Product { id: 1 })
}

#[cache_result(ttl = 5, skip(pool))]
async fn shapes<T: Serialize + Sync>(
    pool: &Pool,
    r: &T,
    o: Option<&u32>,
    Path(id): Path<u64>,
    mut n: u8,
) -> std::io::Result<Vec<u8>> {
    let _ = pool;
    n += 1;
    Ok(vec![n, o.copied().unwrap_or(0) as u8, id as u8, std::mem::size_of_val(r) as u8])
}

#[cache_result(returns = "value")]
fn whole_result(x: u8) -> Result<u8, String> {
    Ok(x)
}

#[cache_result(key_prefix = "unit")]
async fn returns_unit(x: u8) {
    let _ = x;
}

fn main() {
    let _ = get_products("books");
    let _ = daily_stats(1);
    let _ = daily_stats_invalidate(1);
    let _ = daily_stats_invalidate_all();
    let _ = get_user(&Pool, 1);
    let _ = get_user_invalidate(1);
    let _ = shapes(&Pool, &1u8, None, Path(1), 0);
    let _ = shapes_invalidate(&1u8, None, Path(1), 0);
    let _ = whole_result(1);
    let _ = returns_unit(1);
}
