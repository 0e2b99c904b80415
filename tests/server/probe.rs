//! A handler that uses every hook and reports each call as an event.

use ws::{Accept, ClientId, Close, Endpoint, Message, Reject, Request, websocket};

use crate::support::Events;

pub(crate) struct Probe {
    pub(crate) events: Events,
}

impl Probe {
    pub(crate) fn new(events: Events) -> Self {
        Probe { events }
    }
}

/// The typed session, built by `on_handshake` and mutated by `on_data`.
pub(crate) struct Session {
    pub(crate) name: String,
    pub(crate) count: usize,
}

#[websocket]
impl Probe {
    async fn on_start(&self) {
        self.events.push("start");
    }

    async fn on_handshake(&self, req: &Request, accept: &mut Accept) -> Result<Session, Reject> {
        let name = req.query("name").unwrap_or("anon").to_owned();
        match req.query("mode") {
            Some("reject") => {
                return Err(Reject::forbidden("not today").header("x-reason", "test"));
            }
            Some("teapot") => return Err(http::StatusCode::IM_A_TEAPOT.into()),
            Some("panic") => panic!("on_handshake exploded"),
            _ => {}
        }
        if let Some(protocol) = req.query("protocol") {
            let _ = accept.protocol(protocol);
        }
        accept.header("x-hello", "world").cookie("sid=42; Path=/");
        self.events
            .push(format!("handshake {name} {}", req.remote_addr().ip()));
        Ok(Session { name, count: 0 })
    }

    async fn on_open(&self, id: ClientId, session: &mut Session) {
        self.events.push(format!("open {} {id}", session.name));
        assert!(session.name != "open-panic", "on_open exploded");
    }

    async fn on_data(
        &self,
        endpoint: &Endpoint,
        id: ClientId,
        session: &mut Session,
        msg: Message,
    ) -> Result<(), std::io::Error> {
        session.count += 1;
        match msg.as_text() {
            Some("panic") => panic!("on_data exploded"),
            Some("fail") => return Err(std::io::Error::other("on_data failed on purpose")),
            Some("count") => {
                endpoint.send(id, session.count.to_string()).ok();
            }
            Some("close") => {
                endpoint.close(id, 4001, "asked to close").ok();
            }
            _ => {
                endpoint.send(id, msg.clone()).ok();
            }
        }
        let shown = msg
            .as_text()
            .map_or_else(|| format!("<{} bytes>", msg.len()), str::to_owned);
        self.events.push(format!("data {} {shown}", session.name));
        Ok(())
    }

    async fn on_close(&self, _id: ClientId, session: Session, close: Close) {
        self.events.push(format!(
            "close {} {} {}",
            session.name, close.code, close.reason
        ));
    }

    async fn on_stop(&self) {
        self.events.push("stop");
    }
}
