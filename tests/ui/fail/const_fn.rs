use forge_cache::cache_result;

#[cache_result]
const fn f(id: u8) -> u8 {
    id
}

fn main() {}
