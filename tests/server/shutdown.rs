//! Graceful shutdown: `on_stop`, queued messages, 1001 to every client, `on_close` each.

use ws::Socket;

use crate::probe::Probe;
use crate::support::*;

#[tokio::test]
async fn shutdown_closes_every_client_with_1001_after_what_was_queued() {
    let (events, mut log) = events();
    let socket = Socket::new(Probe::new(events));
    let endpoint = socket.endpoint();
    let server = serve(&socket).await;
    let addr = server.addr();
    let mut clients = Vec::new();
    for name in ["a", "b", "c"] {
        clients.push(connect(&server.url(&format!("/ws?name={name}"))).await);
        log.until(&format!("open {name}")).await;
    }
    assert_eq!(endpoint.broadcast("last words").queued, 3);

    let stopping = tokio::spawn(shutdown(server));
    for client in &mut clients {
        assert_eq!(recv_text(client).await, "last words");
        assert_eq!(
            recv_close(client).await,
            (1001, "Server shutting down".into())
        );
        expect_end(client).await;
    }
    // `shutdown` panics if `run` failed.
    stopping.await.unwrap();

    assert_eq!(log.until("stop").await, "stop");
    let mut closed: Vec<String> = Vec::new();
    for _ in 0..3 {
        closed.push(log.until("close").await);
    }
    closed.sort();
    assert_eq!(
        closed,
        [
            "close a 1001 Server shutting down",
            "close b 1001 Server shutting down",
            "close c 1001 Server shutting down"
        ]
    );
    assert!(endpoint.is_empty());
    // The listener is gone.
    assert!(tokio::net::TcpStream::connect(addr).await.is_err());
}

#[tokio::test]
async fn shutdown_waits_at_most_the_close_timeout_for_silent_clients() {
    let (events, mut log) = events();
    let config = ws::Config::new().close_timeout(std::time::Duration::from_millis(300));
    let socket = Socket::with_config(Probe::new(events), config);
    let server = serve(&socket).await;
    // A raw client that completes the handshake and then never reads nor answers.
    let (response, _silent) = server.raw("/ws").upgrade().await.unwrap();
    assert_eq!(response.status(), 101);
    log.until("open").await;
    let started = std::time::Instant::now();
    shutdown(server).await;
    assert!(started.elapsed() < std::time::Duration::from_secs(3));
    assert_eq!(
        log.until("close").await,
        "close anon 1001 Server shutting down"
    );
}

#[tokio::test]
async fn binding_an_address_in_use_is_an_error() {
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = taken.local_addr().unwrap();
    let (events, _log) = events();
    let socket = Socket::new(Probe::new(events));
    let err = ws::serve(socket.filter())
        .socket(&socket)
        .run(addr)
        .await
        .unwrap_err();
    assert!(matches!(err, ws::Error::Bind { .. }), "{err:?}");
    assert!(
        err.to_string()
            .starts_with(&format!("cannot bind {addr}: ")),
        "{err}"
    );
}

/// The listening socket queues 1,024 connections, not the 128 of Rust's standard listener:
/// 400 clients connecting at once to a server that has not accepted any yet all get through
/// at once (with a queue of 128 the rest would wait for the kernel's retry, a second later).
#[tokio::test]
async fn a_storm_of_connections_fits_in_the_listen_queue() {
    let (events, _log) = events();
    let socket = Socket::new(Probe::new(events));
    let bound = ws::serve(socket.filter())
        .socket(&socket)
        .bind("127.0.0.1:0")
        .await
        .unwrap();
    let addr = bound.local_addr();
    let mut connecting = tokio::task::JoinSet::new();
    for _ in 0..400 {
        connecting.spawn(tokio::time::timeout(
            std::time::Duration::from_millis(800),
            tokio::net::TcpStream::connect(addr),
        ));
    }
    let mut streams = Vec::new();
    while let Some(done) = connecting.join_next().await {
        let stream = done.unwrap().expect("queued without a retry").unwrap();
        streams.push(stream);
    }
    assert_eq!(streams.len(), 400);
    drop(bound);
}
