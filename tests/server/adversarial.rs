//! Adversarial input, bounded in time: garbage instead of HTTP, garbage frames, abrupt
//! resets by the hundred, and a burst of handshakes beyond the connection limit.

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use ws::test::raw::{self, RawError};
use ws::{Config, Socket};

use crate::probe::Probe;
use crate::support::*;

/// A small deterministic generator, so that a failure can be replayed.
struct Lcg(u64);

impl Lcg {
    fn bytes(&mut self, n: usize) -> Vec<u8> {
        (0..n)
            .map(|_| {
                self.0 = self
                    .0
                    .wrapping_mul(6_364_136_223_846_793_005)
                    .wrapping_add(1);
                (self.0 >> 56) as u8
            })
            .collect()
    }
}

/// The server still completes a normal exchange.
async fn still_serves(server: &TestServer) {
    let mut client = connect(&server.url("/ws?name=check")).await;
    send_text(&mut client, "alive?").await;
    assert_eq!(recv_text(&mut client).await, "alive?");
}

#[tokio::test]
async fn random_bytes_instead_of_http_get_an_error_or_a_hangup() {
    let (events, _log) = events();
    let socket = Socket::new(Probe::new(events));
    let server = serve(&socket).await;
    let mut rng = Lcg(7);
    for _ in 0..20 {
        let mut tcp = tokio::net::TcpStream::connect(server.addr()).await.unwrap();
        let _ = tcp.write_all(&rng.bytes(4096)).await;
        let mut reply = Vec::new();
        let _ = tokio::time::timeout(WAIT, tcp.read_to_end(&mut reply))
            .await
            .expect("answered in time");
        assert!(
            reply.is_empty() || reply.starts_with(b"HTTP/1.1 400"),
            "{:?}",
            String::from_utf8_lossy(&reply[..reply.len().min(80)])
        );
    }
    still_serves(&server).await;
}

#[tokio::test]
async fn random_frames_after_the_handshake_close_only_that_connection() {
    let (events, mut log) = events();
    let socket = Socket::new(Probe::new(events));
    let server = serve(&socket).await;
    let mut rng = Lcg(11);
    for round in 0..20 {
        let mut tcp = raw_ws(&server, &format!("?name=junk{round}")).await;
        log.until(&format!("open junk{round} ")).await;
        let _ = tcp.write_all(&rng.bytes(2048)).await;
        drop(tcp);
        // Whatever the garbage meant, the connection ends and on_close runs once.
        let event = log.until(&format!("close junk{round} ")).await;
        let code: u16 = event.split(' ').nth(2).unwrap().parse().unwrap();
        assert!([1002, 1006, 1007, 1009].contains(&code), "{event}");
    }
    assert_eq!(socket.endpoint().len(), 0);
    still_serves(&server).await;
}

#[tokio::test]
async fn five_hundred_abrupt_resets_leave_nothing_behind() {
    let (events, mut log) = events();
    let config = Config::new().max_connections_per_ip(None);
    let socket = Socket::with_config(Probe::new(events), config);
    let endpoint = socket.endpoint();
    let server = serve(&socket).await;
    let mut connections = Vec::new();
    for i in 0..500 {
        connections.push(raw_ws(&server, &format!("?name=r{i}")).await);
    }
    for _ in 0..500 {
        log.until("open r").await;
    }
    assert_eq!(endpoint.len(), 500);
    for tcp in connections {
        tcp.tcp().set_zero_linger().unwrap(); // RST, no FIN
        drop(tcp);
    }
    for _ in 0..500 {
        let event = log.until("close r").await;
        assert!(event.ends_with(" 1006 "), "{event}");
    }
    assert_eq!(endpoint.len(), 0);
    still_serves(&server).await;
}

#[tokio::test]
async fn a_burst_beyond_the_connection_limit_gets_exactly_the_limit() {
    let (events, mut log) = events();
    let config = Config::new()
        .max_connections(Some(20))
        .max_connections_per_ip(None);
    let socket = Socket::with_config(Probe::new(events), config);
    let server = serve(&socket).await;
    let addr = server.addr();
    let attempts: Vec<_> = (0..60)
        .map(|_| tokio::spawn(raw::Request::new(addr, "/ws").upgrade()))
        .collect();
    let mut accepted = Vec::new();
    let mut refused = 0;
    for attempt in attempts {
        match attempt.await.unwrap() {
            Ok((response, tcp)) if response.status() == 101 => accepted.push(tcp),
            Err(RawError::NotUpgraded(response)) if response.status() == 503 => refused += 1,
            other => panic!("unexpected reply {other:?}"),
        }
    }
    assert_eq!((accepted.len(), refused), (20, 40));
    drop(accepted);
    for _ in 0..20 {
        log.until("close").await;
    }
    still_serves(&server).await;
}
