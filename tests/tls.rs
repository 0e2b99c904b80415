//! `wss://` with a certificate generated here, and the handshake (request head) timeout against
//! slowloris clients, over TLS and over plain TCP.

#![cfg(feature = "tls")]

use std::io;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures_util::{SinkExt, StreamExt};
use rustls::pki_types::{CertificateDer, ServerName};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::{mpsc, oneshot};
use tokio_rustls::TlsConnector;
use tokio_rustls::client::TlsStream;
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::Message as WsMessage;
use warp::Filter;
use ws::test::TestServer;
use ws::{ClientId, Endpoint, Message, Request, Socket, Tls, websocket};

/// How long any single expected event may take before the test fails.
const WAIT: Duration = Duration::from_secs(10);

/// The handshake timeout of the slowloris tests.
const SHORT: Duration = Duration::from_millis(500);

/// The dribbler's pause between two bytes of its request head.
const DRIBBLE_PAUSE: Duration = Duration::from_millis(100);

/// What the dribbler sends, a byte at a time: at [`DRIBBLE_PAUSE`] this takes seconds.
const SLOW_HEAD: &[u8] = b"GET /ws HTTP/1.1\r\nHost: localhost\r\nUpgrade: websocket\r\n\
    Connection: Upgrade\r\nSec-WebSocket-Version: 13\r\n\
    Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n";

/// Echoes every message back and reports each opened connection's peer address.
struct Echo {
    peers: mpsc::UnboundedSender<SocketAddr>,
}

#[websocket]
impl Echo {
    fn on_handshake(&self, req: &Request) -> Option<SocketAddr> {
        Some(req.remote_addr())
    }

    fn on_open(&self, peer: &mut SocketAddr) {
        let _ = self.peers.send(*peer);
    }

    fn on_data(&self, endpoint: &Endpoint, id: ClientId, msg: Message) {
        // `all:` broadcasts the rest: from the hook's last message, the delivery a plain TCP
        // connection would have written at once, and a TLS one queues for its writer.
        if let Some(rest) = msg.as_text().and_then(|text| text.strip_prefix("all:")) {
            endpoint.broadcast(rest.to_owned());
            return;
        }
        let _ = endpoint.send(id, msg);
    }
}

/// `ws::test`'s server of [`Echo`], and the peer addresses its connections opened with.
struct EchoServer {
    server: TestServer,
    peers: mpsc::UnboundedReceiver<SocketAddr>,
}

impl EchoServer {
    /// Serves [`Echo`] at `/ws` on 127.0.0.1:0, over TLS when `tls` is given.
    async fn start(tls: Option<Tls>, handshake_timeout: Option<Duration>) -> Self {
        let (peers_tx, peers) = mpsc::unbounded_channel();
        let socket = Socket::new(Echo { peers: peers_tx });
        let routes = warp::path("ws").and(warp::path::end()).and(socket.filter());
        let mut server = ws::serve(routes).socket(&socket);
        if let Some(tls) = tls {
            server = server.tls(tls);
        }
        if let Some(timeout) = handshake_timeout {
            server = server.handshake_timeout(timeout);
        }
        Self {
            server: ws::test::serve_with(server).await,
            peers,
        }
    }

    fn addr(&self) -> SocketAddr {
        self.server.addr()
    }

    /// The peer address the next opened connection's `on_handshake` saw.
    async fn next_peer(&mut self) -> SocketAddr {
        tokio::time::timeout(WAIT, self.peers.recv())
            .await
            .expect("on_open in time")
            .expect("server running")
    }

    /// Starts the graceful shutdown and waits for it, at most [`WAIT`]; `ws::test` panics if
    /// `run` failed or panicked.
    async fn shutdown(self) {
        tokio::time::timeout(WAIT, self.server.shutdown())
            .await
            .expect("server stopped in time");
    }
}

/// A self-signed certificate for `localhost`, generated for this test.
struct Cert {
    chain_pem: String,
    key_pem: String,
    der: CertificateDer<'static>,
}

fn self_signed() -> Cert {
    let certified = rcgen::generate_simple_self_signed(vec!["localhost".to_owned()])
        .expect("generate a certificate");
    Cert {
        chain_pem: certified.cert.pem(),
        key_pem: certified.signing_key.serialize_pem(),
        der: certified.cert.der().clone(),
    }
}

/// A file of this test binary's scratch directory, with these contents.
fn scratch_file(name: &str, contents: &[u8]) -> PathBuf {
    let path = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join(format!("tls-{name}"));
    std::fs::write(&path, contents).expect("write scratch file");
    path
}

/// A client configuration that trusts only `cert` and offers ALPN `http/1.1`.
fn client_config(cert: &Cert) -> Arc<rustls::ClientConfig> {
    let mut roots = rustls::RootCertStore::empty();
    roots.add(cert.der.clone()).expect("add the test root");
    let mut config = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .expect("protocol versions")
    .with_root_certificates(roots)
    .with_no_client_auth();
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Arc::new(config)
}

/// Connects over TCP and completes the TLS handshake as `localhost`.
async fn tls_connect(addr: SocketAddr, config: &Arc<rustls::ClientConfig>) -> TlsStream<TcpStream> {
    let tcp = TcpStream::connect(addr).await.expect("tcp connect");
    let name = ServerName::try_from("localhost").expect("server name");
    tokio::time::timeout(
        WAIT,
        TlsConnector::from(Arc::clone(config)).connect(name, tcp),
    )
    .await
    .expect("TLS handshake in time")
    .expect("TLS handshake succeeded")
}

type WssClient = WebSocketStream<TlsStream<TcpStream>>;

/// Opens `wss://localhost:PORT/ws`; returns the client and its own (local) address.
async fn wss_connect(
    addr: SocketAddr,
    config: &Arc<rustls::ClientConfig>,
) -> (WssClient, SocketAddr) {
    let tls = tls_connect(addr, config).await;
    assert_eq!(
        tls.get_ref().1.alpn_protocol(),
        Some(&b"http/1.1"[..]),
        "the server negotiates ALPN http/1.1"
    );
    let local = tls.get_ref().0.local_addr().expect("local addr");
    let url = format!("wss://localhost:{}/ws", addr.port());
    let (client, response) = tokio::time::timeout(WAIT, tokio_tungstenite::client_async(url, tls))
        .await
        .expect("WebSocket handshake in time")
        .expect("WebSocket handshake accepted");
    assert_eq!(response.status(), 101);
    (client, local)
}

/// Sends a text message and expects it back.
async fn round_trip<S>(client: &mut WebSocketStream<S>, text: &str)
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    client.send(WsMessage::text(text)).await.expect("send");
    expect_text(client, text).await;
}

/// Expects this text message next, skipping pings and pongs.
async fn expect_text<S>(client: &mut WebSocketStream<S>, text: &str)
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    loop {
        let message = tokio::time::timeout(WAIT, client.next())
            .await
            .expect("echo in time")
            .expect("stream open")
            .expect("read");
        match message {
            WsMessage::Text(echo) => {
                assert_eq!(echo.as_str(), text);
                return;
            }
            WsMessage::Ping(_) | WsMessage::Pong(_) => {}
            other => panic!("expected the echo of {text:?}, got {other:?}"),
        }
    }
}

/// Reads until the server closes the connection (end of stream or a reset); returns what was
/// read before.
async fn read_until_closed(reader: &mut (impl AsyncRead + Unpin)) -> Vec<u8> {
    let mut seen = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        match tokio::time::timeout(WAIT, reader.read(&mut buf))
            .await
            .expect("the server closed the connection in time")
        {
            Ok(0) | Err(_) => return seen,
            Ok(n) => seen.extend_from_slice(&buf[..n]),
        }
    }
}

/// Sends [`SLOW_HEAD`] a byte at a time until a write fails; `started` fires after the
/// first byte.
fn dribble(
    mut writer: impl AsyncWrite + Unpin + Send + 'static,
    started: oneshot::Sender<()>,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let mut started = Some(started);
        for byte in SLOW_HEAD {
            if writer.write_all(&[*byte]).await.is_err() || writer.flush().await.is_err() {
                return;
            }
            if let Some(started) = started.take() {
                let _ = started.send(());
            }
            tokio::time::sleep(DRIBBLE_PAUSE).await;
        }
    })
}

fn assert_closed_after_timeout(elapsed: Duration) {
    assert!(
        elapsed >= SHORT.mul_f32(0.9),
        "closed after {elapsed:?}, before the handshake timeout of {SHORT:?}"
    );
}

#[tokio::test]
async fn wss_echo_with_the_peer_address_and_1001_at_shutdown() {
    let cert = self_signed();
    let tls = Tls::from_pem_files(
        scratch_file("echo-cert.pem", cert.chain_pem.as_bytes()),
        scratch_file("echo-key.pem", cert.key_pem.as_bytes()),
    )
    .expect("the generated PEM files load");
    let mut server = EchoServer::start(Some(tls), None).await;
    let config = client_config(&cert);

    let (mut client, local) = wss_connect(server.addr(), &config).await;
    assert_eq!(
        server.next_peer().await,
        local,
        "on_handshake sees the TLS client's own address"
    );
    round_trip(&mut client, "hello over TLS").await;
    client
        .send(WsMessage::binary(vec![7u8; 100_000]))
        .await
        .expect("send binary");
    let echo = tokio::time::timeout(WAIT, client.next())
        .await
        .expect("echo in time")
        .expect("open")
        .expect("read");
    assert_eq!(echo, WsMessage::binary(vec![7u8; 100_000]));

    // Broadcasts from a hook reach TLS connections, in order.
    let (mut other, _) = wss_connect(server.addr(), &config).await;
    server.next_peer().await;
    for n in 0..20 {
        let text = format!("to all {n}");
        other
            .send(WsMessage::text(format!("all:{text}")))
            .await
            .expect("send");
        expect_text(&mut other, &text).await;
        expect_text(&mut client, &text).await;
    }
    drop(other);

    let close = async {
        loop {
            match tokio::time::timeout(WAIT, client.next())
                .await
                .expect("close in time")
            {
                Some(Ok(WsMessage::Close(frame))) => break frame.expect("a close code"),
                Some(Ok(_)) => {}
                other => panic!("expected a close frame, got {other:?}"),
            }
        }
    };
    let ((), close) = tokio::join!(server.shutdown(), close);
    assert_eq!(u16::from(close.code), 1001);
}

#[tokio::test]
async fn plain_http_and_garbage_on_the_tls_port_harm_nobody() {
    let cert = self_signed();
    let tls = Tls::from_pem(cert.chain_pem.as_bytes(), cert.key_pem.as_bytes())
        .expect("the generated PEM loads");
    let mut server = EchoServer::start(Some(tls), None).await;
    let config = client_config(&cert);
    let (mut member, _) = wss_connect(server.addr(), &config).await;
    server.next_peer().await;

    // Plain HTTP to the TLS port: a 400 that says to use TLS, then the connection is closed.
    let mut plain = TcpStream::connect(server.addr())
        .await
        .expect("tcp connect");
    plain
        .write_all(b"GET /ws HTTP/1.1\r\nHost: localhost\r\n\r\n")
        .await
        .expect("request written");
    let reply = String::from_utf8(read_until_closed(&mut plain).await).expect("text reply");
    assert!(reply.starts_with("HTTP/1.1 400 Bad Request\r\n"), "{reply}");
    assert!(
        reply.ends_with("use https:// or wss:// instead.\n"),
        "{reply}"
    );
    let (head, body) = reply.split_once("\r\n\r\n").expect("a head and a body");
    assert!(
        head.contains(&format!("\r\nContent-Length: {}\r\n", body.len())),
        "{reply}"
    );

    // Bytes that are neither HTTP nor a valid TLS handshake: the handshake fails, closed.
    for garbage in [
        &[0u8; 64][..],
        &[0x16, 0x03, 0x01, 0x00, 0x04, 0xff, 0xff, 0xff, 0xff],
    ] {
        let mut raw = TcpStream::connect(server.addr())
            .await
            .expect("tcp connect");
        raw.write_all(garbage).await.expect("garbage written");
        read_until_closed(&mut raw).await;
    }

    // A client that does not trust the certificate fails its own handshake; the server goes on.
    let stranger = client_config(&self_signed());
    let tcp = TcpStream::connect(server.addr())
        .await
        .expect("tcp connect");
    let refused = TlsConnector::from(stranger)
        .connect(ServerName::try_from("localhost").unwrap(), tcp)
        .await;
    assert!(
        refused.is_err(),
        "an untrusted certificate is refused by the client"
    );

    // Everyone else is still served, old members and new ones.
    round_trip(&mut member, "still here").await;
    let (mut newcomer, local) = wss_connect(server.addr(), &config).await;
    assert_eq!(server.next_peer().await, local);
    round_trip(&mut newcomer, "welcome").await;

    drop((member, newcomer));
    server.shutdown().await;
}

#[tokio::test]
async fn a_tls_client_dribbling_its_request_head_is_closed_while_others_are_served() {
    let cert = self_signed();
    let tls = Tls::from_pem(cert.chain_pem.as_bytes(), cert.key_pem.as_bytes()).unwrap();
    let mut server = EchoServer::start(Some(tls), Some(SHORT)).await;
    let config = client_config(&cert);
    // Connected before the dribbler: alive for longer than the handshake timeout by the end.
    let (mut veteran, _) = wss_connect(server.addr(), &config).await;
    server.next_peer().await;

    let dribbler = tls_connect(server.addr(), &config).await;
    let started_at = Instant::now();
    let (mut reader, writer) = tokio::io::split(dribbler);
    let (started, first_byte_sent) = oneshot::channel();
    let dribbling = dribble(writer, started);
    first_byte_sent
        .await
        .expect("the dribbler sent its first byte");

    // While the dribbler holds its connection, a new client is served at once.
    let (mut newcomer, local) = wss_connect(server.addr(), &config).await;
    assert_eq!(server.next_peer().await, local);
    round_trip(&mut newcomer, "served during the dribble").await;

    let seen = read_until_closed(&mut reader).await;
    let elapsed = started_at.elapsed();
    assert!(
        seen.is_empty(),
        "no HTTP answer for an incomplete head: {seen:?}"
    );
    assert_closed_after_timeout(elapsed);
    dribbling.abort();

    // Upgraded connections are not bound by the handshake timeout.
    round_trip(&mut veteran, "upgraded connections outlive the timeout").await;
    round_trip(&mut newcomer, "and so does this one").await;

    drop((veteran, newcomer));
    server.shutdown().await;
}

#[tokio::test]
async fn a_tls_handshake_that_stalls_is_closed_at_the_handshake_timeout() {
    let cert = self_signed();
    let tls = Tls::from_pem(cert.chain_pem.as_bytes(), cert.key_pem.as_bytes()).unwrap();
    let mut server = EchoServer::start(Some(tls), Some(SHORT)).await;
    let config = client_config(&cert);

    // Silent after connecting; and stalled after the first bytes of a TLS record.
    for opening in [&b""[..], &[0x16, 0x03, 0x01]] {
        let mut raw = TcpStream::connect(server.addr())
            .await
            .expect("tcp connect");
        let started_at = Instant::now();
        raw.write_all(opening).await.expect("opening written");
        let seen = read_until_closed(&mut raw).await;
        assert!(seen.is_empty(), "nothing sent back: {seen:?}");
        assert_closed_after_timeout(started_at.elapsed());
    }

    let (mut client, _) = wss_connect(server.addr(), &config).await;
    server.next_peer().await;
    round_trip(&mut client, "fine").await;
    drop(client);
    server.shutdown().await;
}

#[tokio::test]
async fn a_plain_tcp_client_dribbling_its_request_head_is_closed_while_others_are_served() {
    let mut server = EchoServer::start(None, Some(SHORT)).await;
    let url = format!("ws://{}/ws", server.addr());
    let (mut veteran, _) = tokio_tungstenite::connect_async(url.as_str())
        .await
        .expect("connect");
    server.next_peer().await;

    let dribbler = TcpStream::connect(server.addr())
        .await
        .expect("tcp connect");
    let started_at = Instant::now();
    let (mut reader, writer) = dribbler.into_split();
    let (started, first_byte_sent) = oneshot::channel();
    let dribbling = dribble(writer, started);
    first_byte_sent
        .await
        .expect("the dribbler sent its first byte");

    let (mut newcomer, _) = tokio_tungstenite::connect_async(url.as_str())
        .await
        .expect("connect during the dribble");
    server.next_peer().await;
    round_trip(&mut newcomer, "served during the dribble").await;

    let seen = read_until_closed(&mut reader).await;
    assert!(
        seen.is_empty(),
        "no HTTP answer for an incomplete head: {seen:?}"
    );
    assert_closed_after_timeout(started_at.elapsed());
    dribbling.abort();

    round_trip(&mut veteran, "upgraded connections outlive the timeout").await;
    round_trip(&mut newcomer, "and so does this one").await;
    drop((veteran, newcomer));
    server.shutdown().await;
}

#[tokio::test]
async fn the_default_handshake_timeout_leaves_a_slow_but_finished_head_alone() {
    // A head that takes longer than SHORT but far less than the 10 s default is served.
    let server = EchoServer::start(None, None).await;
    let mut stream = TcpStream::connect(server.addr())
        .await
        .expect("tcp connect");
    let head = b"GET /nowhere HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n";
    let (first, rest) = head.split_at(20);
    stream.write_all(first).await.unwrap();
    tokio::time::sleep(SHORT + DRIBBLE_PAUSE).await; // the slow client's pause, not a wait
    stream.write_all(rest).await.unwrap();
    let reply = String::from_utf8(read_until_closed(&mut stream).await).unwrap();
    assert!(reply.starts_with("HTTP/1.1 404"), "{reply}");
    server.shutdown().await;
}

fn tls_error(result: Result<Tls, ws::Error>) -> (String, Box<dyn std::error::Error + Send + Sync>) {
    match result {
        Err(ws::Error::Tls { what, source }) => (what, source),
        Err(other) => panic!("expected Error::Tls, got {other:?}"),
        Ok(tls) => panic!("expected Error::Tls, got {tls:?}"),
    }
}

#[test]
fn unusable_certificates_and_keys_are_typed_errors() {
    let cert = self_signed();
    let cert_file = scratch_file("good-cert.pem", cert.chain_pem.as_bytes());
    let key_file = scratch_file("good-key.pem", cert.key_pem.as_bytes());
    let garbage = scratch_file("garbage.pem", b"this is not PEM at all\n\x00\xff");
    let missing = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("tls-does-not-exist.pem");

    let (what, source) = tls_error(Tls::from_pem_files(&missing, &key_file));
    assert!(
        what.contains("certificate") && what.contains("tls-does-not-exist.pem"),
        "{what}"
    );
    let io = source.downcast_ref::<io::Error>().expect("an io::Error");
    assert_eq!(io.kind(), io::ErrorKind::NotFound);

    let (what, source) = tls_error(Tls::from_pem_files(&cert_file, &missing));
    assert!(what.contains("private key"), "{what}");
    assert!(source.downcast_ref::<io::Error>().is_some());

    let (what, source) = tls_error(Tls::from_pem_files(&garbage, &key_file));
    assert!(what.contains("garbage.pem"), "{what}");
    assert!(source.to_string().contains("CERTIFICATE"), "{source}");

    let (what, source) = tls_error(Tls::from_pem_files(&cert_file, &garbage));
    assert!(
        what.contains("private key") && what.contains("garbage.pem"),
        "{what}"
    );
    assert!(source.to_string().contains("PRIVATE KEY"), "{source}");

    // A PEM section whose body is not base64.
    let broken = "-----BEGIN CERTIFICATE-----\n!!!!\n-----END CERTIFICATE-----\n";
    let (_, source) = tls_error(Tls::from_pem(broken.as_bytes(), cert.key_pem.as_bytes()));
    assert!(source.to_string().contains("base64"), "{source}");

    // The key of another certificate.
    let other = self_signed();
    let (what, source) = tls_error(Tls::from_pem(
        cert.chain_pem.as_bytes(),
        other.key_pem.as_bytes(),
    ));
    assert!(
        what.contains("certificate") && what.contains("private key"),
        "{what}"
    );
    assert!(
        source.downcast_ref::<rustls::Error>().is_some(),
        "{source:?}"
    );

    let message = ws::Error::Tls { what, source }.to_string();
    assert!(
        message.starts_with("TLS certificate chain with private key: "),
        "{message}"
    );
}

#[test]
fn a_rustls_config_of_ones_own_is_used_as_is() {
    use ws::rustls::pki_types::PrivateKeyDer;
    use ws::rustls::pki_types::pem::PemObject;

    let cert = self_signed();
    let key = PrivateKeyDer::from_pem_slice(cert.key_pem.as_bytes()).unwrap();
    // Built with the re-exported `ws::rustls`, so the versions match.
    let config = ws::rustls::ServerConfig::builder_with_provider(Arc::new(
        ws::rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_no_client_auth()
    .with_single_cert(vec![cert.der.clone()], key)
    .unwrap();
    let config = Arc::new(config);
    let tls = Tls::from_config(Arc::clone(&config));
    assert!(Arc::ptr_eq(tls.config(), &config));
}
