use forge_cache::cache_result;

struct Connection;

#[cache_result(ttl = 60)]
async fn f(conn: &Connection, id: u8) -> u8 {
    let _ = conn;
    id
}

fn main() {}
