use forge_cache::cache_result;

#[cache_result(key = "user:{uid}:profile")]
async fn f(user_id: u8) -> u8 {
    user_id
}

fn main() {}
