//! Attribute macros for [`forge-cache`](https://docs.rs/forge-cache).
//!
//! Use them through the `forge-cache` crate, which re-exports them.
