//! forge-cache: cache function results and rate-limit handlers in Redis
//! with one attribute.
#![warn(missing_docs)]
#![forbid(unsafe_code)]

pub use forge_cache_runtime::*;

#[cfg(feature = "macros")]
pub use forge_cache_macros::*;

#[doc(hidden)]
pub mod __private {
    pub use forge_cache_runtime::__private::*;
}
