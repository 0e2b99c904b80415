use ws::{ClientId, Message, websocket};

struct Chat;

#[websocket]
impl Chat {
    async fn on_message(&self, _id: ClientId, _message: Message) {}
}

fn main() {}
