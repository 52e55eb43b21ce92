//! Duration arguments (`ttl`, `stale_ttl`, `lock_wait`, `window_seconds`):
//! an integer number of seconds, or a string of digits and one unit.

use std::time::Duration;

use syn::Lit;

use super::Arg;

/// The units of a duration string, with their length in milliseconds.
const UNITS: &[(&str, u64)] = &[
    ("ms", 1),
    ("s", 1000),
    ("m", 60_000),
    ("h", 3_600_000),
    ("d", 86_400_000),
];

/// Why a literal is not a duration.
enum Problem {
    Zero,
    /// A string of digits without a unit.
    NoUnit(String),
    /// A fractional number; the whole milliseconds it stands for, if any.
    Fraction(Option<u64>),
    TooLong,
    /// An integer with a suffix (`500ms`), which Rust lexes as `500`.
    Suffix(String, String),
    Other,
}

impl Arg<'_> {
    /// `name = 30` (seconds) or `name = "500ms"`; greater than 0.
    pub(crate) fn duration(&self) -> syn::Result<Duration> {
        let millis = match self.lit()? {
            Some(Lit::Int(i)) if !i.suffix().is_empty() => Err(Problem::Suffix(
                i.base10_digits().to_owned(),
                i.suffix().to_owned(),
            )),
            Some(Lit::Int(i)) => match i.base10_parse::<u64>() {
                Ok(0) => Err(Problem::Zero),
                Ok(n) => n.checked_mul(1000).ok_or(Problem::TooLong),
                Err(_) => Err(Problem::Other),
            },
            Some(Lit::Float(f)) => Err(Problem::Fraction(
                f.base10_parse::<f64>()
                    .ok()
                    .and_then(|s| whole_millis(s * 1000.0)),
            )),
            Some(Lit::Str(s)) => parse(&s.value()),
            _ => Err(Problem::Other),
        };
        let name = self.name;
        millis.map(Duration::from_millis).map_err(|problem| {
            self.error(match problem {
                Problem::Zero => format!(
                    "`{name}` must be longer than 0, e.g. `{name} = 30` (seconds) or `{name} = \"500ms\"`"
                ),
                Problem::Suffix(n, unit) => format!(
                    "a duration with a unit is a string: write `{name} = \"{n}{unit}\"` (a bare `{n}{unit}` would be read as {n} seconds)"
                ),
                Problem::NoUnit(n) => format!(
                    "`\"{n}\"` has no unit: write `{name} = {n}` (seconds) or `{name} = \"{n}s\"`; the units are ms, s, m, h and d"
                ),
                Problem::Fraction(Some(ms)) if ms % 1000 == 0 => format!(
                    "`{name}` takes whole units: write `{name} = {}` (seconds)",
                    ms / 1000
                ),
                Problem::Fraction(Some(ms)) => format!(
                    "`{name}` takes whole units: write `{name} = \"{ms}ms\"`"
                ),
                Problem::Fraction(None) => format!(
                    "`{name}` takes whole units, at least `\"1ms\"`"
                ),
                Problem::TooLong => format!("`{name}` is too long to be counted in milliseconds"),
                Problem::Other => format!(
                    "`{name}` expects a duration: an integer number of seconds (`{name} = 30`) or a string of digits and a unit, one of ms, s, m, h and d (`{name} = \"500ms\"`, `\"30s\"`, `\"5m\"`, `\"1h\"`, `\"1d\"`)"
                ),
            })
        })
    }
}

/// Milliseconds of a duration string: digits, then one unit.
fn parse(text: &str) -> Result<u64, Problem> {
    let split = text
        .find(|c: char| !c.is_ascii_digit() && c != '.')
        .unwrap_or(text.len());
    let (number, unit) = text.split_at(split);
    if number.is_empty() || number.starts_with('.') || number.ends_with('.') {
        return Err(Problem::Other);
    }
    if unit.is_empty() {
        return Err(if number.contains('.') {
            Problem::Fraction(
                number
                    .parse::<f64>()
                    .ok()
                    .and_then(|s| whole_millis(s * 1000.0)),
            )
        } else {
            Problem::NoUnit(number.to_owned())
        });
    }
    let Some(&(_, unit_ms)) = UNITS.iter().find(|(u, _)| *u == unit) else {
        return Err(Problem::Other);
    };
    if number.contains('.') {
        let n: f64 = number.parse().map_err(|_| Problem::Other)?;
        return Err(Problem::Fraction(whole_millis(n * unit_ms as f64)));
    }
    match number.parse::<u64>() {
        Ok(0) => Err(Problem::Zero),
        Ok(n) => n.checked_mul(unit_ms).ok_or(Problem::TooLong),
        Err(_) => Err(Problem::TooLong),
    }
}

/// `ms` if it is a whole, positive number of milliseconds.
fn whole_millis(ms: f64) -> Option<u64> {
    (ms >= 1.0 && ms.fract() == 0.0 && ms < u64::MAX as f64).then_some(ms as u64)
}
