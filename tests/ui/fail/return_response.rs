use axum::response::Html;
use forge_cache::cache_result;

#[cache_result(ttl = 60)]
async fn page(id: u64) -> Html<String> {
    Html(format!("<p>{id}</p>"))
}

fn main() {}
