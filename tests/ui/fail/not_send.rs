use std::rc::Rc;

use ws::websocket;

struct Chat;

#[websocket]
impl Chat {
    async fn on_stop(&self) {
        let shared = Rc::new(1);
        std::future::ready(()).await;
        drop(shared);
    }
}

fn main() {}
