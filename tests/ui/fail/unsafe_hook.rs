use ws::websocket;

struct Chat;

#[websocket]
impl Chat {
    unsafe fn on_stop(&self) {}
}

fn main() {}
