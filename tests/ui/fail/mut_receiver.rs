use ws::{Message, websocket};

struct Counter {
    count: usize,
}

#[websocket]
impl Counter {
    async fn on_data(&mut self, _message: Message) {
        self.count += 1;
    }
}

fn main() {}
