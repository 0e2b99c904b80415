//! `on_handshake` returning the session itself always accepts; the session is that type.

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

    async fn on_close(&self, visitor: Visitor) {
        drop(visitor.name);
    }
}

fn assert_handler<T: ws::__private::Handler<Session = S>, S>() {}

fn main() {
    assert_handler::<Greeter, Visitor>();
}
