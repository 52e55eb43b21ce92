use forge_cache::cache_result;

#[cache_result(ttl = 60)]
struct NotAFunction;

fn main() {}
