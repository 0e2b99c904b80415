use ws::websocket;

struct Chat;

#[websocket(path = "/chat")]
impl Chat {}

fn main() {}
