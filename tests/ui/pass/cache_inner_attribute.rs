//! An inner attribute at the top of a cached function's body stays in the
//! function's body (async and sync).
#![deny(unused_variables)]

use forge_cache::cache_result;

#[cache_result(ttl = 60)]
async fn lookup(id: u32) -> u32 {
    #![allow(unused_variables)]
    let unused = 1;
    id
}

#[cache_result(ttl = 60)]
fn lookup_sync(id: u32) -> u32 {
    #![allow(unused_variables)]
    let unused = 1;
    id
}

fn main() {
    let _ = lookup(1);
    let _ = lookup_sync(1);
}
