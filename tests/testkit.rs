//! Tests of `ws::test` itself: connecting, sending, receiving, closes, refusals, shutdown,
//! plain HTTP requests to the routes beside the socket.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use tokio::sync::Notify;
use warp::Filter;
use ws::test::{ClientError, ConnectError, HttpError};
use ws::{Accept, ClientId, Close, Endpoint, Message, Reject, Request, websocket};

/// Echoes messages; `close:CODE:REASON` makes the server close; refuses without `?token=ok`.
/// `closed` is notified after each `on_close`.
#[derive(Default)]
struct Echo {
    closes: Mutex<Vec<Close>>,
    closed: Notify,
}

#[websocket]
impl Echo {
    fn on_handshake(&self, req: &Request, accept: &mut Accept) -> Result<String, Reject> {
        if req.query("token") != Some("ok") {
            return Err(Reject::unauthorized("Token required.")
                .header("www-authenticate", "Token")
                .header("x-reason", "no-token"));
        }
        if req.header("x-name") == Some("taken") {
            return Err(Reject::conflict("Name taken."));
        }
        accept.header("x-greeting", "hello");
        if req.protocols().any(|p| p == "echo.v1") {
            accept.protocol("echo.v1").expect("offered");
        }
        Ok(req.header("x-name").unwrap_or("anonymous").to_owned())
    }

    fn on_open(&self, endpoint: &Endpoint, id: ClientId, name: &mut String) {
        endpoint
            .send(id, format!("welcome {name}"))
            .expect("queued");
    }

    fn on_data(&self, endpoint: &Endpoint, id: ClientId, msg: Message) {
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
        self.closed.notify_one();
    }
}

/// A name already in use is refused with 409 and the reason, a plain-text body.
#[tokio::test]
async fn a_taken_name_is_refused_with_409() {
    let socket = ws::Socket::new(Echo::default());
    let server = ws::test::serve(&socket).await;
    let refusal = server
        .connect("/?token=ok")
        .header("x-name", "taken")
        .expect_refusal()
        .await;
    assert_eq!(refusal.status(), ws::StatusCode::CONFLICT);
    assert_eq!(refusal.status(), 409);
    assert_eq!(refusal.body(), "Name taken.");
    assert_eq!(
        refusal.header("content-type"),
        Some("text/plain; charset=utf-8")
    );
    server.shutdown().await;
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

#[test]
fn raw_frames_encode_every_field() {
    use ws::test::raw::{Frame, MASK_KEY, close_payload, opcode};

    let masked: Vec<u8> = b"hi"
        .iter()
        .zip(MASK_KEY)
        .map(|(byte, key)| byte ^ key)
        .collect();
    let mut expected = vec![0x81, 0x82];
    expected.extend_from_slice(&MASK_KEY);
    expected.extend_from_slice(&masked);
    assert_eq!(Frame::text("hi").encode(), expected);
    assert_eq!(Vec::from(Frame::text("hi")), expected);

    assert_eq!(
        Frame::binary([1, 2]).unmasked().encode(),
        [0x82, 0x02, 1, 2]
    );
    assert_eq!(
        Frame::ping("").mask([0; 4]).encode(),
        [0x89, 0x80, 0, 0, 0, 0]
    );
    assert_eq!(
        Frame::continuation("x").fin(false).unmasked().encode(),
        [0x00, 0x01, b'x']
    );
    assert_eq!(Frame::text("").rsv1(true).first_byte(), 0xC1);
    assert_eq!(Frame::text("").rsv(0b111).rsv1(false).first_byte(), 0xB1);
    assert_eq!(Frame::new(0x3, "").first_byte(), 0x83);
    assert_eq!(Frame::pong("").first_byte(), 0x80 | opcode::PONG);

    // Lengths: 7 bits up to 125, then 16 bits, then 64 bits; a declared one as given.
    let sizes = |frame: Frame| frame.unmasked().encode()[..4].to_vec();
    assert_eq!(sizes(Frame::binary(vec![0; 126])), [0x82, 126, 0, 126]);
    let big = Frame::binary(vec![0; 70_000]).unmasked().encode();
    assert_eq!(big[..10], [0x82, 127, 0, 0, 0, 0, 0, 1, 0x11, 0x70]);
    assert_eq!(big.len(), 10 + 70_000);
    let lie = Frame::binary("ab")
        .unmasked()
        .declared_len(1 << 63)
        .encode();
    assert_eq!(lie, [0x82, 127, 0x80, 0, 0, 0, 0, 0, 0, 0, b'a', b'b']);

    assert_eq!(close_payload(4000, b"bye"), [0x0F, 0xA0, b'b', b'y', b'e']);
    assert_eq!(
        Frame::close(1000, [0xff]).unmasked().encode(),
        [0x88, 3, 0x03, 0xE8, 0xff]
    );
}

#[tokio::test]
async fn server_frames_are_read_from_any_reader() {
    use ws::test::raw::{self, RawError, ServerFrame};

    let mut wire: &[u8] = b"\x01\x02hi\xC2\x7e\x00\x01z\x89\x00\x88\x05\x0f\xa0bye\x88\x00";
    assert_eq!(
        raw::read_frame(&mut wire).await.unwrap(),
        ServerFrame {
            fin: false,
            rsv: 0,
            opcode: 0x1,
            payload: b"hi".to_vec()
        }
    );
    let compressed = raw::read_frame(&mut wire).await.unwrap();
    assert!(compressed.fin && compressed.rsv1());
    assert_eq!(
        (compressed.first_byte(), compressed.payload),
        (0xC2, vec![b'z'])
    );
    // The ping is skipped on the way to the close.
    assert_eq!(
        raw::read_close(&mut wire).await.unwrap(),
        Close::new(4000, "bye")
    );
    assert_eq!(
        raw::read_close(&mut wire).await.unwrap(),
        Close::new(Close::NO_STATUS, "")
    );
    raw::expect_end(&mut wire).await.unwrap();
    assert!(matches!(
        raw::read_frame(&mut wire).await,
        Err(RawError::Ended)
    ));

    let mut masked: &[u8] = b"\x81\x80\x00\x00\x00\x00";
    assert!(matches!(
        raw::read_frame(&mut masked).await,
        Err(RawError::Protocol(_))
    ));
    let mut cut: &[u8] = b"\x82\x05abc";
    assert!(matches!(
        raw::read_frame(&mut cut).await,
        Err(RawError::Ended)
    ));
    let mut one_byte: &[u8] = b"\x88\x01\x03";
    assert!(matches!(
        raw::read_close(&mut one_byte).await,
        Err(RawError::Protocol(_))
    ));
    let mut more: &[u8] = b"\x8a\x00";
    assert!(matches!(
        raw::expect_end(&mut more).await,
        Err(RawError::Unexpected(bytes)) if bytes == b"\x8a\x00"
    ));
}

#[tokio::test]
async fn raw_requests_get_typed_replies_and_raw_connections()
-> Result<(), Box<dyn std::error::Error>> {
    use tokio::io::AsyncWriteExt;
    use ws::test::raw::{self, Frame, RawError};

    let socket = ws::Socket::new(Echo::default());
    let server = ws::test::serve(&socket).await;

    let refused = server.raw("/").send().await?;
    assert_eq!(refused.status(), 401);
    assert_eq!(refused.version(), http::Version::HTTP_11);
    assert_eq!(refused.header("WWW-Authenticate"), Some("Token"));
    assert_eq!(refused.body(), "Token required.");
    assert_eq!(refused.body_bytes().as_ref(), b"Token required.");
    assert_eq!(refused.to_string(), "401 Unauthorized: Token required.");
    let err = server.raw("/").upgrade().await.unwrap_err();
    assert!(
        matches!(&err, RawError::NotUpgraded(reply) if reply.status() == 401),
        "{err}"
    );

    let post = server.raw("/?token=ok").method("POST").body("x");
    let post = post.header("content-length", "1").send().await?;
    assert_eq!(post.status(), 405);
    let no_version = server.raw("/?token=ok").without("Sec-WebSocket-Version");
    assert_eq!(no_version.send().await?.status(), 426);
    let err = server
        .raw("/")
        .header("x-bad", "a\r\nb")
        .send()
        .await
        .unwrap_err();
    assert!(matches!(err, RawError::InvalidRequest(_)), "{err}");
    let err = server
        .raw("/")
        .method("BAD METHOD")
        .send()
        .await
        .unwrap_err();
    assert!(matches!(err, RawError::InvalidRequest(_)), "{err}");

    // Upgraded from another loopback address; `on_open`'s welcome comes at once, maybe in the
    // same read as the 101.
    let (reply, mut tcp) = server
        .raw("/?token=ok")
        .append_header("x-name", "ada")
        .local_ip([127, 0, 0, 2].into())
        .upgrade()
        .await?;
    assert_eq!(reply.status(), 101);
    assert_eq!(
        reply.header("sec-websocket-accept"),
        Some(raw::SAMPLE_ACCEPT)
    );
    assert_eq!(reply.header("x-greeting"), Some("hello"));
    assert_eq!(reply.body(), "");
    assert_eq!(tcp.tcp().local_addr()?.ip().to_string(), "127.0.0.2");
    let welcome = raw::read_frame(&mut tcp).await?;
    assert_eq!(
        (welcome.first_byte(), welcome.payload),
        (0x81, b"welcome ada".to_vec())
    );

    tcp.write_all(&Frame::binary([1, 2, 3]).encode()).await?;
    let echo = raw::read_frame(&mut tcp).await?;
    assert_eq!((echo.first_byte(), echo.payload), (0x82, vec![1, 2, 3]));
    let quiet = raw::read_frame_within(&mut tcp, Duration::from_millis(50)).await;
    assert!(matches!(quiet, Err(RawError::Timeout(_))), "{quiet:?}");

    tcp.write_all(&Frame::close(4000, "bye").encode()).await?;
    assert_eq!(raw::read_close(&mut tcp).await?, Close::new(4000, "bye"));
    raw::expect_end(&mut tcp).await?;

    server.shutdown().await;
    assert_eq!(
        socket.handler().closes.lock().unwrap().as_slice(),
        [Close::new(4000, "bye")]
    );
    Ok(())
}

/// `Echo` at `/ws` and plain routes beside it, served as a user would with `serve_with`:
/// `/stats` counts the connected clients, `/hello` answers 202 with a header of its own,
/// `/headers` shows the request's `Host`, `Connection` and `X-Name`, `/echo` takes a POST,
/// `/chunked` streams its body, `/binary` sends bytes that are not UTF-8, and `/never` waits
/// for `gate` before it answers.
fn routes(
    socket: &ws::Socket<Echo>,
    gate: Arc<Notify>,
) -> impl Filter<Extract = (impl warp::Reply,), Error = warp::Rejection> + Clone + Send + Sync + 'static
{
    let endpoint = socket.endpoint();
    let stats = warp::path!("stats").map(move || endpoint.len().to_string());
    let hello = warp::path!("hello").map(|| {
        let reply = warp::reply::with_header("plain HTTP", "x-kind", "plain");
        warp::reply::with_status(reply, ws::StatusCode::ACCEPTED)
    });
    let headers = warp::path!("headers")
        .and(warp::header::<String>("host"))
        .and(warp::header::<String>("connection"))
        .and(warp::header::optional::<String>("x-name"))
        .map(|host, connection, name: Option<String>| {
            format!("{host} {connection} {}", name.unwrap_or_default())
        });
    let echo = warp::path!("echo")
        .and(warp::post())
        .and(warp::header::optional::<u64>("content-length"))
        .and(warp::body::bytes())
        .map(|length: Option<u64>, body: Bytes| {
            let length = length.map_or_else(|| "none".to_owned(), |n| n.to_string());
            format!("{length}: {}", String::from_utf8_lossy(&body))
        });
    let chunked = warp::path!("chunked").map(|| {
        let chunks = ["hello", " ", "world"].map(|c| Ok::<_, std::io::Error>(Bytes::from(c)));
        warp::reply::stream(futures_util::stream::iter(chunks))
    });
    let binary = warp::path!("binary").map(|| Bytes::from_static(&[0xff, b'a', 0]).to_vec());
    let never = warp::path!("never").then(move || {
        let gate = gate.clone();
        async move {
            gate.notified().await;
            "late"
        }
    });
    warp::path("ws")
        .and(socket.filter())
        .or(stats)
        .or(hello)
        .or(headers)
        .or(echo)
        .or(chunked)
        .or(binary)
        .or(never)
}

/// Serves `routes` for a new `Echo`; the gate opens `/never`.
async fn serve_routes() -> (ws::Socket<Echo>, ws::test::TestServer, Arc<Notify>) {
    let socket = ws::Socket::new(Echo::default());
    let gate = Arc::new(Notify::new());
    let routes = routes(&socket, gate.clone());
    let server = ws::test::serve_with(ws::serve(routes).socket(&socket)).await;
    (socket, server, gate)
}

#[tokio::test]
async fn get_reads_a_sibling_route() -> Result<(), Box<dyn std::error::Error>> {
    let (_socket, server, _gate) = serve_routes().await;
    let response = server.get("/hello").await?;
    assert_eq!(response.status(), ws::StatusCode::ACCEPTED);
    assert_eq!(response.status(), 202);
    assert_eq!(response.version(), http::Version::HTTP_11);
    assert_eq!(response.header("X-Kind"), Some("plain"));
    assert_eq!(
        response.header("content-type"),
        Some("text/plain; charset=utf-8")
    );
    assert_eq!(response.header("content-length"), Some("10"));
    // The server closes the connection after it, as asked.
    assert_eq!(response.header("connection"), Some("close"));
    assert!(response.headers().contains_key("date"));
    assert_eq!(response.body(), "plain HTTP");
    assert_eq!(response.body_bytes().as_ref(), b"plain HTTP");
    assert_eq!(response.to_string(), "202 Accepted: plain HTTP");

    // What the route sees: the server's address as `Host`, `Connection: close`, the headers
    // added; the query goes along.
    let seen = server.get("/headers?q=1").header("x-name", "ada").await?;
    assert_eq!(seen.body(), format!("{} close ada", server.addr()));
    let keep = server.get("/headers").header("Connection", "keep-alive");
    assert_eq!(
        keep.send().await?.body(),
        format!("{} keep-alive ", server.addr())
    );

    // The socket still answers its own path.
    let mut client = server.connect("/ws?token=ok").await?;
    assert_eq!(client.recv_text().await?, "welcome anonymous");
    server.shutdown().await;
    Ok(())
}

#[tokio::test]
async fn a_route_counting_clients_sees_test_clients() -> Result<(), Box<dyn std::error::Error>> {
    let (socket, server, _gate) = serve_routes().await;
    let count = || async { Ok::<_, HttpError>(server.get("/stats").await?.body().to_owned()) };
    assert_eq!(count().await?, "0");

    // The welcome is sent by `on_open`, after the client is registered: once it arrives, the
    // client is counted.
    let mut ada = server.connect("/ws?token=ok").await?;
    assert_eq!(ada.recv_text().await?, "welcome anonymous");
    assert_eq!(count().await?, "1");
    let mut bob = server.connect("/ws?token=ok").await?;
    assert_eq!(bob.recv_text().await?, "welcome anonymous");
    assert_eq!(count().await?, "2");

    // `on_close` runs after the client is gone from the endpoint.
    assert_eq!(ada.close(1000, "bye").await?.code, 1000);
    socket.handler().closed.notified().await;
    assert_eq!(count().await?, "1");
    server.shutdown().await;
    Ok(())
}

#[tokio::test]
async fn an_unknown_path_is_a_404_response_not_an_error() -> Result<(), Box<dyn std::error::Error>>
{
    let (_socket, server, _gate) = serve_routes().await;
    let response = server.get("/nowhere").await?;
    assert_eq!(response.status(), 404);
    assert_eq!(response.body(), "");
    assert_eq!(response.to_string(), "404 Not Found");
    // Any status is a response: a route's 405 for another method, and the socket's own
    // refusal of a plain GET.
    let get = server.get("/echo").await?;
    assert_eq!(get.status(), 405);
    let not_upgrade = server.get("/ws?token=ok").await?;
    assert_eq!(not_upgrade.status(), 426);
    assert_eq!(not_upgrade.header("upgrade"), Some("websocket"));
    server.shutdown().await;
    Ok(())
}

#[tokio::test]
async fn chunked_and_sized_bodies_are_read_whole() -> Result<(), Box<dyn std::error::Error>> {
    let (_socket, server, _gate) = serve_routes().await;
    let chunked = server.get("/chunked").await?;
    assert_eq!(chunked.header("transfer-encoding"), Some("chunked"));
    assert_eq!(chunked.header("content-length"), None);
    assert_eq!(chunked.body(), "hello world");

    let sized = server.get("/hello").await?;
    assert_eq!(sized.header("transfer-encoding"), None);
    assert_eq!(sized.body(), "plain HTTP");

    let binary = server.get("/binary").await?;
    assert_eq!(binary.header("content-length"), Some("3"));
    assert_eq!(binary.body_bytes().as_ref(), [0xff, b'a', 0]);
    assert_eq!(binary.body(), "\u{fffd}a\0");
    server.shutdown().await;
    Ok(())
}

#[tokio::test]
async fn requests_with_any_method_headers_and_body() -> Result<(), Box<dyn std::error::Error>> {
    let (_socket, server, _gate) = serve_routes().await;
    let sent = server
        .http(http::Method::POST, "/echo")
        .header("content-type", "text/plain")
        .body("hello")
        .await?;
    assert_eq!(sent.status(), 200);
    assert_eq!(sent.body(), "5: hello");
    let bytes = server
        .http(http::Method::POST, "/echo")
        .body(vec![b'h', 0xff])
        .send()
        .await?;
    assert_eq!(bytes.body(), "2: h\u{fffd}");
    let empty = server.http(http::Method::POST, "/echo").await?;
    assert_eq!(empty.body(), "none: ");

    let err = server.get("no-slash").await.unwrap_err();
    assert!(matches!(err, HttpError::InvalidRequest(_)), "{err}");
    let err = server.get("/a b").await.unwrap_err();
    assert!(matches!(err, HttpError::InvalidRequest(_)), "{err}");
    let err = server
        .get("/")
        .header("x-bad", "line\r\nbreak")
        .await
        .unwrap_err();
    assert!(matches!(err, HttpError::InvalidRequest(_)), "{err}");
    server.shutdown().await;
    Ok(())
}

#[tokio::test]
async fn a_route_that_never_answers_times_out() -> Result<(), Box<dyn std::error::Error>> {
    let (_socket, server, gate) = serve_routes().await;
    let err = server
        .get("/never")
        .timeout(Duration::from_millis(200))
        .await
        .unwrap_err();
    assert!(
        matches!(err, HttpError::Timeout(after) if after == Duration::from_millis(200)),
        "{err:?}"
    );
    assert_eq!(err.to_string(), "no HTTP response within 200ms");
    // Let the route answer, so that the shutdown does not wait for it.
    gate.notify_one();
    server.shutdown().await;
    Ok(())
}

#[cfg(feature = "json")]
#[tokio::test]
async fn json_responses_decode() -> Result<(), Box<dyn std::error::Error>> {
    #[derive(serde::Deserialize, Debug, PartialEq)]
    struct Stats {
        clients: usize,
    }

    let socket = ws::Socket::new(Echo::default());
    let endpoint = socket.endpoint();
    let stats = warp::path!("stats.json")
        .map(move || warp::reply::json(&serde_json::json!({ "clients": endpoint.len() })));
    let routes = warp::path("ws").and(socket.filter()).or(stats);
    let server = ws::test::serve_with(ws::serve(routes).socket(&socket)).await;
    let mut client = server.connect("/ws?token=ok").await?;
    assert_eq!(client.recv_text().await?, "welcome anonymous");

    let response = server.get("/stats.json").await?;
    assert_eq!(response.header("content-type"), Some("application/json"));
    assert_eq!(response.json::<Stats>()?, Stats { clients: 1 });
    assert!(response.json::<Vec<u8>>().is_err());
    // A refusal's reply decodes too.
    let refusal = server.connect("/ws").expect_refusal().await;
    assert!(refusal.reply().json::<Stats>().is_err());
    server.shutdown().await;
    Ok(())
}
