use ws::websocket;

struct Chat<T>(T);

#[websocket]
impl<T: Send + Sync + 'static> Chat<T> {
    async fn on_stop(&self) {}
}

fn main() {}
