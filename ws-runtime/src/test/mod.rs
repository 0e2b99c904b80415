//! Test your socket in-process with a real client over 127.0.0.1 (feature `test`).
//!
//! [`serve`] runs a [`Socket`] the way production does (through [`crate::serve`], with
//! `on_start`, the handshake checks, the limits and the graceful shutdown) on an ephemeral
//! port of 127.0.0.1, and [`TestServer::connect`] opens a real WebSocket connection to it,
//! with the query, headers and `Origin` you choose. A refused handshake comes back as a
//! [`Refusal`] with its status, headers and body, which `warp::test::ws()` cannot show.
//! [`TestServer::get`] and [`TestServer::http`] send plain HTTP requests to the routes served
//! beside the socket ([`serve_with`]) and return the [`Response`].
//! [`raw`] writes what a correct client never sends: handshakes with any method and headers,
//! and frames with any bits, mask and length; it reads the server's frames as they are.
//!
//! Enable it for your tests only:
//!
//! ```toml
//! [dev-dependencies]
//! warpsocket = { version = "0.1", features = ["test"] }
//! ```
//!
//! A complete test of an echo server that wants a token:
//!
//! ```
//! use ws::{ClientId, Close, Endpoint, Message, Reject, Request};
//!
//! struct Echo;
//!
//! #[ws::websocket]
//! impl Echo {
//!     fn on_handshake(&self, req: &Request) -> Result<(), Reject> {
//!         match req.query("token") {
//!             Some("secret") => Ok(()),
//!             _ => Err(Reject::forbidden("Valid token required.")),
//!         }
//!     }
//!
//!     fn on_data(&self, endpoint: &Endpoint, id: ClientId, msg: Message) {
//!         if msg.as_text() == Some("bye") {
//!             let _ = endpoint.close(id, 4000, "see you");
//!         } else {
//!             let _ = endpoint.send(id, msg);
//!         }
//!     }
//! }
//!
//! #[tokio::main]
//! async fn main() -> Result<(), Box<dyn std::error::Error>> {
//!     let socket = ws::Socket::new(Echo);
//!     let server = ws::test::serve(&socket).await;
//!
//!     let mut client = server.connect("/?token=secret").await?;
//!     client.send_text("hi").await?;
//!     assert_eq!(client.recv_text().await?, "hi");
//!     client.send_binary(vec![1, 2, 3]).await?;
//!     assert_eq!(client.recv_binary().await?, [1, 2, 3].as_slice());
//!     client.send_text("bye").await?;
//!     assert_eq!(client.expect_close().await?, Close::new(4000, "see you"));
//!
//!     let refusal = server.connect("/?token=wrong").expect_refusal().await;
//!     assert_eq!(refusal.status(), 403);
//!     assert_eq!(refusal.body(), "Valid token required.");
//!     assert_eq!(refusal.header("content-type"), Some("text/plain; charset=utf-8"));
//!
//!     server.shutdown().await;
//!     Ok(())
//! }
//! ```

mod client;
mod errors;
mod http;
pub mod raw;
mod response;
mod server;

use std::time::Duration;

pub use self::http::HttpRequest;
#[cfg(doc)]
use crate::Socket;
pub use client::{Client, Connect};
pub use errors::{ClientError, ConnectError, HttpError, Refusal};
pub use response::Response;
pub use server::{TestServer, serve, serve_with};

/// How long a connect, a receive or a close waits by default before it fails.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(10);

#[cfg(test)]
mod tests {
    use std::net::SocketAddr;

    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::net::TcpListener;

    use super::*;

    /// A one-shot HTTP server on 127.0.0.1 that answers any request with `response`, then
    /// closes.
    async fn answer_with(response: &'static [u8]) -> SocketAddr {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move {
            let (mut stream, _) = listener.accept().await.unwrap();
            let mut head = Vec::new();
            while !head.ends_with(b"\r\n\r\n") {
                let mut byte = [0u8; 1];
                if stream.read(&mut byte).await.unwrap() == 0 {
                    return;
                }
                head.push(byte[0]);
            }
            assert!(head.starts_with(b"GET /x?y=1 HTTP/1.1\r\n"));
            for chunk in response.chunks(7) {
                stream.write_all(chunk).await.unwrap();
                stream.flush().await.unwrap();
            }
        });
        addr
    }

    fn connect(addr: SocketAddr) -> Connect {
        Connect {
            addr,
            path: "/x?y=1".into(),
            headers: Vec::new(),
            protocols: Vec::new(),
            timeout: Duration::from_secs(5),
        }
    }

    #[tokio::test]
    async fn chunked_refusal_bodies_are_decoded() {
        let addr = answer_with(
            b"HTTP/1.1 403 Forbidden\r\nTransfer-Encoding: chunked\r\nX-A: b\r\n\r\n\
              5\r\nhello\r\n6;ext=1\r\n world\r\n0\r\n\r\n",
        )
        .await;
        let refusal = connect(addr).expect_refusal().await;
        assert_eq!(refusal.status(), 403);
        assert_eq!(refusal.body(), "hello world");
        assert_eq!(refusal.header("x-a"), Some("b"));
    }

    #[tokio::test]
    async fn bodies_without_length_are_read_to_the_end() {
        let addr = answer_with(b"HTTP/1.0 500 Oops\r\n\r\nall of it").await;
        let refusal = connect(addr).expect_refusal().await;
        assert_eq!(refusal.status(), 500);
        assert_eq!(refusal.body(), "all of it");
    }

    #[tokio::test]
    async fn a_101_with_a_wrong_accept_key_is_an_error() {
        let addr = answer_with(
            b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
              Sec-WebSocket-Accept: wrong\r\n\r\n",
        )
        .await;
        let err = connect(addr).await.unwrap_err();
        assert!(matches!(err, ConnectError::InvalidResponse(_)), "{err}");
    }

    #[tokio::test]
    async fn garbage_is_an_invalid_response() {
        let addr = answer_with(b"SSH-2.0-OpenSSH\r\n\r\n").await;
        let err = connect(addr).await.unwrap_err();
        assert!(matches!(err, ConnectError::InvalidResponse(_)), "{err}");
    }

    fn get(addr: SocketAddr) -> HttpRequest {
        HttpRequest::new(addr, ::http::Method::GET, "/x?y=1")
    }

    #[tokio::test]
    async fn http_bodies_without_length_are_read_to_the_end() {
        let addr =
            answer_with(b"HTTP/1.1 200 OK\r\nConnection: close\r\nX-A: b\r\n\r\nall of it").await;
        let response = get(addr).await.unwrap();
        assert_eq!(response.status(), 200);
        assert_eq!(response.header("x-a"), Some("b"));
        assert_eq!(response.body(), "all of it");
    }

    #[tokio::test]
    async fn an_http_body_cut_short_is_an_invalid_response() {
        let addr = answer_with(b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nshort").await;
        let err = get(addr).await.unwrap_err();
        assert!(matches!(err, HttpError::InvalidResponse(_)), "{err:?}");
        assert_eq!(
            err.to_string(),
            "invalid response: error reading a body from connection: \
             end of file before message length reached"
        );
        let addr = answer_with(b"SSH-2.0-OpenSSH\r\n\r\n").await;
        let err = get(addr).await.unwrap_err();
        assert!(matches!(err, HttpError::InvalidResponse(_)), "{err:?}");
    }
}
