//! Methods and associated functions, including a generic impl, each
//! method saying how `self` enters its key.
use forge_cache::cache_result;
use serde::{Deserialize, Serialize};

struct Repo {
    tenant: String,
}

impl Repo {
    #[cache_result(ttl = 60, key_prefix = "repo", skip(self))]
    pub async fn find(&self, id: u64) -> Option<String> {
        Some(format!("{}:{id}", self.tenant))
    }

    #[cache_result(ttl = 60, key = "repo:{self.tenant}:{id}")]
    pub fn find_sync(&self, id: u64) -> Option<String> {
        Some(format!("{}:{id}", self.tenant))
    }

    #[cache_result(ttl = 60, key_prefix = "repo")]
    pub async fn count() -> u64 {
        0
    }
}

struct Typed<T>(std::marker::PhantomData<T>);

impl<T: Default + Serialize + for<'de> Deserialize<'de> + Send + 'static> Typed<T> {
    #[cache_result(ttl = 60, skip(self))]
    async fn load(&self, id: u32) -> T {
        let _ = id;
        T::default()
    }
}

fn main() {
    let r = Repo { tenant: "a".into() };
    let _ = r.find(1);
    let _ = Repo::find_invalidate(1);
    let _ = Repo::find_invalidate_all();
    let _ = r.find_sync(1);
    let _ = r.find_sync_invalidate(1);
    let _ = Repo::count();
    let t = Typed::<u8>(std::marker::PhantomData);
    let _ = t.load(1);
}
