//! Per-call options of `#[cache_result]` and the decision they feed: is
//! this output stored, and for how long (`unless`, a `ttl` computed from the
//! value, `none_ttl`, `err_ttl`, `ttl_jitter`, `force_refresh`).

use std::time::Duration;

use super::policy::{Output, Policy};
use super::site::CacheSite;
use super::tags::Tags;

/// What the attribute passes to one cached call besides its key.
///
/// ```
/// use std::time::Duration;
/// use forge_cache_runtime::__private::Options;
/// let opts: Options<Vec<u8>> = Options {
///     unless: Some(Vec::is_empty),
///     ttl: Some(|v: &Vec<u8>| Duration::from_secs(v.len() as u64)),
///     ..Options::NONE
/// };
/// # let _ = opts;
/// ```
pub struct Options<V> {
    /// `unless = ...`: a value it returns `true` for is returned, not
    /// stored.
    pub unless: Option<fn(&V) -> bool>,
    /// `ttl = <fn>`: the TTL of a value, computed from it. Zero: not stored.
    pub ttl: Option<fn(&V) -> Duration>,
    /// `force_refresh = ...` was true for this call: skip the read,
    /// recompute and store.
    pub force: bool,
    /// `tags = [...]`, rendered for this call.
    pub tags: Tags,
}

impl<V> Options<V> {
    /// No options.
    pub const NONE: Self = Options {
        unless: None,
        ttl: None,
        force: false,
        tags: Tags::NONE,
    };
}

/// `ttl_jitter`: how much of a TTL is taken off at random, so that entries
/// written together do not expire together. It only ever shortens a TTL,
/// so an entry is never older than its `ttl`.
#[derive(Clone, Copy, Debug, PartialEq)]
pub(crate) enum Jitter {
    None,
    /// Up to this many thousandths of the TTL (`"10%"`: 100).
    PerMille(u16),
    /// Up to this long, and at most half the TTL.
    Upto(Duration),
}

impl Jitter {
    /// `ttl`, shortened by a uniform share of the jitter (`r` in `(0, 1]`).
    pub(crate) fn apply(self, ttl: Duration, r: f64) -> Duration {
        let most = match self {
            Jitter::None => return ttl,
            Jitter::PerMille(p) => ttl.mul_f64(f64::from(p.min(999)) / 1000.0),
            Jitter::Upto(d) => d.min(ttl / 2),
        };
        ttl.saturating_sub(most.mul_f64(r.clamp(0.0, 1.0)))
    }
}

/// The storable form of `out` and the TTL to store it under, or `None`
/// when it is not stored (and why, for the debug log).
pub(crate) fn decide<'o, P: Policy<R>, R>(
    site: &CacheSite,
    default_ttl: Duration,
    opts: &Options<P::Value>,
    out: &'o R,
) -> Result<(&'o P::Stored, Duration), &'static str> {
    let stored = P::stored(out).ok_or("not cached: an error")?;
    let ttl = match P::output(out) {
        Output::Value(v) => {
            if opts.unless.is_some_and(|unless| unless(v)) {
                return Err("not cached: `unless` holds");
            }
            match opts.ttl {
                Some(ttl_of) => ttl_of(v),
                None => site.ttl(default_ttl),
            }
        }
        Output::None if site.cache_none() => site.ttl_of_none().unwrap_or(site.ttl(default_ttl)),
        Output::None => return Err("not cached: `None` (see `cache_none`)"),
        Output::Err => site.ttl_of_err().ok_or("not cached: an error")?,
    };
    let ttl = site.jitter().apply(ttl, super::refresh::uniform());
    if ttl.is_zero() {
        return Err("not cached: its TTL is zero");
    }
    Ok((stored, ttl))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cache::policy::{OptionPolicy, ResultErrPolicy, ResultPolicy};

    const S: fn(u64) -> Duration = Duration::from_secs;

    #[test]
    fn jitter_only_shortens_and_stays_within_its_bound() {
        assert_eq!(Jitter::PerMille(100).apply(S(100), 1.0), S(90));
        assert_eq!(Jitter::PerMille(100).apply(S(100), 0.0), S(100));
        assert_eq!(Jitter::Upto(S(30)).apply(S(100), 1.0), S(70));
        // At most half the TTL, whatever the setting.
        assert_eq!(Jitter::Upto(S(300)).apply(S(100), 1.0), S(50));
        assert_eq!(Jitter::None.apply(S(100), 1.0), S(100));
    }

    #[test]
    fn unless_and_a_computed_ttl_decide_per_value() {
        static SITE: CacheSite = CacheSite::new("p", "f", Some(Duration::from_secs(60)), 0, None);
        let opts = Options::<Vec<u8>> {
            unless: Some(Vec::is_empty),
            ttl: Some(|v| S(v.len() as u64)),
            ..Options::NONE
        };
        let empty: Result<Vec<u8>, ()> = Ok(vec![]);
        assert!(decide::<ResultPolicy, _>(&SITE, S(1), &opts, &empty).is_err());
        let two: Result<Vec<u8>, ()> = Ok(vec![1, 2]);
        let (_, ttl) = decide::<ResultPolicy, _>(&SITE, S(1), &opts, &two).unwrap();
        assert_eq!(ttl, S(2));
    }

    #[test]
    fn none_and_errors_get_their_own_ttls() {
        static SITE: CacheSite = CacheSite::new(
            "p",
            "f",
            Some(Duration::from_secs(60)),
            CacheSite::CACHE_NONE,
            None,
        )
        .none_ttl(Duration::from_secs(5))
        .err_ttl(Duration::from_secs(2));
        let none: Option<u8> = None;
        let (_, ttl) = decide::<OptionPolicy, _>(&SITE, S(1), &Options::NONE, &none).unwrap();
        assert_eq!(ttl, S(5));
        let err: Result<u8, String> = Err("down".into());
        let (_, ttl) = decide::<ResultErrPolicy, _>(&SITE, S(1), &Options::NONE, &err).unwrap();
        assert_eq!(ttl, S(2));
        assert!(decide::<ResultPolicy, _>(&SITE, S(1), &Options::NONE, &err).is_err());
    }
}
