//! `on_handshake` returning a session type alone says nothing about refusing: an error that
//! lists the forms that do.

use ws::{Request, websocket};

struct Greeter;

struct Visitor {
    name: String,
}

#[websocket]
impl Greeter {
    fn on_handshake(&self, request: &Request) -> Visitor {
        Visitor {
            name: request.query("name").unwrap_or("anonymous").to_owned(),
        }
    }

    async fn on_data(&self, visitor: &mut Visitor, text: String) {
        visitor.name.push_str(&text);
    }
}

fn main() {}
