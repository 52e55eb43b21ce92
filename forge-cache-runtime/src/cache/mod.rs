//! The runtime of `#[cache_result]`: what one cached call does, the static
//! description of each cached function, output policies, counters and
//! single-flight.
//!
//! A call computes its key from its arguments, reads the key, and on a hit
//! decodes the stored JSON. On a miss the function runs (once per key in
//! this process while concurrent calls wait: single-flight) and its result
//! is stored when the output policy says it is cacheable. Every backend
//! failure is logged (at most once a second) and the function simply runs:
//! the cache never breaks the application.
//!
//! With `stale_ttl` and `early_refresh` (see `refresh`), one caller
//! refreshes an entry while the others keep serving the current value.
//!
//! Errors are not shared between concurrent callers: `E` need not be
//! `Clone`, so when the leading call's result is an `Err` (or an uncached
//! `None`), each waiting call runs the function itself.

mod call;
mod envelope;
mod options;
mod policy;
mod read;
mod refresh;
mod site;
pub(crate) mod stats;
mod tags;

pub use call::{
    cached, cached_blocking, invalidate, invalidate_all, invalidate_all_blocking,
    invalidate_blocking,
};
pub use options::Options;
pub use policy::{
    JsonPolicy, OptionJsonPolicy, OptionPolicy, Output, Policy, ResultErrPolicy, ResultJsonPolicy,
    ResultPolicy, ValuePolicy,
};
pub use site::{CacheSite, CallKey, KeyArg, KeyHasher, KeyReceiver, KeyTemplate};
pub use stats::{CacheCounters, CacheStats};
pub use tags::{Tags, invalidate_tag, invalidate_tag_blocking};
