//! Methods that are not hooks are left alone: any receiver, generics, visibility.

use ws::{Endpoint, websocket};

pub struct Server {
    endpoint: std::sync::OnceLock<Endpoint>,
}

#[websocket]
impl Server {
    pub fn new() -> Self {
        Server {
            endpoint: std::sync::OnceLock::new(),
        }
    }

    pub fn endpoint(&self) -> Option<&Endpoint> {
        self.endpoint.get()
    }

    fn generic<T: Into<String>>(self, value: T) -> String {
        value.into()
    }

    const LIMIT: usize = 10;

    pub async fn on_start(&self, endpoint: Endpoint) {
        let _ = self.endpoint.set(endpoint);
    }
}

fn assert_handler<T: ws::__private::Handler<Session = ()>>() {}

fn main() {
    assert_handler::<Server>();
    let server = Server::new();
    assert!(server.endpoint().is_none());
    assert_eq!(server.generic("x").len(), Server::LIMIT - 9);
}
