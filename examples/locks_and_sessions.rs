//! Distributed locks and sessions (the guide's "Distributed Locks" and
//! "Session Storage"): four workers race for one payment lock, then a
//! session is created, read with sliding expiry, and ended.
//!
//! Runs on the in-memory backend when no Redis is configured; set
//! `REDIS_CONNECTION_URL=redis://localhost:6379/0` to use Redis.
//!
//! ```text
//! cargo run --example locks_and_sessions
//! ```

use std::time::Duration;

use forge_cache::{CacheManager, Error, RedisSettings};
use serde::{Deserialize, Serialize};

#[derive(Debug, Serialize, Deserialize)]
struct Session {
    user_id: u64,
    cart: Vec<String>,
}

async fn process_payment(cache: CacheManager, worker: u32, order_id: u64) -> Result<(), Error> {
    let lock_name = format!("payment:{order_id}");
    // Wait at most 2 s for the lock; hold it 10 s, extended while the work runs.
    let outcome = cache
        .with_lock(
            &lock_name,
            Duration::from_secs(10),
            Duration::from_secs(2),
            |fence| async move {
                // Pass `fence` to the database so that a stale holder's write is refused.
                tokio::time::sleep(Duration::from_millis(50)).await;
                format!("worker {worker} charged order {order_id} with fencing token {fence}")
            },
        )
        .await;
    match outcome {
        Ok(line) => println!("{line}"),
        Err(Error::LockTimeout { .. }) => println!("worker {worker}: payment busy, try later"),
        Err(e) => return Err(e),
    }
    Ok(())
}

#[tokio::main]
async fn main() -> Result<(), Error> {
    let cache = CacheManager::new(RedisSettings::from_env()?)?;
    println!("backend: {}", cache.backend_kind());

    let workers: Vec<_> = (1..=4)
        .map(|worker| tokio::spawn(process_payment(cache.clone(), worker, 42)))
        .collect();
    for w in workers {
        w.await.expect("worker panicked")?;
    }

    // The guide's shape: a bool, and release by name (only if this manager holds it).
    if cache
        .acquire_lock("payment:43", Duration::from_secs(10))
        .await?
    {
        println!(
            "guide-style lock taken; released: {}",
            cache.release_lock("payment:43").await?
        );
    }

    let sessions = cache.sessions::<Session>();
    let id = sessions
        .create(&Session {
            user_id: 7,
            cart: vec!["book".into()],
        })
        .await?;
    println!("session id (cookie value): {id}");
    println!("session: {:?}", sessions.get_and_touch(&id).await?);
    sessions.delete(&id).await?;
    println!("after logout: {:?}", sessions.get(&id).await?);
    Ok(())
}
