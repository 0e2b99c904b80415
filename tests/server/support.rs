//! Test support: a real server on 127.0.0.1:0, real clients, raw HTTP, and an event log.

use std::net::SocketAddr;
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::{mpsc, oneshot};
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::protocol::CloseFrame;
use tokio_tungstenite::tungstenite::{self, Message as WsMessage};
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};
use warp::Filter;
use ws::{Handler, Socket};

/// How long any single expected event may take before the test fails.
pub(crate) const WAIT: Duration = Duration::from_secs(10);

pub(crate) type Client = WebSocketStream<MaybeTlsStream<TcpStream>>;

pub(crate) struct TestServer {
    pub(crate) addr: SocketAddr,
    stop: Option<oneshot::Sender<()>>,
    handle: tokio::task::JoinHandle<Result<(), ws::Error>>,
}

impl TestServer {
    pub(crate) fn url(&self, query: &str) -> String {
        format!("ws://{}/ws{query}", self.addr)
    }

    /// Starts the graceful shutdown and waits for `run` to return.
    pub(crate) async fn shutdown(mut self) -> Result<(), ws::Error> {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        tokio::time::timeout(WAIT, &mut self.handle)
            .await
            .expect("server did not stop in time")
            .expect("server task panicked")
    }
}

/// Serves the socket at `/ws` on an ephemeral port.
pub(crate) async fn serve<H: Handler>(socket: &Socket<H>) -> TestServer {
    let routes = warp::path("ws").and(warp::path::end()).and(socket.filter());
    let (stop, stopped) = oneshot::channel::<()>();
    let bound = ws::serve(routes)
        .socket(socket)
        .signals(false)
        .shutdown_on(async {
            let _ = stopped.await;
        })
        .bind("127.0.0.1:0")
        .await
        .expect("bind 127.0.0.1:0");
    let addr = bound.local_addr();
    let handle = tokio::spawn(bound.run());
    TestServer {
        addr,
        stop: Some(stop),
        handle,
    }
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
    tokio::time::timeout(WAIT, tokio_tungstenite::connect_async(request))
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

/// A parsed HTTP response read from a raw socket.
#[derive(Debug)]
pub(crate) struct RawResponse {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: String,
}

impl RawResponse {
    pub(crate) fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

/// Sends a raw HTTP request and reads the response head and its `Content-Length` body.
pub(crate) async fn raw_http(addr: SocketAddr, request: &str) -> RawResponse {
    raw_exchange(addr, request).await.0
}

/// Like [`raw_http`], keeping the connection open (after a 101 it is a WebSocket).
pub(crate) async fn raw_exchange(addr: SocketAddr, request: &str) -> (RawResponse, TcpStream) {
    let stream = TcpStream::connect(addr).await.expect("tcp connect");
    raw_exchange_on(stream, request).await
}

/// [`raw_exchange`] from another loopback address (127.0.0.2, ...), as another client IP.
pub(crate) async fn raw_exchange_from(
    ip: &str,
    addr: SocketAddr,
    request: &str,
) -> (RawResponse, TcpStream) {
    let socket = tokio::net::TcpSocket::new_v4().expect("socket");
    socket
        .bind(format!("{ip}:0").parse().expect("ip"))
        .expect("bind a loopback address");
    let stream = socket.connect(addr).await.expect("tcp connect");
    raw_exchange_on(stream, request).await
}

async fn raw_exchange_on(mut stream: TcpStream, request: &str) -> (RawResponse, TcpStream) {
    stream
        .write_all(request.as_bytes())
        .await
        .expect("request written");
    let mut buf = Vec::new();
    let head_end = loop {
        if let Some(pos) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            break pos + 4;
        }
        let mut chunk = [0u8; 4096];
        let n = tokio::time::timeout(WAIT, stream.read(&mut chunk))
            .await
            .expect("response in time")
            .expect("read");
        assert!(n > 0, "connection closed before a response: {buf:?}");
        buf.extend_from_slice(&chunk[..n]);
    };
    let head = String::from_utf8(buf[..head_end].to_vec()).expect("ascii head");
    let mut lines = head.split("\r\n");
    let status_line = lines.next().expect("status line");
    let status = status_line
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .expect("status code");
    let headers: Vec<(String, String)> = lines
        .filter(|l| !l.is_empty())
        .map(|l| {
            let (k, v) = l.split_once(':').expect("header line");
            (k.trim().to_owned(), v.trim().to_owned())
        })
        .collect();
    let length: usize = headers
        .iter()
        .find(|(k, _)| k.eq_ignore_ascii_case("content-length"))
        .map_or(0, |(_, v)| v.parse().expect("content-length"));
    let mut body = buf[head_end..].to_vec();
    while body.len() < length {
        let mut chunk = [0u8; 4096];
        let n = tokio::time::timeout(WAIT, stream.read(&mut chunk))
            .await
            .expect("body in time")
            .expect("read");
        assert!(n > 0, "connection closed mid-body");
        body.extend_from_slice(&chunk[..n]);
    }
    let response = RawResponse {
        status,
        headers,
        body: String::from_utf8_lossy(&body[..length]).into_owned(),
    };
    (response, stream)
}

/// A handshake request for `/ws` with the given extra header lines.
pub(crate) fn handshake(method: &str, extra: &str) -> String {
    format!(
        "{method} /ws HTTP/1.1\r\nHost: localhost\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
         Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n{extra}\r\n"
    )
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

/// A client frame: FIN set, this opcode, masked with a fixed key unless `masked` is false.
pub(crate) fn frame(opcode: u8, payload: &[u8], masked: bool) -> Vec<u8> {
    let mut out = vec![0x80 | opcode];
    let mask_bit = if masked { 0x80 } else { 0 };
    match payload.len() {
        n @ 0..=125 => out.push(mask_bit | u8::try_from(n).unwrap()),
        n @ 126..=65535 => {
            out.push(mask_bit | 0x7e);
            out.extend_from_slice(&u16::try_from(n).unwrap().to_be_bytes());
        }
        n => {
            out.push(mask_bit | 0x7f);
            out.extend_from_slice(&(n as u64).to_be_bytes());
        }
    }
    if masked {
        let key = [0x12, 0x34, 0x56, 0x78];
        out.extend_from_slice(&key);
        out.extend(payload.iter().zip(key.iter().cycle()).map(|(b, k)| b ^ k));
    } else {
        out.extend_from_slice(payload);
    }
    out
}

/// A close frame's payload: the code then the reason bytes.
pub(crate) fn close_payload(code: u16, reason: &[u8]) -> Vec<u8> {
    let mut payload = code.to_be_bytes().to_vec();
    payload.extend_from_slice(reason);
    payload
}

/// Reads server frames from a raw connection until a close frame; returns its code.
pub(crate) async fn raw_close_code(tcp: &mut TcpStream) -> u16 {
    let mut buf = Vec::new();
    loop {
        // Parse whole unmasked server frames from the front of `buf`.
        while buf.len() >= 2 {
            let len = usize::from(buf[1] & 0x7f);
            let (header, len) = match len {
                126 if buf.len() >= 4 => (4, usize::from(u16::from_be_bytes([buf[2], buf[3]]))),
                126 | 127 => break,
                n => (2, n),
            };
            if buf.len() < header + len {
                break;
            }
            if buf[0] & 0x0f == 0x8 {
                assert!(len >= 2, "close frame without a code");
                return u16::from_be_bytes([buf[header], buf[header + 1]]);
            }
            buf.drain(..header + len);
        }
        let mut chunk = [0u8; 4096];
        let n = tokio::time::timeout(WAIT, tcp.read(&mut chunk))
            .await
            .expect("close frame in time")
            .expect("read");
        assert!(n > 0, "connection closed without a close frame");
        buf.extend_from_slice(&chunk[..n]);
    }
}

/// Completes a handshake on a raw socket and returns it, ready for raw frames.
pub(crate) async fn raw_ws(addr: SocketAddr, query: &str) -> TcpStream {
    let request = handshake("GET", "").replace("/ws ", &format!("/ws{query} "));
    let (response, tcp) = raw_exchange(addr, &request).await;
    assert_eq!(response.status, 101, "{response:?}");
    tcp
}
