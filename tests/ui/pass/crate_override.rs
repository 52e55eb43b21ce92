//! `crate = "..."` for a renamed or re-exported forge-cache.
mod reexport {
    pub use forge_cache as cache;
}

#[forge_cache::cache_result(ttl = 60, crate = "crate::reexport::cache")]
async fn renamed(x: u8) -> u8 {
    x
}

fn main() {
    let _ = renamed(1);
    let _ = renamed_invalidate(1);
}
