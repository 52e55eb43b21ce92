use forge_cache::cache_result;
use serde::Serialize;

#[derive(Serialize)]
struct Item {
    r#type: String,
}

// Raw identifiers in placeholders, as arguments and as fields.
#[cache_result(ttl = 60, key = "item:{r#type}:{item.r#type}")]
async fn lookup(r#type: &str, item: &Item) -> String {
    format!("{type}{}", item.r#type, type = r#type)
}

fn main() {}
