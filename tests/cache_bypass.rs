//! Running code uncached (`bypass`), recomputing an entry
//! (`<fn>_refresh`), and `force_refresh`, on every backend, async and sync.

mod common;

use std::sync::atomic::{AtomicU64, Ordering};

use common::Env;
use forge_cache::{blocking, bypass, cache_result};

/// The "database": what the functions read.
type Source = AtomicU64;

#[cache_result(ttl = 60, key = "t_bypass:price:{id}", skip(db))]
async fn price(db: &Source, id: u64) -> u64 {
    db.load(Ordering::SeqCst) + id
}

#[cache_result(ttl = 60, key = "t_bypass:stock:{id}", skip(db, fresh), force_refresh = fresh)]
async fn stock(db: &Source, id: u64, fresh: bool) -> u64 {
    db.load(Ordering::SeqCst) + id
}

/// Calls another cached function: a refresh applies to the outer call only.
#[cache_result(ttl = 60, key = "t_bypass:page:{id}", skip(db), unless = |v| *v == u64::MAX)]
async fn page(db: &Source, id: u64) -> u64 {
    price(db, id).await * 10
}

async fn bypass_runs_the_function_and_stores_nothing(env: Env) {
    env.manager
        .scope(async {
            let db = Source::new(100);
            assert_eq!(price(&db, 1).await, 101);
            db.store(200, Ordering::SeqCst);
            assert_eq!(bypass(price(&db, 1)).await, 201, "not read");
            assert_eq!(price(&db, 1).await, 101, "not written either");
            assert_eq!(bypass(async { price(&db, 2).await }).await, 202);
            assert_eq!(
                env.manager.get::<u64>("t_bypass:price:2").await.unwrap(),
                None
            );
        })
        .await;
}

async fn refresh_recomputes_and_stores_the_entry(env: Env) {
    env.manager
        .scope(async {
            let db = Source::new(100);
            assert_eq!(price(&db, 1).await, 101);
            db.store(300, Ordering::SeqCst);
            assert_eq!(price(&db, 1).await, 101);
            assert_eq!(price_refresh(&db, 1).await, 301);
            assert_eq!(price(&db, 1).await, 301, "the refreshed value is stored");
        })
        .await;
}

async fn a_refresh_applies_to_the_outer_call_only(env: Env) {
    env.manager
        .scope(async {
            let db = Source::new(1);
            assert_eq!(page(&db, 1).await, 20);
            db.store(5, Ordering::SeqCst);
            // The page is recomputed, from the price still cached.
            assert_eq!(page_refresh(&db, 1).await, 20);
            assert_eq!(price(&db, 1).await, 2);
        })
        .await;
}

async fn force_refresh_decides_from_the_arguments(env: Env) {
    env.manager
        .scope(async {
            let db = Source::new(10);
            assert_eq!(stock(&db, 1, false).await, 11);
            db.store(20, Ordering::SeqCst);
            assert_eq!(stock(&db, 1, false).await, 11);
            assert_eq!(stock(&db, 1, true).await, 21);
            assert_eq!(stock(&db, 1, false).await, 21);
        })
        .await;
}

on_every_backend!(
    bypass_runs_the_function_and_stores_nothing,
    refresh_recomputes_and_stores_the_entry,
    a_refresh_applies_to_the_outer_call_only,
    force_refresh_decides_from_the_arguments,
);

#[cache_result(ttl = 60, key = "t_bypass_sync:price:{id}", skip(db))]
fn price_sync(db: &Source, id: u64) -> u64 {
    db.load(Ordering::SeqCst) + id
}

fn sync_functions_bypass_and_refresh_too(env: Env) {
    env.manager.blocking().scope(|| {
        let db = Source::new(100);
        assert_eq!(price_sync(&db, 1), 101);
        db.store(200, Ordering::SeqCst);
        assert_eq!(blocking::bypass(|| price_sync(&db, 1)), 201);
        assert_eq!(price_sync(&db, 1), 101);
        assert_eq!(price_sync_refresh(&db, 1), 201);
        assert_eq!(price_sync(&db, 1), 201);
    });
}

on_every_backend_sync!(sync_functions_bypass_and_refresh_too);

struct Repo {
    db: Source,
}

impl Repo {
    #[cache_result(ttl = 60, key = "t_bypass:repo:{id}", skip(self))]
    async fn get(&self, id: u64) -> u64 {
        self.db.load(Ordering::SeqCst) + id
    }

    /// An associated function: its `_refresh` needs no `Self::` path.
    #[cache_result(ttl = 60, key = "t_bypass:assoc:{id}", skip(db))]
    fn assoc(db: &Source, id: u64) -> u64 {
        db.load(Ordering::SeqCst) + id
    }
}

#[tokio::test]
async fn methods_and_associated_functions_get_a_refresh_companion() {
    let env = Env::memory();
    env.manager
        .scope(async {
            let repo = Repo { db: Source::new(1) };
            assert_eq!(repo.get(1).await, 2);
            repo.db.store(7, Ordering::SeqCst);
            assert_eq!(repo.get_refresh(1).await, 8);
            assert_eq!(repo.get(1).await, 8);
        })
        .await;
    env.manager.blocking().scope(|| {
        let db = Source::new(1);
        assert_eq!(Repo::assoc(&db, 1), 2);
        db.store(3, Ordering::SeqCst);
        assert_eq!(Repo::assoc_refresh(&db, 1), 4);
    });
}
