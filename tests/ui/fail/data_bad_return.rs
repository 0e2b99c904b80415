use ws::{Message, websocket};

struct Chat;

#[websocket]
impl Chat {
    async fn on_data(&self, message: Message) -> usize {
        message.len()
    }
}

fn main() {}
