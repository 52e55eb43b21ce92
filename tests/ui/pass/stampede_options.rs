//! `stale_ttl`, `early_refresh` and `beta` on async and sync functions.
use forge_cache::cache_result;

#[cache_result(ttl = 300, stale_ttl = 60, early_refresh = true, beta = 1.5)]
async fn rates(base: &str) -> Result<Vec<(String, f64)>, String> {
    Ok(vec![(base.to_owned(), 1.0)])
}

#[cache_result(ttl = 300, early_refresh = true, beta = 2)]
fn report(day: u32) -> Option<String> {
    Some(day.to_string())
}

fn main() {
    let _ = rates("EUR");
    let _ = report(1);
}
