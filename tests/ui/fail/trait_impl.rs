use ws::{__private::Handler, Accept, Endpoint, Message, Reject, Request, websocket};

struct Chat;

#[websocket]
impl Handler for Chat {
    type Session = ();
    type Message = Message;

    async fn on_handshake(
        &self,
        _endpoint: &Endpoint,
        _request: &Request,
        _accept: &mut Accept,
    ) -> Result<(), Reject> {
        Ok(())
    }
}

fn main() {}
