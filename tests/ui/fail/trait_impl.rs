use ws::{__private::Handler, Accept, Reject, Request, websocket};

struct Chat;

#[websocket]
impl Handler for Chat {
    type Session = ();

    async fn on_handshake(&self, _request: &Request, _accept: &mut Accept) -> Result<(), Reject> {
        Ok(())
    }
}

fn main() {}
