//! Output policies: which results of a cached function are stored, and how a
//! stored value becomes a result again.
//!
//! The attribute picks one from the return type's last path segment
//! (`Result` → [`ResultPolicy`], or [`ResultErrPolicy`] with `err_ttl`;
//! `Option` → [`OptionPolicy`]; anything else → [`ValuePolicy`]);
//! `returns = "result" | "option" | "value"` overrides the choice, e.g. for
//! a type alias.

use serde::Serialize;
use serde::de::DeserializeOwned;

/// What a function's output is, for the decision to store it and its TTL.
#[derive(Debug, PartialEq, Eq)]
pub enum Output<'a, V> {
    /// A value: the `Ok` of a `Result`, the `Some` of an `Option`, or the
    /// whole output. `unless` and a `ttl` function look at it.
    Value(&'a V),
    /// `None`: stored only with `cache_none` (for `none_ttl`).
    None,
    /// `Err`: stored only with `err_ttl`.
    Err,
}

/// How a function's output `R` is cached.
///
/// ```
/// use forge_cache_runtime::__private::{Output, Policy, ResultPolicy};
/// let ok: Result<u8, String> = Ok(3);
/// assert_eq!(<ResultPolicy as Policy<_>>::output(&ok), Output::Value(&3));
/// assert_eq!(<ResultPolicy as Policy<_>>::stored(&ok), Some(&3));
/// let err: Result<u8, String> = Err("down".into());
/// assert_eq!(<ResultPolicy as Policy<_>>::stored(&err), None);
/// ```
#[diagnostic::on_unimplemented(
    message = "`{R}` cannot be cached: the value to store must implement `serde::Serialize` and `serde::Deserialize`",
    label = "#[cache_result] stores this function's result",
    note = "`Result<T, E>` and `Option<T>` store `T`, `Json<T>` (also inside them) stores `T`, any other type is stored whole: derive `Serialize` and `Deserialize` for `T` (with `err_ttl`, for `E` too)",
    note = "a response type (`Response`, `Html<..>`, `impl IntoResponse`) cannot be stored: cache a function returning the data, and build the response from it",
    note = "`axum::Json<T>` needs forge-cache's `axum` feature"
)]
pub trait Policy<R> {
    /// What is stored.
    type Stored: Serialize + DeserializeOwned;
    /// What `unless` and a `ttl` function receive (by reference).
    type Value;
    /// What `out` is.
    fn output(out: &R) -> Output<'_, Self::Value>;
    /// The storable form of `out`, or `None` when it can never be stored
    /// (an `Err` without `err_ttl`).
    fn stored(out: &R) -> Option<&Self::Stored>;
    /// Rebuilds the output from a stored value.
    fn from_stored(stored: Self::Stored) -> R;
}

/// `Result<T, E>`: `Ok(T)` is stored as `T`; `Err` is never stored (so `E`
/// need not be serializable).
pub struct ResultPolicy;

/// `Result<T, E>` with `err_ttl`: the whole `Result` is stored, `Err`s
/// under their own (short) TTL. `E` must be serializable.
pub struct ResultErrPolicy;

/// `Option<T>`: `Some(T)` is stored; `None` is stored (as `null`) only with
/// `cache_none = true`.
pub struct OptionPolicy;

/// Any other type: every output is stored.
pub struct ValuePolicy;

/// `axum::Json<T>`: stored as `T`, wrapped again on a hit (with the `axum`
/// feature).
pub struct JsonPolicy;

/// `Result<axum::Json<T>, E>`: `Ok` stored as `T` (with the `axum`
/// feature).
pub struct ResultJsonPolicy;

/// `Option<axum::Json<T>>`: `Some` stored as `T`, `None` never (with the
/// `axum` feature).
pub struct OptionJsonPolicy;

#[diagnostic::do_not_recommend]
impl<T: Serialize + DeserializeOwned, E> Policy<Result<T, E>> for ResultPolicy {
    type Stored = T;
    type Value = T;
    fn output(out: &Result<T, E>) -> Output<'_, T> {
        match out {
            Ok(v) => Output::Value(v),
            Err(_) => Output::Err,
        }
    }
    fn stored(out: &Result<T, E>) -> Option<&T> {
        out.as_ref().ok()
    }
    fn from_stored(stored: T) -> Result<T, E> {
        Ok(stored)
    }
}

#[diagnostic::do_not_recommend]
impl<T, E> Policy<Result<T, E>> for ResultErrPolicy
where
    T: Serialize + DeserializeOwned,
    E: Serialize + DeserializeOwned,
{
    type Stored = Result<T, E>;
    type Value = T;
    fn output(out: &Result<T, E>) -> Output<'_, T> {
        <ResultPolicy as Policy<Result<T, E>>>::output(out)
    }
    fn stored(out: &Result<T, E>) -> Option<&Result<T, E>> {
        Some(out)
    }
    fn from_stored(stored: Result<T, E>) -> Result<T, E> {
        stored
    }
}

#[diagnostic::do_not_recommend]
impl<T: Serialize + DeserializeOwned> Policy<Option<T>> for OptionPolicy {
    type Stored = Option<T>;
    type Value = T;
    fn output(out: &Option<T>) -> Output<'_, T> {
        match out {
            Some(v) => Output::Value(v),
            None => Output::None,
        }
    }
    fn stored(out: &Option<T>) -> Option<&Option<T>> {
        Some(out)
    }
    fn from_stored(stored: Option<T>) -> Option<T> {
        stored
    }
}

#[diagnostic::do_not_recommend]
impl<T: Serialize + DeserializeOwned> Policy<T> for ValuePolicy {
    type Stored = T;
    type Value = T;
    fn output(out: &T) -> Output<'_, T> {
        Output::Value(out)
    }
    fn stored(out: &T) -> Option<&T> {
        Some(out)
    }
    fn from_stored(stored: T) -> T {
        stored
    }
}

#[cfg(feature = "axum")]
mod json {
    use axum::Json;
    use serde::Serialize;
    use serde::de::DeserializeOwned;

    use super::{JsonPolicy, OptionJsonPolicy, Output, Policy, ResultJsonPolicy};

    #[diagnostic::do_not_recommend]
    impl<T: Serialize + DeserializeOwned> Policy<Json<T>> for JsonPolicy {
        type Stored = T;
        type Value = T;
        fn output(out: &Json<T>) -> Output<'_, T> {
            Output::Value(&out.0)
        }
        fn stored(out: &Json<T>) -> Option<&T> {
            Some(&out.0)
        }
        fn from_stored(stored: T) -> Json<T> {
            Json(stored)
        }
    }

    #[diagnostic::do_not_recommend]
    impl<T: Serialize + DeserializeOwned, E> Policy<Result<Json<T>, E>> for ResultJsonPolicy {
        type Stored = T;
        type Value = T;
        fn output(out: &Result<Json<T>, E>) -> Output<'_, T> {
            match out {
                Ok(v) => Output::Value(&v.0),
                Err(_) => Output::Err,
            }
        }
        fn stored(out: &Result<Json<T>, E>) -> Option<&T> {
            out.as_ref().ok().map(|j| &j.0)
        }
        fn from_stored(stored: T) -> Result<Json<T>, E> {
            Ok(Json(stored))
        }
    }

    /// `None` is never stored (`cache_none` is a compile error with
    /// `Option<Json<T>>`), so what is stored is `T`.
    #[diagnostic::do_not_recommend]
    impl<T: Serialize + DeserializeOwned> Policy<Option<Json<T>>> for OptionJsonPolicy {
        type Stored = T;
        type Value = T;
        fn output(out: &Option<Json<T>>) -> Output<'_, T> {
            match out {
                Some(v) => Output::Value(&v.0),
                None => Output::None,
            }
        }
        fn stored(out: &Option<Json<T>>) -> Option<&T> {
            out.as_ref().map(|j| &j.0)
        }
        fn from_stored(stored: T) -> Option<Json<T>> {
            Some(Json(stored))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn none_and_errors_are_told_apart_from_values() {
        assert_eq!(OptionPolicy::output(&None::<u8>), Output::None);
        assert_eq!(OptionPolicy::output(&Some(0u8)), Output::Value(&0));
        let err: Result<u8, u8> = Err(1);
        assert_eq!(ResultPolicy::output(&err), Output::Err);
        assert_eq!(ResultErrPolicy::stored(&err), Some(&Err(1)));
    }

    #[test]
    fn plain_values_are_always_stored() {
        assert_eq!(ValuePolicy::stored(&false), Some(&false));
    }
}
