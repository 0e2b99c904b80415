//! The `Handler` trait: the six hooks the runtime drives, implemented by `#[websocket]`.

use std::future::Future;

use crate::__private::DataParam;
use crate::{Accept, ClientId, Close, Endpoint, Reject, Request};

/// The error type `on_data` may return: anything that converts into a boxed error.
pub type BoxError = Box<dyn std::error::Error + Send + Sync + 'static>;

/// Why `on_data` ended its connection.
#[derive(Debug)]
pub enum DataError {
    /// The handler returned `Err`: the error is logged and the client is closed with 1011.
    Handler(BoxError),
    /// The message could not become the type `on_data` takes
    /// ([`FromMessage`](crate::FromMessage)): the client is closed with this code and reason.
    Refused(Close),
}

/// The hooks of a WebSocket server, as the runtime calls them.
///
/// `#[websocket]` implements this trait for the type of the impl block it annotates; you do not
/// normally implement it by hand. Every method has the behaviour of an absent hook by default,
/// except [`on_handshake`](Handler::on_handshake), which the attribute always generates
/// (accepting with session `()` when the hook is absent).
///
/// All hooks run on the tokio runtime; the returned futures must be `Send`.
pub trait Handler: Send + Sync + Sized + 'static {
    /// The per-connection session: the `Ok` type of `on_handshake`, `()` without that hook.
    type Session: Send + 'static;

    /// What [`on_data`](Handler::on_data) takes: the type of its message parameter
    /// ([`Message`](crate::Message) when it has none). A [`FromMessage`](crate::FromMessage)
    /// type receives whole messages, converted; a [`MessageStream`](crate::MessageStream)
    /// receives fragmented messages as their frames arrive.
    type Message: DataParam + Send;

    /// Called once before the first connection is accepted.
    fn on_start(&self, endpoint: Endpoint) -> impl Future<Output = ()> + Send {
        drop(endpoint);
        async {}
    }

    /// Called per upgrade request after the protocol checks. `Ok` accepts (101) and creates the
    /// session; `Err` answers with the [`Reject`]'s HTTP response.
    fn on_handshake(
        &self,
        request: &Request,
        accept: &mut Accept,
    ) -> impl Future<Output = Result<Self::Session, Reject>> + Send;

    /// Called after the 101 reply, before any `on_data`.
    fn on_open(
        &self,
        id: ClientId,
        session: &mut Self::Session,
    ) -> impl Future<Output = ()> + Send {
        let _ = (id, session);
        async {}
    }

    /// Called per received message, in order, one at a time per connection. A message that
    /// cannot become [`Self::Message`](Handler::Message) closes the connection without a call.
    fn on_data(
        &self,
        id: ClientId,
        session: &mut Self::Session,
        message: Self::Message,
    ) -> impl Future<Output = Result<(), DataError>> + Send {
        let _ = (id, session, message);
        async { Ok(()) }
    }

    /// Called exactly once per opened connection, whatever ended it.
    fn on_close(
        &self,
        id: ClientId,
        session: Self::Session,
        close: Close,
    ) -> impl Future<Output = ()> + Send {
        let _ = (id, session, close);
        async {}
    }

    /// Called when shutdown begins, before clients are closed with 1001.
    fn on_stop(&self) -> impl Future<Output = ()> + Send {
        async {}
    }
}
