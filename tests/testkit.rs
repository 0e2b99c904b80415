//! Tests of `ws::test` itself: connecting, sending, receiving, closes, refusals, shutdown.

use std::sync::{Mutex, OnceLock};
use std::time::Duration;

use warp::Filter;
use ws::test::{ClientError, ConnectError};
use ws::{Accept, ClientId, Close, Endpoint, Message, Reject, Request, websocket};

/// Echoes messages; `close:CODE:REASON` makes the server close; refuses without `?token=ok`.
#[derive(Default)]
struct Echo {
    endpoint: OnceLock<Endpoint>,
    closes: Mutex<Vec<Close>>,
}

#[websocket]
impl Echo {
    fn on_start(&self, endpoint: Endpoint) {
        let _ = self.endpoint.set(endpoint);
    }

    fn on_handshake(&self, req: &Request, accept: &mut Accept) -> Result<String, Reject> {
        if req.query("token") != Some("ok") {
            return Err(Reject::unauthorized("Token required.")
                .header("www-authenticate", "Token")
                .header("x-reason", "no-token"));
        }
        accept.header("x-greeting", "hello");
        if req.protocols().any(|p| p == "echo.v1") {
            accept.protocol("echo.v1").expect("offered");
        }
        Ok(req.header("x-name").unwrap_or("anonymous").to_owned())
    }

    fn on_open(&self, id: ClientId, name: &mut String) {
        let endpoint = self.endpoint.get().expect("started");
        endpoint
            .send(id, format!("welcome {name}"))
            .expect("queued");
    }

    fn on_data(&self, id: ClientId, msg: Message) {
        let endpoint = self.endpoint.get().expect("started");
        if let Some(rest) = msg.as_text().and_then(|t| t.strip_prefix("close:")) {
            let (code, reason) = rest.split_once(':').expect("close:CODE:REASON");
            endpoint
                .close(id, code.parse().expect("code"), reason)
                .expect("closing");
        } else {
            let _ = endpoint.send(id, msg);
        }
    }

    fn on_close(&self, close: Close) {
        self.closes.lock().unwrap().push(close);
    }
}

#[tokio::test]
async fn round_trip_text_and_binary() -> Result<(), Box<dyn std::error::Error>> {
    let socket = ws::Socket::new(Echo::default());
    let server = ws::test::serve(&socket).await;
    let mut client = server
        .connect("/anything?token=ok")
        .header("x-name", "ada")
        .await?;
    assert_eq!(client.recv_text().await?, "welcome ada");
    client.send_text("hi").await?;
    assert_eq!(client.recv_text().await?, "hi");
    client.send_binary(vec![0, 1, 255]).await?;
    assert_eq!(client.recv_binary().await?, [0, 1, 255].as_slice());
    client.send(Message::text("as message")).await?;
    assert_eq!(client.recv().await?, Message::text("as message"));

    client.send_binary(&b"raw"[..]).await?;
    let err = client.recv_text().await.unwrap_err();
    assert!(
        matches!(&err, ClientError::Unexpected(m) if m.as_bytes() == b"raw"),
        "{err}"
    );
    client.expect_no_message(Duration::from_millis(100)).await?;
    server.shutdown().await;
    Ok(())
}

#[tokio::test]
async fn refusal_shows_status_headers_and_body() {
    let socket = ws::Socket::new(Echo::default());
    let server = ws::test::serve(&socket).await;
    let refusal = server.connect("/?token=bad").expect_refusal().await;
    assert_eq!(refusal.status(), 401);
    assert_eq!(refusal.body(), "Token required.");
    assert_eq!(refusal.body_bytes().as_ref(), b"Token required.");
    assert_eq!(refusal.header("www-authenticate"), Some("Token"));
    assert_eq!(refusal.header("X-Reason"), Some("no-token"));
    assert_eq!(
        refusal.header("content-type"),
        Some("text/plain; charset=utf-8")
    );
    assert_eq!(refusal.to_string(), "401 Unauthorized: Token required.");

    // The same through the error of a plain `.await`.
    let err = server.connect("/").await.unwrap_err();
    assert_eq!(
        err.refusal().map(ws::test::Refusal::status),
        Some(http::StatusCode::UNAUTHORIZED)
    );
    assert!(matches!(err, ConnectError::Refused(_)));
    server.shutdown().await;
}

#[tokio::test]
async fn origin_is_checked_like_a_browser_would_be() -> Result<(), Box<dyn std::error::Error>> {
    let socket = ws::Socket::new(Echo::default());
    let server = ws::test::serve(&socket).await;
    let refusal = server
        .connect("/?token=ok")
        .origin("https://evil.example")
        .expect_refusal()
        .await;
    assert_eq!(refusal.status(), 403);
    assert_eq!(refusal.body(), "Origin not allowed.");
    let mut client = server
        .connect("/?token=ok")
        .origin(&server.origin())
        .await?;
    assert_eq!(client.recv_text().await?, "welcome anonymous");
    server.shutdown().await;
    Ok(())
}

#[tokio::test]
async fn malformed_handshakes_can_be_sent() {
    let socket = ws::Socket::new(Echo::default());
    let server = ws::test::serve(&socket).await;
    let refusal = server
        .connect("/?token=ok")
        .header("sec-websocket-version", "8")
        .expect_refusal()
        .await;
    assert_eq!(refusal.status(), 426);
    assert_eq!(refusal.header("sec-websocket-version"), Some("13"));
    let refusal = server
        .connect("/?token=ok")
        .header("Sec-WebSocket-Key", "short")
        .expect_refusal()
        .await;
    assert_eq!(refusal.status(), 400);

    let err = server.connect("no-slash").await.unwrap_err();
    assert!(matches!(err, ConnectError::InvalidRequest(_)), "{err}");
    let err = server
        .connect("/")
        .header("x-bad", "line\r\nbreak")
        .await
        .unwrap_err();
    assert!(matches!(err, ConnectError::InvalidRequest(_)), "{err}");
    server.shutdown().await;
}

#[tokio::test]
async fn reply_headers_and_subprotocol() -> Result<(), Box<dyn std::error::Error>> {
    let socket = ws::Socket::new(Echo::default());
    let server = ws::test::serve(&socket).await;
    let client = server
        .connect("/?token=ok")
        .protocol("other")
        .protocol("echo.v1")
        .await?;
    assert_eq!(client.protocol(), Some("echo.v1"));
    assert_eq!(
        client
            .response_headers()
            .get("x-greeting")
            .map(http::HeaderValue::as_bytes),
        Some(&b"hello"[..])
    );
    let plain = server.connect("/?token=ok").await?;
    assert_eq!(plain.protocol(), None);
    server.shutdown().await;
    Ok(())
}

#[tokio::test]
async fn closes_from_either_side() -> Result<(), Box<dyn std::error::Error>> {
    let echo = Echo::default();
    let socket = ws::Socket::new(echo);
    let server = ws::test::serve(&socket).await;

    let mut client = server.connect("/?token=ok").await?;
    client.send_text("close:4001:done here").await?;
    // The welcome arrives first and is skipped.
    assert_eq!(client.expect_close().await?, Close::new(4001, "done here"));
    // The close is remembered.
    let again = client.send_text("too late").await.unwrap_err();
    assert!(
        matches!(again, ClientError::Closed(ref c) if c.code == 4001),
        "{again}"
    );

    let mut client = server.connect("/?token=ok").await?;
    assert_eq!(client.recv_text().await?, "welcome anonymous");
    let reply = client.close(4002, "leaving").await?;
    assert_eq!(reply.code, 4002);

    let mut client = server.connect("/?token=ok").await?;
    client.send_text("close:4003:bye").await?;
    let err = client.recv_text().await;
    assert_eq!(err?, "welcome anonymous");
    let err = client.recv().await.unwrap_err();
    assert!(
        matches!(err, ClientError::Closed(ref c) if c.code == 4003),
        "{err}"
    );

    server.shutdown().await;
    let mut closes: Vec<u16> = socket
        .handler()
        .closes
        .lock()
        .unwrap()
        .iter()
        .map(|c| c.code)
        .collect();
    closes.sort_unstable();
    assert_eq!(closes, [4001, 4002, 4003]);
    Ok(())
}

#[tokio::test]
async fn receive_times_out() -> Result<(), Box<dyn std::error::Error>> {
    let socket = ws::Socket::new(Echo::default());
    let server = ws::test::serve(&socket).await;
    let mut client = server
        .connect("/?token=ok")
        .timeout(Duration::from_millis(200))
        .await?;
    assert_eq!(client.recv_text().await?, "welcome anonymous");
    let err = client.recv().await.unwrap_err();
    assert!(matches!(err, ClientError::Timeout(_)), "{err}");
    client.set_timeout(Duration::from_millis(50));
    assert!(matches!(
        client.expect_close().await,
        Err(ClientError::Timeout(_))
    ));
    server.shutdown().await;
    Ok(())
}

#[tokio::test]
async fn shutdown_closes_clients_with_1001() -> Result<(), Box<dyn std::error::Error>> {
    let socket = ws::Socket::new(Echo::default());
    let server = ws::test::serve(&socket).await;
    let mut client = server.connect("/?token=ok").await?;
    assert_eq!(client.recv_text().await?, "welcome anonymous");
    let ((), close) = tokio::join!(server.shutdown(), client.expect_close());
    assert_eq!(
        close?,
        Close::new(Close::GOING_AWAY, "Server shutting down")
    );
    assert_eq!(
        socket.handler().closes.lock().unwrap().as_slice(),
        [Close::new(Close::GOING_AWAY, "Server shutting down")]
    );
    Ok(())
}

#[tokio::test]
async fn full_routes_with_serve_with() -> Result<(), Box<dyn std::error::Error>> {
    let socket = ws::Socket::new(Echo::default());
    let routes = warp::path("ws")
        .and(socket.filter())
        .or(warp::path("hello").map(|| "plain HTTP"));
    let server = ws::test::serve_with(ws::serve(routes).socket(&socket)).await;
    let mut client = server.connect("/ws?token=ok").await?;
    assert_eq!(client.recv_text().await?, "welcome anonymous");
    // A plain route answers 200 instead of 101: that is a refusal too.
    let refusal = server.connect("/hello").expect_refusal().await;
    assert_eq!(refusal.status(), 200);
    assert_eq!(refusal.body(), "plain HTTP");
    assert_eq!(
        server.connect("/nowhere").expect_refusal().await.status(),
        404
    );
    assert!(server.url("/ws").starts_with("ws://127.0.0.1:"));
    server.shutdown().await;
    Ok(())
}

#[tokio::test]
#[should_panic(expected = "to be refused, but it was accepted")]
async fn expect_refusal_panics_when_accepted() {
    let socket = ws::Socket::new(Echo::default());
    let server = ws::test::serve(&socket).await;
    let _ = server.connect("/?token=ok").expect_refusal().await;
}
