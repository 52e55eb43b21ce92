//! Every per-result option, with closures whose argument type is inferred.
use std::time::Duration;

use forge_cache::cache_result;

#[cache_result(ttl = |v| Duration::from_secs(*v), unless = |v| *v == 0, ttl_jitter = "10%")]
async fn computed(id: u64) -> u64 {
    id
}

#[cache_result(ttl = 60, unless = Vec::is_empty, err_ttl = "2s", force_refresh = fresh, skip(fresh))]
fn listed(id: u64, fresh: bool) -> Result<Vec<u64>, String> {
    Ok(vec![id])
}

#[cache_result(ttl = 60, cache_none = true, none_ttl = "5s", ttl_jitter = "10s")]
async fn maybe(id: u64) -> Option<u64> {
    Some(id)
}

fn main() {
    let _ = (computed(1), listed(1, false), listed_refresh(1, true), maybe(1), maybe_refresh(1));
    let _ = forge_cache::bypass(computed_refresh(2));
}
