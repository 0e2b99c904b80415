//! `#[websocket]` expands to absolute paths only: it compiles next to items that shadow the
//! prelude and the names the runtime exports, under `#![deny(warnings)]`.

#![deny(warnings)]
#![allow(dead_code, non_camel_case_types)]
#![no_implicit_prelude]

use ::std::sync::atomic::{AtomicUsize, Ordering};
use ::ws::websocket;

// Names a careless expansion would pick up instead of the real ones.
struct Result;
struct Ok;
struct Err;
struct Option;
struct Some;
struct None;
struct Box;
struct Future;
struct Send;
struct Sync;
struct Sized;
struct From;
struct Into;
struct String;
struct Vec;
struct Handler;
struct Endpoint;
struct Request;
struct Accept;
struct Reject;
struct ClientId;
struct Message;
struct Close;
struct DataError;
struct FromMessage;
mod core {}
mod std {}
mod ws {}
mod __private {}

struct Server {
    events: AtomicUsize,
}

impl Server {
    async fn count(&self, events: usize) {
        ::core::future::ready(()).await;
        self.events.fetch_add(events, Ordering::SeqCst);
    }
}

struct Session {
    messages: usize,
}

#[websocket]
impl Server {
    async fn on_start(&self, _endpoint: ::ws::Endpoint) {
        self.count(1).await;
    }

    async fn on_handshake(
        &self,
        _request: &::ws::Request,
        _accept: &mut ::ws::Accept,
    ) -> ::core::result::Result<Session, ::ws::Reject> {
        self.count(1).await;
        ::core::result::Result::Ok(Session { messages: 0 })
    }

    fn on_open(&self, _id: ::ws::ClientId, session: &mut Session) {
        session.messages = self.events.load(Ordering::SeqCst);
    }

    async fn on_data(
        &self,
        _id: ::ws::ClientId,
        session: &mut Session,
        _message: ::std::string::String,
    ) -> ::core::result::Result<(), ::std::io::Error> {
        self.count(1).await;
        session.messages += 1;
        ::core::result::Result::Ok(())
    }

    async fn on_close(&self, _id: ::ws::ClientId, session: Session, _close: ::ws::Close) {
        self.count(session.messages).await;
    }

    fn on_stop(&self) {
        self.events.store(0, Ordering::SeqCst);
    }
}

fn assert_handler<T: ::ws::__private::Handler<Session = S>, S>() {}

#[test]
fn expands_with_absolute_paths_only() {
    assert_handler::<Server, Session>();
}
