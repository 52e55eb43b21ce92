//! Attribute arguments, parsed with `syn::meta::parser`: shared key
//! handling (unknown and duplicate keys are errors at the key, listing the
//! valid ones) and value parsers, then each macro's argument set.

use proc_macro2::{Span, TokenStream};
use syn::meta::ParseNestedMeta;
use syn::parse::Parser;
use syn::punctuated::Punctuated;
use syn::spanned::Spanned;
use syn::{Ident, Lit, LitStr, Path, Token};

use crate::item::ReturnKind;

/// Runs `on_key` for each `key` or `key = value` or `key(...)` in `attr`.
/// `valid` lists the accepted keys, for the error on any other.
pub(crate) fn parse_keys(
    attr: TokenStream,
    valid: &[&str],
    mut on_key: impl FnMut(&str, ParseNestedMeta<'_>) -> syn::Result<()>,
) -> syn::Result<()> {
    let mut seen: Vec<String> = Vec::new();
    let parser = syn::meta::parser(|meta| {
        let name = meta
            .path
            .get_ident()
            .map(Ident::to_string)
            .unwrap_or_else(|| quote::ToTokens::to_token_stream(&meta.path).to_string());
        if !valid.contains(&name.as_str()) {
            return Err(meta.error(format!(
                "unknown argument `{name}`; valid arguments are: {}",
                valid.join(", ")
            )));
        }
        if seen.contains(&name) {
            return Err(meta.error(format!("duplicate argument `{name}`")));
        }
        seen.push(name.clone());
        on_key(&name, meta)
    });
    parser.parse2(attr)
}

/// `key = <integer greater than 0>`.
pub(crate) fn positive_int(meta: &ParseNestedMeta<'_>, key: &str, unit: &str) -> syn::Result<u64> {
    let lit: Lit = meta.value()?.parse()?;
    let expected = || {
        syn::Error::new(
            lit.span(),
            format!("`{key}` expects an integer greater than 0 ({unit}), e.g. `{key} = 60`"),
        )
    };
    match &lit {
        Lit::Int(i) => match i.base10_parse::<u64>() {
            Ok(n) if n > 0 => Ok(n),
            _ => Err(expected()),
        },
        _ => Err(expected()),
    }
}

/// `key = <number greater than 0>` (integer or float literal).
pub(crate) fn positive_float(meta: &ParseNestedMeta<'_>, key: &str) -> syn::Result<f64> {
    let lit: Lit = meta.value()?.parse()?;
    let n = match &lit {
        Lit::Float(f) => f.base10_parse::<f64>().ok(),
        Lit::Int(i) => i.base10_parse::<f64>().ok(),
        _ => None,
    };
    match n {
        Some(n) if n > 0.0 && n.is_finite() => Ok(n),
        _ => Err(syn::Error::new(
            lit.span(),
            format!("`{key}` expects a number greater than 0, e.g. `{key} = 1.5`"),
        )),
    }
}

/// `key = "string"`.
pub(crate) fn string(meta: &ParseNestedMeta<'_>, key: &str) -> syn::Result<LitStr> {
    let lit: Lit = meta.value()?.parse()?;
    match lit {
        Lit::Str(s) => Ok(s),
        other => Err(syn::Error::new(
            other.span(),
            format!("`{key}` expects a string literal, e.g. `{key} = \"...\"`"),
        )),
    }
}

/// `key = true|false`, or just `key` (true).
pub(crate) fn boolean(meta: &ParseNestedMeta<'_>, key: &str) -> syn::Result<bool> {
    if meta.input.is_empty() || meta.input.peek(Token![,]) {
        return Ok(true);
    }
    let lit: Lit = meta.value()?.parse()?;
    match lit {
        Lit::Bool(b) => Ok(b.value),
        other => Err(syn::Error::new(
            other.span(),
            format!("`{key}` expects `true` or `false`"),
        )),
    }
}

/// `crate = "path"`.
pub(crate) fn crate_path(meta: &ParseNestedMeta<'_>) -> syn::Result<Path> {
    let s = string(meta, "crate")?;
    s.parse::<Path>().map_err(|_| {
        syn::Error::new(
            s.span(),
            "`crate` expects the path of the forge-cache crate, e.g. `crate = \"::forge_cache\"`",
        )
    })
}

/// `key(a, b, ...)`.
pub(crate) fn ident_list(meta: &ParseNestedMeta<'_>, key: &str) -> syn::Result<Vec<Ident>> {
    if !meta.input.peek(syn::token::Paren) {
        return Err(meta.error(format!(
            "`{key}` expects a list of argument names, e.g. `{key}(db, request)`"
        )));
    }
    let content;
    syn::parenthesized!(content in meta.input);
    let list = Punctuated::<Ident, Token![,]>::parse_terminated(&content)?;
    Ok(list.into_iter().collect())
}

/// The characters a literal key part may not contain: key separators and
/// glob syntax (as escaped by the runtime's `push_component`), whitespace.
pub(crate) fn bad_key_char(c: char) -> bool {
    matches!(c, '*' | '?' | '[' | ']' | '\\' | '{' | '}' | '%' | '^')
        || c.is_whitespace()
        || c.is_control()
}

/// A plain key part: a prefix (no `:` either).
pub(crate) fn plain_part(s: &LitStr, key: &str) -> syn::Result<String> {
    let v = s.value();
    if v.is_empty() || v.chars().any(|c| c == ':' || bad_key_char(c)) {
        return Err(syn::Error::new(
            s.span(),
            format!(
                "`{key}` must be non-empty and free of whitespace, `:` and the characters `* ? [ ] \\ {{ }} % ^`"
            ),
        ));
    }
    Ok(v)
}

/// One piece of a key template.
pub(crate) enum TemplatePart {
    Lit(String),
    /// `{head.field.0}`: the argument (or `self`) and the fields after it.
    Var(Vec<String>),
}

/// A parsed `key = "user:{user_id}:profile"`.
pub(crate) struct Template {
    pub(crate) lit: LitStr,
    pub(crate) parts: Vec<TemplatePart>,
}

impl Template {
    pub(crate) fn parse(lit: LitStr) -> syn::Result<Self> {
        let err = |msg: &str| syn::Error::new(lit.span(), format!("invalid key template: {msg}"));
        let text = lit.value();
        let mut parts = Vec::new();
        let mut rest = text.as_str();
        while !rest.is_empty() {
            match rest.find('{') {
                Some(0) => {
                    let end = rest
                        .find('}')
                        .ok_or_else(|| err("`{` without a closing `}`"))?;
                    let path: Vec<String> = rest[1..end].split('.').map(str::to_owned).collect();
                    let valid_head = syn::parse_str::<Ident>(&path[0]).is_ok() || path[0] == "self";
                    let valid_fields = path[1..]
                        .iter()
                        .all(|f| syn::parse_str::<Ident>(f).is_ok() || f.parse::<u32>().is_ok());
                    if !valid_head || !valid_fields {
                        return Err(err(&format!(
                            "`{{{}}}` is not an argument name or `argument.field` path",
                            &rest[1..end]
                        )));
                    }
                    parts.push(TemplatePart::Var(path));
                    rest = &rest[end + 1..];
                }
                found => {
                    let end = found.unwrap_or(rest.len());
                    let literal = &rest[..end];
                    if let Some(c) = literal.chars().find(|&c| bad_key_char(c)) {
                        return Err(err(&format!(
                            "{c:?} is not allowed outside placeholders (no whitespace or `* ? [ ] \\ }} % ^`)"
                        )));
                    }
                    parts.push(TemplatePart::Lit(literal.to_owned()));
                    rest = &rest[end..];
                }
            }
        }
        if !parts.iter().any(|p| matches!(p, TemplatePart::Var(_))) {
            return Err(err(
                "it has no `{argument}` placeholder, so every call would share one entry",
            ));
        }
        Ok(Template { lit, parts })
    }

    /// The glob matching every key the template renders to.
    pub(crate) fn glob(&self) -> String {
        self.parts
            .iter()
            .map(|p| match p {
                TemplatePart::Lit(s) => s.as_str(),
                TemplatePart::Var(_) => "*",
            })
            .collect()
    }
}

/// The arguments of `#[cache_result]`.
#[derive(Default)]
pub(crate) struct CacheArgs {
    pub(crate) ttl: Option<u64>,
    pub(crate) key_prefix: Option<(String, Span)>,
    pub(crate) template: Option<Template>,
    pub(crate) skip: Vec<Ident>,
    /// `cache_none = true`, with the key's span.
    pub(crate) cache_none: Option<Span>,
    pub(crate) returns: Option<(ReturnKind, Span)>,
    pub(crate) krate: Option<Path>,
    pub(crate) early_refresh: bool,
    /// XFetch `beta`, with its span.
    pub(crate) beta: Option<(f64, Span)>,
    pub(crate) stale_ttl: Option<u64>,
    pub(crate) lock: bool,
    /// `lock_wait_ms`, with its span.
    pub(crate) lock_wait_ms: Option<(u64, Span)>,
}

const CACHE_KEYS: &[&str] = &[
    "ttl",
    "key_prefix",
    "key",
    "skip",
    "cache_none",
    "returns",
    "early_refresh",
    "beta",
    "stale_ttl",
    "lock",
    "lock_wait_ms",
    "crate",
];

impl CacheArgs {
    pub(crate) fn parse(attr: TokenStream) -> syn::Result<Self> {
        let mut a = CacheArgs::default();
        parse_keys(attr, CACHE_KEYS, |key, meta| {
            match key {
                "ttl" => a.ttl = Some(positive_int(&meta, key, "seconds")?),
                "key_prefix" => {
                    let s = string(&meta, key)?;
                    a.key_prefix = Some((plain_part(&s, key)?, s.span()));
                }
                "key" => a.template = Some(Template::parse(string(&meta, key)?)?),
                "skip" => a.skip = ident_list(&meta, key)?,
                "cache_none" => {
                    let span = meta.path.span();
                    a.cache_none = boolean(&meta, key)?.then_some(span);
                }
                "returns" => {
                    let s = string(&meta, key)?;
                    let kind = match s.value().as_str() {
                        "result" => ReturnKind::Result,
                        "option" => ReturnKind::Option,
                        "value" => ReturnKind::Value,
                        _ => {
                            return Err(syn::Error::new(
                                s.span(),
                                "`returns` expects \"result\" (cache Ok only), \"option\" (cache Some only) or \"value\" (cache everything)",
                            ));
                        }
                    };
                    a.returns = Some((kind, s.span()));
                }
                "early_refresh" => a.early_refresh = boolean(&meta, key)?,
                "beta" => {
                    let span = meta.path.span();
                    a.beta = Some((positive_float(&meta, key)?, span));
                }
                "stale_ttl" => a.stale_ttl = Some(positive_int(&meta, key, "seconds")?),
                "lock" => a.lock = boolean(&meta, key)?,
                "lock_wait_ms" => {
                    let span = meta.path.span();
                    a.lock_wait_ms = Some((positive_int(&meta, key, "milliseconds")?, span));
                }
                _ => a.krate = Some(crate_path(&meta)?),
            }
            Ok(())
        })?;
        if let (Some((_, span)), false) = (a.lock_wait_ms, a.lock) {
            return Err(syn::Error::new(
                span,
                "`lock_wait_ms` bounds the wait of `lock`: add `lock = true`",
            ));
        }
        if let (Some((_, span)), false) = (a.beta, a.early_refresh) {
            return Err(syn::Error::new(
                span,
                "`beta` tunes `early_refresh`: add `early_refresh = true`",
            ));
        }
        if let (Some((_, span)), Some(t)) = (&a.key_prefix, &a.template) {
            let mut e = syn::Error::new(
                *span,
                format!(
                    "`key_prefix` cannot be combined with `key`: write the prefix into the template, e.g. `key = \"{}:{}\"`",
                    a.key_prefix.as_ref().map_or("", |p| p.0.as_str()),
                    t.lit.value()
                ),
            );
            e.combine(syn::Error::new(t.lit.span(), "the key template is here"));
            return Err(e);
        }
        Ok(a)
    }
}

/// `algorithm = "..."` of `#[rate_limit]`.
#[derive(Clone, Copy)]
pub(crate) enum Algorithm {
    FixedWindow,
    SlidingWindow,
    Gcra,
}

/// The arguments of `#[rate_limit]`.
pub(crate) struct RateArgs {
    pub(crate) max_requests: u64,
    pub(crate) window_seconds: u64,
    pub(crate) key: Option<syn::Expr>,
    pub(crate) algorithm: Algorithm,
    pub(crate) prefix: String,
    /// `true`: deny calls when the backend fails.
    pub(crate) deny_on_error: bool,
    pub(crate) krate: Option<Path>,
}

const RATE_KEYS: &[&str] = &[
    "max_requests",
    "window_seconds",
    "key",
    "algorithm",
    "prefix",
    "on_error",
    "crate",
];

impl RateArgs {
    pub(crate) fn parse(attr: TokenStream) -> syn::Result<Self> {
        let (mut max, mut window) = (None, None);
        let mut a = RateArgs {
            max_requests: 0,
            window_seconds: 0,
            key: None,
            algorithm: Algorithm::FixedWindow,
            prefix: "rate_limit".to_owned(),
            deny_on_error: false,
            krate: None,
        };
        parse_keys(attr, RATE_KEYS, |key, meta| {
            match key {
                "max_requests" => max = Some(positive_int(&meta, key, "calls per window")?),
                "window_seconds" => window = Some(positive_int(&meta, key, "seconds")?),
                "key" => a.key = Some(meta.value()?.parse()?),
                "algorithm" => {
                    let s = string(&meta, key)?;
                    a.algorithm = match s.value().as_str() {
                        "fixed_window" => Algorithm::FixedWindow,
                        "sliding_window" => Algorithm::SlidingWindow,
                        "gcra" => Algorithm::Gcra,
                        _ => {
                            return Err(syn::Error::new(
                                s.span(),
                                "`algorithm` expects \"fixed_window\", \"sliding_window\" or \"gcra\"",
                            ));
                        }
                    };
                }
                "prefix" => a.prefix = plain_part(&string(&meta, key)?, key)?,
                "on_error" => {
                    let s = string(&meta, key)?;
                    a.deny_on_error = match s.value().as_str() {
                        "allow" => false,
                        "deny" => true,
                        _ => {
                            return Err(syn::Error::new(
                                s.span(),
                                "`on_error` expects \"allow\" (run the call when the backend fails) or \"deny\" (reject it)",
                            ));
                        }
                    };
                }
                _ => a.krate = Some(crate_path(&meta)?),
            }
            Ok(())
        })?;
        let missing = |name: &str| {
            syn::Error::new(
                Span::call_site(),
                format!(
                    "#[rate_limit] needs `{name}`, e.g. `#[rate_limit(max_requests = 100, window_seconds = 3600)]`"
                ),
            )
        };
        a.max_requests = max.ok_or_else(|| missing("max_requests"))?;
        a.window_seconds = window.ok_or_else(|| missing("window_seconds"))?;
        Ok(a)
    }
}
