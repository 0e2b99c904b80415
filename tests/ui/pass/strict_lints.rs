//! The expansion is clean under strict rustc lints, with the prelude in scope.

#![deny(
    warnings,
    rust_2018_idioms,
    unused_qualifications,
    unused_results,
    unit_bindings,
    let_underscore_drop,
    single_use_lifetimes,
    unused_lifetimes,
    redundant_lifetimes,
    trivial_casts,
    trivial_numeric_casts,
    unreachable_pub,
    missing_debug_implementations,
    variant_size_differences
)]

use ws::{Accept, ClientId, Close, Endpoint, Reject, Request, websocket};

#[derive(Debug)]
struct Server;

#[derive(Debug)]
struct Member;

#[websocket]
impl Server {
    async fn on_start(&self, _endpoint: Endpoint) {}

    async fn on_handshake(
        &self,
        _request: &Request,
        _accept: &mut Accept,
    ) -> Result<Member, Reject> {
        Ok(Member)
    }

    fn on_open(&self, _id: ClientId, _member: &mut Member) {}

    async fn on_data(&self, _member: &mut Member, _text: String) -> Result<(), std::io::Error> {
        Ok(())
    }

    async fn on_close(&self, _id: ClientId, _member: Member, _close: Close) {}

    fn on_stop(&self) {}
}

fn main() {
    fn assert_handler<T: ws::__private::Handler<Session = Member>>() {}
    assert_handler::<Server>();
}
