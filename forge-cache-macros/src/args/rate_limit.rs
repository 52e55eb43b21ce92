//! The arguments of `#[rate_limit]`.

use std::time::Duration;

use proc_macro2::{Span, TokenStream};
use syn::{Lit, Path};

use super::{Arg, Names, parse_args};
use crate::errors::Errors;
use crate::template::{KeyOf, Template};

/// `algorithm = "..."` of `#[rate_limit]`.
#[derive(Clone, Copy)]
pub(crate) enum Algorithm {
    FixedWindow,
    SlidingWindow,
    Gcra,
}

/// The arguments of `#[rate_limit]`. Those with an error keep their
/// default.
pub(crate) struct RateArgs {
    pub(crate) max_requests: u64,
    pub(crate) window: Duration,
    pub(crate) key: Option<Template>,
    pub(crate) algorithm: Algorithm,
    pub(crate) key_prefix: String,
    /// `true`: deny calls when the backend fails.
    pub(crate) deny_on_error: bool,
    pub(crate) krate: Option<Path>,
}

const NAMES: Names = Names {
    valid: &[
        "max_requests",
        "window_seconds",
        "key",
        "key_prefix",
        "algorithm",
        "on_error",
        "crate",
    ],
    renamed: &["prefix"],
};

impl RateArgs {
    pub(crate) fn parse(attr: TokenStream, errors: &mut Errors) -> Self {
        let mut a = RateArgs {
            max_requests: 1,
            window: Duration::from_secs(1),
            key: None,
            algorithm: Algorithm::FixedWindow,
            key_prefix: "rate_limit".to_owned(),
            deny_on_error: false,
            krate: None,
        };
        let mut template_errors = Errors::default();
        let seen = parse_args(attr, &NAMES, errors, |arg| {
            match arg.name {
                "max_requests" => a.max_requests = arg.positive_int("calls per window", 60)?,
                "window_seconds" => a.window = arg.duration()?,
                "key" => {
                    a.key = Some(Template::from_arg(
                        arg,
                        KeyOf::RateLimit,
                        &mut template_errors,
                    )?)
                }
                "algorithm" => {
                    a.algorithm = arg.choice(
                        &[
                            ("fixed_window", Algorithm::FixedWindow),
                            ("sliding_window", Algorithm::SlidingWindow),
                            ("gcra", Algorithm::Gcra),
                        ],
                        "\"fixed_window\", \"sliding_window\" or \"gcra\"",
                    )?;
                }
                "key_prefix" => a.key_prefix = arg.plain_part()?.0,
                "prefix" => return Err(renamed_prefix(arg)),
                "on_error" => {
                    a.deny_on_error = arg.choice(
                        &[("allow", false), ("deny", true)],
                        "\"allow\" (run the call when the backend fails) or \"deny\" (reject it)",
                    )?;
                }
                _ => a.krate = Some(arg.crate_path()?),
            }
            Ok(())
        });
        if let Some(e) = template_errors.into_error() {
            errors.push(e);
        }
        // Not after another error: `max_request = 10` is reported as unknown,
        // not also as a missing `max_requests`.
        for required in ["max_requests", "window_seconds"] {
            if errors.is_empty() && !seen.iter().any(|s| s == required) {
                errors.push(syn::Error::new(
                    Span::call_site(),
                    format!(
                        "#[rate_limit] needs `{required}`, e.g. `#[rate_limit(max_requests = 100, window_seconds = 3600)]`"
                    ),
                ));
            }
        }
        a
    }
}

/// `prefix = "api"` is now `key_prefix = "api"`.
fn renamed_prefix(arg: &Arg<'_>) -> syn::Error {
    let value = match arg.lit() {
        Ok(Some(Lit::Str(s))) => s.value(),
        _ => "...".to_owned(),
    };
    syn::Error::new(
        arg.span(),
        format!(
            "`prefix` is now `key_prefix`, as in #[cache_result]: write `key_prefix = \"{value}\"`"
        ),
    )
}
