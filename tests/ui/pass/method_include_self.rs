//! `include(self)` hashes the receiver into the key, whatever its form
//! (`&self`, `&mut self`, `self`, `self: Arc<Self>`); the companion then
//! takes `&self`.
use std::sync::Arc;

use forge_cache::cache_result;
use serde::Serialize;

#[derive(Serialize)]
struct Repo {
    tenant: String,
}

impl Repo {
    #[cache_result(ttl = 60, key_prefix = "repo", include(self))]
    async fn find(&self, id: u64) -> Option<String> {
        Some(format!("{}:{id}", self.tenant))
    }

    #[cache_result(ttl = 60, key_prefix = "repo", include(self))]
    fn find_mut(&mut self, id: u64) -> u64 {
        id
    }

    #[cache_result(ttl = 60, key_prefix = "repo", include(self))]
    fn into_len(self) -> usize {
        self.tenant.len()
    }

    #[cache_result(ttl = 60, key_prefix = "repo", include(self))]
    async fn shared(self: Arc<Self>, id: u64) -> u64 {
        id
    }
}

fn main() {
    let mut r = Repo { tenant: "a".into() };
    let _ = r.find(1);
    let _ = r.find_invalidate(1);
    let _ = Repo::find_invalidate_all();
    let _ = r.find_mut(1);
    let _ = r.find_mut_invalidate(1);
    let _ = r.into_len_invalidate();
    let _ = Repo { tenant: "b".into() }.into_len();
    let _ = Arc::new(Repo { tenant: "c".into() }).shared(1);
}
