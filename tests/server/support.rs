//! Test support: `ws::test`'s server with the socket at `/ws`, real clients (tungstenite),
//! raw connections from `ws::test::raw`, and an event log.

use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use tokio::net::TcpStream;
use tokio::sync::mpsc;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::protocol::CloseFrame;
use tokio_tungstenite::tungstenite::{self, Message as WsMessage};
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};
use warp::Filter;
pub(crate) use ws::test::TestServer;
use ws::test::raw::Upgraded;
use ws::{Handler, Socket};

/// How long any single expected event may take before the test fails.
pub(crate) const WAIT: Duration = Duration::from_secs(10);

pub(crate) type Client = WebSocketStream<MaybeTlsStream<TcpStream>>;

/// Serves the socket at `/ws` (and nowhere else) on an ephemeral port of 127.0.0.1.
pub(crate) async fn serve<H: Handler>(socket: &Socket<H>) -> TestServer {
    let routes = warp::path("ws").and(warp::path::end()).and(socket.filter());
    ws::test::serve_with(ws::serve(routes).socket(socket)).await
}

/// Starts the graceful shutdown and waits for it, at most [`WAIT`].
pub(crate) async fn shutdown(server: TestServer) {
    tokio::time::timeout(WAIT, server.shutdown())
        .await
        .expect("server did not stop in time");
}

/// Completes a handshake at `/ws` followed by `query` and returns the connection, ready for
/// raw frames.
pub(crate) async fn raw_ws(server: &TestServer, query: &str) -> Upgraded {
    let (reply, tcp) = server
        .raw(&format!("/ws{query}"))
        .upgrade()
        .await
        .expect("handshake accepted");
    assert_eq!(reply.status(), 101, "{reply}");
    tcp
}

pub(crate) async fn connect(url: &str) -> Client {
    connect_with(url, &[]).await.0
}

pub(crate) async fn connect_with(
    url: &str,
    headers: &[(&'static str, &str)],
) -> (Client, http::Response<Option<Vec<u8>>>) {
    let mut request = url.into_client_request().expect("valid url");
    for (name, value) in headers {
        request
            .headers_mut()
            .insert(*name, value.parse().expect("valid header"));
    }
    // Without Nagle's algorithm: a message written as a header and a payload would otherwise
    // wait for the server's delayed acknowledgement, milliseconds per exchange.
    let connecting = tokio_tungstenite::connect_async_with_config(request, None, true);
    tokio::time::timeout(WAIT, connecting)
        .await
        .expect("connect timed out")
        .expect("handshake accepted")
}

/// The next data message, skipping pings and pongs.
pub(crate) async fn recv(client: &mut Client) -> WsMessage {
    loop {
        let next = tokio::time::timeout(WAIT, client.next())
            .await
            .expect("no message in time")
            .expect("stream ended")
            .expect("read error");
        match next {
            WsMessage::Ping(_) | WsMessage::Pong(_) => {}
            other => return other,
        }
    }
}

pub(crate) async fn recv_text(client: &mut Client) -> String {
    match recv(client).await {
        WsMessage::Text(text) => text.as_str().to_owned(),
        other => panic!("expected text, got {other:?}"),
    }
}

/// Reads until the server's close frame; returns its code and reason.
pub(crate) async fn recv_close(client: &mut Client) -> (u16, String) {
    loop {
        match recv(client).await {
            WsMessage::Close(Some(frame)) => return (frame.code.into(), frame.reason.to_string()),
            WsMessage::Close(None) => return (1005, String::new()),
            _ => {}
        }
    }
}

pub(crate) async fn send_text(client: &mut Client, text: &str) {
    client
        .send(WsMessage::text(text))
        .await
        .expect("send succeeded");
}

pub(crate) async fn close_with(client: &mut Client, code: u16, reason: &str) {
    client
        .close(Some(CloseFrame {
            code: code.into(),
            reason: reason.into(),
        }))
        .await
        .expect("close sent");
}

/// Waits until the server closes the TCP connection after the close handshake.
pub(crate) async fn expect_end(client: &mut Client) {
    loop {
        match tokio::time::timeout(WAIT, client.next())
            .await
            .expect("connection did not end in time")
        {
            None | Some(Err(tungstenite::Error::ConnectionClosed)) => return,
            Some(Err(err)) => panic!("unexpected error at end: {err}"),
            Some(Ok(_)) => {}
        }
    }
}

/// Records what hooks did, for tests to wait on in order.
#[derive(Clone)]
pub(crate) struct Events(mpsc::UnboundedSender<String>);

pub(crate) struct EventLog(mpsc::UnboundedReceiver<String>);

pub(crate) fn events() -> (Events, EventLog) {
    let (tx, rx) = mpsc::unbounded_channel();
    (Events(tx), EventLog(rx))
}

impl Events {
    pub(crate) fn push(&self, event: impl Into<String>) {
        let _ = self.0.send(event.into());
    }
}

impl EventLog {
    pub(crate) async fn next(&mut self) -> String {
        tokio::time::timeout(WAIT, self.0.recv())
            .await
            .expect("no event in time")
            .expect("event channel open")
    }

    /// Waits for the next event that starts with `prefix`, skipping others.
    pub(crate) async fn until(&mut self, prefix: &str) -> String {
        loop {
            let event = self.next().await;
            if event.starts_with(prefix) {
                return event;
            }
        }
    }

    pub(crate) fn try_next(&mut self) -> Option<String> {
        self.0.try_recv().ok()
    }
}
