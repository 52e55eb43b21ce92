//! Key templates, the `key` of both attributes: `key = "user:{user_id}"`.
//! Parsing the literal, checking its placeholders against the function,
//! and the code rendering it through the runtime's `KeyTemplate` (each
//! placeholder `Display`ed and escaped).

use proc_macro2::TokenStream;
use quote::{ToTokens, quote, quote_spanned};
use syn::{Expr, Ident, Lit, LitStr, Member};

use crate::args::{Arg, bad_key_char};
use crate::errors::Errors;
use crate::expand::mixed;
use crate::item::FnInfo;

/// One piece of a key template.
pub(crate) enum Part {
    Lit(String),
    /// `{head.field.0}`: the argument (or `self`) and the fields after it.
    Var(Vec<String>),
}

/// A parsed `key = "user:{user_id}:profile"`.
pub(crate) struct Template {
    pub(crate) lit: LitStr,
    pub(crate) parts: Vec<Part>,
    pub(crate) of: KeyOf,
}

/// Which attribute a template keys, for the messages.
#[derive(Clone, Copy)]
pub(crate) enum KeyOf {
    Cache,
    RateLimit,
    /// A tag of `#[cache_result(tags = [...])]`: may have no placeholder.
    Tag,
}

impl KeyOf {
    /// What the template is, in messages.
    fn noun(self) -> &'static str {
        match self {
            KeyOf::Cache | KeyOf::RateLimit => "key template",
            KeyOf::Tag => "tag",
        }
    }
}

impl Template {
    /// `key = "..."`. Any other value is an error showing the template
    /// form. Errors inside the template are recorded in `errors`, and the
    /// placeholders that could be read are still returned.
    pub(crate) fn from_arg(arg: &Arg<'_>, of: KeyOf, errors: &mut Errors) -> syn::Result<Self> {
        match arg.value()? {
            Expr::Lit(syn::ExprLit {
                lit: Lit::Str(s), ..
            }) => Ok(Template::parse(s.clone(), of, errors)),
            other => Err(syn::Error::new_spanned(
                other,
                match suggestion(other) {
                    Some(t) => format!(
                        "`key` is a key template in both attributes: write `key = \"{t}\"`"
                    ),
                    None => "`key` is a key template in both attributes, e.g. `key = \"user:{user_id}\"`: its placeholders name arguments and their fields (`{arg.field}`, `{self.field}`)".to_owned(),
                },
            )),
        }
    }

    pub(crate) fn parse(lit: LitStr, of: KeyOf, errors: &mut Errors) -> Self {
        let span = lit.span();
        let err = |msg: &str| syn::Error::new(span, format!("invalid {}: {msg}", of.noun()));
        let text = lit.value();
        let mut parts = Vec::new();
        let mut rest = text.as_str();
        while !rest.is_empty() {
            match rest.find('{') {
                Some(0) => {
                    let Some(end) = rest.find('}') else {
                        errors.push(err("`{` without a closing `}`"));
                        break;
                    };
                    let path: Vec<String> = rest[1..end].split('.').map(str::to_owned).collect();
                    let valid_head = syn::parse_str::<Ident>(&path[0]).is_ok() || path[0] == "self";
                    let valid_fields = path[1..]
                        .iter()
                        .all(|f| syn::parse_str::<Ident>(f).is_ok() || f.parse::<u32>().is_ok());
                    if valid_head && valid_fields {
                        parts.push(Part::Var(path));
                    } else {
                        errors.push(err(&format!(
                            "`{{{}}}` is not an argument name or `argument.field` path",
                            &rest[1..end]
                        )));
                    }
                    rest = &rest[end + 1..];
                }
                found => {
                    let end = found.unwrap_or(rest.len());
                    let literal = &rest[..end];
                    if let Some(c) = literal.chars().find(|&c| bad_key_char(c)) {
                        errors.push(err(&format!(
                            "{c:?} is not allowed outside placeholders (no whitespace or `* ? [ ] \\ }} % ^`)"
                        )));
                    }
                    parts.push(Part::Lit(literal.to_owned()));
                    rest = &rest[end..];
                }
            }
        }
        let template = Template { lit, parts, of };
        if template.heads().next().is_none() && !matches!(of, KeyOf::Tag) {
            errors.push(err(match of {
                KeyOf::Cache => {
                    "it has no `{argument}` placeholder, so every call would share one entry"
                }
                KeyOf::RateLimit | KeyOf::Tag => {
                    "it has no `{argument}` placeholder, so every call would count against one budget: for that, leave `key` out"
                }
            }));
        }
        template
    }

    /// The first name of each placeholder (an argument, or `self`).
    pub(crate) fn heads(&self) -> impl Iterator<Item = &str> {
        self.parts.iter().filter_map(|p| match p {
            Part::Var(path) => Some(path[0].as_str()),
            Part::Lit(_) => None,
        })
    }

    /// Whether a placeholder starts with `self`.
    pub(crate) fn names_self(&self) -> bool {
        self.heads().any(|h| h == "self")
    }

    /// Checks that every placeholder names an argument, or `self` in a
    /// method.
    pub(crate) fn check(&self, info: &FnInfo, errors: &mut Errors) {
        let bindings: Vec<&Ident> = info.bindings().collect();
        for part in &self.parts {
            let Part::Var(path) = part else {
                continue;
            };
            let head = path[0].as_str();
            if head == "self" {
                if info.receiver.is_none() {
                    errors.push(syn::Error::new(
                        self.lit.span(),
                        format!(
                            "the {} names `self`, but this function has no `self` receiver",
                            self.of.noun()
                        ),
                    ));
                }
            } else if !bindings.iter().any(|b| *b == head) {
                errors.push(syn::Error::new(
                    self.lit.span(),
                    format!(
                        "the {} names `{{{}}}`, but `{head}` is not an argument of this function; {}",
                        self.of.noun(),
                        path.join("."),
                        list(&bindings)
                    ),
                ));
            }
        }
    }

    /// An expression rendering the template into a `KeyTemplate`, from
    /// references to the arguments (before the body takes them). A
    /// placeholder whose value is not `Display` is reported at the template.
    pub(crate) fn render(&self, p: &TokenStream) -> TokenStream {
        self.render_after(p, "")
    }

    /// [`render`](Self::render), after the literal `prefix`.
    pub(crate) fn render_after(&self, p: &TokenStream, prefix: &str) -> TokenStream {
        let k = mixed("__forge_key_template");
        let span = self.lit.span();
        let mut capacity = prefix.len();
        let prefix = (!prefix.is_empty()).then(|| quote!(#k.lit(#prefix);));
        let parts: Vec<TokenStream> = self
            .parts
            .iter()
            .map(|part| match part {
                Part::Lit(s) => {
                    capacity += s.len();
                    quote!(#k.lit(#s);)
                }
                Part::Var(path) => {
                    capacity += 16;
                    let head = if path[0] == "self" {
                        syn::Token![self](span).into_token_stream()
                    } else {
                        ident(&path[0], span).into_token_stream()
                    };
                    let fields = path[1..].iter().map(|f| match f.parse::<u32>() {
                        Ok(index) => Member::Unnamed(syn::Index { index, span }),
                        Err(_) => Member::Named(ident(f, span)),
                    });
                    quote_spanned!(span=> #k.part(&#head #(.#fields)*);)
                }
            })
            .collect();
        quote!({
            let mut #k = #p::KeyTemplate::new(#capacity);
            #prefix
            #(#parts)*
            #k
        })
    }

    /// The glob matching every key the template renders to.
    pub(crate) fn glob(&self) -> String {
        self.parts
            .iter()
            .map(|p| match p {
                Part::Lit(s) => s.as_str(),
                Part::Var(_) => "*",
            })
            .collect()
    }
}

/// Lists `names` for an error message.
pub(crate) fn list(names: &[&Ident]) -> String {
    if names.is_empty() {
        "it has none".to_owned()
    } else {
        let v: Vec<String> = names.iter().map(|i| format!("`{i}`")).collect();
        format!("its arguments are {}", v.join(", "))
    }
}

/// The placeholder for a former `key = <expression>`, when the expression
/// is an argument or a field path: `creds.username` gives
/// `{creds.username}`.
fn suggestion(expr: &Expr) -> Option<String> {
    match expr {
        Expr::Path(p) if p.qself.is_none() && p.attrs.is_empty() => {
            p.path.get_ident().map(|i| format!("{{{i}}}"))
        }
        Expr::Field(f) => {
            let base = suggestion(&f.base)?;
            let member = match &f.member {
                Member::Named(i) => i.to_string(),
                Member::Unnamed(i) => i.index.to_string(),
            };
            Some(format!("{}.{member}}}", &base[..base.len() - 1]))
        }
        Expr::Paren(p) => suggestion(&p.expr),
        Expr::Reference(r) => suggestion(&r.expr),
        _ => None,
    }
}

/// The identifier `name` (validated when the template was parsed; raw
/// identifiers such as `r#type` included, which `Ident::new` rejects).
fn ident(name: &str, span: proc_macro2::Span) -> Ident {
    let mut ident =
        syn::parse_str::<Ident>(name).unwrap_or_else(|_| Ident::new("__forge_invalid", span));
    ident.set_span(span);
    ident
}
