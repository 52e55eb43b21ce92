use forge_cache::cache_result;

#[cache_result(tll = 60)]
async fn f(x: u8) -> u8 {
    x
}

fn main() {}
