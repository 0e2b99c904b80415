use ws::{ClientId, websocket};

struct Chat;

#[websocket]
impl Chat {
    async fn on_open(&self, _id: ClientId, _again: ClientId) {}
}

fn main() {}
