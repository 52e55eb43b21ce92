use forge_cache::cache_result;

// `500ms` lexes as the integer 500 with a suffix: it must not mean 500 s.
#[cache_result(ttl = 500ms)]
async fn f(id: u8) -> u8 {
    id
}

fn main() {}
