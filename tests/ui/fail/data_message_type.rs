use ws::websocket;

struct Chat;

struct Command;

#[websocket]
impl Chat {
    async fn on_data(&self, _command: Command) {}
}

fn main() {}
