use forge_cache::cache_result;

struct Repo {
    tenant: String,
}

impl Repo {
    #[cache_result(ttl = 60, key_prefix = "repo")]
    async fn find(&self, id: u64) -> Option<String> {
        Some(format!("{}:{id}", self.tenant))
    }
}

fn main() {}
