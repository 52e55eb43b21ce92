//! `stale_ttl`, `early_refresh`, `beta`, `lock` and `lock_wait` on async
//! and sync functions, with durations in seconds and with units.
#[forge_cache::cache_result(lock = true)]
async fn locked(id: u8) -> u8 {
    id
}

use forge_cache::cache_result;

#[cache_result(ttl = "5m", stale_ttl = "1m", early_refresh = true, beta = 1.5)]
async fn rates(base: &str) -> Result<Vec<(String, f64)>, String> {
    Ok(vec![(base.to_owned(), 1.0)])
}

#[cache_result(ttl = 300, early_refresh = true, beta = 2, lock = true, lock_wait = "500ms")]
fn report(day: u32) -> Option<String> {
    Some(day.to_string())
}

fn main() {
    let _ = rates("EUR");
    let _ = report(1);
    let _ = locked(1);
}
