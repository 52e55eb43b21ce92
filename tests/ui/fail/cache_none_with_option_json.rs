use axum::Json;
use forge_cache::cache_result;

#[cache_result(ttl = 60, cache_none = true)]
async fn find(id: u64) -> Option<Json<u64>> {
    Some(Json(id))
}

fn main() {}
