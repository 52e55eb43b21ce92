use forge_cache::cache_result;

struct Report;

#[cache_result(ttl = 60)]
async fn f(id: u8) -> Option<Report> {
    let _ = id;
    None
}

fn main() {}
