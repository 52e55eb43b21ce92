//! Attribute macros for [`forge-cache`](https://docs.rs/forge-cache).
//!
//! Use them through the `forge-cache` crate, which re-exports them.
#![forbid(unsafe_code)]

mod args;
mod errors;
mod expand;
mod item;
mod template;

use proc_macro::TokenStream;

/// Caches a function's result in Redis (or the in-memory backend) for `ttl`.
///
/// ```
/// use forge_cache::cache_result;
/// # #[derive(serde::Serialize, serde::Deserialize)] struct Product;
/// # #[derive(Debug)] struct DbError;
///
/// #[cache_result(ttl = "30m", key_prefix = "products")]
/// async fn get_products(category: &str) -> Result<Vec<Product>, DbError> {
///     // an expensive query
/// #   Ok(vec![])
/// }
/// ```
///
/// Works on async and sync functions (sync ones run the same core on the
/// blocking client, as `cache.blocking()` does), methods, generic
/// functions, and axum handlers (the expanded handler is still a handler,
/// and its future is still `Send`).
///
/// # Arguments
///
/// | argument | default | meaning |
/// |---|---|---|
/// | `ttl = 60`, `ttl = "30m"` | `REDIS_DEFAULT_TTL` | how long an entry lives (a [duration](#durations)) |
/// | `key_prefix = "products"` | `"cache"` | first key segment (no whitespace, `:` or glob characters) |
/// | `key = "user:{user_id}:profile"` | hashed key | a readable key template (see below) |
/// | `skip(db, state)` | none | arguments left out of the key; `skip(self)` in a method |
/// | `include(self)` | none | in a method, hash `self` into the key (see [Methods](#methods)) |
/// | `cache_none = true` | `false` | also cache `None` (negative caching) |
/// | `returns = "result"` | from the return type | `"result"`: cache `Ok` only; `"option"`: `Some` only; `"value"`: everything |
/// | `stale_ttl = "30s"` | none | how long an expired value is still served while one caller refreshes it, or when the refresh returns `Err` |
/// | `early_refresh = true` | `false` | recompute before expiry with XFetch probability (below) |
/// | `beta = 1.0` | `1.0` | XFetch aggressiveness (> 0; larger refreshes earlier); needs `early_refresh` |
/// | `lock = true` | `false` | on a miss, one caller across processes computes while the others wait for it |
/// | `lock_wait = "500ms"` | `3` (s) | bound of that wait; needs `lock` |
/// | `version = 2` | none | a key segment `v2`: bump it when the stored type changes, so no caller reads the old entries (see [Versions](#versions)) |
/// | `unless = Vec::is_empty` | none | a function of the value: when it returns `true`, the value is returned but not stored (see [Conditional caching](#conditional-caching)) |
/// | `ttl = \|t\| t.expires_in()` | | instead of a duration, the TTL computed from the value (zero: not stored) |
/// | `none_ttl = "30s"` | `ttl` | the TTL of a stored `None`; needs `cache_none` |
/// | `err_ttl = "10s"` | not stored | store `Err` values for this long (`E` must be `Serialize` and `Deserialize`) |
/// | `ttl_jitter = "10%"`, `ttl_jitter = "30s"` | none | take up to this much (at most half) off each TTL at random |
/// | `tags = ["user:{user_id}"]` | none | tag templates; `invalidate_tag("user:42")` drops every entry under a tag (see [Tags](#tags)) |
/// | `force_refresh = fresh` | `false` | a `bool` expression over the arguments: when true, skip the read, recompute and store (see [Bypass and refresh](#bypass-and-refresh)) |
/// | `format = "msgpack"` | `REDIS_CACHE_FORMAT` (`"json"`) | `"json"`, `"msgpack"` or `"postcard"` (the last two need the feature of the same name; see [Formats](#formats)) |
/// | `crate = "::forge_cache"` | `::forge_cache` | where the forge-cache crate is |
///
/// # Conditional caching
///
/// `unless` and a `ttl` function take a closure or the path of a function,
/// given the value that would be stored by reference: the `Ok` of a
/// `Result`, the `Some` of an `Option`, the whole value otherwise.
/// `none_ttl` and `err_ttl` give misses and errors their own, shorter TTLs
/// (negative caching). `ttl_jitter` only ever shortens a TTL, so no entry
/// outlives its `ttl`; it is off by default, so TTLs stay predictable.
///
/// ```
/// use std::time::Duration;
/// use forge_cache::cache_result;
/// # #[derive(serde::Serialize, serde::Deserialize)] struct Hit;
/// # #[derive(serde::Serialize, serde::Deserialize)] struct Token { secs: u64 }
///
/// // An empty result is returned, not stored.
/// #[cache_result(ttl = "10m", unless = Vec::is_empty)]
/// async fn search(q: String) -> Result<Vec<Hit>, String> {
/// #   let _ = q;
///     Ok(vec![])
/// }
///
/// // The token says how long it is good for.
/// #[cache_result(key = "token:{client}", ttl = |t: &Token| Duration::from_secs(t.secs))]
/// async fn token(client: u64) -> Result<Token, String> {
/// #   let _ = client;
///     Ok(Token { secs: 300 })
/// }
///
/// // Unknown ids are remembered for 30 s, upstream errors for 5 s.
/// #[cache_result(ttl = "1h", cache_none = true, none_ttl = "30s", ttl_jitter = "10%")]
/// async fn find(id: u64) -> Option<String> {
///     (id > 0).then(|| format!("item {id}"))
/// }
///
/// #[cache_result(ttl = "1h", err_ttl = "5s")]
/// async fn price(id: u64) -> Result<u64, String> {
///     Ok(id * 100)
/// }
/// ```
///
/// # Tags
///
/// `tags = [...]` are templates like `key` (a tag without placeholders is
/// a constant tag). `forge_cache::invalidate_tag("user:42")` drops every
/// entry written under that tag, whatever its function and arguments, with
/// one `UNLINK`: each tag has a version, entries record the versions they
/// were computed under, and a hit reads the entry and the versions in one
/// `MGET`. An invalidation during a computation is never lost.
///
/// ```
/// use forge_cache::cache_result;
///
/// #[cache_result(ttl = "1h", tags = ["user:{user_id}", "org:{org_id}"])]
/// async fn dashboard(user_id: u64, org_id: u64) -> String {
///     format!("{user_id}@{org_id}")
/// }
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> forge_cache::Result<()> {
/// dashboard(42, 7).await;
/// forge_cache::invalidate_tag("user:42").await?; // every entry of user 42
/// # Ok(()) }
/// ```
///
/// # Bypass and refresh
///
/// `<name>_refresh(<the function's arguments>)` is generated next to the
/// function: it runs the function without reading the cache and stores the
/// result. `force_refresh = <expr>` does the same for calls where the
/// expression (over the arguments) is true. `forge_cache::bypass(fut)` runs
/// code with every cached function uncached.
///
/// ```
/// use forge_cache::cache_result;
///
/// #[cache_result(ttl = "1h", key = "stock:{sku}", force_refresh = fresh, skip(fresh))]
/// async fn stock(sku: u64, fresh: bool) -> u64 {
///     sku % 7
/// }
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() {
/// stock(1, false).await; // from the cache when present
/// stock(1, true).await; // recomputed and stored
/// stock_refresh(1, false).await; // the same, from an admin button
/// forge_cache::bypass(stock(1, false)).await; // neither read nor stored
/// # }
/// ```
///
/// # Formats
///
/// Values are JSON by default, readable by any service. `format =
/// "msgpack"` (MessagePack, self-describing) and `format = "postcard"`
/// (compact, Rust only, not self-describing) need the features of the same
/// names; `REDIS_CACHE_FORMAT` sets the default and `REDIS_COMPRESS_ABOVE`
/// compresses large values with zstd (feature `zstd`). A non-JSON value
/// starts with a header naming its format, so a reader configured
/// differently takes it as a miss, never as garbage.
///
/// # Versions
///
/// `version = N` puts a segment `vN` into the key, between the function's
/// name and the digest of its arguments
/// (`products:get_products:v2:<md5>`). A deploy that changes what the
/// function returns bumps it, and from then on reads only entries written
/// by the new code. It does not rely on old entries failing to decode. Old
/// entries expire with their TTL. `<fn>_invalidate_all` removes every
/// version. Without `version`, keys are as before. With a `key` template,
/// write the version into the template (`key = "v2:user:{id}"`). A
/// `version` next to `key` is a compile error that shows how.
///
/// ```
/// use forge_cache::cache_result;
/// # #[derive(serde::Serialize, serde::Deserialize, Clone)] struct Profile { name: String, plan: String }
///
/// #[cache_result(ttl = "10m", key_prefix = "users", version = 2)] // v2: `Profile` gained `plan`
/// async fn profile(id: u64) -> Profile {
///     Profile { name: format!("user {id}"), plan: "free".into() }
/// }
/// ```
///
/// # Durations
///
/// `ttl`, `stale_ttl` and `lock_wait` (and `window_seconds` of
/// [`rate_limit`](macro@rate_limit)) take an integer, meaning seconds
/// (`ttl = 60`), or a string of digits and one unit: `ms`, `s`, `m`, `h`
/// or `d` (`ttl = "500ms"`, `"30s"`, `"5m"`, `"1h"`, `"1d"`). Zero,
/// fractions (`"1.5s"`: write `"1500ms"`) and strings without a unit are
/// compile errors. Expiry is counted in milliseconds, so `ttl = "500ms"`
/// lives half a second.
///
/// # Keys
///
/// By default the key is `[namespace:]<key_prefix>:<fn name>:<md5>`, the
/// MD5 (32 lowercase hex digits) being taken over the JSON array of the key
/// arguments, e.g. `["books",2]` for `get_products("books", 2)`. Every
/// argument not skipped is part of the key and must be `serde::Serialize`.
/// Generic functions and methods also hash the return type's name (and
/// `Self`'s), so instantiations do not share entries. The readable prefix
/// keeps `delete_pattern("products:*")` working.
///
/// A template renders placeholders (argument names, `arg.field` paths, or
/// `self.field` in methods) with `Display`, escaping `:`, glob characters
/// and whitespace, so `key = "user:{user_id}:profile"` gives
/// `user:42:profile`, reachable by `delete_pattern("user:42:*")`. A
/// template is the whole key (after the namespace): put any prefix in it.
///
/// ```
/// use forge_cache::cache_result;
/// # #[derive(serde::Serialize, serde::Deserialize)] struct User;
/// # struct PgPool;
/// #[cache_result(ttl = 60, key = "user:{user_id}:profile", skip(db))]
/// async fn get_user(db: &PgPool, user_id: i64) -> Option<User> {
/// #   None
/// }
/// ```
///
/// # Methods
///
/// A method says how `self` enters its key, so that two instances (two
/// tenants' repositories, two API clients) never answer with each other's
/// entries:
///
/// - a template naming fields of `self`: `key = "repo:{self.tenant}:{id}"`;
/// - `include(self)`: `self` is hashed into the key like an argument (it
///   must be `serde::Serialize`; skip fields that do not identify it with
///   `#[serde(skip)]`);
/// - `skip(self)`: `self` is left out, and every instance shares the
///   entries (say, a stateless client).
///
/// Without one of them, the method is a compile error at its receiver.
///
/// ```
/// use forge_cache::cache_result;
/// # #[derive(serde::Serialize, serde::Deserialize)] struct Order;
/// # struct PgPool;
/// #[derive(serde::Serialize)]
/// struct Orders {
///     tenant: String,
///     #[serde(skip)]
///     db: PgPool,
/// }
///
/// impl Orders {
///     #[cache_result(ttl = 60, key = "orders:{self.tenant}:{id}")]
///     async fn find(&self, id: u64) -> Option<Order> {
/// #       None
///         // ...
///     }
///
///     #[cache_result(ttl = 60, key_prefix = "orders", include(self))]
///     async fn count(&self) -> u64 {
/// #       0
///         // ...
///     }
/// }
/// ```
///
/// # What is cached
///
/// `Result<T, E>` (also `io::Result<T>`, `anyhow::Result<T>`: the last path
/// segment decides): only `Ok(T)` is stored, as `T`'s JSON. `Option<T>`:
/// `Some(T)` is stored; `None` only with `cache_none = true` (as `null`).
/// `axum::Json<T>`, alone or as the `Ok` or `Some` type, stores `T` and
/// wraps it again on a hit (forge-cache's `axum` feature).
/// Any other type: always stored. Any stored value is a hit, including `0`,
/// `""`, `[]`, `false` and `null`. Use `returns = "..."` for aliases whose
/// name hides the shape.
///
/// # Failures
///
/// The cache never breaks the function: when the backend fails, times out
/// or the circuit breaker is open, the function runs and its result is
/// returned (a warning is logged, at most once a second). A stored value
/// that no longer decodes (the type changed) is a miss and is overwritten.
/// A result that cannot be serialized, or exceeds `REDIS_MAX_VALUE_BYTES`,
/// is returned uncached and logged. A key argument that fails to serialize
/// (e.g. a map with non-string keys) makes the call run uncached.
///
/// # Concurrent misses
///
/// Concurrent calls with the same key in one process run the function once
/// (single-flight): the others wait and decode the stored value. Errors are
/// not shared (`E` need not be `Clone`): if the first call returns `Err`,
/// each waiting call runs the function itself. A cancelled first call hands
/// the work to a waiting one.
///
/// # Stampede options
///
/// With `stale_ttl = N`, an entry lives `ttl + N`; after `ttl` it is stale:
/// the first caller (one per key across processes, through a short-lived
/// claim key) runs the function and stores the new value, while every other
/// caller gets the stale value at once. If that refresh returns `Err`, the
/// stale value is returned instead of the error.
///
/// With `early_refresh = true`, the value is stored with the time the
/// function took (`delta`), as `{"v": <value>, "d": <ms>}`, and each read
/// recomputes early with probability `exp(-time_left / (delta * beta))`
/// (XFetch, Vattani et al., VLDB 2015), so under load the value is replaced
/// shortly before it expires, by one caller, instead of by a burst of
/// misses after.
///
/// With `lock = true`, a miss takes the lock `lock:<key>` (waiting at most
/// `lock_wait`) before computing, and reads the key again once it has it:
/// if another process stored the value meanwhile, that value is returned.
/// When the wait runs out (the holder is slow) or the backend fails, the
/// caller computes without the lock: the wait is bounded, never retried,
/// never recursive. The lock lives twice the wait bound (at least 2 s) and
/// is released after the store.
///
/// ```
/// use forge_cache::cache_result;
/// #[cache_result(ttl = "5m", stale_ttl = "1m", early_refresh = true)]
/// async fn exchange_rates(base: &str) -> Result<Vec<(String, f64)>, String> {
/// #   Ok(vec![])
/// }
///
/// #[cache_result(ttl = "1h", lock = true, lock_wait = "500ms")]
/// async fn report(day: u32) -> String {
/// #   String::new()
/// }
/// ```
///
/// # Invalidation
///
/// Besides `<name>_refresh`, two functions are generated next to the cached
/// one, with the same visibility (associated functions for methods), async
/// if it is async:
///
/// - `<name>_invalidate(<key arguments>) -> forge_cache::Result<bool>`
///   removes the entry of one call (the arguments are those that make up the
///   key, in order; `&self` too when the key uses `self`, through
///   `include(self)` or a `{self.field}` placeholder);
/// - `<name>_invalidate_all() -> forge_cache::Result<u64>` removes every
///   entry of the function (`SCAN` + `UNLINK` over `prefix:name:*`, or the
///   template with `*` for each placeholder).
///
/// ```
/// use forge_cache::cache_result;
/// #[cache_result(ttl = 60, key_prefix = "products")]
/// async fn count_products(category: &str) -> u64 {
/// #   0
/// }
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> forge_cache::Result<()> {
/// count_products("books").await; // stored
/// assert!(count_products_invalidate("books").await?); // removed
/// count_products_invalidate_all().await?;
/// # Ok(()) }
/// ```
///
/// Not usable in trait `impl` blocks (the companions are not trait
/// members). Methods of different types with the same name and prefix
/// share `invalidate_all`: give them distinct `key_prefix`es.
///
/// # Compile errors
///
/// Misuse is an error at the offending token: an unknown or duplicate
/// argument (the message lists the valid ones), a former spelling
/// (`lock_wait_ms` names `lock_wait`), a bad literal, a `skip` or
/// placeholder naming no argument, a method that does not say how `self`
/// enters the key, a key argument or return type that is not serializable.
/// The function and its `_invalidate` companions are still generated, so
/// these errors are the only ones.
///
/// # Observability
///
/// `tracing` debug events (target `forge_cache`) for every hit, miss, store
/// and error carry the prefix and function name (never values);
/// `CacheManager::stats()` sums hits, misses, stores and errors per prefix.
#[proc_macro_attribute]
pub fn cache_result(attr: TokenStream, item: TokenStream) -> TokenStream {
    expand::cache_result(attr.into(), item.into()).into()
}

/// Rate-limits a function: each call counts against `max_requests` per
/// `window_seconds`; over the limit the body does not run and the function
/// returns `Err(RateLimitExceeded { .. }.into())`.
///
/// ```
/// use forge_cache::{RateLimitExceeded, rate_limit};
///
/// #[derive(Debug)]
/// enum AppError {
///     TooMany(RateLimitExceeded),
/// }
/// impl From<RateLimitExceeded> for AppError {
///     fn from(e: RateLimitExceeded) -> Self {
///         AppError::TooMany(e)
///     }
/// }
///
/// // One budget for the whole function.
/// #[rate_limit(max_requests = 100, window_seconds = 3600)]
/// async fn get_data() -> Result<String, AppError> {
///     Ok("data".into())
/// }
///
/// // A budget per user: `key` is a key template over the arguments.
/// #[rate_limit(max_requests = 5, window_seconds = "1m", key = "{username}", algorithm = "gcra")]
/// fn login(username: &str, password: &str) -> Result<bool, AppError> {
/// #   let _ = password;
///     Ok(true)
/// }
/// ```
///
/// # Arguments
///
/// | argument | default | meaning |
/// |---|---|---|
/// | `max_requests = 100` | required | calls allowed per window (> 0) |
/// | `window_seconds = 3600`, `window_seconds = "1h"` | required | the window, a [duration](macro@cache_result#durations): integer seconds or a string with a unit (`"500ms"`, `"30s"`, `"5m"`, `"1h"`, `"1d"`) |
/// | `key = "{creds.username}"` | none: one budget for the function | a key template, as in [`cache_result`](macro@cache_result): placeholders name arguments, `arg.field` paths or `self.field` in methods; rendered once, before the body |
/// | `algorithm = "..."` | `"fixed_window"` | `"fixed_window"`, `"sliding_window"` or `"gcra"` |
/// | `key_prefix = "..."` | `"rate_limit"` | first key segment |
/// | `on_error = "allow"` | `"allow"` | when the backend fails: `"allow"` runs the call (logged), `"deny"` rejects it |
/// | `crate = "::forge_cache"` | `::forge_cache` | where the forge-cache crate is |
///
/// The budget is named after the function's module path and name, and
/// counted under `[namespace:]<key_prefix>:{<module.path.fn>[:<key>]}`.
/// Each placeholder's value is `Display`ed and escaped (`:`, glob
/// characters, braces, whitespace), so `key = "{tenant}:{user}"` keeps
/// `("a:b", "c")` and `("a", "b:c")` apart; a value longer than 200 bytes
/// is replaced by its hash.
///
/// The return type must be `Result<_, E>` with `E: From<RateLimitExceeded>`
/// (with the `axum` feature, `RateLimitExceeded` is itself a 429 response).
/// Works on async and sync functions, methods and axum handlers (the
/// future stays `Send`). A method without `key` shares one budget across
/// instances; name a field of `self` in `key` for one budget per instance.
///
/// Misuse is a compile error at the offending token, as for
/// [`cache_result`](macro@cache_result); the former spellings `prefix` and
/// `key = <expression>` name `key_prefix` and the template to write.
#[proc_macro_attribute]
pub fn rate_limit(attr: TokenStream, item: TokenStream) -> TokenStream {
    expand::rate_limit(attr.into(), item.into()).into()
}
