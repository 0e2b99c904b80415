use ws::{Endpoint, websocket};

struct Chat;

#[websocket]
impl Chat {
    async fn on_start(_endpoint: Endpoint) {}
}

fn main() {}
