//! Every handshake refusal, checked by status, headers and body; and what the 101 carries.

use ws::{Config, Origins, Socket};

use crate::probe::Probe;
use crate::support::*;

async fn server_with(config: Config) -> (TestServer, EventLog) {
    let (events, log) = events();
    let socket = Socket::with_config(Probe::new(events), config);
    (serve(&socket).await, log)
}

#[tokio::test]
async fn protocol_checks_answer_plain_http() {
    let (server, _log) = server_with(Config::new()).await;
    let addr = server.addr;

    let post = raw_http(addr, &handshake("POST", "Content-Length: 0\r\n")).await;
    assert_eq!(post.status, 405);
    assert_eq!(post.header("allow"), Some("GET"));
    assert_eq!(post.body, "A WebSocket handshake must use GET.");
    assert_eq!(
        post.header("content-type"),
        Some("text/plain; charset=utf-8")
    );

    let plain = raw_http(addr, "GET /ws HTTP/1.1\r\nHost: localhost\r\n\r\n").await;
    assert_eq!(plain.status, 426);
    assert_eq!(plain.header("upgrade"), Some("websocket"));
    assert_eq!(plain.header("sec-websocket-version"), Some("13"));
    assert!(
        plain.body.starts_with("This endpoint speaks WebSocket"),
        "{}",
        plain.body
    );

    let no_connection = handshake("GET", "").replace("Connection: Upgrade\r\n", "");
    assert_eq!(raw_http(addr, &no_connection).await.status, 426);

    let no_key =
        handshake("GET", "").replace("Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n", "");
    let response = raw_http(addr, &no_key).await;
    assert_eq!(response.status, 400);
    assert_eq!(response.body, "Missing Sec-WebSocket-Key header.");

    let bad_key = handshake("GET", "").replace("dGhlIHNhbXBsZSBub25jZQ==", "short");
    let response = raw_http(addr, &bad_key).await;
    assert_eq!(response.status, 400);
    assert_eq!(
        response.body,
        "Sec-WebSocket-Key must be 16 bytes in base64."
    );

    let v12 = handshake("GET", "").replace("Version: 13", "Version: 12");
    let response = raw_http(addr, &v12).await;
    assert_eq!(response.status, 426);
    assert_eq!(response.header("sec-websocket-version"), Some("13"));
    assert_eq!(
        response.body,
        "Unsupported WebSocket version; this server speaks version 13."
    );

    // Tokens are matched case-insensitively inside comma-separated lists, as browsers send them.
    let firefox = handshake("GET", "")
        .replace("Connection: Upgrade", "Connection: keep-alive, Upgrade")
        .replace("Upgrade: websocket", "Upgrade: WebSocket");
    assert_eq!(raw_http(addr, &firefox).await.status, 101);
}

#[tokio::test]
async fn the_101_reply_is_correct_and_carries_what_on_handshake_added() {
    let (server, _log) = server_with(Config::new()).await;
    let response = raw_http(server.addr, &handshake("GET", "")).await;
    assert_eq!(response.status, 101);
    // RFC 6455 §1.3's example key and accept value.
    assert_eq!(
        response.header("sec-websocket-accept"),
        Some("s3pPLMBiTxaQ9kYGzzhZRbK+xOo=")
    );
    assert_eq!(response.header("upgrade"), Some("websocket"));
    assert_eq!(response.header("connection"), Some("Upgrade"));
    assert_eq!(response.header("x-hello"), Some("world"));
    assert_eq!(response.header("set-cookie"), Some("sid=42; Path=/"));
    assert_eq!(response.header("sec-websocket-protocol"), None);
}

#[tokio::test]
async fn on_handshake_rejections_are_real_http_replies() {
    let (server, mut log) = server_with(Config::new()).await;
    let request = handshake("GET", "").replace("/ws", "/ws?mode=reject");
    let response = raw_http(server.addr, &request).await;
    assert_eq!(response.status, 403);
    assert_eq!(response.header("x-reason"), Some("test"));
    assert_eq!(
        response.header("content-type"),
        Some("text/plain; charset=utf-8")
    );
    assert_eq!(response.body, "not today");

    let request = handshake("GET", "").replace("/ws", "/ws?mode=teapot");
    let response = raw_http(server.addr, &request).await;
    assert_eq!(response.status, 418);
    assert_eq!(response.body, "");
    assert_eq!(log.next().await, "start");
    assert_eq!(log.try_next(), None, "a refused handshake opens nothing");
}

#[tokio::test]
async fn subprotocols_are_chosen_and_echoed() {
    let (server, _log) = server_with(Config::new().protocols(["chat"])).await;
    // The handler's choice wins.
    let (_c, response) = connect_with(
        &server.url("?protocol=superchat"),
        &[("sec-websocket-protocol", "chat, superchat")],
    )
    .await;
    assert_eq!(response.headers()["sec-websocket-protocol"], "superchat");
    // Otherwise the first offer the config supports.
    let (_c, response) =
        connect_with(&server.url(""), &[("sec-websocket-protocol", "v2, chat")]).await;
    assert_eq!(response.headers()["sec-websocket-protocol"], "chat");
    // The handler cannot pick what the client did not offer.
    let request =
        handshake("GET", "Sec-WebSocket-Protocol: other\r\n").replace("/ws", "/ws?protocol=chat");
    let response = raw_http(server.addr, &request).await;
    assert_eq!(response.status, 101);
    assert_eq!(response.header("sec-websocket-protocol"), None);
}

#[tokio::test]
async fn cross_origin_browsers_are_refused_by_default() {
    let (server, _log) = server_with(Config::new()).await;
    let host = format!("127.0.0.1:{}", server.addr.port());
    let evil = handshake("GET", "Origin: https://evil.example\r\n")
        .replace("Host: localhost", &format!("Host: {host}"));
    let response = raw_http(server.addr, &evil).await;
    assert_eq!(response.status, 403);
    assert_eq!(response.body, "Origin not allowed.");

    let same = handshake("GET", &format!("Origin: http://{host}\r\n"))
        .replace("Host: localhost", &format!("Host: {host}"));
    assert_eq!(raw_http(server.addr, &same).await.status, 101);

    // Non-browser clients send no Origin and are not affected.
    assert_eq!(
        raw_http(server.addr, &handshake("GET", "")).await.status,
        101
    );
}

#[tokio::test]
async fn origin_policy_is_configurable() {
    let evil = handshake("GET", "Origin: https://evil.example\r\n");
    let (any, _log) = server_with(Config::new().origins(Origins::Any)).await;
    assert_eq!(raw_http(any.addr, &evil).await.status, 101);
    let list = Origins::AllowList(vec!["https://evil.example".into()]);
    let (listed, _log) = server_with(Config::new().origins(list)).await;
    assert_eq!(raw_http(listed.addr, &evil).await.status, 101);
    let other = handshake("GET", "Origin: https://other.example\r\n");
    assert_eq!(raw_http(listed.addr, &other).await.status, 403);
}
