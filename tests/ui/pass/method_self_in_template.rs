//! A key template naming fields of `self` keys each instance apart; the
//! companion then takes `&self`.
use forge_cache::cache_result;

struct Tenant {
    id: u32,
}

struct Repo {
    tenant: Tenant,
    region: &'static str,
}

impl Repo {
    #[cache_result(ttl = 60, key = "repo:{self.region}:{self.tenant.id}:{id}")]
    async fn find(&self, id: u64) -> Option<String> {
        Some(id.to_string())
    }
}

fn main() {
    let r = Repo {
        tenant: Tenant { id: 1 },
        region: "eu",
    };
    let _ = r.find(1);
    let _ = r.find_invalidate(1);
    let _ = Repo::find_invalidate_all();
}
