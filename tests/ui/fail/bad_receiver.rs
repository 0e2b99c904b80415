use ws::{ClientId, websocket};

struct Chat;

#[websocket]
impl Chat {
    async fn on_open(self, _id: ClientId) {}
}

fn main() {}
