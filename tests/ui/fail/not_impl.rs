use ws::websocket;

#[websocket]
struct Chat;

fn main() {}
