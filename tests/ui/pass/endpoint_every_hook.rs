//! Every hook may take the socket's `Endpoint`, borrowed or by value (a clone).

use ws::{ClientId, Close, Endpoint, Reject, Request, websocket};

struct Chat;

struct Member;

#[websocket]
impl Chat {
    fn on_start(&self, endpoint: Endpoint) {
        drop(endpoint);
    }

    async fn on_handshake(&self, endpoint: &Endpoint, _request: &Request) -> Result<Member, Reject> {
        if endpoint.len() >= 100 {
            return Err(Reject::conflict("Full."));
        }
        Ok(Member)
    }

    fn on_open(&self, id: ClientId, endpoint: &ws::Endpoint) {
        let _ = endpoint.send(id, "welcome");
    }

    async fn on_data(&self, endpoint: &Endpoint, _member: &mut Member, text: String) {
        endpoint.broadcast(text);
    }

    fn on_close(&self, _close: Close, endpoint: Endpoint, id: ClientId) {
        tokio::spawn(async move {
            endpoint.broadcast(format!("{id} left"));
        });
    }

    async fn on_stop(&self, endpoint: &Endpoint) {
        endpoint.broadcast("bye");
    }
}

fn main() {}
