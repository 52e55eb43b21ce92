use forge_cache::cache_result;

#[cache_result(key = "all-users")]
async fn f(user_id: u8) -> u8 {
    user_id
}

fn main() {}
