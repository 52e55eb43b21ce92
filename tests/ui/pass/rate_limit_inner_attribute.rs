//! An inner attribute at the top of a rate-limited function's body stays
//! in the function's body (async and sync).
#![deny(unused_variables)]

use forge_cache::{RateLimitExceeded, rate_limit};

#[rate_limit(max_requests = 10, window_seconds = 60)]
async fn handler(id: u32) -> Result<u32, RateLimitExceeded> {
    #![allow(unused_variables)]
    let unused = 1;
    Ok(id)
}

#[rate_limit(max_requests = 10, window_seconds = 60, key = "{id}")]
fn handler_sync(id: u32) -> Result<u32, RateLimitExceeded> {
    #![allow(unused_variables)]
    let unused = 1;
    Ok(id)
}

fn main() {
    let _ = handler(1);
    let _ = handler_sync(1);
}
