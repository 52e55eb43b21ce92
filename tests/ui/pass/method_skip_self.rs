//! `skip(self)` leaves the receiver out of the key on purpose: every
//! instance shares the entries (with a hashed key or a template), and
//! `Self` need not be `Serialize`. The companion is an associated function.
use forge_cache::cache_result;

struct Client {
    _pool: (),
}

impl Client {
    #[cache_result(ttl = 60, key_prefix = "rates", skip(self))]
    async fn rate(&self, currency: &str) -> f64 {
        currency.len() as f64
    }

    #[cache_result(ttl = 60, key = "country:{code}", skip(self))]
    fn country(&self, code: &str) -> String {
        code.to_owned()
    }
}

fn main() {
    let c = Client { _pool: () };
    let _ = c.rate("EUR");
    let _ = Client::rate_invalidate("EUR");
    let _ = c.country("FR");
    let _ = Client::country_invalidate("FR");
}
