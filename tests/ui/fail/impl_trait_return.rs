use forge_cache::cache_result;

#[cache_result]
fn f(id: u8) -> impl std::fmt::Display {
    id
}

fn main() {}
