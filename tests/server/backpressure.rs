//! Rate limits slow a fast client down without closing it; full send queues apply the
//! slow-consumer policy (close 1008, drop, or make the sender wait).

use std::time::{Duration, Instant};

use tokio::io::AsyncReadExt;
use ws::{Config, RateLimit, SendError, SlowConsumer, Socket};

use crate::probe::Probe;
use crate::support::*;

#[tokio::test]
async fn a_client_over_the_byte_rate_is_slowed_not_closed() {
    let (events, mut log) = events();
    let limit = RateLimit {
        bytes_per_second: 16 << 10,
        frames_per_second: 10_000,
    };
    // A fast heartbeat as well: throttled reading must not count as the peer's silence.
    let config = Config::new()
        .rate_limit(Some(limit))
        .heartbeat(Some(Duration::from_millis(50)));
    let socket = Socket::with_config(Probe::new(events), config);
    let server = serve(&socket).await;
    let mut client = connect(&server.url("/ws?name=fast")).await;
    let payload = "é".repeat(512); // 1 KiB
    let started = Instant::now();
    for _ in 0..40 {
        send_text(&mut client, &payload).await;
    }
    for _ in 0..40 {
        assert_eq!(recv_text(&mut client).await, payload);
    }
    // 40 KiB at 16 KiB/s with a one-second burst cannot take less than about 1.5 s.
    assert!(
        started.elapsed() >= Duration::from_millis(1200),
        "{:?}",
        started.elapsed()
    );
    log.until("data fast").await;
    assert!(socket.endpoint().len() == 1, "still open");
}

#[tokio::test]
async fn a_client_over_the_frame_rate_is_slowed_not_closed() {
    let (events, _log) = events();
    let limit = RateLimit {
        bytes_per_second: 1 << 20,
        frames_per_second: 20,
    };
    let socket = Socket::with_config(Probe::new(events), Config::new().rate_limit(Some(limit)));
    let server = serve(&socket).await;
    let mut client = connect(&server.url("/ws?name=chatty")).await;
    let started = Instant::now();
    // One read may carry many small frames; the limit holds back the reads after it.
    for round in 0..2 {
        for i in 0..40 {
            send_text(&mut client, &format!("{round}.{i}")).await;
        }
        for i in 0..40 {
            assert_eq!(recv_text(&mut client).await, format!("{round}.{i}"));
        }
    }
    // 80 frames at 20/s with a one-second burst: the second round waits about a second.
    assert!(
        started.elapsed() >= Duration::from_millis(800),
        "{:?}",
        started.elapsed()
    );
}

/// A server whose clients get a small byte-bounded queue, and a client that never reads.
async fn never_reading(
    policy: SlowConsumer,
) -> (
    TestServer,
    ws::Endpoint,
    ws::ClientId,
    ws::test::raw::Upgraded,
    EventLog,
) {
    let (events, mut log) = events();
    let config = Config::new()
        .send_queue_bytes(64 << 10)
        .slow_consumer(policy)
        .heartbeat(Some(Duration::from_millis(100)))
        .close_timeout(Duration::from_millis(200));
    let socket = Socket::with_config(Probe::new(events), config);
    let endpoint = socket.endpoint();
    let server = serve(&socket).await;
    let tcp = raw_ws(&server, "?name=sloth").await;
    log.until("open sloth").await;
    let id = endpoint.clients()[0];
    (server, endpoint, id, tcp, log)
}

/// Sends 16 KiB messages until one fails; returns how many were queued and the error.
fn fill(endpoint: &ws::Endpoint, id: ws::ClientId) -> (usize, SendError) {
    let chunk = bytes::Bytes::from(vec![7u8; 16 << 10]);
    for sent in 0..100_000 {
        if let Err(err) = endpoint.send(id, chunk.clone()) {
            return (sent, err);
        }
    }
    panic!("the queue never filled");
}

#[tokio::test]
async fn a_never_reading_client_is_closed_with_1008_and_others_are_served() {
    let (server, endpoint, id, _tcp, mut log) = never_reading(SlowConsumer::Close).await;
    let mut other = connect(&server.url("/ws?name=other")).await;
    let (sent, err) = fill(&endpoint, id);
    assert_eq!(err, SendError::QueueFull(id));
    assert!(sent > 0);
    // The others are served meanwhile.
    send_text(&mut other, "prompt").await;
    assert_eq!(recv_text(&mut other).await, "prompt");
    let event = log.until("close sloth").await;
    assert!(event.starts_with("close sloth 1008 "), "{event}");
    assert!(endpoint.send(id, "more").is_err());
}

#[tokio::test]
async fn the_drop_policy_keeps_the_client_and_reports_the_failed_send() {
    let (_server, endpoint, id, mut tcp, _log) = never_reading(SlowConsumer::Drop).await;
    let (sent, err) = fill(&endpoint, id);
    assert_eq!(err, SendError::QueueFull(id));
    assert!(endpoint.contains(id), "the client stays");
    // Once the client reads, everything that was queued arrives: `sent` frames of 16 KiB.
    let expected = sent * (4 + (16 << 10));
    let mut got = 0;
    let mut buf = vec![0u8; 64 << 10];
    while got < expected {
        let n = tokio::time::timeout(WAIT, tcp.read(&mut buf))
            .await
            .unwrap()
            .unwrap();
        assert!(n > 0);
        got += n;
    }
    assert_eq!(got, expected);
    assert!(endpoint.send(id, "after").is_ok(), "room again");
}

#[tokio::test]
async fn the_wait_policy_makes_the_sender_wait_until_there_is_room() {
    let (_server, endpoint, id, mut tcp, _log) = never_reading(SlowConsumer::Wait).await;
    let (sent, err) = fill(&endpoint, id);
    assert_eq!(
        err,
        SendError::QueueFull(id),
        "sync sends cannot wait: they drop"
    );
    // The queue is full (this single-threaded test runtime has not let the writer run since):
    // a waiting send cannot complete now.
    assert!(
        futures_util::FutureExt::now_or_never(endpoint.send_wait(id, vec![1u8; 16 << 10]))
            .is_none(),
        "send_wait waits while the queue is full"
    );
    let waiting = tokio::spawn({
        let endpoint = endpoint.clone();
        async move { endpoint.send_wait(id, vec![1u8; 16 << 10]).await }
    });
    // Draining the client's socket makes room; the waiting send then completes.
    let expected = (sent + 1) * (4 + (16 << 10));
    let mut got = 0;
    let mut buf = vec![0u8; 64 << 10];
    while got < expected {
        let n = tokio::time::timeout(WAIT, tcp.read(&mut buf))
            .await
            .unwrap()
            .unwrap();
        assert!(n > 0);
        got += n;
    }
    assert_eq!(
        tokio::time::timeout(WAIT, waiting).await.unwrap().unwrap(),
        Ok(())
    );
}

#[tokio::test]
async fn a_waiting_sender_is_released_when_the_client_goes() {
    let (_server, endpoint, id, tcp, mut log) = never_reading(SlowConsumer::Wait).await;
    fill(&endpoint, id);
    let waiting = tokio::spawn({
        let endpoint = endpoint.clone();
        async move { endpoint.send_wait(id, vec![1u8; 16 << 10]).await }
    });
    drop(tcp);
    log.until("close sloth").await;
    // It may have been queued just before the end (and then dropped with the connection),
    // or refused; what matters is that it does not wait forever.
    let result = tokio::time::timeout(WAIT, waiting).await.unwrap().unwrap();
    assert!(
        matches!(result, Ok(()) | Err(SendError::Closing(_))),
        "{result:?}"
    );
    assert_eq!(
        endpoint.send_wait(id, "later").await,
        Err(SendError::UnknownClient(id))
    );
}
