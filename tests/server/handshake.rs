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

    let post = server
        .raw("/ws")
        .method("POST")
        .header("content-length", "0")
        .send()
        .await
        .unwrap();
    assert_eq!(post.status(), 405);
    assert_eq!(post.header("allow"), Some("GET"));
    assert_eq!(post.body(), "A WebSocket handshake must use GET.");
    assert_eq!(
        post.header("content-type"),
        Some("text/plain; charset=utf-8")
    );

    let plain = server
        .raw("/ws")
        .header("host", "localhost")
        .without("upgrade")
        .without("connection")
        .without("sec-websocket-key")
        .without("sec-websocket-version")
        .send()
        .await
        .unwrap();
    assert_eq!(plain.status(), 426);
    assert_eq!(plain.header("upgrade"), Some("websocket"));
    assert_eq!(plain.header("sec-websocket-version"), Some("13"));
    assert!(
        plain.body().starts_with("This endpoint speaks WebSocket"),
        "{}",
        plain.body()
    );

    let no_connection = server.raw("/ws").without("connection").send().await;
    assert_eq!(no_connection.unwrap().status(), 426);

    let no_key = server.raw("/ws").without("sec-websocket-key").send().await;
    let response = no_key.unwrap();
    assert_eq!(response.status(), 400);
    assert_eq!(response.body(), "Missing Sec-WebSocket-Key header.");

    // RFC 6455 §11.3: neither the key nor the version may appear twice, even when equal.
    for name in ["sec-websocket-key", "sec-websocket-version"] {
        let value = if name == "sec-websocket-key" {
            "dGhlIHNhbXBsZSBub25jZQ=="
        } else {
            "13"
        };
        let twice = server.raw("/ws").append_header(name, value);
        let response = twice.send().await.unwrap();
        assert_eq!(response.status(), 400, "{name}");
        let canonical = if name == "sec-websocket-key" {
            "Sec-WebSocket-Key"
        } else {
            "Sec-WebSocket-Version"
        };
        assert_eq!(response.body(), format!("{canonical} must appear once."));
    }

    let bad_key = server.raw("/ws").header("sec-websocket-key", "short");
    let response = bad_key.send().await.unwrap();
    assert_eq!(response.status(), 400);
    assert_eq!(
        response.body(),
        "Sec-WebSocket-Key must be 16 bytes in base64."
    );

    let v12 = server.raw("/ws").header("sec-websocket-version", "12");
    let response = v12.send().await.unwrap();
    assert_eq!(response.status(), 426);
    assert_eq!(response.header("sec-websocket-version"), Some("13"));
    assert_eq!(
        response.body(),
        "Unsupported WebSocket version; this server speaks version 13."
    );

    // Tokens are matched case-insensitively inside comma-separated lists, as browsers send them.
    let firefox = server
        .raw("/ws")
        .header("connection", "keep-alive, Upgrade")
        .header("upgrade", "WebSocket");
    assert_eq!(firefox.send().await.unwrap().status(), 101);
    shutdown(server).await;
}

#[tokio::test]
async fn the_101_reply_is_correct_and_carries_what_on_handshake_added() {
    let (server, _log) = server_with(Config::new()).await;
    let response = server.raw("/ws").send().await.unwrap();
    assert_eq!(response.status(), 101);
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
    shutdown(server).await;
}

#[tokio::test]
async fn on_handshake_rejections_are_real_http_replies() {
    let (server, mut log) = server_with(Config::new()).await;
    let response = server.raw("/ws?mode=reject").send().await.unwrap();
    assert_eq!(response.status(), 403);
    assert_eq!(response.header("x-reason"), Some("test"));
    assert_eq!(
        response.header("content-type"),
        Some("text/plain; charset=utf-8")
    );
    assert_eq!(response.body(), "not today");

    let response = server.raw("/ws?mode=teapot").send().await.unwrap();
    assert_eq!(response.status(), 418);
    assert_eq!(response.body(), "");
    assert_eq!(log.next().await, "start");
    assert_eq!(log.try_next(), None, "a refused handshake opens nothing");
    shutdown(server).await;
}

#[tokio::test]
async fn subprotocols_are_chosen_and_echoed() {
    let (server, _log) = server_with(Config::new().protocols(["chat"])).await;
    // The handler's choice wins.
    let (chosen, response) = connect_with(
        &server.url("/ws?protocol=superchat"),
        &[("sec-websocket-protocol", "chat, superchat")],
    )
    .await;
    assert_eq!(response.headers()["sec-websocket-protocol"], "superchat");
    // Otherwise the first offer the config supports.
    let (first_supported, response) = connect_with(
        &server.url("/ws"),
        &[("sec-websocket-protocol", "v2, chat")],
    )
    .await;
    assert_eq!(response.headers()["sec-websocket-protocol"], "chat");
    // The handler cannot pick what the client did not offer.
    let request = server
        .raw("/ws?protocol=chat")
        .header("sec-websocket-protocol", "other");
    let response = request.send().await.unwrap();
    assert_eq!(response.status(), 101);
    assert_eq!(response.header("sec-websocket-protocol"), None);
    drop((chosen, first_supported));
    shutdown(server).await;
}

#[tokio::test]
async fn cross_origin_browsers_are_refused_by_default() {
    let (server, _log) = server_with(Config::new()).await;
    let host = format!("127.0.0.1:{}", server.addr().port());
    let evil = server
        .raw("/ws")
        .header("host", &host)
        .header("origin", "https://evil.example");
    let response = evil.send().await.unwrap();
    assert_eq!(response.status(), 403);
    assert_eq!(response.body(), "Origin not allowed.");

    let same = server
        .raw("/ws")
        .header("host", &host)
        .header("origin", &format!("http://{host}"));
    assert_eq!(same.send().await.unwrap().status(), 101);

    // Non-browser clients send no Origin and are not affected.
    assert_eq!(server.raw("/ws").send().await.unwrap().status(), 101);
    shutdown(server).await;
}

#[tokio::test]
async fn origin_policy_is_configurable() {
    let evil = |server: &TestServer| {
        server
            .raw("/ws")
            .header("host", "localhost")
            .header("origin", "https://evil.example")
    };
    let (any, _log) = server_with(Config::new().origins(Origins::Any)).await;
    assert_eq!(evil(&any).send().await.unwrap().status(), 101);
    let list = Origins::AllowList(vec!["https://evil.example".into()]);
    let (listed, _log) = server_with(Config::new().origins(list)).await;
    assert_eq!(evil(&listed).send().await.unwrap().status(), 101);
    let other = listed
        .raw("/ws")
        .header("host", "localhost")
        .header("origin", "https://other.example");
    assert_eq!(other.send().await.unwrap().status(), 403);
    shutdown(any).await;
    shutdown(listed).await;
}

/// `on_handshake -> bool`: `false` refuses with 403.
struct ByBool;

#[ws::websocket]
impl ByBool {
    fn on_handshake(&self, req: &ws::Request) -> bool {
        req.query("token") == Some("ok")
    }
}

/// `on_handshake -> Option<S>`: `None` refuses with 403.
struct ByOption;

#[ws::websocket]
impl ByOption {
    fn on_handshake(&self, req: &ws::Request) -> Option<String> {
        req.query("token").filter(|t| *t == "ok").map(str::to_owned)
    }

    fn on_open(&self, endpoint: &ws::Endpoint, id: ws::ClientId, token: &mut String) {
        let _ = endpoint.send(id, format!("token {token}"));
    }
}

/// A one-argument `Result` alias, as applications write them.
type HsResult<T> = Result<T, ws::Reject>;

/// `on_handshake -> HsResult<S>`: `Err` answers with its reply.
struct ByAlias;

#[ws::websocket]
impl ByAlias {
    async fn on_handshake(&self, req: &ws::Request) -> HsResult<u32> {
        match req.query("token") {
            Some("ok") => Ok(7),
            _ => {
                Err(ws::Reject::unauthorized("Token required.").header("www-authenticate", "Token"))
            }
        }
    }

    fn on_open(&self, endpoint: &ws::Endpoint, id: ws::ClientId, session: &mut u32) {
        let _ = endpoint.send(id, format!("session {session}"));
    }
}

/// Asserts the refusal of `/ws` without a token, then that `/ws?token=ok` opens.
async fn refuses_then_accepts<H: ws::Handler>(
    handler: H,
    status: u16,
    body: &str,
    header: Option<(&str, &str)>,
) -> Client {
    let socket = Socket::new(handler);
    let server = serve(&socket).await;
    let refusal = server.raw("/ws").send().await.unwrap();
    assert_eq!(refusal.status(), status, "{refusal}");
    assert_eq!(refusal.body(), body);
    if let Some((name, value)) = header {
        assert_eq!(refusal.header(name), Some(value));
    }
    let wrong = server.raw("/ws?token=guess").send().await.unwrap();
    assert_eq!(wrong.status(), status, "{wrong}");
    assert_eq!(socket.endpoint().len(), 0, "nobody was connected");
    connect(&server.url("/ws?token=ok")).await
}

#[tokio::test]
async fn every_refusing_handshake_form_refuses() {
    let _accepted = refuses_then_accepts(ByBool, 403, "", None).await;

    let mut accepted = refuses_then_accepts(ByOption, 403, "", None).await;
    assert_eq!(recv_text(&mut accepted).await, "token ok");

    let mut accepted = refuses_then_accepts(
        ByAlias,
        401,
        "Token required.",
        Some(("www-authenticate", "Token")),
    )
    .await;
    assert_eq!(recv_text(&mut accepted).await, "session 7");
}
