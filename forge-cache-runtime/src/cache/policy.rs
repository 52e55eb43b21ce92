//! Output policies: which results of a cached function are stored, and how a
//! stored value becomes a result again.
//!
//! The attribute picks one from the return type's last path segment
//! (`Result` → [`ResultPolicy`], `Option` → [`OptionPolicy`], anything else
//! → [`ValuePolicy`]); `returns = "result" | "option" | "value"` overrides
//! the choice, e.g. for a type alias.

use serde::Serialize;
use serde::de::DeserializeOwned;

/// How a function's output `R` is cached.
///
/// ```
/// use forge_cache_runtime::__private::{Policy, ResultPolicy};
/// let ok: Result<u8, String> = Ok(3);
/// assert_eq!(<ResultPolicy as Policy<_>>::cacheable(&ok, false), Some(&3));
/// let err: Result<u8, String> = Err("down".into());
/// assert_eq!(<ResultPolicy as Policy<_>>::cacheable(&err, false), None);
/// ```
#[diagnostic::on_unimplemented(
    message = "`{R}` cannot be cached: the value to store must implement `serde::Serialize` and `serde::de::DeserializeOwned`",
    label = "the return type of a #[cache_result] function",
    note = "`Result<T, E>` stores `T`, `Option<T>` stores `T`, any other type is stored whole; derive `Serialize` and `Deserialize` for it"
)]
pub trait Policy<R> {
    /// What is stored (as JSON).
    type Stored: Serialize + DeserializeOwned;
    /// The part of `out` to store, or `None` when `out` must not be cached.
    fn cacheable(out: &R, cache_none: bool) -> Option<&Self::Stored>;
    /// Rebuilds the output from a stored value.
    fn from_stored(stored: Self::Stored) -> R;
    /// Whether `out` is a failure (an `Err`), for which `stale_ttl` serves
    /// the previous value instead.
    fn failed(out: &R) -> bool {
        let _ = out;
        false
    }
}

/// `Result<T, E>`: `Ok(T)` is stored as `T`'s JSON; `Err` is never stored
/// (so `E` need not be serializable).
pub struct ResultPolicy;

/// `Option<T>`: `Some(T)` is stored as `T`'s JSON; `None` is stored (as
/// `null`) only with `cache_none = true`.
pub struct OptionPolicy;

/// Any other type: every output is stored.
pub struct ValuePolicy;

impl<T: Serialize + DeserializeOwned, E> Policy<Result<T, E>> for ResultPolicy {
    type Stored = T;
    fn cacheable(out: &Result<T, E>, _: bool) -> Option<&T> {
        out.as_ref().ok()
    }
    fn from_stored(stored: T) -> Result<T, E> {
        Ok(stored)
    }
    fn failed(out: &Result<T, E>) -> bool {
        out.is_err()
    }
}

impl<T: Serialize + DeserializeOwned> Policy<Option<T>> for OptionPolicy {
    type Stored = Option<T>;
    fn cacheable(out: &Option<T>, cache_none: bool) -> Option<&Option<T>> {
        (out.is_some() || cache_none).then_some(out)
    }
    fn from_stored(stored: Option<T>) -> Option<T> {
        stored
    }
}

impl<T: Serialize + DeserializeOwned> Policy<T> for ValuePolicy {
    type Stored = T;
    fn cacheable(out: &T, _: bool) -> Option<&T> {
        Some(out)
    }
    fn from_stored(stored: T) -> T {
        stored
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn none_is_stored_only_with_cache_none() {
        assert_eq!(OptionPolicy::cacheable(&None::<u8>, false), None);
        assert_eq!(OptionPolicy::cacheable(&None::<u8>, true), Some(&None));
        assert_eq!(OptionPolicy::cacheable(&Some(0u8), false), Some(&Some(0)));
    }

    #[test]
    fn plain_values_are_always_stored() {
        assert_eq!(ValuePolicy::cacheable(&false, false), Some(&false));
    }
}
